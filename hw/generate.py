"""Write a core as files: Verilog, ``$readmemh`` tables and a JSON description."""

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

from amaranth.back import verilog

from .cpsn import CPSNCore, cpsn_latency
from .cpsn_config import CPSNConfig
from .cpsn_tables import arith_tables, pack_tables, table_width
from .memfile import write_hex

__all__ = ["ROM_MODULE", "table_file", "core_verilog", "describe_core", "generate_cpsn"]

#: Hand-written Verilog ROM used by ``weight_storage='file'`` cores.
ROM_MODULE = "spikeforge_rom.v"


def table_file(name: str, table: str) -> str:
    """File name of a core's table, relative to the simulation or synthesis directory."""
    return f"{name}_{table}.hex"


def core_verilog(config: CPSNConfig, name: str, weight_storage: str = "baked",
                 arith: str = "shift_add") -> str:
    """The core's Verilog text: reproducible (no source paths, no absolute file names)."""
    init_files = None
    if weight_storage == "file":
        init_files = {table: table_file(name, table) for table in arith_tables(arith)}
    core = CPSNCore(config, weight_storage=weight_storage, init_files=init_files, arith=arith)
    return verilog.convert(core, name=name, emit_src=False, strip_internal_attrs=True)


def describe_core(config: CPSNConfig, name: str, weight_storage: str,
                  arith: str = "shift_add") -> dict:
    """Ports, widths, latency and tables of a generated core, for tools and people."""
    lanes = config.lanes
    ports = {
        "clk": {"direction": "in", "width": 1},
        "rst": {"direction": "in", "width": 1, "note": "synchronous, active high"},
        "s_axis__tdata": {"direction": "in", "width": lanes * config.input_width,
                          "lanes": lanes, "lane_width": config.input_width, "signed": True},
        "s_axis__tvalid": {"direction": "in", "width": 1},
        "s_axis__tready": {"direction": "out", "width": 1},
        "s_axis__tlast": {"direction": "in", "width": 1},
        "m_axis__tdata": {"direction": "out", "width": lanes, "lanes": lanes, "lane_width": 1},
        "m_axis__tvalid": {"direction": "out", "width": 1},
        "m_axis__tready": {"direction": "in", "width": 1},
        "m_axis__tlast": {"direction": "out", "width": 1},
    }
    if config.membrane_out:
        ports["m_axis__tuser"] = {"direction": "out", "width": lanes * config.membrane_width,
                                  "lanes": lanes, "lane_width": config.membrane_width,
                                  "signed": True, "note": "membrane H per lane"}
    tables = {}
    for table in arith_tables(arith):
        width, per_word = table_width(config, table)
        tables[table] = {"file": table_file(name, table), "words": config.groups,
                         "word_width": width * per_word, "element_width": width,
                         "elements_per_word": per_word}
    return {
        "name": name,
        "neuron": "cpsn",
        "weight_storage": weight_storage,
        "arith": arith,
        "latency_cycles": cpsn_latency(config),
        "beats_per_time_step": config.groups,
        "throughput": "one beat (one time step of `lanes` channels) per clock",
        "multipliers": 0 if arith == "shift_add" else lanes * config.order,
        "widths": {"input": config.input_width, "term": config.term_width,
                   "bias": config.bias_width, "membrane": config.membrane_width,
                   "shift_code": config.exp_code_width},
        "ports": ports,
        "tables": tables,
        "config": config.to_json(),
    }


def generate_cpsn(config: CPSNConfig, out_dir, *, name: str = "cpsn_core",
                  weight_storage: str = "baked", arith: str = "shift_add") -> dict:
    """Write ``<name>.v``, the ROM module (file storage), ``<name>_<table>.hex`` files and
    ``<name>.json`` into ``out_dir``; return the description (with file hashes).

    ``arith='multiply'`` writes the multiplier baseline (see :class:`CPSNCore`)."""
    if not name.isidentifier():
        raise ValueError(f"core name {name!r} must be a Verilog identifier")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    description = describe_core(config, name, weight_storage, arith)
    files = {f"{name}.v": core_verilog(config, name, weight_storage, arith)}
    (out_dir / f"{name}.v").write_text(files[f"{name}.v"])
    if weight_storage == "file":
        shutil.copyfile(resources.files(__package__) / "verilog" / ROM_MODULE,
                        out_dir / ROM_MODULE)
    for table, words in pack_tables(config, arith).items():
        write_hex(out_dir / table_file(name, table), words,
                  description["tables"][table]["word_width"])
    written = sorted({f"{name}.v", *(t["file"] for t in description["tables"].values())}
                     | ({ROM_MODULE} if weight_storage == "file" else set()))
    description["files"] = {
        f: hashlib.sha256((out_dir / f).read_bytes()).hexdigest() for f in written}
    (out_dir / f"{name}.json").write_text(json.dumps(description, indent=1) + "\n")
    return description
