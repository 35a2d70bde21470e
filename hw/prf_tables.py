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

The digits of a ``shift_add`` coefficient are its canonical signed digits, except that a
coefficient with fewer than ``csd_terms`` of them is written with exactly ``csd_terms``
(:func:`slot_digits`: a digit ``s·2^p`` split into ``s·2^(p−1) + s·2^(p−1)`` or
``s·2^(p+1) − s·2^p``; the value is the same), so that in a baked table every digit slot is
used by every word and the hardware needs no enable per digit.
"""

import functools

from ..golden.prf_int import csd_digits
from ..golden.prf_config import PRFConfig

__all__ = ["TABLES", "coefficient_field", "element_width", "table_layout", "pack_tables",
           "digits_of", "slot_digits", "digit_layout", "slot_codes", "slot_positions",
           "indexed_words"]

TABLES = ("delta", "powers", "v_th")


def coefficient_field(config: PRFConfig, table: str) -> tuple[int, int]:
    """``(integer_width, frac_bits)`` of a coefficient table's values."""
    if table == "delta":
        return config.delta_width, config.delta_frac_bits
    return config.coef_width, config.coef_frac_bits


def _position_width(config: PRFConfig, table: str) -> int:
    width, _ = coefficient_field(config, table)
    return max(1, (width - 1).bit_length())  # CSD of a width-bit integer: positions < width


def digit_layout(config: PRFConfig, table: str) -> tuple[int, int]:
    """``(position_width, digit_width)`` of a ``shift_add`` table's digit fields: each digit
    is a 2-bit sign code (``0b01`` +1, ``0b11`` −1, ``0`` none) above its bit position."""
    position_width = _position_width(config, table)
    return position_width, 2 + position_width


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


def _splits(digits: tuple, width: int):
    """Every digit list one digit longer than ``digits`` (``(sign, position)``, positions
    descending) with the same value: one digit ``s·2^p`` as ``2 · s·2^(p−1)`` or as
    ``s·2^(p+1) − s·2^p``; zero (no digits) as ``2^p − 2^p``. Positions stay below ``width``."""
    if not digits:
        return [((1, p), (-1, p)) for p in range(width)]
    out = []
    for n, (sign, position) in enumerate(digits):
        rest = digits[:n] + digits[n + 1:]
        if position >= 1:
            out.append(rest + ((sign, position - 1), (sign, position - 1)))
        if position + 1 < width:
            out.append(rest + ((sign, position + 1), (-sign, position)))
    return [tuple(sorted(d, key=lambda digit: -digit[1])) for d in out]


@functools.lru_cache(maxsize=None)
def _filled(digits: tuple, width: int, terms: int) -> tuple:
    """Every digit list of exactly ``terms`` digits reachable from ``digits`` by splits."""
    level, done = {digits}, set()
    while level:
        done |= {d for d in level if len(d) == terms}
        level = {longer for d in level if len(d) < terms for longer in _splits(d, width)
                 if len(longer) <= terms}
    return tuple(sorted(done, reverse=True))


def slot_digits(config: PRFConfig, table: str) -> list[list[list[tuple[int, int]]]]:
    """Per channel and element, the ``(sign, position)`` digits stored for a ``shift_add``
    coefficient table, most significant first: the canonical digits (:func:`digits_of`), and
    for a coefficient with fewer than ``csd_terms`` of them, exactly ``csd_terms`` digits of
    the same value whose positions the table's other words already use in the same slots
    (fewest new positions per slot, then the first such list), so that every slot is used
    by every word and each slot's set of positions grows as little as possible."""
    width, _ = coefficient_field(config, table)
    terms = config.csd_terms
    values = _elements(config, table)
    digits = [[digits_of(config, table, v) for v in per] for per in values]
    # The positions each (lane, element) slot takes in the words that need no change.
    used = {}
    for channel, per in enumerate(digits):
        for element, d in enumerate(per):
            if len(d) == terms:
                for n, (_, position) in enumerate(d):
                    used.setdefault((channel % config.lanes, element, n), set()).add(position)
    out = []
    for channel, per in enumerate(digits):
        row = []
        for element, d in enumerate(per):
            if len(d) < terms:
                lane = channel % config.lanes
                candidates = _filled(tuple(d), width, terms)
                if candidates:
                    def new_positions(c):
                        return sum(p not in used.get((lane, element, n), ())
                                   for n, (_, p) in enumerate(c))
                    best = min(candidates, key=new_positions)
                    d = list(best)
                    for n, (_, position) in enumerate(d):
                        used.setdefault((lane, element, n), set()).add(position)
            row.append(d)
        out.append(row)
    return out


def _elements(config: PRFConfig, table: str) -> list[list[int]]:
    """Per channel, the signed values stored for it, in element order."""
    if table == "delta":
        return [[int(d)] for d in config.delta]
    if table == "v_th":
        return [[int(v)] for v in config.v_th]
    power_re, power_im = config.powers
    return [[int(part[n, c]) for n in range(1, config.time_parallelism + 1)
             for part in (power_re, power_im)] for c in range(config.channels)]


def _code(config: PRFConfig, table: str, value) -> int:
    """The stored element: ``value`` (an int), or for a ``shift_add`` coefficient its digits
    (a list of ``(sign, position)``)."""
    width = element_width(config, table)
    if table == "v_th" or config.coef_mode == "dsp":
        return value & ((1 << width) - 1)
    position_width = _position_width(config, table)
    code = 0
    for index, (sign, position) in enumerate(value):
        digit = ((sign & 0b11) << position_width) | position
        code |= digit << (index * (2 + position_width))
    return code


def pack_tables(config: PRFConfig) -> dict[str, list[int]]:
    """ROM words of every table (Python ints; words can be wider than 64 bits)."""
    packed = {}
    for table in TABLES:
        width, _ = table_layout(config, table)
        per_channel = _elements(config, table) if table == "v_th" or \
            config.coef_mode == "dsp" else slot_digits(config, table)
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


def slot_codes(config: PRFConfig, table: str) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Per ``(element, slot)`` of a ``shift_add`` table, the ``(sign code, position)`` that
    each word (group) stores there."""
    width, per_word = table_layout(config, table)
    position_width, digit_width = digit_layout(config, table)
    words = pack_tables(config)[table]
    codes = {}
    for element in range(per_word):
        for n in range(config.csd_terms):
            shift = element * width + n * digit_width
            codes[(element, n)] = [((word >> (shift + position_width)) & 0b11,
                                    (word >> shift) & ((1 << position_width) - 1))
                                   for word in words]
    return codes


def slot_positions(codes: dict) -> dict[tuple[int, int], list[int]]:
    """Per ``(element, slot)`` of :func:`slot_codes`: the bit positions its words use there
    (nonzero digits), in the order a baked core's multiplexer takes them."""
    return {key: sorted({position for sign, position in per_group if sign})
            for key, per_group in codes.items()}


def indexed_words(config: PRFConfig, table: str) -> list[int]:
    """The words of a baked ``shift_add`` table as its core's ROM holds them: each digit's
    bit position replaced by its index in :func:`slot_positions` (the positions that slot
    multiplexes between), so the multiplexer selects with ROM bits and needs no decoder.
    The exported tables keep positions (the format ``weights = file`` reads)."""
    width, _ = table_layout(config, table)
    position_width, digit_width = digit_layout(config, table)
    words = list(pack_tables(config)[table])
    codes = slot_codes(config, table)
    positions = slot_positions(codes)
    for (element, n), per_group in codes.items():
        shift = element * width + n * digit_width
        field = ((1 << position_width) - 1) << shift
        for group, (sign, position) in enumerate(per_group):
            index = positions[(element, n)].index(position) if sign else 0
            words[group] = words[group] & ~field | (index << shift)
    return words
