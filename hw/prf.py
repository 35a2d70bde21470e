"""PRF scan unit: P time steps of L channels per clock, parallel within a tile, exact to the bit."""

import functools

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..golden.fixed import signed_width
from ..golden.prf_int import round_shift
from .add_sub import add_sub
from .adder_tree import tree_levels
from .credit import CreditBuffer
from ..golden.prf_config import PRFConfig
from .prf_tables import (TABLES, coefficient_field, digit_layout, indexed_words, pack_tables,
                         slot_codes, slot_positions, table_layout)
from .stream import AXIStreamSignature
from .tables import WEIGHT_STORAGES, TableROM, check_storage

__all__ = ["PRFCore", "prf_latency", "prf_loop_depth", "prf_buffer_depth", "LOOP_STAGES",
           "drive_width", "lag_product_width", "WEIGHT_STORAGES"]


def drive_width(config: PRFConfig) -> int:
    """Width of the rounded drive ``Δ·x`` on the state grid, from the actual Δ table."""
    bound = int(config.drive_bound.max())
    return signed_width(-bound, bound)


def lag_product_width(config: PRFConfig) -> int:
    """Bits in which each ``R(Λ^lag·drive)`` of a tile's input parts (``P > 1``) is summed,
    its ``coef_frac_bits`` fraction included: the result is bounded by the actual
    coefficients of ``Λ^1 … Λ^(P−1)`` and the drive's bound (``|R(c·d)| <= R(|c|·|d|)``),
    which is about the drive's width (``|Λ^lag| < 1``), not the state's."""
    re, im = config.powers
    rows = slice(1, config.time_parallelism)
    largest = max(int(abs(re[rows]).max()), int(abs(im[rows]).max()))
    bound = round_shift(largest * int(config.drive_bound.max()), config.coef_frac_bits)
    return config.coef_frac_bits + min(signed_width(-bound, bound), config.state_width)


def _product_terms(config: PRFConfig) -> int:
    """Addends of one rounded coefficient product: the CSD digits (or the one multiply) and
    the rounding constant."""
    return (config.csd_terms if config.coef_mode == "shift_add" else 1) + 1


def LOOP_STAGES(config: PRFConfig) -> int:  # noqa: N802 (a per-target constant, by mode)
    """``S``: registers in the state loop when channels are folded far enough (ECP5 choice:
    one adder level per stage). ``shift_add``: the state memory, its read register, the
    product terms, then one register per adder level of the ``2m + 1`` addends of a state
    component; the last level writes the memory. ``dsp``: the state memory, its read
    register, the multipliers' operand and product registers (in the DSP blocks), one
    register per adder level of the 3 addends, and the register that writes the memory
    (:func:`_dsp_loop_plan`)."""
    addends = 2 * _product_terms(config) - 1
    if config.coef_mode == "dsp":
        return 4 + tree_levels(addends)
    return 2 + tree_levels(addends)


def _dsp_loop_plan(segments: int) -> dict:
    """``dsp``: what the ``segments`` between the state loop's registers (from the read
    register to the memory write) hold. ``operand``: a register between the read register
    and the multipliers (the read register is otherwise the multipliers' operand register,
    and the memory read and the route to the DSP blocks share a cycle); ``product``: the
    multipliers' product registers; ``tree``: the adder levels per stage; ``write``: a
    register on the memory's write data. With fewer segments, the write register goes
    first, then the operand register, then the adder levels share a stage, then (one
    segment, ``G = 1``) everything is one cycle."""
    if segments <= 1:
        return {"operand": 0, "product": 0, "tree": [2], "write": 0}
    if segments == 2:
        return {"operand": 0, "product": 1, "tree": [2], "write": 0}
    return {"operand": int(segments >= 4), "product": 1, "tree": [1, 1],
            "write": int(segments >= 5)}


def prf_loop_depth(config: PRFConfig) -> int:
    """Registers in the state recurrence (the beats between a group's read and write + 1).

    ``G = 1``: 1 (the state is one register, updated in one cycle). ``G >= 2``: a group's
    next beat comes ``G`` beats later, so up to ``G`` registers cost nothing, and ``G + 1``
    with the write of the same cycle forwarded to the read. ``shift_add``: ``min(S, G + 1)``
    with ``S = LOOP_STAGES(config)`` (the forwarding is a multiplexer before the read
    register). ``dsp``: ``min(S, max(G, 3))``: its forwarding is a read port transparent to
    the write, which makes synthesis register the LUT RAM's address instead of its data and
    puts the RAM read on the next stage's path, so ``G + 1`` only where the loop would
    otherwise be two registers. The core never waits: with fewer groups the loop is shorter
    (and slower), see ``docs/prf_fixed_point.md`` §8."""
    if config.groups == 1:
        return 1
    if config.coef_mode == "shift_add":
        return min(LOOP_STAGES(config), config.groups + 1)
    return min(LOOP_STAGES(config), max(config.groups, 3))


def _stage_plan(config: PRFConfig) -> dict:
    """Pipeline stage (cycles after the input transfer) of each step of the datapath."""
    drive = 3 + tree_levels(_product_terms(config))  # ROM, decode, terms, one level/stage
    inputs = drive
    if config.time_parallelism > 1:  # Λ^lag ⊗ drive, then Σ over the lags
        inputs = drive + 1 + tree_levels(_product_terms(config)) \
            + tree_levels(config.time_parallelism)
    entry = inputs + 1  # the loop's first register (state, its addends' constants)
    depth = prf_loop_depth(config)
    out = entry + 1 if config.groups == 1 else entry + depth - 1
    return {"drive": drive, "inputs": inputs, "entry": entry, "depth": depth, "out": out}


def _loop_tree_stages(levels: int, segments: int) -> list[int]:
    """Adder levels per segment of a ``shift_add`` state loop (the first segment also forms
    the addends): one unit of work (addend formation, then each level) per segment, extra
    levels to the segments after the first, then to the first. (Sparing the segment that ends
    in the memory's write instead measured slower: C=16 L=4 P=1 on ECP5-25k, 138.5 against
    151.3 MHz best of seeds 1-3: the first segment's fan-out from the read register is worse.)
    With as many levels as segments the first takes one, so that every segment holds one
    level and the tree can be signed (``PRFCore._signed_tree``; C=16 L=4 P=1, ``G = 4``: 4,551
    against 5,660 LUTs, 159.0 / 149.5 against 162.3 / 166.7 MHz on seeds 1 / 2)."""
    if levels == segments:  # one level per segment: the loop's adder tree can be signed
        return [1] * segments
    per_segment = [1] * segments
    order = list(range(1, segments)) + [0]
    for n in range(1 + levels - segments):
        per_segment[order[n % len(order)]] += 1
    return [per_segment[0] - 1] + per_segment[1:]


def prf_latency(config: PRFConfig) -> int:
    """Cycles from an input transfer to its output beat (at full rate, no backpressure):
    tables (1), coefficient decode (1), Δ·x addends (1), one cycle per adder level of the
    drive, for P > 1 the input products and their sum, the loop entry (1), the state loop
    (``prf_loop_depth − 1`` cycles for G >= 2, 1 for G = 1), the threshold comparisons (1),
    then the output buffer (1). Example: C=64 L=4 P=1 ``dsp`` (loop depth 6): 12 cycles."""
    return _stage_plan(config)["out"] + 2


def prf_buffer_depth(config: PRFConfig) -> int:
    """Output buffer places: every beat in flight, including the one whose credit returns as
    the next beat is offered, so the stream runs without bubbles."""
    return prf_latency(config) + 1


def _extend(value, width: int):
    """``value`` (signed) as ``width`` bits, two's complement (sign-extended or truncated)."""
    value = value.as_signed()
    if len(value) >= width:
        return value[:width]
    return Cat(value, value[-1].replicate(width - len(value)))


def _shifted(value, position: int, width: int):
    """``(value << position) mod 2^width`` of a signed value."""
    if position >= width:
        return Const(0, width)
    return Cat(Const(0, position), _extend(value, width - position)) if position else \
        _extend(value, width)


def _select(candidates, index):
    """``candidates[index]`` as a binary mux tree (index bits from the LSB)."""
    level, bit = list(candidates), 0
    while len(level) > 1:
        level = [Mux(index[bit], level[i + 1], level[i]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
        bit += 1
    return level[0]


def _differ(x, y):
    """``x ^ y`` of two signs, each a bit or an int (an int when both are)."""
    if isinstance(x, int) and isinstance(y, int):
        return x ^ y
    if isinstance(x, int) or isinstance(y, int):
        bit, flip = (y, x) if isinstance(x, int) else (x, y)
        return ~bit if flip else bit
    return x ^ y


class _Digit:
    """One CSD digit slot of a coefficient, decoded for the datapath: ``positions`` (every
    bit position the slot can take), ``index`` into them, ``neg`` and ``en`` (Python ints
    when constant)."""

    def __init__(self, positions, index, neg, en):
        self.positions, self.index, self.neg, self.en = positions, index, neg, en


class PRFCore(wiring.Component):
    """PRF neurons for ``C`` channels; each beat is an ``L × P`` tile (P steps of L channels).

    Per lane it computes exactly what :func:`~spikeforge.golden.prf_int.prf_integer` defines:
    the drive ``R(Δ·x)``, the tile's input parts ``Σ R(Λ^lag ⊗ drive)`` (every product rounded
    on its own, so the parallel evaluation is bit-exact), and the outputs
    ``R(Λ^(j+1) ⊗ s) + input_j`` from the tile's start state ``s``. Only the state update is
    sequential, once per tile, and only output ``P − 1`` feeds back.

    The state loop is C-slow (``docs/prf_fixed_point.md`` §8): with ``G = C/L ≥ 2`` channel
    groups each group's state is a memory word, and the update of a word is pipelined over
    :func:`prf_loop_depth` registers (memory, read register, the product addends, the adder
    levels; ``dsp``: memory, read register, the multipliers' operand and product registers,
    the adder levels, a write register), up to :func:`prf_loop_depth`, about ``G + 1``: a
    group's next beat comes ``G`` beats later. With ``G = 1``
    the state is a register updated in one cycle. Every product is formed as exact addends —
    ``shift_add``: one shifted copy of the operand per CSD digit, the shift chosen among the
    bit positions the table actually uses (every position when tables are read from files),
    and one constant addend, the rounding half beside the tile's input part — and summed once
    by a signed tree (:meth:`_signed_tree`: ``left ± right`` nodes, so no copy is inverted
    and no ``+1`` is added), then the state bits are taken above the ``coef_frac_bits``
    fraction (``R(p) + in = (p + 2^(f−1) + in·2^f) >> f``).
    ``dsp``: one multiply per product, of two plain registers (the state and the coefficient,
    ``−b`` formed off the loop for ``u``'s ``−b·r0``), the product registered at its own width
    and the input part with the rounding half added at the first adder level, so that on ECP5
    every loop multiplier has its operand and product registers inside its DSP block.

    Flow control is credit-based (:class:`~spikeforge.hw.credit.CreditBuffer`,
    :func:`prf_buffer_depth` places): the pipeline, state loop included, never stalls, so no
    handshake drives its enables; ``s_axis.tready`` is a register that falls when every
    buffer place is promised to a beat in flight, and backpressure fills the buffer.

    Latency: :func:`prf_latency`. Throughput: one beat (``L·P`` neuron-steps) per clock for
    every ``G`` and every sample length, back to back.

    Members:
        s_axis: input tiles; element ``(step j, lane l)`` at ``[(j·L + l)·W, …+W)``, signed.
        m_axis: spikes, bit ``j·L + l``; with ``config.membrane_out`` the membranes ``u``
            (signed, ``config.state_width`` bits) on ``tuser`` at element ``j·L + l``.
    """

    def __init__(self, config: PRFConfig, *, weight_storage: str = "baked",
                 init_files: dict[str, str] | None = None):
        if not isinstance(config, PRFConfig):
            raise TypeError(f"config must be a PRFConfig, got {type(config).__name__}")
        self.init_files = check_storage(weight_storage, init_files, TABLES)
        self.config = config
        self.weight_storage = weight_storage
        self._codes = {}
        self.latency = prf_latency(config)
        elements = config.lanes * config.time_parallelism
        user_width = elements * config.state_width if config.membrane_out else 0
        super().__init__({
            "s_axis": In(AXIStreamSignature(elements * config.input_width)),
            "m_axis": Out(AXIStreamSignature(elements, user_width=user_width)),
        })

    # -- pipeline helpers -------------------------------------------------------------------

    def _reg(self, value, name, *, shape=None, reset_less=True):
        """``value`` one stage later (the pipeline never stalls: no enable)."""
        if isinstance(value, int):
            return value
        register = Signal(shape if shape is not None else len(value), name=name,
                          reset_less=reset_less)
        self._m.d.sync += register.eq(value)
        return register

    def _delay(self, value, cycles, name, **kwargs):
        for n in range(cycles):
            value = self._reg(value, f"{name}_d{n}", **kwargs)
        return value

    def _tree(self, terms, width, levels_per_stage, name, stages=None):
        """``Σ terms mod 2^width`` as a binary tree, registered after every
        ``levels_per_stage`` levels (``stages``: a list of level counts per stage instead);
        the last stage is left combinational."""
        levels = tree_levels(len(terms))
        if stages is None:
            stages, left = [], levels
            while left > 0:
                stages.append(min(levels_per_stage, left))
                left -= stages[-1]
        level, done = list(terms), 0
        for s, count in enumerate(stages):
            for _ in range(count):
                level = [(level[i] + level[i + 1])[:width] if i + 1 < len(level) else level[i]
                         for i in range(0, len(level), 2)]
            done += count
            if s < len(stages) - 1:
                level = [self._reg(v, f"{name}_s{s}_{i}", shape=width)
                         for i, v in enumerate(level)]
        assert done == levels and len(level) == 1
        return level[0]

    # -- coefficients -----------------------------------------------------------------------

    def _table_word(self, m, table, fire, group):
        """The table word for the incoming beat, one cycle later (stage 1)."""
        width, per_word = table_layout(self.config, table)
        words = pack_tables(self.config)[table]
        if self.weight_storage == "baked" and self.config.groups == 1:
            return words[0]
        if self.weight_storage == "baked" and self.config.coef_mode == "shift_add" and \
                table != "v_th":
            words = indexed_words(self.config, table)
        m.submodules[f"{table}_rom"] = rom = TableROM(
            words, width * per_word, storage=self.weight_storage,
            init_file=self.init_files.get(table))
        m.d.comb += [rom.addr.eq(group), rom.en.eq(1)]
        return rom.data

    def _slots(self, table):
        """:func:`slot_codes` and :func:`slot_positions` of a baked ``shift_add`` table
        (computed once per table)."""
        if table not in self._codes:
            codes = slot_codes(self.config, table)
            self._codes[table] = codes, slot_positions(codes)
        return self._codes[table]

    def _field(self, word, table, index):
        width, _ = table_layout(self.config, table)
        if isinstance(word, int):
            return (word >> (index * width)) & ((1 << width) - 1)
        return word.word_select(index, width)

    def _decode(self, word, table, index, name):
        """Element ``index`` of a table word (stage s), decoded and registered (stage s + 1).

        ``dsp``: the signed value. ``shift_add``: a list of :class:`_Digit`, one per slot."""
        cfg = self.config
        field = self._field(word, table, index)
        width, _ = table_layout(cfg, table)
        if cfg.coef_mode == "dsp":
            if isinstance(field, int):
                return field - (1 << width) if field >> (width - 1) else field
            return self._reg(field.as_signed(), name, shape=signed(width))
        integer_width, _ = coefficient_field(cfg, table)
        position_width, digit_width = digit_layout(cfg, table)
        digits = []
        for n in range(cfg.csd_terms):
            def unpack(code):
                digit = (code >> (n * digit_width)) & ((1 << digit_width) - 1)
                return digit >> position_width, digit & ((1 << position_width) - 1)
            if isinstance(field, int):
                sign, position = unpack(field)
                digits.append(_Digit([position], 0, int(sign == 3), int(sign != 0)))
                continue
            # What a baked table's words put in this slot: a sign or an enable that is the
            # same in every word is a constant (no register, no gate per bit).
            signs = {0, 1, 3}
            if self.weight_storage == "baked":
                codes, positions = self._slots(table)
                used = positions[(index, n)]
                signs = {sign for sign, _ in codes[(index, n)]}
            else:
                used = list(range(integer_width))
            if not used:  # a slot no word of a baked table uses
                digits.append(_Digit([0], 0, 0, 0))
                continue
            digit = field.word_select(n, digit_width)
            sign, position = digit[position_width:], digit[:position_width]
            # The sign code's bits are the digit's sign and its enable.
            neg = sign[1] if 1 in signs and 3 in signs else int(3 in signs)
            en = sign[0] if 0 in signs else 1
            selected = 0
            if len(used) > 1:
                if self.weight_storage == "baked":  # the ROM holds the index (indexed_words)
                    index_signal = position[:(len(used) - 1).bit_length()]
                else:  # every position is used, so the index is the position (past the
                    # field: 0), one comparator rather than a case per position
                    index_signal = Mux(position < len(used), position,
                                       0)[:(len(used) - 1).bit_length()]
                selected = self._reg(index_signal, f"{name}_n{n}_idx")
            digits.append(_Digit(used, selected, self._reg(neg, f"{name}_n{n}_neg"),
                                 self._reg(en, f"{name}_n{n}_en")))
        return digits

    def _delay_coef(self, coef, cycles, name, *, gate=None):
        """A decoded coefficient ``cycles`` stages later. ``gate``: a signal of the stage
        before the result; the coefficient is zero where it is set (``cycles >= 1``)."""
        plain = cycles - (gate is not None)
        if self.config.coef_mode == "dsp":
            if isinstance(coef, int):
                return coef
            value = self._delay(coef, plain, name, shape=signed(len(coef)))
            if gate is not None:
                value = self._reg(Mux(gate, 0, value), f"{name}_g", shape=signed(len(coef)))
            return value
        out = []
        for n, d in enumerate(coef):
            index, neg, en = (self._delay(v, plain, f"{name}_n{n}_{k}")
                              for k, v in (("idx", d.index), ("neg", d.neg), ("en", d.en)))
            if gate is not None:
                index = self._reg(index, f"{name}_n{n}_idx_g")
                neg = self._reg(neg, f"{name}_n{n}_neg_g")
                en = self._reg((Const(en, 1) if isinstance(en, int) else en) & ~gate,
                               f"{name}_n{n}_en_g")
            out.append(_Digit(d.positions, index, neg, en))
        return out

    def _loop_coef(self, coef, cycles, name, *, gate=None, negate=False):
        """``dsp``: a decoded coefficient for a state-loop multiplier, ``cycles`` stages later
        (``cycles >= 3``), negated when ``negate`` (one bit wider) and zero where ``gate`` is
        set (``gate``: a signal two stages before the result). The last register is a plain
        one (no enable, no reset, its own), so that it can be the multiplier's operand
        register (``hw/ecp5_registers.py``): the negation and the zeroing happen one register
        earlier, and the product needs no ``~`` and ``+1`` of its own."""
        if isinstance(coef, int):  # baked tables with G = 1: no gate
            return -coef if negate else coef
        width = len(coef) + negate
        if gate is None and not negate:
            return self._delay(coef, cycles, name, shape=signed(width))
        value = self._delay(coef, cycles - 2, name, shape=signed(len(coef)))
        value = -value if negate else value
        if gate is not None:
            value = Mux(gate, 0, value)
        suffix = ("n" if negate else "") + ("g" if gate is not None else "")
        value = self._reg(value, f"{name}_{suffix}", shape=signed(width))
        return self._reg(value, f"{name}_op", shape=signed(width))

    def _signed_leaves(self, coef, operand, width, shift=0, *, negate=False):
        """``±coef · operand · 2^shift`` as ``(value, neg, low)`` leaves: each digit's shifted
        copy un-inverted (zero below ``low``), its sign ``neg`` (a bit or an int; ``+`` where
        the digit is disabled); ``dsp``: the one product, ``+``."""
        if self.config.coef_mode == "dsp":
            assert not negate
            if isinstance(coef, int):
                coef = Const(coef, signed(max(2, abs(coef).bit_length() + 1)))
            return [(_shifted(coef * operand, shift, width), 0, 0)]
        leaves = []
        for d in coef:
            if isinstance(d.en, int) and not d.en:
                continue
            if isinstance(d.index, int):
                value = _shifted(operand, d.positions[d.index] + shift, width)
            elif d.positions == list(range(len(d.positions))):
                # Every position from 0 (file tables): one shifter, not a mux per position;
                # the same hardware after synthesis, a fraction of the netlist to elaborate
                # and simulate. The index stays below len(positions) (see _decode).
                value = (_shifted(operand, shift, width) << d.index)[:width]
            else:
                value = _select([_shifted(operand, p + shift, width) for p in d.positions],
                                d.index)
            neg = d.neg
            if negate:
                neg = (1 - neg) if isinstance(neg, int) else ~neg
            if not isinstance(d.en, int):  # a disabled digit: zero, and signed +
                value = value & d.en.replicate(width)
                neg = (d.en if neg else 0) if isinstance(neg, int) else neg & d.en
            leaves.append((value, neg, min(min(d.positions) + shift, width)))
        return leaves

    def _add_sub(self, x, y, sub, low, width, name):
        """``x ± y mod 2^width`` (``−`` where ``sub``: a bit or an int), ``y`` zero below
        ``low``: the bits below ``low`` are ``x``'s, the adder starts at ``low``."""
        if low >= width:
            return x[:width]
        a, b = x[low:width], y[low:width]
        if isinstance(sub, int):
            high = ((a - b) if sub else (a + b))[:width - low]
        else:
            high = add_sub(self._m, a, b, sub, name)
        return Cat(x[:low], high)

    def _signed_tree(self, leaves, width, stages, name):
        """``Σ ±value mod 2^width`` over ``(value, neg, low)`` leaves (``neg`` a bit or an int,
        ``value`` zero below ``low``), the first of a constant ``+`` sign, as a binary tree
        registered after each stage's ``stages[s]`` levels (the last stage combinational).

        A node's value is ``left ± right`` signed as its left leaf: ``−`` where the two
        leaves' signs differ (:func:`~spikeforge.hw.add_sub.add_sub` where that varies with
        the table word), so no addend is inverted and no two's complement ``+1`` is added
        anywhere; the root, whose left leaf is the first, is the sum itself. For stages of one
        adder level each: in a stage of several, the run-time nodes would be carry chains in
        series where synthesis merges plain adders into one chain (C=16 L=4 P=1 on ECP5-25k,
        seed 1: 132.2 against 153.3 MHz), so such a state loop keeps inverted copies
        (:meth:`_addends`)."""
        assert all(count <= 1 for count in stages), stages
        level, done = list(leaves), 0
        assert isinstance(level[0][1], int) and level[0][1] == 0
        for s, count in enumerate(stages):
            for _ in range(count):
                done += 1
                nxt = []
                for i in range(0, len(level), 2):
                    if i + 1 == len(level):
                        nxt.append(level[i])
                        continue
                    (xv, xs, xl), (yv, ys, yl) = level[i], level[i + 1]
                    node = f"{name}_as{len(nxt)}_{done}"
                    nxt.append((self._add_sub(xv, yv, _differ(xs, ys), yl, width, node), xs,
                                min(xl, yl)))
                level = nxt
            if s < len(stages) - 1:
                level = [(self._reg(v, f"{name}_s{s}_{i}", shape=width),
                          self._reg(sg, f"{name}_s{s}_{i}_neg", shape=1), lo)
                         for i, (v, sg, lo) in enumerate(level)]
        assert len(level) == 1
        return level[0][0]

    def _addends(self, coef, operand, width, shift=0, *, negate=False):
        """``shift_add``: exact ``±coef · operand · 2^shift`` as addends mod ``2^width``, the
        :meth:`_signed_leaves` inverted where negative (combinational), and the ``+1`` corrections
        they need, ``(c, w)`` for ``c·2^w`` (``c`` a bit or an int): the form for a state loop
        whose stages hold several adder levels (:meth:`_signed_tree` says why)."""
        terms, corrections = [], []
        for value, neg, low in self._signed_leaves(coef, operand, width, shift, negate=negate):
            value = (~value if neg else value) if isinstance(neg, int) else \
                value ^ neg.replicate(width)
            # Below its lowest position the copy is zero, and inverted all ones: those ones
            # plus the +1 are one carry into that position, so the bits stay zero and the +1
            # moves up (``−(x·2^p) = ~(x·2^p) + 1``, the low bits of ``~(x·2^p)`` all set).
            terms.append(Cat(Const(0, low), value[low:width]))
            if not (isinstance(neg, int) and neg == 0):
                corrections.append((neg, low))
        return terms, corrections

    def _constant(self, high, corrections, low_bits, width):
        """The constant addend ``high·2^low_bits + 2^(low_bits−1) + Σ c·2^w`` mod ``2^width``
        over the ``(c, w)`` of ``corrections`` (``low_bits = 0``: no rounding half); ``high`` a
        signed value or int."""
        half = (1 << (low_bits - 1)) if low_bits > 0 else 0
        fixed = half + sum(c << w for c, w in corrections if isinstance(c, int))
        if isinstance(high, int):  # all of the constant is below ``width``
            fixed, low_bits, high = fixed + (high << low_bits), width, None
        fixed %= 1 << width
        # The varying +1s are summed into the constant's bits with half and full adders
        # (carry-save: a LUT per sum or carry bit, no carry chain) until every bit position
        # holds one bit; a varying bit where the constant has a zero costs nothing.
        total = fixed + sum(1 << w for c, w in corrections if not isinstance(c, int))
        size = max(low_bits, total.bit_length())
        columns = [[Const(1, 1)] if (fixed >> i) & 1 else [] for i in range(size)]
        for c, w in corrections:
            if not isinstance(c, int):
                columns[w].append(c)
        bits = []
        for i, column in enumerate(columns):
            while len(column) > 1:
                if len(column) >= 3:
                    a, b, c = column.pop(), column.pop(), column.pop()
                    column.append(a ^ b ^ c)
                    carry = (a & b) | (a & c) | (b & c)
                else:
                    a, b = column.pop(), column.pop()
                    column.append(a ^ b)
                    carry = a & b
                if i + 1 < size:  # the sum is at most ``total``: no carry leaves the top
                    columns[i + 1].append(carry)
            bits.append(column[0] if column else Const(0, 1))
        low = Cat(*bits) if bits else Const(0, 1)
        if high is None:
            return low[:width]
        if low_bits and total < (1 << low_bits):  # no carry into the high part
            return Cat(low[:low_bits], _extend(high, width - low_bits))[:width]
        return (_shifted(high, low_bits, width) + low)[:width]

    def _dsp_update(self, powers, l, j, u0, r0, entry, first, segments, input_u, input_r,
                    stage):
        """``dsp``: the state update ``(u, r)`` of lane ``l``, step ``j`` from the start state
        ``(u0, r0)`` (the read register, stage ``entry``): ``u = R(a·u0 − b·r0) + in_u``,
        ``r = R(b·u0 + a·r0) + in_r`` with ``a + ib = Λ^(j+1)``, over ``segments`` loop
        segments (:func:`_dsp_loop_plan`). Each product is one multiply of two plain
        registers (the state operand and the coefficient, ``−b`` formed off the loop) and is
        registered at its own width, so that a multiplier's operand and product registers are
        all its own (``hw/ecp5_registers.py``). ``first(stage)``: the beat's first-tile bit
        at a stage (its coefficients are zero: the start state is)."""
        cfg = self.config
        frac, state_width = cfg.coef_frac_bits, cfg.state_width
        product_width = frac + state_width
        plan = _dsp_loop_plan(segments)
        operand_stage = entry + plan["operand"]
        if plan["operand"]:
            u0 = self._reg(u0, f"st_l{l}_j{j}_u0", shape=signed(state_width))
            r0 = self._reg(r0, f"st_l{l}_j{j}_r0", shape=signed(state_width))
        gate = first(operand_stage - 2) if first is not None else None
        base = f"st_pow_l{l}_n{j + 1}"
        a, b, nb = (self._loop_coef(powers[(l, j + 1, part)], operand_stage - 2,
                                    f"{base}_{'ri'[part]}", gate=gate, negate=negate)
                    for part, negate in ((0, False), (1, False), (1, True)))
        values = []
        for part, pairs in ((0, ((a, u0), (nb, r0))), (1, ((b, u0), (a, r0)))):
            name = f"st_l{l}_j{j}_{'ur'[part]}"
            terms = []
            for n, (coef, operand) in enumerate(pairs):
                if isinstance(coef, int):
                    coef = Const(coef, signed(max(2, abs(coef).bit_length() + 1)))
                product = coef * operand
                if plan["product"]:
                    product = self._reg(product, f"{name}_p{n}",
                                        shape=signed(min(len(product), product_width)))
                terms.append(_extend(product, product_width))
            source = (input_u, input_r)[part][l][j]
            if not isinstance(source, int):
                source = self._delay(source, operand_stage + plan["product"] - stage,
                                     f"{name}_in", shape=signed(state_width))
            # The constant (rounding half, input part) joins the first adder level: as an
            # addend of its own it would be registered, and a register of constant bits
            # (initialised to 0, so not removable) is shared by every lane's adder.
            terms.insert(1, self._constant(source, [], frac, product_width))
            total = self._tree(terms, product_width, 1, name, stages=plan["tree"])
            value = total[frac:].as_signed()
            if plan["write"]:
                value = self._reg(value, f"{name}_w", shape=signed(state_width))
            values.append(value)
        return values

    # -- the core ---------------------------------------------------------------------------

    def elaborate(self, platform):
        cfg = self.config
        lanes, steps, width = cfg.lanes, cfg.time_parallelism, cfg.input_width
        frac, state_width = cfg.coef_frac_bits, cfg.state_width
        plan = _stage_plan(cfg)
        m = self._m = Module()
        # Flow control by credits (hw/credit.py): the pipeline never stalls, so no stream
        # handshake reaches its registers; an accepted beat takes a place in the output
        # buffer, and the input waits when every place is promised.
        user_width = lanes * steps * state_width if cfg.membrane_out else 0
        m.submodules.out_buffer = out_buffer = CreditBuffer(
            lanes * steps + 1 + user_width, prf_buffer_depth(cfg), storage="ram")
        fire = Signal()
        m.d.comb += [out_buffer.in_valid.eq(self.s_axis.tvalid),
                     self.s_axis.tready.eq(out_buffer.in_ready),
                     fire.eq(out_buffer.take[0])]

        # Stage 0: where the incoming tile sits in its sample.
        group = Signal(range(cfg.groups))
        in_sample = Signal()  # a whole tile of this sample has gone by
        with m.If(fire):
            with m.If(self.s_axis.tlast):
                m.d.sync += [group.eq(0), in_sample.eq(0)]
            with m.Elif(group == cfg.groups - 1):
                m.d.sync += [group.eq(0), in_sample.eq(1)]
            with m.Else():
                m.d.sync += group.eq(group + 1)

        # Stage 1: the tile, its position and its table words. Datapath registers have no
        # reset: only the valid bit and the state say what counts.
        tile = Signal(len(self.s_axis.tdata), reset_less=True)
        first1, last1, group1, valid1 = Signal(), Signal(), Signal(range(cfg.groups)), Signal()
        m.d.sync += [tile.eq(self.s_axis.tdata), first1.eq(~in_sample),
                     last1.eq(self.s_axis.tlast), group1.eq(group), valid1.eq(fire)]
        words1 = {t: self._table_word(m, t, fire, group) for t in TABLES}
        control = {"first": [None, first1], "last": [None, last1], "group": [None, group1],
                   "valid": [None, valid1]}

        def control_at(name, stage):
            """A control signal (valid, first, last, group) of the beat at ``stage``."""
            chain = control[name]
            while len(chain) <= stage:
                chain.append(self._reg(chain[-1], f"{name}_s{len(chain)}",
                                       shape=len(chain[-1]), reset_less=(name != "valid")))
            return chain[stage]

        # Stage 2: the tile and the decoded coefficients (Δ, Λ^n).
        tile2 = self._reg(tile, "tile_s2")

        def power(lane, n, part):  # element index of Λ^n's real (0) or imaginary (1) part
            return (lane * steps + n - 1) * 2 + part

        delta2 = [self._decode(words1["delta"], "delta", l, f"delta_l{l}")
                  for l in range(lanes)]
        powers2 = {(l, n, part): self._decode(words1["powers"], "powers", power(l, n, part),
                                              f"pow_l{l}_n{n}_{'ri'[part]}")
                   for l in range(lanes) for n in range(1, steps + 1) for part in (0, 1)}
        v_th2 = self._reg(words1["v_th"], "v_th_s2")
        product_terms = _product_terms(cfg)

        def rounded_product(coef, operand, modulus, shift, low_bits, name):
            """``R(coef · operand)`` pipelined: addends registered, one adder level per
            stage, the result registered (``modulus`` bits, result above ``low_bits``)."""
            leaves = self._signed_leaves(coef, operand, modulus, shift)
            leaves = [(self._reg(v, f"{name}_t{i}", shape=modulus),
                       self._reg(sg, f"{name}_t{i}_neg", shape=1), lo)
                      for i, (v, sg, lo) in enumerate(leaves)]
            leaves.insert(0, (self._constant(0, [], low_bits, modulus), 0, 0))
            leaves += [(Const(0, modulus), 0, modulus)] * (product_terms - len(leaves))
            total = self._signed_tree(leaves, modulus, [1] * tree_levels(product_terms), name)
            return total[low_bits:]

        # Stages 3 … plan["drive"]: drive = R_k(Δ·x) on the state grid.
        drive_bits = drive_width(cfg)
        k = cfg.input_shift
        drive = [[None] * steps for _ in range(lanes)]
        for l in range(lanes):
            for j in range(steps):
                x = tile2.word_select(j * lanes + l, width).as_signed()
                value = rounded_product(delta2[l], x, max(k, 0) + drive_bits, max(-k, 0),
                                        max(k, 0), f"drive_l{l}_j{j}")
                drive[l][j] = self._reg(value.as_signed(), f"drive_l{l}_j{j}",
                                        shape=signed(drive_bits))
        stage = plan["drive"]

        # Input parts: input_j = drive_j + Σ_{lag=1..j} R(Λ^lag ⊗ drive_{j−lag}), each product
        # rounded on its own.
        product_width = frac + state_width
        input_u = [[None] * steps for _ in range(lanes)]
        input_r = [[None] * steps for _ in range(lanes)]
        if steps == 1:
            for l in range(lanes):
                input_u[l][0], input_r[l][0] = drive[l][0], 0
        else:
            # Each R(Λ^lag·drive) is summed only as wide as its bound needs: shorter adders.
            product_bits = lag_product_width(cfg)
            rounded = {}
            for l in range(lanes):
                for lag in range(1, steps):
                    for part in (0, 1):
                        coef = self._delay_coef(powers2[(l, lag, part)], stage - 2,
                                                f"in_pow_l{l}_n{lag}_{'ri'[part]}")
                        for j in range(lag, steps):
                            name = f"inp_l{l}_j{j}_lag{lag}_{'ur'[part]}"
                            value = rounded_product(coef, drive[l][j - lag], product_bits,
                                                    0, frac, name)
                            rounded[(l, j, lag, part)] = self._reg(
                                value.as_signed(), name, shape=signed(len(value)))
            for l in range(lanes):
                for j in range(steps):
                    late = self._delay(drive[l][j], 1 + tree_levels(product_terms),
                                       f"drive_l{l}_j{j}_late", shape=signed(drive_bits))
                    for part, target in ((0, input_u), (1, input_r)):
                        terms = [rounded[(l, j, lag, part)] for lag in range(1, j + 1)]
                        terms = [_extend(t, state_width)
                                 for t in ([late] if part == 0 else []) + terms]
                        terms += [Const(0, state_width)] * (steps - len(terms))
                        name = f"input_{'ur'[part]}_l{l}_j{j}"
                        target[l][j] = self._reg(
                            self._tree(terms, state_width, 1, name).as_signed(), name,
                            shape=signed(state_width))
        stage = plan["inputs"]

        # The state loop. At its entry E: the tile's start state s (the read register, or
        # the state register with G = 1), the decoded Λ^(j+1) (zeroed for a sample's first
        # tile, whose start state is zero) and the input parts, off the loop.
        entry, depth = plan["entry"], plan["depth"]
        state_bits = 2 * state_width * lanes
        new_state = Signal(state_bits)
        if cfg.groups == 1:
            stored = Signal(state_bits)
            with m.If(control_at("valid", entry)):
                m.d.sync += stored.eq(new_state)
            start = Mux(control_at("first", entry), 0, stored)
            gate = first = None
            segments = 1
        else:
            m.submodules.state = state = memory.Memory(shape=state_bits, depth=cfg.groups,
                                                       init=[])
            write = state.write_port()
            # A group's next beat trails this one by >= G stages: its read (address at
            # E − 1) comes after this beat's write (at E + depth − 2) when depth <= G, or in
            # the same cycle when depth = G + 1 (then the read is transparent to the write).
            transparent = depth == cfg.groups + 1
            gate = control_at("first", entry - 1)
            first = functools.partial(control_at, "first")
            segments = depth - 1
            if cfg.coef_mode == "dsp":
                read = state.read_port(transparent_for=(write,) if transparent else ())
                m.d.comb += [read.addr.eq(control_at("group", entry - 1)), read.en.eq(1)]
                start = read.data
            else:
                # shift_add: the read register is zero for a sample's first tile (a
                # synchronous reset of its flip-flops), so the coefficients need no gate.
                read = state.read_port(domain="comb")
                m.d.comb += read.addr.eq(control_at("group", entry - 1))
                data = read.data
                if transparent:
                    data = Mux(write.en & (write.addr == read.addr), write.data, data)
                start = self._reg(Mux(gate, 0, data), "state_read", shape=state_bits)
                gate = None
        tree_stages = _loop_tree_stages(tree_levels(2 * product_terms - 1), segments)
        # Where a loop stage holds several adder levels, synthesis merges them into one carry
        # chain, which needs plain addends: there the copies are inverted (_addends; see
        # _signed_tree).
        merged = max(tree_stages) > 1

        membranes, ends = {}, []
        for l in range(lanes):
            u0 = start.word_select(2 * l, state_width).as_signed()
            r0 = start.word_select(2 * l + 1, state_width).as_signed()
            for j in range(steps):
                if cfg.coef_mode == "dsp":
                    values = self._dsp_update(powers2, l, j, u0, r0, entry, first, segments,
                                              input_u, input_r, stage)
                    membranes[(l, j)] = self._reg(values[0], f"u_l{l}_j{j}",
                                                  shape=signed(state_width))
                    if j == steps - 1:
                        ends += values
                    continue
                a = self._delay_coef(powers2[(l, j + 1, 0)], entry - 2,
                                     f"st_pow_l{l}_n{j + 1}_r", gate=gate)
                b = self._delay_coef(powers2[(l, j + 1, 1)], entry - 2,
                                     f"st_pow_l{l}_n{j + 1}_i", gate=gate)
                values = []
                for part, pairs in ((0, ((a, u0, False), (b, r0, True))),
                                    (1, ((b, u0, False), (a, r0, False)))):
                    name = f"st_l{l}_j{j}_{'ur'[part]}"
                    source = (input_u, input_r)[part][l][j]
                    if not isinstance(source, int):
                        source = self._delay(source, entry - stage, f"{name}_in",
                                             shape=signed(state_width))
                    addends = 2 * product_terms - 1
                    if merged:  # inverted copies, their +1s in the constant, one tree
                        terms, corrections = [], []
                        for coef, operand, negate in pairs:
                            t, c = self._addends(coef, operand, product_width, negate=negate)
                            terms += t
                            corrections += c
                        terms.append(self._constant(source, corrections, frac, product_width))
                        terms += [Const(0, product_width)] * (addends - len(terms))
                        total = self._tree(terms, product_width, 1, name, stages=tree_stages)
                    else:
                        leaves = [(self._constant(source, [], frac, product_width), 0, 0)]
                        for coef, operand, negate in pairs:
                            leaves += self._signed_leaves(coef, operand, product_width,
                                                          negate=negate)
                        leaves += [(Const(0, product_width), 0, product_width)] * \
                            (addends - len(leaves))
                        total = self._signed_tree(leaves, product_width, tree_stages, name)
                    values.append(total[frac:].as_signed())
                u, r = values
                membranes[(l, j)] = self._reg(u, f"u_l{l}_j{j}", shape=signed(state_width))
                if j == steps - 1:
                    ends += [u, r]
        m.d.comb += new_state.eq(Cat(ends))
        if cfg.groups > 1:
            write_stage = entry + depth - 2
            m.d.comb += [write.addr.eq(control_at("group", write_stage)),
                         write.en.eq(control_at("valid", write_stage)),
                         write.data.eq(new_state)]

        out = plan["out"]
        last_out, valid_out = control_at("last", out + 1), control_at("valid", out + 1)
        v_th_out = self._delay(v_th2, out - 2, "v_th")
        th_width, _ = table_layout(cfg, "v_th")

        def threshold(l):
            if isinstance(v_th_out, int):
                code = (v_th_out >> (l * th_width)) & ((1 << th_width) - 1)
                return code - (1 << th_width) if code >> (th_width - 1) else code
            return v_th_out.word_select(l, th_width).as_signed()

        # The comparisons are registered before the output buffer: their carry chains and
        # the buffer's write multiplexers do not share a cycle (Fmax).
        spikes = self._reg(Cat(membranes[(l, j)] >= threshold(l) for j in range(steps)
                               for l in range(lanes)), "spikes_out")
        user = self._reg(Cat(membranes[(l, j)] for j in range(steps) for l in range(lanes)),
                         "membranes_out") if cfg.membrane_out else Cat()
        m.d.comb += [
            out_buffer.w_en.eq(valid_out),
            out_buffer.w_data.eq(Cat(spikes, last_out, user)),
            self.m_axis.tvalid.eq(out_buffer.r_rdy),
            out_buffer.r_en.eq(self.m_axis.tready),
            self.m_axis.tdata.eq(out_buffer.r_data[:lanes * steps]),
            self.m_axis.tlast.eq(out_buffer.r_data[lanes * steps]),
        ]
        if cfg.membrane_out:
            m.d.comb += self.m_axis.tuser.eq(out_buffer.r_data[lanes * steps + 1:])
        return m
