"""Write a core as files: Verilog, ``$readmemh`` tables and a JSON description."""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from .cores import core_type, core_verilog, table_file
from .cpsn import cpsn_latency
from ..golden.cpsn_config import CPSNConfig
from .emit import verilog_text
from .memfile import ROM_MODULE, write_hex
from .prf import drive_width, prf_latency
from ..golden.prf_config import PRFConfig

__all__ = ["ROM_MODULE", "table_file", "core_verilog", "describe_core", "generate_core",
           "write_json_atomically",
           "NETWORK_MODULE", "NETWORK_VERILOG", "NETWORK_DESCRIPTION", "network_accelerator",
           "network_verilog",
           "generate_network", "load_network_dir", "SEAL", "seal", "check_seal",
           "GenerationError", "staged_directory", "previous_generation"]



def _ports(input_width: int, output_elements: int, membrane_width: int | None) -> dict:
    ports = {
        "clk": {"direction": "in", "width": 1},
        "rst": {"direction": "in", "width": 1, "note": "synchronous, active high"},
        "s_axis__tdata": {"direction": "in", "width": output_elements * input_width,
                          "elements": output_elements, "element_width": input_width,
                          "signed": True},
        "s_axis__tvalid": {"direction": "in", "width": 1},
        "s_axis__tready": {"direction": "out", "width": 1},
        "s_axis__tlast": {"direction": "in", "width": 1},
        "m_axis__tdata": {"direction": "out", "width": output_elements,
                          "elements": output_elements, "element_width": 1},
        "m_axis__tvalid": {"direction": "out", "width": 1},
        "m_axis__tready": {"direction": "in", "width": 1},
        "m_axis__tlast": {"direction": "out", "width": 1},
    }
    if membrane_width:
        ports["m_axis__tuser"] = {"direction": "out", "width": output_elements * membrane_width,
                                  "elements": output_elements, "element_width": membrane_width,
                                  "signed": True, "note": "membrane per element"}
    return ports


def _specifics(config, options: dict) -> dict:
    """The part of a description that depends on the neuron."""
    if core_type(config).specifics is not None:
        return core_type(config).specifics(config, options)
    if isinstance(config, CPSNConfig):
        arith = options.get("arith", "shift_add")
        return {
            "arith": arith,
            "latency_cycles": cpsn_latency(config),
            "elements_per_beat": config.lanes,
            "throughput": "one beat (one time step of `lanes` channels) per clock",
            "multipliers": 0 if arith == "shift_add" else config.lanes * config.order,
            "widths": {"input": config.input_width, "term": config.term_width,
                       "bias": config.bias_width, "membrane": config.membrane_width,
                       "shift_code": config.exp_code_width},
        }
    assert isinstance(config, PRFConfig)
    return {
        "coef_mode": config.coef_mode,
        "latency_cycles": prf_latency(config),
        "elements_per_beat": config.lanes * config.time_parallelism,
        "throughput": "one beat (time_parallelism steps of `lanes` channels) per clock",
        "widths": {"input": config.input_width, "coefficient": config.coef_width,
                   "delta": config.delta_width, "drive": drive_width(config),
                   "state": config.state_width},
    }


def describe_core(config, name: str, weight_storage: str, **options) -> dict:
    """Ports, widths, latency and tables of a generated core, for tools and people."""
    specifics = _specifics(config, options)
    membrane_width = None
    if config.membrane_out:
        membrane_width = specifics["widths"].get("membrane", specifics["widths"].get("state"))
    kind = core_type(config)
    tables = {}
    for table, (words, word_width) in kind.table_words(config, **options).items():
        width, per_word = kind.layout(config, table)
        tables[table] = {"file": table_file(name, table), "words": len(words),
                         "word_width": word_width, "element_width": width,
                         "elements_per_word": per_word}
    return {"name": name, "neuron": kind.neuron, "weight_storage": weight_storage,
            "beats_per_time_step": config.groups, **specifics,
            "ports": _ports(config.input_width, specifics["elements_per_beat"], membrane_width),
            "tables": tables, "config": config.to_json()}


def generate_core(config, out_dir, *, name: str | None = None, weight_storage: str = "baked",
                  **options) -> dict:
    """Write ``<name>.v``, the ROM module (file storage), ``<name>_<table>.hex`` files and
    ``<name>.json`` into ``out_dir``; return the description (with file hashes, sealed).
    ``out_dir`` must be new, empty or hold a previous core generation, which is replaced
    whole when the new one is complete (:func:`staged_directory`).

    ``options`` are the core type's generator options (CPSN: ``arith='multiply'`` writes the
    multiplier baseline)."""
    name = name or f"{core_type(config).neuron}_core"
    if not name.isidentifier():
        raise ValueError(f"core name {name!r} must be a Verilog identifier")
    description = describe_core(config, name, weight_storage, **options)
    # Everything is written into a temporary sibling that replaces out_dir only when it is
    # complete: an interrupted or failed generation leaves the previous one as it was.
    with staged_directory(out_dir, "core") as stage:
        (stage / f"{name}.v").write_text(core_verilog(config, name, weight_storage, **options))
        if weight_storage == "file":
            shutil.copyfile(resources.files(__package__) / "verilog" / ROM_MODULE,
                            stage / ROM_MODULE)
        for table, (words, word_width) in core_type(config).table_words(config,
                                                                         **options).items():
            write_hex(stage / table_file(name, table), words, word_width)
        written = sorted({f"{name}.v", *(t["file"] for t in description["tables"].values())}
                         | ({ROM_MODULE} if weight_storage == "file" else set()))
        description["files"] = {
            f: hashlib.sha256((stage / f).read_bytes()).hexdigest() for f in written}
        write_json_atomically(stage / f"{name}.json", seal(description))
    return description


#: Key of a description's own hash: the sha256 of its canonical JSON without this key (and
#: without the keys in ``_SEAL_EXEMPT``). Every field a later stage reads (configuration,
#: ports, cycles per sample, ...) is covered: an edited description is refused, not trusted.
SEAL = "description_sha256"
#: Fields added after generation that carry their own hash: a network's ``export`` (the
#: export's path and the sha256 of its manifest, checked against the manifest itself).
_SEAL_EXEMPT = ("export",)


def _seal_of(description: dict) -> str:
    body = {k: v for k, v in description.items() if k != SEAL and k not in _SEAL_EXEMPT}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def seal(description: dict) -> dict:
    """Add :data:`SEAL` to ``description`` (in place; computed on its JSON form) and return
    it."""
    description[SEAL] = _seal_of(json.loads(json.dumps(description)))
    return description


def check_seal(description: dict, path, *, writer: str = "spikeforge generate",
               remedy: str = "generate the directory again", error=ValueError) -> None:
    """Raise ``error`` unless ``description`` (as read from ``path``) still has the contents
    it was sealed with (by ``writer``; ``remedy`` says what to do)."""
    if SEAL not in description:
        raise error(f"{path} has no {SEAL}: written by an older spikeforge or by hand; "
                    f"{remedy}")
    if _seal_of(description) != description[SEAL]:
        raise error(f"{path} was edited after `{writer}` wrote it (its {SEAL} does not "
                    f"match its contents); {remedy}")


class GenerationError(ValueError):
    """An output directory that a generation may not replace; the message says why."""


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def previous_generation(directory) -> tuple[str, Path, dict] | None:
    """``(kind, description path, description)`` of the generation in ``directory`` (kind
    ``"network"`` or ``"core"``), or ``None`` when it holds none."""
    directory = Path(directory)
    network = _read_json(directory / NETWORK_DESCRIPTION)
    if isinstance(network, dict) and network.get("format") == NETWORK_FORMAT:
        return "network", directory / NETWORK_DESCRIPTION, network
    for path in sorted(directory.glob("*.json")):
        data = _read_json(path)
        if isinstance(data, dict) and {"name", "ports", "files"} <= set(data) and \
                data.get("format") != NETWORK_FORMAT:
            return "core", path, data
    return None


_KIND_WORDS = {"core": "a core", "network": "a network accelerator"}


def _generated_names(directory: Path, kind: str) -> set[str]:
    """The entries of ``directory`` that a previous generation of ``kind`` wrote (its
    description and the files it lists) or that measured it (``synth-<target>``); raise
    :class:`GenerationError` when ``directory`` holds no previous generation of ``kind``."""
    found = previous_generation(directory)
    entries = sorted(p.name for p in directory.iterdir())
    if found is None:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise GenerationError(
            f"{directory} is not empty and holds no previous generation ({shown}); "
            f"generate into an empty or new directory, or remove these files")
    other, path, description = found
    if other != kind:
        raise GenerationError(f"{directory} holds {_KIND_WORDS[other]} ({path.name}), not "
                              f"{_KIND_WORDS[kind]}; choose another --out")
    files = description.get("files")
    names = {path.name, *(files if isinstance(files, dict) else ())}
    # synthesis results of the old design (the default `synth` output) would be stale
    names |= {name for name in entries if name.startswith("synth-")
              and (directory / name).is_dir()}
    return names | {name for name in entries if name.endswith(".tmp")}


def replaceable(out_dir, kind: str, owned=None) -> set[str]:
    """The names in ``out_dir`` that an output of ``kind`` may replace (see
    :func:`staged_directory`); raises :class:`GenerationError` if it may not be written. A
    command calls it before any work."""
    out_dir = Path(os.path.abspath(out_dir))
    if out_dir.exists() and not out_dir.is_dir():
        raise GenerationError(f"{out_dir} is a file, not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        return (owned or (lambda d: _generated_names(d, kind)))(out_dir)
    return set()


@contextlib.contextmanager
def staged_directory(out_dir, kind, owned=None):
    """Write an output directory whole: yields an empty temporary sibling of ``out_dir`` to
    write into; when the block ends without error its entries replace those of the previous
    output in ``out_dir`` (or it becomes ``out_dir``).

    ``out_dir`` must be missing, empty, or hold a previous output of the same kind: ``owned``
    (default: a previous generation of ``kind``, ``"core"`` or ``"network"``) returns the
    names in it that the previous output wrote, or raises before any work. Those are
    replaced; anything else in ``out_dir`` (a user's notes, a nested directory) is kept. On
    any failure or interrupt the sibling is removed and ``out_dir`` is left as it was.
    """
    out_dir = Path(os.path.abspath(out_dir))  # its parent holds the temporary sibling
    replaced = replaceable(out_dir, kind, owned)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial",
                                  dir=out_dir.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if not out_dir.exists():
        os.rename(stage, out_dir)
        return
    # Entries move, not the directory (it may be the working directory, hold a user's other
    # files, or carry its own permissions): the old description goes first and the new one
    # comes last, so at no moment does a description stand beside files it does not list.
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old",
                                dir=out_dir.parent))
    for name in sorted(replaced, key=lambda n: not n.endswith(".json")):
        if (out_dir / name).exists() or (out_dir / name).is_symlink():
            os.rename(out_dir / name, old / name)
    for entry in sorted(stage.iterdir(), key=lambda e: e.name.endswith(".json")):
        if (out_dir / entry.name).is_dir() and not (out_dir / entry.name).is_symlink():
            os.rename(out_dir / entry.name, old / entry.name)  # an extra of the same name
        os.replace(entry, out_dir / entry.name)
    os.rmdir(stage)
    shutil.rmtree(old)


def write_json_atomically(path, data) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary sibling and a rename, so the
    description, which marks a directory complete, appears whole or not at all."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(temporary, path)


#: Module name of a generated network accelerator, and its files.
NETWORK_MODULE = "spikeforge_network"
NETWORK_VERILOG = "network.v"
NETWORK_DESCRIPTION = "network.json"
NETWORK_FORMAT = "spikeforge-network"


def network_accelerator(network, *, weight_storage: str = "file", **options):
    """The :class:`~spikeforge.hw.network.NetworkAccelerator` of ``network``; with ``file``
    storage its tables are read from ``<stage>_<table>.hex``."""
    from .network import NetworkAccelerator, network_init_files

    init_files = None
    if weight_storage == "file":
        init_files = network_init_files(network, options.get("arith", "shift_add"))
    return NetworkAccelerator(network, weight_storage=weight_storage, init_files=init_files,
                              **options)


def network_verilog(accelerator) -> str:
    """The accelerator's Verilog (module ``spikeforge_network``), reproducible."""
    return verilog_text(accelerator, NETWORK_MODULE)


def _network_ports(accelerator) -> dict:
    net = accelerator.network
    readout = accelerator.stages["readout"]
    return {
        "clk": {"direction": "in", "width": 1},
        "rst": {"direction": "in", "width": 1, "note": "synchronous, active high"},
        "s_axis__tdata": {"direction": "in", "width": len(accelerator.s_axis.tdata),
                          "elements": net.in_features, "element_width": net.input_width,
                          "signed": True, "note": "one time step of every input feature, "
                          f"real value x = element * 2^-{net.input_frac_bits}"},
        "s_axis__tvalid": {"direction": "in", "width": 1},
        "s_axis__tready": {"direction": "out", "width": 1},
        "s_axis__tlast": {"direction": "in", "width": 1, "note": "the sample's last step"},
        "m_axis__tdata": {"direction": "out", "width": readout.class_width,
                          "note": "the class: first index of the largest logit"},
        "m_axis__tuser": {"direction": "out", "width": len(readout.m_axis.tuser),
                          "elements": readout.outputs, "element_width": readout.logit_width,
                          "signed": True, "note": "the logits Z, exact"},
        "m_axis__tvalid": {"direction": "out", "width": 1},
        "m_axis__tready": {"direction": "in", "width": 1},
        "m_axis__tlast": {"direction": "out", "width": 1, "note": "always 1: one beat per "
                          "sample"},
    }


def generate_network(network, out_dir, *, max_steps: int, steps: int | None = None,
                     activity: dict | None = None, weight_storage: str = "file",
                     **options) -> dict:
    """Write the accelerator of ``network`` into ``out_dir``: ``network.v``, the ROM module
    and every stage's ``<stage>_<table>.hex`` (``file`` storage), then ``network.json`` (ports,
    stages, cycles, memories, sha256 of every file, sealed). Everything is written into a
    temporary sibling that replaces ``out_dir`` when complete (:func:`staged_directory`:
    ``out_dir`` must be new, empty or a previous network generation). ``options`` go to
    :class:`~spikeforge.hw.network.NetworkAccelerator`; ``steps`` (default ``max_steps``)
    and ``activity`` (layer → firing rate) set the cycle figures. Returns the description."""
    arith = options.get("arith", "shift_add")
    with staged_directory(out_dir, "network") as staged:
        accelerator = network_accelerator(network, max_steps=max_steps,
                                          weight_storage=weight_storage, **options)
        description = _write_network(staged, network, accelerator, weight_storage, arith,
                                     max_steps, steps, activity)
    return description


def _write_network(out_dir: Path, network, accelerator, weight_storage: str, arith: str,
                   max_steps: int, steps, activity) -> dict:
    from .network import describe_network, network_tables

    init_files = accelerator.init_files
    written = [NETWORK_VERILOG]
    (out_dir / NETWORK_VERILOG).write_text(network_verilog(accelerator))
    if weight_storage == "file":
        shutil.copyfile(resources.files(__package__) / "verilog" / ROM_MODULE,
                        out_dir / ROM_MODULE)
        written.append(ROM_MODULE)
        for stage, tables in network_tables(accelerator).items():
            for table, (words, width) in tables.items():
                write_hex(out_dir / init_files[stage][table], words, width)
                written.append(init_files[stage][table])
    net = network
    description = {
        "format": NETWORK_FORMAT, "version": 1, "name": NETWORK_MODULE,
        "weight_storage": weight_storage,
        "options": {"max_steps": max_steps, "macs": accelerator.macs,
                    "spike_parallel": accelerator.spike_parallel,
                    "fifo_depth": accelerator.fifo_depth, "arith": arith},
        "input": {"features": net.in_features, "width": net.input_width,
                  "frac_bits": net.input_frac_bits},
        "classes": net.readout.outputs, "readout_kind": net.readout_kind,
        "ports": _network_ports(accelerator),
        **describe_network(accelerator, steps=steps or max_steps, activity=activity),
        "files": {f: hashlib.sha256((out_dir / f).read_bytes()).hexdigest()
                  for f in sorted(written)},
    }
    write_json_atomically(out_dir / NETWORK_DESCRIPTION, seal(description))
    return description


def load_network_dir(directory) -> tuple[dict, dict[str, str]]:
    """The description and files (name → text) of a directory written by
    :func:`generate_network`, after checking that it is complete and that every file still
    has the sha256 the description records."""
    directory = Path(directory)
    path = directory / NETWORK_DESCRIPTION
    if not directory.is_dir():
        raise FileNotFoundError(f"network directory {directory} does not exist")
    if not path.is_file():
        raise ValueError(f"{directory} has no {NETWORK_DESCRIPTION}: not written by "
                         f"`spikeforge generate --from`, or the generation was interrupted "
                         f"(incomplete); generate it again")
    try:
        description = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(description, dict) or description.get("format") != NETWORK_FORMAT:
        raise ValueError(f"{path}: not a {NETWORK_FORMAT} description")
    check_seal(description, path)
    files = description.get("files")
    if not isinstance(files, dict):
        raise ValueError(f"{path} lists no files")
    sources = {}
    for name, digest in files.items():
        file = directory / name
        if not file.is_file():
            raise ValueError(f"{path} lists {name}, which is missing from {directory}")
        if hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            raise ValueError(f"{directory / name} does not match its sha256 in "
                             f"{NETWORK_DESCRIPTION} (edited, or left from another "
                             f"generation); generate the directory again")
        sources[name] = file.read_text()
    if NETWORK_VERILOG not in sources:
        raise ValueError(f"{path} lists no {NETWORK_VERILOG}")
    return description, sources
