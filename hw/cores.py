"""Every core type behind one interface, keyed by its configuration class.

The runner, the generator and the CLI ask this module for a core's component, Verilog,
latency and ROM tables instead of switching on the neuron themselves.
"""

import importlib
from dataclasses import dataclass
from typing import Callable

from . import cpsn_tables, lif_tables, prf_tables
from ..golden.cpsn_config import CPSNConfig
from ..golden.lif_config import LIFConfig
from .emit import verilog_text
from .verilog_cache import cached_text
from ..golden.prf_config import PRFConfig

__all__ = ["CoreType", "core_type", "config_from_json", "table_file", "core_verilog"]


@dataclass(frozen=True)
class CoreType:
    """A core type; ``options`` are its generator options (CPSN: ``arith``)."""

    neuron: str
    component: Callable  # (config, weight_storage=, init_files=, **options) -> Component
    latency: Callable  # config -> cycles
    table_names: Callable  # (config, **options) -> tuple of table names
    pack_tables: Callable  # (config, **options) -> {table: [words]}
    layout: Callable  # (config, table) -> (element_width, elements_per_word)
    #: (config, options) -> the neuron's part of a generated core's description (latency,
    #: elements per beat, throughput, widths); None: hw/generate.py describes it itself.
    specifics: Callable | None = None

    def table_words(self, config, **options) -> dict[str, tuple[list[int], int]]:
        """``{table: (words, word_width)}`` of a configuration."""
        packed = self.pack_tables(config, **options)
        result = {}
        for table in self.table_names(config, **options):
            width, per_word = self.layout(config, table)
            result[table] = (packed[table], width * per_word)
        return result


def _generator(module: str, name: str) -> Callable:
    """``hw.<module>.<name>``, imported at its first call: reading configurations and tables
    (the cocotb testbench, every co-simulation process) then never loads Amaranth."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(f".{module}", __package__), name)(*args,
                                                                                **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


_TYPES = {
    CPSNConfig: CoreType("cpsn", _generator("cpsn", "CPSNCore"),
                         _generator("cpsn", "cpsn_latency"),
                         lambda config, arith="shift_add": cpsn_tables.arith_tables(arith),
                         cpsn_tables.pack_tables, cpsn_tables.table_width),
    PRFConfig: CoreType("prf", _generator("prf", "PRFCore"), _generator("prf", "prf_latency"),
                        lambda config: prf_tables.TABLES, prf_tables.pack_tables,
                        prf_tables.table_layout),
    LIFConfig: CoreType("lif", _generator("lif", "LIFCore"), _generator("lif", "lif_latency"),
                        lif_tables.table_names, lif_tables.pack_tables, lif_tables.table_layout,
                        _generator("lif", "lif_specifics")),
}


def config_from_json(data: dict):
    """The configuration a JSON object describes, chosen by its ``"neuron"`` key."""
    if not isinstance(data, dict):
        raise TypeError(f"a core configuration must be a JSON object, got {type(data).__name__}")
    neuron = data.get("neuron", "cpsn")
    for cls, kind in _TYPES.items():
        if kind.neuron == neuron:
            return cls.from_json(data)
    raise ValueError(f"unknown neuron {neuron!r}; known: {sorted(k.neuron for k in _TYPES.values())}")


def core_type(config) -> CoreType:
    try:
        return _TYPES[type(config)]
    except KeyError:
        raise TypeError(f"no core for a {type(config).__name__}; known configurations: "
                        f"{sorted(cls.__name__ for cls in _TYPES)}") from None


def table_file(name: str, table: str) -> str:
    """File name of a core's table, relative to the simulation or synthesis directory."""
    return f"{name}_{table}.hex"


def core_verilog(config, name: str, weight_storage: str = "baked", *, cache_dir=None,
                 **options) -> str:
    """The core's Verilog text: reproducible (no source paths, no absolute file names); with
    ``cache_dir``, generated once per configuration and generator there
    (:mod:`spikeforge.hw.verilog_cache`)."""
    kind = core_type(config)

    def generate() -> str:
        init_files = None
        if weight_storage == "file":
            init_files = {table: table_file(name, table)
                          for table in kind.table_names(config, **options)}
        component = kind.component(config, weight_storage=weight_storage,
                                   init_files=init_files, **options)
        return verilog_text(component, name)

    request = {"neuron": kind.neuron, "config": config.to_json(), "name": name,
               "weight_storage": weight_storage, "options": options}
    return cached_text(request, generate, cache_dir)
