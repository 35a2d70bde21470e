"""Weight export: per-layer tables in every FPGA format, one manifest, and its verification.

An export directory is what ``spikeforge generate --from`` and ``cosim --from`` read. Per
neuron layer (core) it holds the ROM tables as ``.hex`` (canonical: the generated Verilog reads
them through ``INIT_FILE`` parameters), Xilinx ``.coe`` and Intel ``.mif`` (the same words, for
vendor memory generators) and ``<layer>_weights.npz`` (the unpacked integer tables). A whole
network adds ``network.npz`` (integer synapse and readout weights) and its formats. Everything
is listed in ``manifest.json`` with a sha256, the source checkpoint's hash and the
quantisation report. :func:`load_export` and :func:`load_network` refuse a directory whose
hashes, shapes or widths disagree with the cores *before* anything is generated or simulated.
"""

import contextlib
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from ..golden.network_int import IntegerLayer, IntegerNetwork, IntegerSynapse
from ..hw.cores import config_from_json, core_type
from ..hw.generate import (GenerationError, check_seal, replaceable, seal, staged_directory,
                           write_json_atomically)
from ..hw.memfile import read_hex, write_coe, write_hex, write_mif

__all__ = ["MANIFEST", "NETWORK_NPZ", "ExportError", "export_layers", "export_network",
           "load_export", "load_network", "sha256_file", "check_export_target"]

MANIFEST = "manifest.json"
NETWORK_NPZ = "network.npz"
FORMAT = "spikeforge-export"
VERSION = 2

#: (neuron, table) → (logical shape axes, signed, what an element means), for the readers.
_TABLE_INFO = {
    ("cpsn", "signs"): (("channels", "order"), True,
                        "tap sign in {-1, 0, +1} (0 = disabled tap), 2-bit two's complement"),
    ("cpsn", "shifts"): (("channels", "order"), False, "left shift = exponent - exp_min"),
    ("cpsn", "bias"): (("channels",), True,
                       "bias in accumulator units 2^(exp_min - input_frac_bits)"),
    ("prf", "delta"): (("channels",), False,
                       "input scale Δ, delta_frac_bits fraction bits (dsp: integer; shift_add: "
                       "csd_terms signed digits, 2-bit sign above the bit position)"),
    ("prf", "powers"): (("time_parallelism", "channels", 2), True,
                        "Λ^n for n = 1..P, real then imaginary, coef_frac_bits fraction bits "
                        "(dsp: integer; shift_add: csd_terms signed digits)"),
    ("prf", "v_th"): (("channels",), True, "threshold on the state grid (state_frac_bits)"),
    ("lif", "threshold"): (("channels",), False, "threshold θ on the state grid "
                           "(state_frac_bits), state_width bits"),
    ("lif", "beta"): (("channels",), False,
                      "membrane decay β·2^decay_frac_bits (multiply: the integer; shift: "
                      "enable bit over F − k; csd: decay_digits 2-bit signs over positions)"),
    ("lif", "alpha"): (("channels",), False, "synaptic-current decay α, as beta"),
}
_SYNAPSE_FIELDS = ("weight_width", "weight_frac_bits", "shift", "out_width", "input_bound")


class ExportError(ValueError):
    """An export directory is inconsistent; the message names the layer, table and file."""


def sha256_file(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _shape(config, axes) -> list[int]:
    return [axis if isinstance(axis, int) else getattr(config, axis) for axis in axes]


def _expected_tables(config) -> dict:
    """What the core needs of each table: words and layout, from the configuration."""
    kind = core_type(config)
    expected = {}
    for table, (words, word_width) in kind.table_words(config).items():
        element_width, per_word = kind.layout(config, table)
        axes, signed, meaning = _TABLE_INFO[kind.neuron, table]
        expected[table] = {
            "words": words,
            "info": {"shape": _shape(config, axes), "signed": signed, "format": meaning,
                     "element_width": element_width, "elements_per_word": per_word,
                     "word_width": word_width, "depth": len(words)},
        }
    return expected


def _write_tables(config, layer: str, out_dir: Path) -> dict:
    tables = {}
    for table, expected in _expected_tables(config).items():
        words, info = expected["words"], expected["info"]
        files = {kind: f"{layer}_{table}.{kind}" for kind in ("hex", "coe", "mif")}
        write_hex(out_dir / files["hex"], words, info["word_width"])
        write_coe(out_dir / files["coe"], words, info["word_width"])
        write_mif(out_dir / files["mif"], words, info["word_width"])
        tables[table] = {**info, "files": files,
                         "sha256": {kind: sha256_file(out_dir / name)
                                    for kind, name in files.items()}}
    return tables


def _core_entry(name: str, config, out_dir: Path) -> dict:
    arrays = type(config)._JSON_TABLES
    scalars = {k: v for k, v in config.to_json().items() if k not in arrays}
    npz = f"{name}_weights.npz"
    np.savez(out_dir / npz, **{table: getattr(config, table) for table in arrays
                               if getattr(config, table) is not None})  # LIF: optional
    return {"name": name, "neuron": core_type(config).neuron, "config": scalars,
            "tables": _write_tables(config, name, out_dir),
            "npz": {"file": npz, "sha256": sha256_file(out_dir / npz)}}


def _write_manifest(out_dir: Path, entries: list, source, extra) -> dict:
    manifest = {"format": FORMAT, "version": VERSION, "source": source or {}, "layers": entries,
                **(extra or {})}
    # sealed: every field a later stage reads (a layer's dilation, the input width, ...) is
    # covered by the manifest's own sha256, not only the files it lists
    write_json_atomically(out_dir / MANIFEST, seal(manifest))
    return manifest


def _manifest_files(manifest: dict) -> set[str]:
    """Every file name a manifest lists."""
    names = set()
    for entry in manifest.get("layers") or ():
        if not isinstance(entry, dict):
            continue
        for table in (entry.get("tables") or {}).values():
            if isinstance(table, dict) and isinstance(table.get("files"), dict):
                names |= set(table["files"].values())
        if isinstance(entry.get("npz"), dict):
            names.add(entry["npz"].get("file"))
    network = manifest.get("network")
    if isinstance(network, dict) and isinstance(network.get("npz"), dict):
        names.add(network["npz"].get("file"))
    return {name for name in names if isinstance(name, str)}


def _export_names(directory: Path) -> set[str]:
    """The entries of ``directory`` that its previous export wrote; raises
    :class:`ExportError` when it holds no export."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        _not_an_export(directory, writing=True)
    return {MANIFEST, MANIFEST + ".tmp", *_manifest_files(manifest)}


def check_export_target(out_dir) -> None:
    """Raise :class:`ExportError` before any work unless ``out_dir`` is new, empty or a
    previous export (which an export replaces when it is complete)."""
    try:
        replaceable(out_dir, "export", _export_names)
    except GenerationError as exc:
        raise ExportError(str(exc)) from None


@contextlib.contextmanager
def _staged_export(out_dir):
    """Write an export into a temporary sibling that replaces ``out_dir`` when complete: an
    interrupted or failed export leaves the previous one whole (see
    :func:`~spikeforge.hw.generate.staged_directory`)."""
    check_export_target(out_dir)
    with staged_directory(out_dir, "export", _export_names) as stage:
        yield stage


def _check_names(names: list[str]) -> None:
    if len(set(names)) != len(names) or not all(n.isidentifier() for n in names):
        raise ValueError(f"layer names must be unique identifiers, got {names}")


def export_layers(layers: list, out_dir, *, source: dict | None = None,
                  extra: dict | None = None) -> dict:
    """Write the tables of ``[(name, CPSNConfig | PRFConfig)]`` and ``manifest.json``.

    ``source`` says where the weights came from (checkpoint path and its sha256); ``extra`` is
    copied into the manifest. Returns the manifest.
    """
    _check_names([name for name, _ in layers])
    with _staged_export(out_dir) as stage:
        entries = [_core_entry(name, config, stage) for name, config in layers]
        return _write_manifest(stage, entries, source, extra)


def export_network(network: IntegerNetwork, out_dir, *, source: dict | None = None,
                   extra: dict | None = None) -> dict:
    """Write every core's tables, ``network.npz`` and ``manifest.json`` for ``network``."""
    _check_names([layer.name for layer in network.layers] + ["readout"])
    with _staged_export(out_dir) as stage:
        return _export_network(network, stage, source, extra)


def _export_network(network: IntegerNetwork, out_dir: Path, source, extra) -> dict:
    entries = [_core_entry(layer.name, layer.core, out_dir) for layer in network.layers]
    synapses = [(layer.name, layer.synapse) for layer in network.layers] + \
        [("readout", network.readout)]
    np.savez(out_dir / NETWORK_NPZ, **{f"{name}_{part}": getattr(synapse, part)
                                       for name, synapse in synapses
                                       for part in ("weight", "bias", "recurrent")
                                       if getattr(synapse, part, None) is not None})
    description = {
        "input": {"features": network.in_features, "width": network.input_width,
                  "frac_bits": network.input_frac_bits},
        "synapses": {name: {"inputs": synapse.inputs, "outputs": synapse.outputs,
                            **{f: getattr(synapse, f) for f in _SYNAPSE_FIELDS},
                            # recurrent (RLeaky): weights <name>_recurrent in network.npz
                            **({"recurrent": True} if synapse.recurrent is not None else {})}
                     for name, synapse in synapses},
        "readout_kind": network.readout_kind,
        "npz": {"file": NETWORK_NPZ, "sha256": sha256_file(out_dir / NETWORK_NPZ)},
    }
    return _write_manifest(out_dir, entries, source, {"network": description, **(extra or {})})


def _check_hash(directory: Path, layer: str, file_name: str, expected: str) -> Path:
    path = directory / file_name
    if not path.is_file():
        raise ExportError(f"layer {layer!r}: file {file_name} is missing from {directory}")
    if sha256_file(path) != expected:
        raise ExportError(f"layer {layer!r}: {file_name} does not match its sha256 in the "
                          f"manifest (edited or corrupted)")
    return path


#: Files that mark a training run directory (``spikeforge train``).
_RUN_MARKERS = ("best.pt", "last.pt", "metrics.json")


def _not_an_export(directory: Path, writing: bool = False):
    """Raise the :class:`ExportError` that says what ``directory`` is instead of an export
    (``writing``: it was given as the output of an export)."""
    from ..hw.generate import previous_generation

    if not directory.is_dir():
        raise ExportError(f"export directory {directory} does not exist")
    found = previous_generation(directory)
    entries = sorted(p.name for p in directory.iterdir())
    if found is not None and found[0] == "network":
        path = (found[2].get("export") or {}).get("path")
        message = (f"{directory} is a network directory written by `spikeforge generate "
                   f"--from`{f' (from the export {path})' if path else ''}, not an export")
    elif found is not None:
        message = (f"{directory} is a core directory written by `spikeforge generate` "
                   f"({found[1].name}), not an export")
    elif any(name in entries for name in _RUN_MARKERS):
        message = (f"{directory} is a training run directory, not an export"
                   + ("" if writing else f"; export it with `spikeforge export {directory} "
                                         f"--out build/{directory.name}`"))
    elif not entries:
        message = f"{directory} has no {MANIFEST} (it is empty); run `spikeforge export` first"
    elif writing:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        message = f"{directory} is not empty and holds no previous export ({shown})"
    else:
        message = f"{directory} has no {MANIFEST}: not an export (`spikeforge export` writes one)"
    if writing:
        message += "; export into an empty or new directory"
    raise ExportError(message)


def _read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not path.is_file():
        _not_an_export(directory)
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or \
            manifest.get("version") != VERSION:
        raise ExportError(f"{path}: not a {FORMAT} v{VERSION} manifest")
    layers = manifest.get("layers")
    if not layers:
        raise ExportError(f"{path}: the manifest lists no layers")
    if not isinstance(layers, list) or not all(isinstance(e, dict) for e in layers):
        raise ExportError(f"{path}: 'layers' must be a list of layer entries, not "
                          f"{json.dumps(layers)[:60]}")
    return manifest


def _check_manifest_seal(directory: Path, manifest: dict) -> None:
    """Last of the checks (the specific ones name what is wrong first): the manifest still
    has the contents `spikeforge export` wrote, so no unhashed field was edited."""
    check_seal(manifest, directory / MANIFEST, writer="spikeforge export",
               remedy="export again", error=ExportError)


def _load_npz(directory: Path, name: str, entry: dict) -> dict:
    try:
        file_name, digest = entry["file"], entry["sha256"]
    except (KeyError, TypeError):
        raise ExportError(f"layer {name!r}: the manifest's npz entry is incomplete") from None
    path = _check_hash(directory, name, file_name, digest)
    try:
        with np.load(path) as npz:
            return {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ExportError(f"layer {name!r}: {file_name} is not a readable .npz archive "
                          f"({type(exc).__name__}: {exc}); export again") from None


def _load_core(directory: Path, entry: dict):
    """One layer's configuration, after checking its tables against the core it describes."""
    name = entry.get("name", "?")
    try:
        return _check_core(directory, entry, name)
    except (KeyError, TypeError, AttributeError) as exc:  # a malformed manifest entry
        missing = f"lacks {exc}" if isinstance(exc, KeyError) else f"is malformed ({exc})"
        raise ExportError(f"layer {name!r}: its manifest entry {missing}; export again") \
            from None


def _check_core(directory: Path, entry: dict, name: str):
    arrays = _load_npz(directory, name, entry.get("npz"))
    try:
        config = config_from_json({**entry["config"], "neuron": entry.get("neuron"),
                                   **{k: v.tolist() for k, v in arrays.items()}})
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"layer {name!r}: {exc}") from None
    expected = _expected_tables(config)
    listed = entry.get("tables", {})
    missing = sorted(set(expected) - set(listed))
    if missing:
        raise ExportError(f"layer {name!r}: table(s) {missing} missing from the manifest")
    for table, want in expected.items():
        info = listed[table]
        for key in ("shape", "element_width", "elements_per_word", "word_width", "depth"):
            if info.get(key) != want["info"][key]:
                raise ExportError(f"layer {name!r}, table {table!r}: {key} is {info.get(key)} "
                                  f"in the manifest but the core needs {want['info'][key]}")
        for kind, file_name in info["files"].items():
            _check_hash(directory, name, file_name, info["sha256"][kind])
        try:
            words = read_hex(directory / info["files"]["hex"], info["word_width"], info["depth"])
        except ValueError as exc:
            raise ExportError(f"layer {name!r}: {exc}") from None
        if words != want["words"]:
            raise ExportError(f"layer {name!r}: {info['files']['hex']} and {entry['npz']['file']} "
                              f"disagree (table {table!r})")
    return config


def load_export(directory) -> tuple[dict, list]:
    """Verify an export directory; returns ``(manifest, [(layer name, core configuration)])``.

    Checks the format marker, every file's sha256, that each layer has every table its core
    reads, that the table shapes and widths agree with that core, and that the ``.hex`` words
    equal the tables packed from ``<layer>_weights.npz``.
    """
    directory = Path(directory)
    manifest, cores = _load_export(directory)
    _check_manifest_seal(directory, manifest)
    return manifest, cores


def _load_export(directory: Path) -> tuple[dict, list]:
    manifest = _read_manifest(directory)
    return manifest, [(entry.get("name", "?"), _load_core(directory, entry))
                      for entry in manifest["layers"]]


def load_network(directory) -> tuple[dict, IntegerNetwork]:
    """Verify an export of a whole network (:func:`load_export` plus ``network.npz``) and
    rebuild its :class:`~spikeforge.golden.network_int.IntegerNetwork`."""
    directory = Path(directory)
    manifest, cores = _load_export(directory)
    description = manifest.get("network")
    if not isinstance(description, dict):
        raise ExportError(f"{directory / MANIFEST}: an export of cores only, not of a network "
                          f"(made by `spikeforge export RUN`)")
    arrays = _load_npz(directory, "network", description.get("npz"))
    try:
        synapses = {}
        for name, fields in description["synapses"].items():
            synapses[name] = IntegerSynapse(weight=arrays[f"{name}_weight"],
                                            bias=arrays[f"{name}_bias"],
                                            **{f: fields[f] for f in _SYNAPSE_FIELDS},
                                            recurrent=arrays[f"{name}_recurrent"]
                                            if fields.get("recurrent") else None)
            if [synapses[name].outputs, synapses[name].inputs] != [fields["outputs"],
                                                                   fields["inputs"]]:
                raise ValueError(f"synapse {name!r}: network.npz holds a "
                                 f"{synapses[name].outputs}x{synapses[name].inputs} matrix, "
                                 f"the manifest says {fields['outputs']}x{fields['inputs']}")
        network = IntegerNetwork(
            input_width=description["input"]["width"],
            input_frac_bits=description["input"]["frac_bits"],
            layers=tuple(IntegerLayer(name, synapses[name], core) for name, core in cores),
            readout=synapses["readout"], readout_kind=description["readout_kind"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{directory / MANIFEST}: the network does not fit together: "
                          f"{type(exc).__name__}: {exc}") from None
    _check_manifest_seal(directory, manifest)
    return manifest, network
