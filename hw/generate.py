"""Write a core as files: Verilog, ``$readmemh`` tables and a JSON description."""

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

from .cores import core_type, core_verilog, table_file
from .cpsn import cpsn_latency
from .cpsn_config import CPSNConfig
from .memfile import write_hex
from .prf import drive_width, prf_latency
from .prf_config import PRFConfig

__all__ = ["ROM_MODULE", "table_file", "core_verilog", "describe_core", "generate_core"]

#: Hand-written Verilog ROM used by ``weight_storage='file'`` cores.
ROM_MODULE = "spikeforge_rom.v"


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
    ``<name>.json`` into ``out_dir``; return the description (with file hashes).

    ``options`` are the core type's generator options (CPSN: ``arith='multiply'`` writes the
    multiplier baseline)."""
    name = name or f"{core_type(config).neuron}_core"
    if not name.isidentifier():
        raise ValueError(f"core name {name!r} must be a Verilog identifier")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    description = describe_core(config, name, weight_storage, **options)
    (out_dir / f"{name}.v").write_text(core_verilog(config, name, weight_storage, **options))
    if weight_storage == "file":
        shutil.copyfile(resources.files(__package__) / "verilog" / ROM_MODULE,
                        out_dir / ROM_MODULE)
    for table, (words, word_width) in core_type(config).table_words(config, **options).items():
        write_hex(out_dir / table_file(name, table), words, word_width)
    written = sorted({f"{name}.v", *(t["file"] for t in description["tables"].values())}
                     | ({ROM_MODULE} if weight_storage == "file" else set()))
    description["files"] = {
        f: hashlib.sha256((out_dir / f).read_bytes()).hexdigest() for f in written}
    (out_dir / f"{name}.json").write_text(json.dumps(description, indent=1) + "\n")
    return description
