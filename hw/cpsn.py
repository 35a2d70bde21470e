"""Streaming shift-add datapath for the multiplication-free channel-wise PSN (CPSN), and the
same datapath with real multipliers as a baseline."""

from amaranth import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, signed, unsigned
from amaranth.lib import fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from .adder_tree import PipelinedAdderTree, tree_levels
from .cpsn_config import CPSNConfig
from .cpsn_tables import ARITHS, arith_tables, pack_tables, table_width
from .delay import TransferDelay
from .stream import AXIStreamSignature

__all__ = ["CPSNCore", "ARITHS", "WEIGHT_STORAGES", "cpsn_latency", "cpsn_fifo_depth"]

#: ``baked``: tables are ROM contents inside the generated Verilog (constants when C = L).
#: ``file``: tables are read by ``$readmemh`` from ``INIT_FILE`` parameters at elaboration, so
#: weights change without regenerating (Verilog only; the Amaranth simulator needs ``baked``).
WEIGHT_STORAGES = ("baked", "file")


def cpsn_latency(config: CPSNConfig) -> int:
    """Cycles from an input transfer to its output beat: input register, taps, two term
    stages, the adder tree, then the output FIFO."""
    return 5 + tree_levels(config.order + 1)


def cpsn_fifo_depth(config: CPSNConfig) -> int:
    """Output FIFO places: every beat in flight, including the one whose credit returns as
    the next beat is offered, so the stream runs without bubbles."""
    return cpsn_latency(config) + 1


class CPSNCore(wiring.Component):
    """CPSN neurons for ``C`` channels, ``L`` channels per beat, one beat per clock.

    Each beat carries one time step of ``L`` channels; a time step of all ``C`` channels takes
    ``G = C/L`` consecutive beats (channel group ``g`` = channels ``g·L … g·L+L−1``). For every
    lane the core forms ``H = Σ_i sign_i·(x[t−(k−1−i)·d] << shift_i) + bias`` exactly and emits
    the spike ``H >= 0``; the default datapath uses no multiplier. Tap history lives in
    ``k−1`` transfer-counted delay lines (memories of about ``d·G`` words of ``L·W`` bits), so
    ``C`` can be large.
    History older than the current sample is masked by a time counter, which makes every
    sample start from zeros without clearing memory.

    Protocol: AXI4-Stream on both sides. ``s_axis.tlast`` goes with the final beat of a sample
    (group ``G−1`` of its last time step) and is copied to the matching output beat. ``tlast``
    on another beat also ends the sample there (the next beat starts a new sample at group 0).

    Latency: ``5 + ceil(log2(k+1))`` cycles from an input transfer to its output beat when the
    output is not stalled. Throughput: one beat per clock for every ``C/L`` (no bubbles when
    input is always valid and output always ready).

    Flow control is credit-based, so that no stream handshake drives the datapath's many
    enables through logic (Fmax): an accepted beat is registered first, and the register's
    valid bit alone advances the taps; the pipeline behind the taps never stalls; an output
    FIFO (:func:`cpsn_fifo_depth` places) holds the beats in flight when the sink stalls; and
    ``s_axis.tready`` is a register that is high while a FIFO place is not yet promised to an
    accepted beat. Backpressure neither drops nor duplicates beats.

    Datapath (``arith``): ``shift_add`` (the default) forms each term as a shift and a
    conditional negation. ``multiply`` is the baseline for measuring what that saves: it stores
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
        if weight_storage not in WEIGHT_STORAGES:
            raise ValueError(f"weight_storage must be one of {WEIGHT_STORAGES}, got "
                             f"{weight_storage!r}")
        if arith not in ARITHS:
            raise ValueError(f"arith must be one of {ARITHS}, got {arith!r}")
        tables = arith_tables(arith)
        if weight_storage == "file":
            if init_files is None or set(init_files) != set(tables):
                raise ValueError(f"weight_storage='file' needs init_files for exactly the "
                                 f"tables {tables}, got {sorted(init_files or {})}")
        elif init_files is not None:
            raise ValueError("init_files are only used with weight_storage='file'")
        self.config = config
        self.weight_storage = weight_storage
        self.arith = arith
        self.init_files = dict(init_files or {})
        self.latency = cpsn_latency(config)
        user_width = config.lanes * config.membrane_width if config.membrane_out else 0
        super().__init__({
            "s_axis": In(AXIStreamSignature(config.lanes * config.input_width)),
            "m_axis": Out(AXIStreamSignature(config.lanes, user_width=user_width)),
        })

    def _table(self, m, table, fire, group):
        """A table's word for the current group, aligned with the taps (one cycle later)."""
        width, per_word = table_width(self.config, table)
        word_width = width * per_word
        words = pack_tables(self.config, self.arith)[table]
        if self.weight_storage == "baked" and self.config.groups == 1:
            return Const(words[0], word_width)
        data = Signal(word_width, name=f"{table}_word")
        if self.weight_storage == "baked":
            rom = memory.Memory(shape=word_width, depth=self.config.groups, init=words)
            m.submodules[f"{table}_rom"] = rom
            read = rom.read_port()
            m.d.comb += [read.addr.eq(group), read.en.eq(fire), data.eq(read.data)]
        else:
            m.submodules[f"{table}_rom"] = Instance(
                "spikeforge_rom",
                p_WIDTH=word_width,
                p_DEPTH=self.config.groups,
                p_ADDR_WIDTH=max(1, (self.config.groups - 1).bit_length()),
                p_INIT_FILE=self.init_files[table],
                i_clk=ClockSignal(),
                i_en=fire,
                i_addr=group if len(group) else Const(0, 1),
                o_data=data,
            )
        return data

    def elaborate(self, platform):
        cfg = self.config
        lanes, order, width = cfg.lanes, cfg.order, cfg.input_width
        m = Module()

        # Input register: an accepted beat waits here one cycle; its valid bit is the enable
        # of every tap, so that high-fanout net comes straight from a flip-flop. Data and
        # tlast are sampled every cycle (only ``fire`` says they count), which keeps the
        # handshake's own fanout small.
        ready = Signal(init=1)  # s_axis.tready: a credit (a free FIFO place) is left
        accept = Signal()
        m.d.comb += [self.s_axis.tready.eq(ready), accept.eq(self.s_axis.tvalid & ready)]
        fire = Signal()
        in_data = Signal(lanes * width)
        in_last = Signal()
        m.d.sync += [fire.eq(accept), in_data.eq(self.s_axis.tdata),
                     in_last.eq(self.s_axis.tlast)]

        # Stage 0: position of the incoming beat within its sample.
        group = Signal(range(cfg.groups))
        step_limit = (order - 1) * cfg.dilation  # the mask needs to know steps up to here
        step = Signal(range(step_limit + 1))
        with m.If(fire):
            with m.If(in_last):
                m.d.sync += [group.eq(0), step.eq(0)]
            with m.Elif(group == cfg.groups - 1):
                m.d.sync += group.eq(0)
                with m.If(step != step_limit):
                    m.d.sync += step.eq(step + 1)
            with m.Else():
                m.d.sync += group.eq(group + 1)

        # Stage 1: tap j holds x[t − j·d]. Tap 1 delays by d·G transfers; later taps chain
        # from the previous tap's register, which already lags one transfer, hence d·G − 1.
        taps = []
        for j in range(order):
            depth = 0 if j == 0 else cfg.dilation * cfg.groups - (j > 1)
            line = TransferDelay(lanes * width, depth)
            m.submodules[f"tap{j}"] = line
            m.d.comb += [line.en.eq(fire), line.i.eq(in_data if j < 2 else taps[-1])]
            taps.append(line.o)
        tap_live = Signal(order, name="tap_live")  # tap j is inside the current sample
        s1_valid, s1_last = Signal(), Signal()
        with m.If(fire):
            m.d.sync += [tap_live[j].eq(step >= j * cfg.dilation) for j in range(order)]
            m.d.sync += s1_last.eq(in_last)
        m.d.sync += s1_valid.eq(fire)
        words = {table: self._table(m, table, fire, group) for table in arith_tables(self.arith)}
        bias = words["bias"]

        # Stages 2 and 3: signed terms, in two register stages so that no path has both the
        # shifter (or multiplier) and a carry chain. From here on nothing stalls. Stage 2 also
        # registers, per lane and tap, whether the term is used (tap inside the sample and
        # weight not zero): stage 3 masks with that local bit rather than with the tap's
        # live bit, which would fan out to every lane.
        # Shift-add: stage 2 shifts, stage 3 negates and masks; the only "multiplication" is
        # a shift and a negation. Multiply: stage 2 is the baseline's real multiplier, stage
        # 3 masks; the terms are the same.
        lane_sums = []
        for lane in range(lanes):
            term_regs = []
            for i in range(order):
                j = order - 1 - i
                element = lane * order + i
                x = taps[j].word_select(lane, width).as_signed()
                used = Signal(name=f"used_l{lane}_i{i}")
                if self.arith == "multiply":
                    weight_width, _ = table_width(cfg, "weights")
                    weight = words["weights"].word_select(element, weight_width).as_signed()
                    product = Signal(signed(cfg.term_width), name=f"product_l{lane}_i{i}")
                    m.d.sync += [product.eq(x * weight), used.eq(tap_live[j] & (weight != 0))]
                    value = product
                else:
                    sign_width, _ = table_width(cfg, "signs")
                    shift_width, _ = table_width(cfg, "shifts")
                    sign = words["signs"].word_select(element, sign_width).as_signed()
                    shift = words["shifts"].word_select(element, shift_width)
                    shifted = Signal(signed(cfg.term_width), name=f"shifted_l{lane}_i{i}")
                    m.d.sync += [shifted.eq(x << shift), used.eq(tap_live[j] & (sign != 0))]
                    # Constant tables (baked, C = L) stay constants so negation folds away.
                    negative = sign < 0
                    if not isinstance(words["signs"], Const):
                        negative = Signal(name=f"negative_l{lane}_i{i}")
                        m.d.sync += negative.eq(sign < 0)
                    # −v = ~v + 1: one carry chain whose operand is v XOR the sign.
                    value = (shifted ^ negative.replicate(cfg.term_width)) + negative
                term = Signal(signed(cfg.term_width), name=f"term_l{lane}_i{i}")
                m.d.sync += term.eq(Mux(used, value, 0))
                term_regs.append(term)
            bias_regs = [Signal(signed(cfg.bias_width), name=f"bias_l{lane}_s{n}")
                         for n in (2, 3)]
            m.d.sync += [bias_regs[0].eq(bias.word_select(lane, cfg.bias_width).as_signed()),
                         bias_regs[1].eq(bias_regs[0])]
            bias_reg = bias_regs[1]
            tree = PipelinedAdderTree([cfg.term_width] * order + [cfg.bias_width],
                                      cfg.membrane_width)
            m.submodules[f"tree{lane}"] = tree
            m.d.comb += tree.en.eq(1)
            for n, operand in enumerate(term_regs + [bias_reg]):
                m.d.comb += getattr(tree.operands, f"x{n}").eq(operand)
            lane_sums.append(tree.sum)

        # valid/last travel beside the data through the term stages and the tree.
        valid, last = s1_valid, s1_last
        for n in range(2 + tree_levels(order + 1)):
            next_valid, next_last = Signal(name=f"valid_d{n}"), Signal(name=f"last_d{n}")
            m.d.sync += [next_valid.eq(valid), next_last.eq(last)]
            valid, last = next_valid, next_last

        # Output FIFO and credits: an accepted beat takes a credit, a beat read from the FIFO
        # gives it back; with no credit left the input waits, so the FIFO never overflows.
        # ``ready`` is written without an adder so that the handshake loop stays short.
        outputs = [Cat(~total[-1] for total in lane_sums), last]
        sink = [self.m_axis.tdata, self.m_axis.tlast]
        if cfg.membrane_out:
            outputs.append(Cat(lane_sums))
            sink.append(self.m_axis.tuser)
        depth = cpsn_fifo_depth(cfg)
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFO(width=len(Cat(outputs)), depth=depth)
        m.d.comb += [
            out_fifo.w_en.eq(valid),
            out_fifo.w_data.eq(Cat(outputs)),
            self.m_axis.tvalid.eq(out_fifo.r_rdy),
            Cat(sink).eq(out_fifo.r_data),
            out_fifo.r_en.eq(self.m_axis.tready),
        ]
        credits = Signal(range(depth + 1), init=depth)
        returned = out_fifo.r_rdy & self.m_axis.tready
        m.d.sync += [credits.eq(credits - accept + returned),
                     ready.eq(returned | Mux(accept, credits != 1, credits != 0))]
        return m
