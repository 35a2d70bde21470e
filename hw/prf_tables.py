"""Packing of a PRF configuration's tables into ROM words (one word per channel group).

Three tables, each word holding lanes ``l = 0 … L−1`` (channel ``g·L + l``) in order:

* ``delta``: the input scale Δ of each lane;
* ``powers``: Λ^n for n = 1 … P of each lane, element ``(l·P + n − 1)·2 + part`` with part 0
  the real and 1 the imaginary component (row 0, the identity, is never stored);
* ``v_th``: the threshold, ``state_width`` bits, two's complement.

A coefficient (Δ or a component of Λ^n) is stored by ``coef_mode``: ``dsp`` as a two's
complement integer (``delta_width`` or ``coef_width`` bits); ``shift_add`` as ``csd_terms``
signed digits, most significant first, each a 2-bit sign (``01`` = +1, ``11`` = −1,
``00`` = unused) above its bit position, so hardware forms the product from shifts alone.
"""

from ..golden.prf_int import csd_digits
from ..golden.prf_config import PRFConfig

__all__ = ["TABLES", "coefficient_field", "element_width", "table_layout", "pack_tables",
           "digits_of"]

TABLES = ("delta", "powers", "v_th")


def coefficient_field(config: PRFConfig, table: str) -> tuple[int, int]:
    """``(integer_width, frac_bits)`` of a coefficient table's values."""
    if table == "delta":
        return config.delta_width, config.delta_frac_bits
    return config.coef_width, config.coef_frac_bits


def _position_width(config: PRFConfig, table: str) -> int:
    width, _ = coefficient_field(config, table)
    return max(1, (width - 1).bit_length())  # CSD of a width-bit integer: positions < width


def element_width(config: PRFConfig, table: str) -> int:
    if table == "v_th":
        return config.state_width
    width, _ = coefficient_field(config, table)
    if config.coef_mode == "dsp":
        return width
    return config.csd_terms * (2 + _position_width(config, table))


def table_layout(config: PRFConfig, table: str) -> tuple[int, int]:
    """``(element_width, elements_per_word)`` of a table."""
    if table not in TABLES:
        raise ValueError(f"unknown PRF table {table!r}; tables are {TABLES}")
    per_lane = 2 * config.time_parallelism if table == "powers" else 1
    return element_width(config, table), config.lanes * per_lane


def digits_of(config: PRFConfig, table: str, value: int) -> list[tuple[int, int]]:
    """``[(sign, bit_position)]`` of a ``shift_add`` coefficient: value = Σ sign·2^position."""
    _, frac = coefficient_field(config, table)
    return [(sign, frac - shift) for sign, shift in csd_digits(int(value), frac)]


def _elements(config: PRFConfig, table: str) -> list[list[int]]:
    """Per channel, the signed values stored for it, in element order."""
    if table == "delta":
        return [[int(d)] for d in config.delta]
    if table == "v_th":
        return [[int(v)] for v in config.v_th]
    power_re, power_im = config.powers
    return [[int(part[n, c]) for n in range(1, config.time_parallelism + 1)
             for part in (power_re, power_im)] for c in range(config.channels)]


def _code(config: PRFConfig, table: str, value: int) -> int:
    width = element_width(config, table)
    if table == "v_th" or config.coef_mode == "dsp":
        return value & ((1 << width) - 1)
    position_width = _position_width(config, table)
    code = 0
    for index, (sign, position) in enumerate(digits_of(config, table, value)):
        digit = ((sign & 0b11) << position_width) | position
        code |= digit << (index * (2 + position_width))
    return code


def pack_tables(config: PRFConfig) -> dict[str, list[int]]:
    """ROM words of every table (Python ints; words can be wider than 64 bits)."""
    packed = {}
    for table in TABLES:
        width, _ = table_layout(config, table)
        per_channel = _elements(config, table)
        words = []
        for group in range(config.groups):
            word, position = 0, 0
            for lane in range(config.lanes):
                for value in per_channel[group * config.lanes + lane]:
                    word |= _code(config, table, value) << (position * width)
                    position += 1
            words.append(word)
        packed[table] = words
    return packed
