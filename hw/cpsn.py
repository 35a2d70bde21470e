"""Streaming shift-add datapath for the multiplication-free channel-wise PSN (CPSN), and the
same datapath with real multipliers as a baseline."""

from amaranth import Cat, Const, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .adder_tree import PipelinedAdderTree, tree_levels
from ..golden.cpsn_config import CPSNConfig
from .credit import CreditBuffer, send_results
from .cpsn_tables import ARITHS, arith_tables, pack_tables, table_width
from .delay import TransferDelay
from .stream import AXIStreamSignature
from .tables import WEIGHT_STORAGES, TableROM, check_storage

__all__ = ["CPSNCore", "ARITHS", "WEIGHT_STORAGES", "cpsn_latency", "cpsn_buffer_depth"]

#: Register stages between the taps and the adder tree (see ``CPSNCore.elaborate``).
TERM_STAGES = 3
#: Widest tap delay line, in bits: one block RAM's width (36 on ECP5), so that a line spans a
#: few lanes only (at 8-bit inputs, 4) and a line in block RAM wastes none of its width.
LINE_BITS = 36


def cpsn_latency(config: CPSNConfig) -> int:
    """Cycles from an input transfer to its output beat: input register, taps, three term
    stages, the adder tree, the result register, then the output buffer."""
    return 4 + TERM_STAGES + tree_levels(config.order + 1)


def cpsn_buffer_depth(config: CPSNConfig) -> int:
    """Output buffer places: every beat in flight, including the one whose credit returns as
    the next beat is offered, so the stream runs without bubbles."""
    return cpsn_latency(config) + 1


def _popcount(bits):
    """The number of set bits among ``bits`` (one-bit values), as a balanced adder tree."""
    level = [Cat(bit) for bit in bits]
    while len(level) > 1:
        level = [level[n] + level[n + 1] if n + 1 < len(level) else level[n]
                 for n in range(0, len(level), 2)]
    return level[0]


class CPSNCore(wiring.Component):
    """CPSN neurons for ``C`` channels, ``L`` channels per beat, one beat per clock.

    Each beat carries one time step of ``L`` channels; a time step of all ``C`` channels takes
    ``G = C/L`` consecutive beats (channel group ``g`` = channels ``g·L … g·L+L−1``). For every
    lane the core forms ``H = Σ_i sign_i·(x[t−(k−1−i)·d] << shift_i) + bias`` exactly and emits
    the spike ``H >= 0``; the default datapath uses no multiplier. Tap history lives in
    ``k−1`` transfer-counted delay lines per few lanes (memories of about ``d·G`` words of at
    most :data:`LINE_BITS` bits), so ``C`` can be large.
    History older than the current sample is masked by a time counter, which makes every
    sample start from zeros without clearing memory (delay lines short enough to be
    registers are cleared instead). The position counters and (baked) table ROMs are kept
    once per lane, and the enables in a few copies, so that few nets span all lanes (Fmax).

    Protocol: AXI4-Stream on both sides. ``s_axis.tlast`` goes with the final beat of a sample
    (group ``G−1`` of its last time step) and is copied to the matching output beat. ``tlast``
    on another beat also ends the sample there (the next beat starts a new sample at group 0).

    Latency: ``7 + ceil(log2(k+1))`` cycles from an input transfer to its output beat when the
    output is not stalled. Throughput: one beat per clock for every ``C/L`` (no bubbles when
    input is always valid and output always ready).

    Flow control is credit-based, so that no stream handshake drives the datapath's many
    enables through logic (Fmax): an accepted beat is registered first, and the register's
    valid bit alone advances the taps; the pipeline behind the taps never stalls; an output
    buffer (:class:`~spikeforge.hw.credit.CreditBuffer`, :func:`cpsn_buffer_depth` places)
    holds the beats in flight when the sink stalls; and ``s_axis.tready`` is a register that
    is high while a buffer place is not yet promised to an accepted beat. Backpressure
    neither drops nor duplicates beats.

    Datapath (``arith``): ``shift_add`` (the default) forms each term as a shift and a
    conditional complement (the +1 of each negation is folded into the bias). With constant
    tables (``C = L``, baked) shifts are wiring, and with taps in registers (``d·G ≤ 2``) a
    sample's history is cleared rather than masked, so such a core registers no term at all.
    ``multiply`` is the baseline for measuring what shift-add saves: it stores
    the signed integer weight ``sign · 2^(e − exp_min)`` per tap (table ``weights``) and forms
    the term with a real ``*``, one multiplier per tap and lane; the terms, the pipeline, the
    latency and every output bit are the same.

    Members:
        s_axis: input stream; ``tdata`` lane ``l`` is bits ``[l·W, (l+1)·W)``, signed.
        m_axis: output stream; ``tdata`` bit ``l`` is the spike of lane ``l``; with
            ``config.membrane_out`` the membranes (signed, ``config.membrane_width`` bits each)
            are on ``tuser``, lane ``l`` at ``[l·M, (l+1)·M)``.
    """

    def __init__(self, config: CPSNConfig, *, weight_storage: str = "baked",
                 init_files: dict[str, str] | None = None, arith: str = "shift_add"):
        if not isinstance(config, CPSNConfig):
            raise TypeError(f"config must be a CPSNConfig, got {type(config).__name__}")
        if arith not in ARITHS:
            raise ValueError(f"arith must be one of {ARITHS}, got {arith!r}")
        self.init_files = check_storage(weight_storage, init_files, arith_tables(arith))
        self.config = config
        self.weight_storage = weight_storage
        self.arith = arith
        self.latency = cpsn_latency(config)
        user_width = config.lanes * config.membrane_width if config.membrane_out else 0
        super().__init__({
            "s_axis": In(AXIStreamSignature(config.lanes * config.input_width)),
            "m_axis": Out(AXIStreamSignature(config.lanes, user_width=user_width)),
        })

    def _lane_tables(self, m, groups):
        """Per lane, each table's part of the word for the lane's current group, aligned with
        the taps (one cycle later): ``[{table: word}]``, element ``i`` of a lane at bits
        ``[i·w, (i+1)·w)``.

        Baked tables are one ROM per lane and table, read with the lane's own group counter
        (``groups[lane]``), so no address net spans every lane; constants when ``C = L``.
        The read register starts with group 0's word (:class:`~spikeforge.hw.tables.TableROM`).
        File tables are one ROM per table (the word layout of the ``$readmemh`` file), read
        with the counter ``groups[-1]``. Reads have no enable: a word is used only in the
        cycle after an accepted beat (the stage-1 valid bit), when it is that beat's group's
        word; so the handshake's valid bit does not reach the tables."""
        cfg = self.config
        lanes = [{} for _ in range(cfg.lanes)]
        for table in arith_tables(self.arith):
            width, per_word = table_width(cfg, table)
            lane_bits = width * per_word // cfg.lanes
            words = pack_tables(cfg, self.arith)[table]
            if self.weight_storage == "file":
                m.submodules[f"{table}_rom"] = rom = TableROM(
                    words, width * per_word, storage="file", init_file=self.init_files[table])
                m.d.comb += [rom.en.eq(1), rom.addr.eq(groups[-1] if cfg.groups > 1 else 0)]
            for lane in range(cfg.lanes):
                if self.weight_storage == "file":
                    lanes[lane][table] = rom.data.word_select(lane, lane_bits)
                    continue
                parts = [(word >> (lane * lane_bits)) & ((1 << lane_bits) - 1)
                         for word in words]
                if cfg.groups == 1:
                    lanes[lane][table] = Const(parts[0], lane_bits)
                    continue
                m.submodules[f"{table}_rom_l{lane}"] = lane_rom = TableROM(parts, lane_bits)
                m.d.comb += [lane_rom.en.eq(1), lane_rom.addr.eq(groups[lane])]
                lanes[lane][table] = lane_rom.data
        return lanes

    @staticmethod
    def _delay(m, value, name, *, shape=None, init=0):
        """``value`` one cycle later, in a datapath register without reset or enable.

        A datapath register's initial value means nothing (the valid bits say what counts),
        so registers of table data start with the value they hold for channel group 0
        (``init``). A table bit that is the same in every group then makes a register with
        a constant input equal to its initial value, which synthesis removes; with another
        initial value it would keep it, and merge all such flip-flops of the core into one
        whose output net spans every lane (Fmax)."""
        register = Signal(shape if shape is not None else len(value), name=name,
                          reset_less=True, init=init)
        m.d.sync += register.eq(value)
        return register

    def _negatives(self, m, lane: int, signs):
        """A lane's count of negative weights at stage 3, from its stage-1 sign word: two
        half counts in stage 2, their sum in stage 3, so each stage has a short path."""
        cfg = self.config
        sign_width, _ = table_width(cfg, "signs")
        flags = [signs.word_select(i, sign_width).as_signed() < 0 for i in range(cfg.order)]
        first = cfg.signs[lane] < 0  # channel group 0 (see _delay)
        half = (cfg.order + 1) // 2
        halves = [self._delay(m, _popcount(flags[a:b]), f"negatives{n}_l{lane}_s2",
                              init=int(first[a:b].sum()))
                  for n, (a, b) in enumerate([(0, half), (half, cfg.order)]) if a < b]
        return self._delay(m, sum(halves[1:], halves[0]), f"negatives_l{lane}_s3",
                           init=int(first.sum()))

    def _constant_term(self, lane: int, index: int, x):
        """Tap ``index``'s term with constant tables: ``x << s`` or, for a negative weight,
        ``~x << s = −(x << s) − 2^s`` (the ``2^s`` goes into the bias, see
        :meth:`_constant_bias`). Complementing before the shift keeps the low ``s`` bits
        constant zero, so synthesis drops them from the register and the adders."""
        cfg = self.config
        sign = int(cfg.signs[lane, index])
        if sign == 0:
            return Const(0, 1)
        return (~x if sign < 0 else x) << int(cfg.exponents[lane, index] - cfg.exp_min)

    def _constant_bias(self, lane: int) -> int:
        """A lane's bias, with constant tables, plus the ``2^s`` of every negative weight
        that :meth:`_constant_term` leaves out."""
        cfg = self.config
        if self.arith == "multiply":
            return int(cfg.bias[lane])
        shifts = cfg.exponents[lane] - cfg.exp_min
        return int(cfg.bias[lane]) + sum(1 << int(s) for s in shifts[cfg.signs[lane] < 0])

    def _position(self, m, fire, in_last, suffix, masked):
        """Where the incoming beat lies in its sample: ``(group, tap_live)``. ``group`` is its
        channel group; with ``masked``, ``tap_live[j]`` is a register, written with the
        beat's taps (stage 1), that says whether tap ``j`` lies inside the sample (else
        ``None``). Every enable is at most a 3-input function of registers (Fmax): a flag
        marks the last group, and the time step is a thermometer code, ``live[s]`` = "step
        ≥ s", that a new time step shifts by one."""
        cfg = self.config
        group = Signal(range(cfg.groups), name=f"group_{suffix}")
        if cfg.groups == 1:
            at_last = Const(1, 1)
        else:
            at_last = Signal(name=f"at_last_{suffix}")  # group == G − 1
            with m.If(fire):
                with m.If(in_last | at_last):
                    m.d.sync += [group.eq(0), at_last.eq(0)]
                with m.Else():
                    m.d.sync += [group.eq(group + 1), at_last.eq(group == cfg.groups - 2)]
        if not masked:
            return group, None
        live = Signal((cfg.order - 1) * cfg.dilation + 1, init=1, name=f"live_{suffix}")
        with m.If(fire):
            with m.If(in_last):
                m.d.sync += live.eq(1)
            with m.Elif(at_last):
                m.d.sync += live.eq(Cat(Const(1, 1), live[:-1]))
        tap_live = Signal(cfg.order, name=f"tap_live_{suffix}")
        with m.If(fire):
            m.d.sync += tap_live.eq(Cat(live[j * cfg.dilation] for j in range(cfg.order)))
        return group, tap_live

    def elaborate(self, platform):
        cfg = self.config
        lanes, order, width = cfg.lanes, cfg.order, cfg.input_width
        m = Module()

        # Output buffer and credits: an accepted beat takes a credit, a beat read from the
        # buffer gives it back; with no credit left the input waits, so nothing overflows.
        out_width = lanes + 1 + (lanes * cfg.membrane_width if cfg.membrane_out else 0)
        per_line = max(1, LINE_BITS // width)
        line_lanes = [(first, min(lanes, first + per_line))
                      for first in range(0, lanes, per_line)]
        # Enable copies: one per line of lanes and half of the taps.
        halves = min(2, order)
        m.submodules.out_buffer = out_buffer = CreditBuffer(
            out_width, cpsn_buffer_depth(cfg), copies=len(line_lanes) * halves)
        m.d.comb += [out_buffer.in_valid.eq(self.s_axis.tvalid),
                     self.s_axis.tready.eq(out_buffer.in_ready)]

        # Input register: an accepted beat waits here one cycle; its valid bit is the enable
        # of the taps and the position counters, so those high-fanout nets come straight
        # from flip-flops: one copy per line of lanes (see the taps below) and half of the
        # taps (the lanes' counters go with the first half), each registered from its own
        # copy of the buffer's ``take``, so that no enable net spans the whole core. Data and
        # tlast are sampled every cycle (only the valid bit says they count), which keeps
        # the handshake's own fanout small.
        fires = [Signal(name=f"fire_line{n}_{h}") for n in range(len(line_lanes))
                 for h in range(halves)]
        fire = fires[0]  # for the few single registers

        # tlast of the accepted beat for the lanes' position counters, one copy per line of
        # lanes, each written on that line's counter enable copy of take (so synthesis keeps
        # them apart).
        lasts = [Signal(name=f"last_line{n}", reset_less=True) for n in range(len(line_lanes))]
        for n, copy in enumerate(lasts):
            with m.If(out_buffer.take[n * halves]):
                m.d.sync += copy.eq(self.s_axis.tlast)

        def fire_of(lane, tap=0):
            return fires[lane // per_line * halves + tap * halves // order]

        def last_of(lane):
            return lasts[lane // per_line]

        in_data = Signal(lanes * width, reset_less=True)
        in_last = Signal(reset_less=True)
        m.d.sync += [Cat(fires).eq(out_buffer.take), in_data.eq(self.s_axis.tdata),
                     in_last.eq(self.s_axis.tlast)]

        # Stage 0: position of the incoming beat within its sample, tracked by one copy of
        # the group and step counters per lane. The copies count alike, but each feeds back
        # on itself, so synthesis keeps them apart: the live bits that mask a lane's taps and
        # the group that addresses its tables then fan out to that lane only (a net spanning
        # all lanes costs more routing than a clock period at L = 16).
        # Taps in registers (d·G ≤ 2) are cleared between samples (from the cycle after a
        # sample's last beat until the next beat enters), so they hold zeros where a sample
        # has no history; taps in memories are masked instead.
        line_depth = cfg.dilation * cfg.groups - 1
        cleared = line_depth < 2
        positions = [self._position(m, fire_of(lane), last_of(lane), f"l{lane}", not cleared)
                     for lane in range(lanes)]
        groups = [group for group, _ in positions]
        if self.weight_storage == "file":  # the shared table ROMs' own counter
            groups.append(self._position(m, fire, in_last, "tables", False)[0])
        in_first = Signal(init=1)  # the beat in ``in_data`` starts a sample
        with m.If(fire):
            m.d.sync += in_first.eq(in_last)

        # Stage 1: tap j holds x[t − j·d]. Tap 0 registers the beat; each later tap chains
        # from the previous tap's register, which already lags one transfer, hence d·G − 1.
        # Each tap is one delay line per few lanes (its own enable copy), so no line's
        # pointer, enable or memory spans all lanes.
        taps = []
        for j in range(order):
            outputs = []
            for n, (first, end) in enumerate(line_lanes):
                line = TransferDelay((end - first) * width, 0 if j == 0 else line_depth,
                                     clearable=cleared and j > 0)
                m.submodules[f"tap{j}_line{n}"] = line
                source = in_data if j == 0 else taps[-1]
                m.d.comb += [line.en.eq(fire_of(first, j)),
                             line.i.eq(source[first * width:end * width])]
                if line.clearable:
                    m.d.comb += line.clear.eq(in_first)
                outputs.append(line.o)
            taps.append(Cat(outputs))
        s1_valid, s1_last = Signal(), Signal(reset_less=True)
        with m.If(fire):
            m.d.sync += s1_last.eq(in_last)
        m.d.sync += s1_valid.eq(fire)
        lane_words = self._lane_tables(m, groups)

        # Stages 2 to 4: signed terms. From here on nothing stalls, and every register is a
        # pure datapath register (no reset, no enable): only the valid bit says what counts.
        # A tap outside the sample is zero (cleared, or masked by its lane's live bit): a
        # zero input makes a zero term, so nothing later depends on the sample.
        # Shift-add: stage 2 copies the table words (aligning them with the taps) and the
        # zeroed taps into registers; stage 3 shifts by the low half of the shift code,
        # stage 4 by the high half, zeroes a zero weight's term and complements a negative
        # one: the term is ~v = −v − 1, no carry chain. The +1 of every negative term is
        # added to the bias instead: the lane's count of negative weights, counted in stages
        # 2 and 3 and added in stage 4. The only "multiplication" is a shift and a complement.
        # Shift-add with constant tables: a shift is wiring and a complement is free, so a
        # term needs a register only for the mask's AND (none when the taps are cleared),
        # and the stages it does not use sit behind the adder tree, where they delay one
        # spike (and membrane) per lane instead of k terms: the latency stays that of
        # cpsn_latency().
        # Multiply (the baseline): stage 2 is the real multiplier, stages 3 and 4 register its
        # product (a DSP block's pipeline registers). The table words are not copied: Yosys
        # puts a weight register shared by several multipliers into one DSP block and builds
        # the others from logic. The sums are the same.
        constant = self.weight_storage == "baked" and cfg.groups == 1
        retimed = constant and self.arith == "shift_add"
        # Initial values of table-data registers: their values for channel group 0 (see
        # _delay), where channel = lane.
        first_words = {table: words[0] for table, words in pack_tables(cfg, self.arith).items()}
        lane_sums = []
        for lane in range(lanes):
            words = lane_words[lane]
            if self.arith == "shift_add" and not constant:
                words = {table: self._delay(m, word, f"{table}_l{lane}_s2",
                                            init=(first_words[table] >> lane * len(word))
                                            & ((1 << len(word)) - 1))
                         for table, word in words.items()}
            first_bias = int(cfg.bias[lane])
            first_negatives = int((cfg.signs[lane] < 0).sum())
            term_regs = []
            for i in range(order):
                j = order - 1 - i
                element = i  # within the lane's part of a table word
                name = f"l{lane}_i{i}"
                x = taps[j].word_select(lane, width)
                if not cleared:
                    # AND, not a multiplexer with a zero input: Yosys would make the zero a
                    # synchronous reset, and a reset net per tap and lane leaves the iCE40
                    # placer no legal packing (flip-flops of a logic block share one reset).
                    x = x & positions[lane][1][j].replicate(width)
                x = x.as_signed()
                if retimed:
                    term = self._constant_term(lane, i, x)
                    if not cleared:
                        term = self._delay(m, term, f"term_{name}",
                                           shape=signed(cfg.term_width))
                elif self.arith == "multiply":
                    weight_width, _ = table_width(cfg, "weights")
                    weight = words["weights"].word_select(element, weight_width).as_signed()
                    product = x * weight
                    for n in (2, 3):
                        product = self._delay(m, product, f"product_{name}_s{n}",
                                              shape=signed(cfg.term_width))
                    term = self._delay(m, product, f"term_{name}",
                                       shape=signed(cfg.term_width))
                else:
                    x = self._delay(m, x, f"x_{name}_s2", shape=signed(width))
                    sign_width, _ = table_width(cfg, "signs")
                    shift_width, _ = table_width(cfg, "shifts")
                    sign = words["signs"].word_select(element, sign_width).as_signed()
                    shift = words["shifts"].word_select(element, shift_width)
                    low = (shift_width + 1) // 2
                    first_sign = int(cfg.signs[lane, i])
                    first_shift = int(cfg.exponents[lane, i] - cfg.exp_min)
                    partial = self._delay(m, x << shift[:low], f"shifted_{name}_s3",
                                          shape=signed(cfg.term_width))
                    high = self._delay(m, shift[low:], f"shift_high_{name}_s3",
                                       init=first_shift >> low)
                    nonzero = self._delay(m, sign != 0, f"nonzero_{name}_s3",
                                          init=first_sign != 0)
                    negative = self._delay(m, sign < 0, f"negative_{name}_s3",
                                           init=first_sign < 0)
                    shifted = partial << Cat(Const(0, low), high)
                    # The initial value is the term of a zero input (only the complement).
                    term = self._delay(m, (shifted ^ negative.replicate(cfg.term_width))
                                       & nonzero.replicate(cfg.term_width), f"term_{name}",
                                       shape=signed(cfg.term_width), init=-(first_sign < 0))
                term_regs.append(term)
            bias = words["bias"].as_signed()
            if constant:
                bias = Const(self._constant_bias(lane), signed(cfg.membrane_width))
            elif self.arith == "shift_add":
                count = self._negatives(m, lane, lane_words[lane]["signs"])
                bias = self._delay(m, bias, f"bias_l{lane}_s3", shape=signed(cfg.bias_width),
                                   init=first_bias)
                bias = self._delay(m, bias + count, f"bias_l{lane}_s4",
                                   shape=signed(cfg.membrane_width),
                                   init=first_bias + first_negatives)
            else:  # multiply: the table words are those of stage 1
                for n in (2, 3, 4):
                    bias = self._delay(m, bias, f"bias_l{lane}_s{n}",
                                       shape=signed(cfg.bias_width), init=first_bias)
            tree = PipelinedAdderTree([cfg.term_width] * order + [len(bias)],
                                      cfg.membrane_width)
            m.submodules[f"tree{lane}"] = tree
            m.d.comb += tree.en.eq(1)
            for n, operand in enumerate(term_regs + [bias]):
                m.d.comb += getattr(tree.operands, f"x{n}").eq(operand)
            total = tree.sum
            # The result register (and, with constant tables, the term stages moved here).
            for n in range(1 + (TERM_STAGES - (not cleared) if retimed else 0)):
                total = self._delay(m, total, f"sum_l{lane}_d{n}",
                                    shape=signed(cfg.membrane_width))
            lane_sums.append(total)

        # valid/last travel beside the data through the term stages, the tree and the result
        # register.
        valid, last = s1_valid, s1_last
        for n in range(TERM_STAGES + tree_levels(order + 1) + 1):
            next_valid = Signal(name=f"valid_d{n}")
            next_last = Signal(name=f"last_d{n}", reset_less=True)
            m.d.sync += [next_valid.eq(valid), next_last.eq(last)]
            valid, last = next_valid, next_last

        # The result beat goes to the output buffer (see the top), which the sink reads.
        send_results(m, out_buffer, self.m_axis, valid, Cat(~total[-1] for total in lane_sums),
                     last, Cat(lane_sums) if cfg.membrane_out else None)
        return m
