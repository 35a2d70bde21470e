"""Weight export: per-layer tables in every FPGA format, one manifest, and its verification.

A manifest directory is what ``spikeforge generate --from`` and ``cosim --from`` read. The
``.hex`` files are canonical (the generated Verilog reads them through ``INIT_FILE``); ``.coe``
and ``.mif`` hold the same words for vendor memory generators and ``weights.npz`` holds the
unpacked integer tables for people and notebooks. :func:`load_export` refuses a directory
whose hashes, shapes or widths disagree *before* anything is generated or simulated.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from ..hw.cpsn_config import CPSNConfig
from ..hw.cpsn_tables import TABLES, pack_tables, table_width, unpack_tables
from ..hw.memfile import read_hex, write_coe, write_hex, write_mif

__all__ = ["MANIFEST", "ExportError", "export_layers", "load_export", "sha256_file"]

MANIFEST = "manifest.json"
#: The configuration's integer arrays, stored unpacked in ``weights.npz``.
ARRAYS = ("signs", "exponents", "bias")
FORMAT = "spikeforge-export"
VERSION = 1

#: What each CPSN table element means, for the manifest's readers.
_TABLE_FORMATS = {
    "signs": "tap sign in {-1, 0, +1} (0 = disabled tap), 2-bit two's complement",
    "shifts": "left shift = exponent - exp_min, unsigned",
    "bias": "bias in accumulator units 2^(exp_min - input_frac_bits), two's complement",
}
_TABLE_SHAPES = {"signs": ("channels", "order"), "shifts": ("channels", "order"),
                 "bias": ("channels",)}


class ExportError(ValueError):
    """An export directory is inconsistent; the message names the layer, table and file."""


def sha256_file(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _table_entry(config: CPSNConfig, layer: str, table: str, words, out_dir: Path) -> dict:
    element_width, per_word = table_width(config, table)
    word_width = element_width * per_word
    files = {"hex": f"{layer}_{table}.hex", "coe": f"{layer}_{table}.coe",
             "mif": f"{layer}_{table}.mif"}
    write_hex(out_dir / files["hex"], words, word_width)
    write_coe(out_dir / files["coe"], words, word_width)
    write_mif(out_dir / files["mif"], words, word_width)
    return {
        "shape": [getattr(config, axis) for axis in _TABLE_SHAPES[table]],
        "element_width": element_width,
        "signed": table != "shifts",
        "format": _TABLE_FORMATS[table],
        "words": config.groups,
        "elements_per_word": per_word,
        "word_width": word_width,
        "files": files,
        "sha256": {kind: sha256_file(out_dir / name) for kind, name in files.items()},
    }


def export_layers(layers: list[tuple[str, CPSNConfig]], out_dir, *,
                  source: dict | None = None, extra: dict | None = None) -> dict:
    """Write every layer's tables and ``manifest.json``; returns the manifest.

    ``source`` describes where the weights came from (checkpoint path and its sha256);
    ``extra`` is copied into the manifest (e.g. the quantisation report).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [name for name, _ in layers]
    if len(set(names)) != len(names) or not all(n.isidentifier() for n in names):
        raise ValueError(f"layer names must be unique identifiers, got {names}")
    entries = []
    for name, config in layers:
        scalars = {k: v for k, v in config.to_json().items() if k not in ARRAYS}
        tables = {table: _table_entry(config, name, table, words, out_dir)
                  for table, words in pack_tables(config).items()}
        npz = f"{name}_weights.npz"
        np.savez(out_dir / npz, signs=config.signs, exponents=config.exponents,
                 bias=config.bias)
        entries.append({"name": name, "neuron": "cpsn", "config": scalars, "tables": tables,
                        "npz": {"file": npz, "sha256": sha256_file(out_dir / npz)}})
    manifest = {"format": FORMAT, "version": VERSION, "source": source or {}, "layers": entries,
                **(extra or {})}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _check_hash(directory: Path, layer: str, file_name: str, expected: str) -> Path:
    path = directory / file_name
    if not path.is_file():
        raise ExportError(f"layer {layer!r}: file {file_name} is missing from {directory}")
    if sha256_file(path) != expected:
        raise ExportError(f"layer {layer!r}: {file_name} does not match its sha256 in the "
                          f"manifest (edited or corrupted)")
    return path


def load_export(directory) -> tuple[dict, list[tuple[str, CPSNConfig]]]:
    """Verify an export directory and rebuild each layer's configuration from its ``.hex``.

    Checks the format marker, every file's sha256, that each layer has every table, that the
    table shapes and widths agree with the core the configuration describes, and that the
    ``.hex`` tables equal ``weights.npz``. Returns ``(manifest, [(name, config)])``.
    """
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise ExportError(f"{directory} has no {MANIFEST}; run `spikeforge export` first")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: not valid JSON ({exc})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ExportError(f"{path}: not a {FORMAT} v{VERSION} manifest")
    layers = []
    for entry in manifest.get("layers", []):
        name = entry.get("name", "?")
        if entry.get("neuron") != "cpsn":
            raise ExportError(f"layer {name!r}: unsupported neuron {entry.get('neuron')!r}")
        missing = sorted(set(TABLES) - set(entry.get("tables", {})))
        if missing:
            raise ExportError(f"layer {name!r}: table(s) {missing} missing from the manifest")
        with np.load(_check_hash(directory, name, entry["npz"]["file"],
                                 entry["npz"]["sha256"])) as npz:
            arrays = {key: npz[key] for key in npz.files}
        try:
            config = CPSNConfig.from_json({**entry["config"], **{k: v.tolist()
                                                                   for k, v in arrays.items()}})
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportError(f"layer {name!r}: {exc}") from None
        packed = {}
        for table in TABLES:
            info = entry["tables"][table]
            element_width, per_word = table_width(config, table)
            want = {"element_width": element_width, "elements_per_word": per_word,
                    "word_width": element_width * per_word, "words": config.groups,
                    "shape": [getattr(config, a) for a in _TABLE_SHAPES[table]]}
            for key, value in want.items():
                if info.get(key) != value:
                    raise ExportError(f"layer {name!r}, table {table!r}: {key} is "
                                      f"{info.get(key)} in the manifest but the core needs "
                                      f"{value}")
            for kind, file_name in info["files"].items():
                _check_hash(directory, name, file_name, info["sha256"][kind])
            packed[table] = read_hex(directory / info["files"]["hex"], want["word_width"],
                                     config.groups)
        from_hex = unpack_tables(config, packed)
        for table in ARRAYS:
            if not np.array_equal(getattr(from_hex, table), getattr(config, table)):
                raise ExportError(f"layer {name!r}: the .hex tables and {entry['npz']['file']} "
                                  f"disagree on {table}")
        layers.append((name, from_hex))
    if not layers:
        raise ExportError(f"{path}: the manifest lists no layers")
    return manifest, layers
