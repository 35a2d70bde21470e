"""Packing of a CPSN configuration's tables into ROM words (one word per channel group).

Word ``g`` holds lanes ``l = 0 … L−1`` (channel ``g·L + l``); within a lane, tap weight index
``i = 0 … k−1`` in the order of ``neurons.md`` (``i = k−1`` weights the newest input). Element
``(l, i)`` sits at bits ``[(l·k + i)·w, (l·k + i + 1)·w)`` with ``w`` the field width below.

The shift-add core reads ``signs``, ``shifts`` and ``bias``. The multiplier baseline
(``arith='multiply'``) reads ``weights`` and ``bias``: per tap the signed integer
``sign · 2^(exponent − exp_min)`` (``shift_max + 2`` bits), which multiplies the input to the
same term the shift-add core forms with a shift.
"""

import numpy as np

from ..golden.cpsn_config import CPSNConfig

__all__ = ["TABLES", "ARITHS", "arith_tables", "table_width", "pack_tables", "unpack_tables"]

#: Tables of the shift-add core.
TABLES = ("signs", "shifts", "bias")
#: ``shift_add``: the multiplication-free datapath. ``multiply``: the baseline with one real
#: multiplier per tap (same pipeline, same results), for measuring what shift-add saves.
ARITHS = ("shift_add", "multiply")
_ARITH_TABLES = {"shift_add": TABLES, "multiply": ("weights", "bias")}


def arith_tables(arith: str) -> tuple[str, ...]:
    """The tables a core with datapath ``arith`` reads."""
    if arith not in _ARITH_TABLES:
        raise ValueError(f"arith must be one of {ARITHS}, got {arith!r}")
    return _ARITH_TABLES[arith]


def table_width(config: CPSNConfig, table: str) -> tuple[int, int]:
    """``(element_width, elements_per_word)`` of a table."""
    if table == "signs":
        return 2, config.lanes * config.order
    if table == "shifts":
        return config.exp_code_width, config.lanes * config.order
    if table == "weights":
        return config.shift_max + 2, config.lanes * config.order
    if table == "bias":
        return config.bias_width, config.lanes
    raise ValueError(f"unknown CPSN table {table!r}; tables are {TABLES + ('weights',)}")


def _elements(config: CPSNConfig, table: str) -> np.ndarray:
    """Per-group elements as non-negative codes, shape ``[groups, elements_per_word]``."""
    width, per_word = table_width(config, table)
    if table == "signs":
        values = config.signs
    elif table == "shifts":
        values = config.exponents - config.exp_min
    elif table == "weights":
        values = config.signs << (config.exponents - config.exp_min)
    else:
        values = config.bias
    return (values.reshape(config.groups, per_word) & ((1 << width) - 1)).astype(object)


def pack_tables(config: CPSNConfig, arith: str = "shift_add") -> dict[str, list[int]]:
    """ROM words of every table that datapath ``arith`` reads (Python ints; words can be
    wider than 64 bits)."""
    packed = {}
    for table in arith_tables(arith):
        width, _ = table_width(config, table)
        words = []
        for row in _elements(config, table):
            word = 0
            for position, code in enumerate(row):
                word |= int(code) << (position * width)
            words.append(word)
        packed[table] = words
    return packed


def unpack_tables(config: CPSNConfig, packed: dict[str, list[int]]) -> CPSNConfig:
    """The configuration whose shift-add tables are ``packed`` (shape and format taken from
    ``config``)."""
    values = {}
    for table in TABLES:
        width, per_word = table_width(config, table)
        words = packed[table]
        if len(words) != config.groups:
            raise ValueError(f"table {table!r} has {len(words)} words, expected {config.groups}")
        codes = np.array([[(int(word) >> (p * width)) & ((1 << width) - 1)
                           for p in range(per_word)] for word in words], dtype=np.int64)
        if table != "shifts":
            codes = np.where(codes >= 1 << (width - 1), codes - (1 << width), codes)
        values[table] = codes
    return config.replace(signs=values["signs"].reshape(config.channels, config.order),
                          exponents=(values["shifts"] + config.exp_min).reshape(
                              config.channels, config.order),
                          bias=values["bias"].reshape(config.channels))
