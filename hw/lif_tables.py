"""Packing of a LIF configuration's tables into ROM words (one word per channel group).

Each word holds lanes ``l = 0 … L−1`` (channel ``g·L + l``) in order, one element per lane.
A shared table (length 1 in the configuration) is written out for every channel.

* ``threshold`` (spiking variants): θ, ``state_width`` bits (θ >= 0);
* ``beta`` (and ``alpha`` for ``cuba_lif``), by ``decay_mode``:

  - ``multiply``: the coefficient ``c`` (``β = c·2^−F``), ``F + 1`` bits, unsigned;
  - ``shift``: ``β = 1 − 2^−k`` as an enable bit (0: ``β = 1``) above the position
    ``p = F − k`` of the subtracted copy, so ``c·v = (v << F) − (v << p)``;
  - ``csd``: ``decay_digits`` digits, the first in the low bits, each a 2-bit sign code
    (``01`` = +1, ``11`` = −1, ``00`` = unused) above its position ``p = F − e``, so
    ``c·v = Σ sign·(v << p)``.
"""

from ..golden.lif_config import LIFConfig

__all__ = ["table_names", "position_width", "element_width", "table_layout", "pack_tables",
           "element_codes"]


def table_names(config: LIFConfig) -> tuple[str, ...]:
    """The tables a configuration's core reads."""
    return (("threshold",) if config.spiking else ()) + config.decay_tables


def position_width(config: LIFConfig) -> int:
    """Bits of a shift position ``p`` (``0 … F``)."""
    return max(1, config.decay_frac_bits.bit_length())


def element_width(config: LIFConfig, table: str) -> int:
    if table == "threshold":
        return config.state_width
    if config.decay_mode == "multiply":
        return config.decay_frac_bits + 1
    if config.decay_mode == "shift":
        return 1 + position_width(config)
    return config.decay_digits * (2 + position_width(config))


def table_layout(config: LIFConfig, table: str) -> tuple[int, int]:
    """``(element_width, elements_per_word)`` of a table."""
    if table not in table_names(config):
        raise ValueError(f"unknown LIF table {table!r}; this configuration's tables are "
                         f"{table_names(config)}")
    return element_width(config, table), config.lanes


def element_codes(config: LIFConfig, table: str) -> list[int]:
    """Per channel, the stored element of ``table`` (see the module docstring)."""
    values = [int(v) for v in config.per_channel(table)]
    if table == "threshold" or config.decay_mode == "multiply":
        return values
    frac, pw = config.decay_frac_bits, position_width(config)
    if config.decay_mode == "shift":
        return [0 if k == 0 else (1 << pw) | (frac - int(k)) for k in config.shift_of(table)]
    codes = []
    for digits in config.decay_digits_of(table):
        code = 0
        for index, (sign, e) in enumerate(digits):
            code |= (((sign & 0b11) << pw) | (frac - e)) << (index * (2 + pw))
        codes.append(code)
    return codes


def pack_tables(config: LIFConfig) -> dict[str, list[int]]:
    """ROM words of every table (Python ints)."""
    packed = {}
    for table in table_names(config):
        width, _ = table_layout(config, table)
        codes = element_codes(config, table)
        packed[table] = [sum(codes[g * config.lanes + lane] << (lane * width)
                             for lane in range(config.lanes)) for g in range(config.groups)]
    return packed
