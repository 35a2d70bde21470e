"""Streaming shift-add datapath for the multiplication-free channel-wise PSN (CPSN)."""

from amaranth import Cat, ClockSignal, Const, Instance, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .adder_tree import PipelinedAdderTree, tree_levels
from .cpsn_config import CPSNConfig
from .cpsn_tables import TABLES, pack_tables, table_width
from .delay import TransferDelay
from .stream import AXIStreamSignature

__all__ = ["CPSNCore", "WEIGHT_STORAGES", "cpsn_latency"]

#: ``baked``: tables are ROM contents inside the generated Verilog (constants when C = L).
#: ``file``: tables are read by ``$readmemh`` from ``INIT_FILE`` parameters at elaboration, so
#: weights change without regenerating (Verilog only; the Amaranth simulator needs ``baked``).
WEIGHT_STORAGES = ("baked", "file")


def cpsn_latency(config: CPSNConfig) -> int:
    """Cycles from an input transfer to its output beat: taps, terms, then the adder tree."""
    return 2 + tree_levels(config.order + 1)


class CPSNCore(wiring.Component):
    """CPSN neurons for ``C`` channels, ``L`` channels per beat, one beat per clock.

    Each beat carries one time step of ``L`` channels; a time step of all ``C`` channels takes
    ``G = C/L`` consecutive beats (channel group ``g`` = channels ``g·L … g·L+L−1``). For every
    lane the core forms ``H = Σ_i sign_i·(x[t−(k−1−i)·d] << shift_i) + bias`` exactly and emits
    the spike ``H >= 0``; no multiplier is used. Tap history lives in ``k−1`` transfer-counted
    delay lines (memories of about ``d·G`` words of ``L·W`` bits), so ``C`` can be large.
    History older than the current sample is masked by a time counter, which makes every
    sample start from zeros without clearing memory.

    Protocol: AXI4-Stream on both sides. ``s_axis.tlast`` goes with the final beat of a sample
    (group ``G−1`` of its last time step) and is copied to the matching output beat. ``tlast``
    on another beat also ends the sample there (the next beat starts a new sample at group 0).

    Latency: ``2 + ceil(log2(k+1))`` cycles from an input transfer to its output beat when the
    output is not stalled. Throughput: one beat per clock for every ``C/L`` (no bubbles when
    input is always valid and output always ready). ``s_axis.tready`` is high whenever the
    output register is empty or being read, so backpressure stalls the whole pipeline
    without dropping or duplicating beats.

    Members:
        s_axis: input stream; ``tdata`` lane ``l`` is bits ``[l·W, (l+1)·W)``, signed.
        m_axis: output stream; ``tdata`` bit ``l`` is the spike of lane ``l``; with
            ``config.membrane_out`` the membranes (signed, ``config.membrane_width`` bits each)
            are on ``tuser``, lane ``l`` at ``[l·M, (l+1)·M)``.
    """

    def __init__(self, config: CPSNConfig, *, weight_storage: str = "baked",
                 init_files: dict[str, str] | None = None):
        if not isinstance(config, CPSNConfig):
            raise TypeError(f"config must be a CPSNConfig, got {type(config).__name__}")
        if weight_storage not in WEIGHT_STORAGES:
            raise ValueError(f"weight_storage must be one of {WEIGHT_STORAGES}, got "
                             f"{weight_storage!r}")
        if weight_storage == "file":
            if init_files is None or set(init_files) != set(TABLES):
                raise ValueError(f"weight_storage='file' needs init_files for exactly the "
                                 f"tables {TABLES}, got {sorted(init_files or {})}")
        elif init_files is not None:
            raise ValueError("init_files are only used with weight_storage='file'")
        self.config = config
        self.weight_storage = weight_storage
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
        words = pack_tables(self.config)[table]
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

        out_valid = Signal()
        advance = Signal()
        fire = Signal()
        m.d.comb += [
            advance.eq(~out_valid | self.m_axis.tready),
            self.s_axis.tready.eq(advance),
            fire.eq(self.s_axis.tvalid & advance),
        ]

        # Stage 0: position of the incoming beat within its sample.
        group = Signal(range(cfg.groups))
        step_limit = (order - 1) * cfg.dilation  # the mask needs to know steps up to here
        step = Signal(range(step_limit + 1))
        with m.If(fire):
            with m.If(self.s_axis.tlast):
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
            m.d.comb += [line.en.eq(fire), line.i.eq(self.s_axis.tdata if j < 2 else taps[-1])]
            taps.append(line.o)
        tap_live = Signal(order, name="tap_live")  # tap j is inside the current sample
        s1_valid, s1_last = Signal(), Signal()
        with m.If(fire):
            m.d.sync += [tap_live[j].eq(step >= j * cfg.dilation) for j in range(order)]
            m.d.sync += s1_last.eq(self.s_axis.tlast)
        with m.If(advance):
            m.d.sync += s1_valid.eq(fire)
        signs, shifts, bias = (self._table(m, table, fire, group) for table in TABLES)

        # Stage 2: shifted, signed terms (the only "multiplication" is a shift and a negation).
        sign_width, _ = table_width(cfg, "signs")
        shift_width, _ = table_width(cfg, "shifts")
        lane_sums = []
        for lane in range(lanes):
            term_regs = []
            for i in range(order):
                j = order - 1 - i
                element = lane * order + i
                sign = signs.word_select(element, sign_width).as_signed()
                shift = shifts.word_select(element, shift_width)
                x = taps[j].word_select(lane, width).as_signed()
                shifted = Signal(signed(cfg.term_width), name=f"shifted_l{lane}_i{i}")
                m.d.comb += shifted.eq(x << shift)
                term = Signal(signed(cfg.term_width), name=f"term_l{lane}_i{i}")
                with m.If(advance):
                    m.d.sync += term.eq(Mux(tap_live[j] & (sign != 0),
                                            Mux(sign < 0, -shifted, shifted), 0))
                term_regs.append(term)
            bias_reg = Signal(signed(cfg.bias_width), name=f"bias_l{lane}")
            with m.If(advance):
                m.d.sync += bias_reg.eq(bias.word_select(lane, cfg.bias_width).as_signed())
            tree = PipelinedAdderTree([cfg.term_width] * order + [cfg.bias_width],
                                      cfg.membrane_width)
            m.submodules[f"tree{lane}"] = tree
            m.d.comb += tree.en.eq(advance)
            for n, operand in enumerate(term_regs + [bias_reg]):
                m.d.comb += getattr(tree.operands, f"x{n}").eq(operand)
            lane_sums.append(tree.sum)

        # valid/last travel beside the data through the term stage and the tree.
        valid, last = s1_valid, s1_last
        for n in range(1 + tree_levels(order + 1)):
            next_valid, next_last = Signal(name=f"valid_d{n}"), Signal(name=f"last_d{n}")
            with m.If(advance):
                m.d.sync += [next_valid.eq(valid), next_last.eq(last)]
            valid, last = next_valid, next_last
        m.d.comb += [
            out_valid.eq(valid),
            self.m_axis.tvalid.eq(valid),
            self.m_axis.tlast.eq(last),
            self.m_axis.tdata.eq(Cat(~total[-1] for total in lane_sums)),
        ]
        if cfg.membrane_out:
            m.d.comb += self.m_axis.tuser.eq(Cat(lane_sums))
        return m
