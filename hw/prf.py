"""PRF scan unit: P time steps of L channels per clock, parallel within a tile, exact to the bit."""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..golden.fixed import signed_width
from ..golden.prf_int import round_shift
from .prf_config import PRFConfig
from .prf_tables import TABLES, coefficient_field, digits_of, pack_tables, table_layout
from .stream import AXIStreamSignature
from .tables import WEIGHT_STORAGES, TableROM, check_storage

__all__ = ["PRFCore", "prf_latency", "drive_width", "WEIGHT_STORAGES"]

def prf_latency(config: PRFConfig) -> int:
    """Cycles from an input transfer to its output beat: tables, Δ·x, tile inputs, state
    update (one stage with ``G = 1``, two with ``G >= 2`` channel groups)."""
    return 4 if config.groups == 1 else 5


def drive_width(config: PRFConfig) -> int:
    """Width of the rounded drive ``Δ·x`` on the state grid, from the actual Δ table."""
    lo, hi = config.input_range
    bound = max(max(abs(round_shift(int(d) * lo, config.input_shift)),
                    abs(round_shift(int(d) * hi, config.input_shift))) for d in config.delta)
    return signed_width(-bound, bound)


def _rounded(value, shift: int):
    """:func:`round_shift` in hardware: add half an LSB, then an arithmetic right shift."""
    if shift <= 0:
        return value << -shift
    return (value + (1 << (shift - 1))) >> shift


class _Coefficients:
    """A table word for the current beat: constants when ``C = L`` and baked, else a signal."""

    def __init__(self, config: PRFConfig, table: str, word):
        self.config, self.table, self.word = config, table, word
        self.width, self.per_word = table_layout(config, table)

    def element(self, index: int):
        if isinstance(self.word, int):
            code = (self.word >> (index * self.width)) & ((1 << self.width) - 1)
            return code - (1 << self.width) if code >> (self.width - 1) else code
        return self.word.word_select(index, self.width).as_signed()

    def times(self, index: int, x):
        """Exact ``coefficient · x`` (before rounding): a multiply in ``dsp``, shifts otherwise."""
        if self.config.coef_mode == "dsp" or self.table == "v_th":
            return self.element(index) * x
        if isinstance(self.word, int):
            value = self._constant_value(index)
            terms = [(x << position) if sign > 0 else -(x << position)
                     for sign, position in digits_of(self.config, self.table, value)]
            return sum(terms[1:], terms[0]) if terms else Const(0, 1)
        digit_width = 2 + self._position_width
        field = self.word.word_select(index, self.width)
        total = None
        for n in range(self.config.csd_terms):
            digit = field.word_select(n, digit_width)
            sign = digit[self._position_width:].as_signed()
            shifted = x << digit[:self._position_width]
            term = Mux(sign == 0, 0, Mux(sign < 0, -shifted, shifted))
            total = term if total is None else total + term
        return total

    @property
    def _position_width(self) -> int:
        width, _ = coefficient_field(self.config, self.table)
        return max(1, (width - 1).bit_length())

    def _constant_value(self, index: int) -> int:
        """The signed value behind a baked ``shift_add`` element (undo the digit packing)."""
        digit_width = 2 + self._position_width
        code = (self.word >> (index * self.width)) & ((1 << self.width) - 1)
        value = 0
        for n in range(self.config.csd_terms):
            digit = (code >> (n * digit_width)) & ((1 << digit_width) - 1)
            sign = digit >> self._position_width
            position = digit & ((1 << self._position_width) - 1)
            value += {0: 0, 1: 1, 3: -1}[sign] << position
        return value


class PRFCore(wiring.Component):
    """PRF neurons for ``C`` channels; each beat is an ``L × P`` tile (P steps of L channels).

    Per lane it computes exactly what :func:`~spikeforge.golden.prf_int.prf_integer` defines:
    the drive ``R(Δ·x)``, the tile's input parts ``Σ R(Λ^lag ⊗ drive)`` (every product rounded
    on its own, so the parallel evaluation is bit-exact), and the outputs
    ``R(Λ^(j+1) ⊗ s) + input_j`` from the tile's start state ``s``. Only the state update is
    sequential, once per tile. With ``C = L`` the state is a register and the update one
    stage. With ``G = C/L ≥ 2`` channel groups each group's state is a memory word and the
    update two stages (the exact products ``Λ^(j+1) ⊗ s``, then round and add): the next beat
    of a group comes ``G`` beats later, when the word is written (``G ≥ 3``) or being written
    (``G = 2``: the read is transparent to the write). The first tile of every sample starts
    from zero state; ``tlast`` marks the final beat of a sample.

    ``coef_mode='dsp'`` multiplies; ``'shift_add'`` forms every product from the coefficient's
    canonical signed digits (no multiplier anywhere).

    Latency: :func:`prf_latency` (4 cycles with ``G = 1``, 5 with ``G ≥ 2``). Throughput: one
    beat (``L·P`` neuron-steps) per clock for every ``G``, full backpressure
    (``s_axis.tready = !m_axis.tvalid | m_axis.tready``).

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
        self.latency = prf_latency(config)
        elements = config.lanes * config.time_parallelism
        user_width = elements * config.state_width if config.membrane_out else 0
        super().__init__({
            "s_axis": In(AXIStreamSignature(elements * config.input_width)),
            "m_axis": Out(AXIStreamSignature(elements, user_width=user_width)),
        })

    def _table_word(self, m, table, fire, group):
        """The table word for the incoming beat, one cycle later (aligned with stage 1)."""
        width, per_word = table_layout(self.config, table)
        words = pack_tables(self.config)[table]
        if self.weight_storage == "baked" and self.config.groups == 1:
            return words[0]
        m.submodules[f"{table}_rom"] = rom = TableROM(
            words, width * per_word, storage=self.weight_storage,
            init_file=self.init_files.get(table))
        m.d.comb += [rom.addr.eq(group), rom.en.eq(fire)]
        return rom.data

    @staticmethod
    def _carry(m, advance, word, name, *, reset_less=False):
        """Move a table word one stage down the pipeline (constants need no register).
        ``reset_less``: a pure datapath register (no reset fan-out)."""
        if isinstance(word, int):
            return word
        register = Signal(len(word), name=name, reset_less=reset_less)
        with m.If(advance):
            m.d.sync += register.eq(word)
        return register

    def elaborate(self, platform):
        cfg = self.config
        lanes, steps, width = cfg.lanes, cfg.time_parallelism, cfg.input_width
        frac, state_width = cfg.coef_frac_bits, cfg.state_width
        m = Module()

        out_valid, advance, fire = Signal(), Signal(), Signal()
        m.d.comb += [
            advance.eq(~out_valid | self.m_axis.tready),
            self.s_axis.tready.eq(advance),
            fire.eq(self.s_axis.tvalid & advance),
        ]

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

        # Stage 1: the tile, its position and its table words.
        # Pure datapath registers (the tile, drives, input parts, membranes, table words) have
        # no reset: only the valid, first, last and group bits and the state say what counts.
        tile = Signal(len(self.s_axis.tdata), reset_less=True)
        first1, last1, group1, valid1 = Signal(), Signal(), Signal(range(cfg.groups)), Signal()
        with m.If(fire):
            m.d.sync += [tile.eq(self.s_axis.tdata), first1.eq(~in_sample),
                         last1.eq(self.s_axis.tlast), group1.eq(group)]
        with m.If(advance):
            m.d.sync += valid1.eq(fire)
        words1 = {t: self._table_word(m, t, fire, group) for t in TABLES}

        # Stage 2: drive = R(Δ·x) on the state grid.
        delta = _Coefficients(cfg, "delta", words1["delta"])
        drive_bits = drive_width(cfg)
        drive = [[Signal(signed(drive_bits), name=f"drive_l{l}_j{j}", reset_less=True)
                  for j in range(steps)] for l in range(lanes)]
        for l in range(lanes):
            for j in range(steps):
                x = tile.word_select(j * lanes + l, width).as_signed()
                with m.If(advance):
                    m.d.sync += drive[l][j].eq(_rounded(delta.times(l, x), cfg.input_shift))
        first2, last2, group2, valid2 = (self._carry(m, advance, s, f"{s.name}_s2")
                                         for s in (first1, last1, group1, valid1))
        powers2 = self._carry(m, advance, words1["powers"], "powers_s2", reset_less=True)
        v_th2 = self._carry(m, advance, words1["v_th"], "v_th_s2", reset_less=True)

        # Stage 3: the tile's input parts, Σ_{lag<=j} R(Λ^lag ⊗ drive[j−lag]).
        powers = _Coefficients(cfg, "powers", powers2)

        def power(lane, n, part):  # element index of Λ^n's real (0) or imaginary (1) part
            return (lane * steps + n - 1) * 2 + part

        input_u = [[Signal(signed(state_width), name=f"input_u_l{l}_j{j}", reset_less=True)
                    for j in range(steps)] for l in range(lanes)]
        input_r = [[Signal(signed(state_width), name=f"input_r_l{l}_j{j}", reset_less=True)
                    for j in range(steps)] for l in range(lanes)]
        for l in range(lanes):
            for j in range(steps):
                total_u, total_r = drive[l][j], Const(0, 1)
                for lag in range(1, j + 1):
                    source = drive[l][j - lag]
                    total_u = total_u + _rounded(powers.times(power(l, lag, 0), source), frac)
                    total_r = total_r + _rounded(powers.times(power(l, lag, 1), source), frac)
                with m.If(advance):
                    m.d.sync += [input_u[l][j].eq(total_u), input_r[l][j].eq(total_r)]
        first3, last3, group3, valid3 = (self._carry(m, advance, s, f"{s.name[:-3]}_s3")
                                         for s in (first2, last2, group2, valid2))
        v_th3 = self._carry(m, advance, v_th2, "v_th_s3", reset_less=True)

        # State of the tile's channels: read as the beat enters stage 3, written as it leaves
        # the state update. With G = 1 the next beat needs the state a cycle later, so the
        # update is one stage; with G >= 2 it takes two (pipelined, see prf_latency).
        pipelined = cfg.groups > 1
        state_bits = 2 * state_width * lanes
        new_state = Signal(state_bits)
        if not pipelined:
            stored = Signal(state_bits)
            with m.If(valid3 & advance):
                m.d.sync += stored.eq(new_state)
            start = Mux(first3, 0, stored)
            powers3 = self._carry(m, advance, powers2, "powers_s3", reset_less=True)
        else:
            m.submodules.state = state = memory.Memory(shape=state_bits, depth=cfg.groups,
                                                       init=[])
            write = state.write_port()
            # Beats of a group are G apart and a stage holds one beat, so a beat leaving stage 2
            # (its read) trails the previous beat of its group by >= G stages: with G >= 3
            # that beat has left stage 4 (its write); with G = 2 it may be leaving it now.
            read = state.read_port(transparent_for=(write,) if cfg.groups == 2 else ())
            m.d.comb += [read.addr.eq(group2), read.en.eq(advance)]
            # A sample's first tile multiplies the word by zero coefficients instead of
            # selecting zero state: the select sits a stage early, off the update loop.
            start = read.data
            powers3 = self._carry(m, advance, Mux(first2, 0, powers2), "powers_s3",
                                  reset_less=True)

        # u_j = R(Λ^(j+1) ⊗ s) + input_j; the last one is the next state. Stage 3 forms the
        # exact products of Λ^(j+1) = a + ib with s = u0 + i·r0: a·u0, b·r0, b·u0, a·r0.
        feedback = _Coefficients(cfg, "powers", powers3)
        products, inputs = [], []
        for l in range(lanes):
            u0 = start.word_select(2 * l, state_width).as_signed()
            r0 = start.word_select(2 * l + 1, state_width).as_signed()
            for j in range(steps):
                re, im = power(l, j + 1, 0), power(l, j + 1, 1)
                products.append([feedback.times(re, u0), feedback.times(im, r0),
                                 feedback.times(im, u0), feedback.times(re, r0)])
                inputs.append([input_u[l][j], input_r[l][j]])
        last_s, group_s, valid_s, v_th_s = last3, group3, valid3, v_th3
        if pipelined:
            # Stage 4: the products, exact in state_product_width bits (it holds (|a| + |b|)·B,
            # more than any one of them), and the input parts beside them.
            def stage4(value, name, shape):
                register = Signal(shape, name=name, reset_less=True)
                with m.If(advance):
                    m.d.sync += register.eq(value)
                return register

            product_shape = signed(cfg.state_product_width)
            products = [[stage4(p, f"product{k}_l{i // steps}_j{i % steps}", product_shape)
                         for k, p in enumerate(terms)] for i, terms in enumerate(products)]
            inputs = [[stage4(x, f"{x.name}_s4", signed(state_width)) for x in pair]
                      for pair in inputs]
            last_s, group_s, valid_s = (self._carry(m, advance, s, f"{s.name[:-3]}_s4")
                                        for s in (last3, group3, valid3))
            v_th_s = self._carry(m, advance, v_th3, "v_th_s4", reset_less=True)
            m.d.comb += [write.addr.eq(group_s), write.en.eq(valid_s & advance),
                         write.data.eq(new_state)]

        # Output stage: the membranes, and the state the last step leaves.
        membrane = [[Signal(signed(state_width), name=f"u_l{l}_j{j}", reset_less=True)
                     for j in range(steps)] for l in range(lanes)]
        ends = []
        for i, ((a_u, b_r, b_u, a_r), (in_u, in_r)) in enumerate(zip(products, inputs)):
            l, j = divmod(i, steps)
            u = Signal(signed(state_width), name=f"next_u_l{l}_j{j}")
            r = Signal(signed(state_width), name=f"next_r_l{l}_j{j}")
            m.d.comb += [u.eq(_rounded(a_u - b_r, frac) + in_u),
                         r.eq(_rounded(b_u + a_r, frac) + in_r)]
            with m.If(advance):
                m.d.sync += membrane[l][j].eq(u)
            if j == steps - 1:
                ends += [u, r]
        m.d.comb += new_state.eq(Cat(ends))
        last_out, valid_out = (self._carry(m, advance, s, f"{s.name[:-3]}_out")
                               for s in (last_s, valid_s))
        v_th_out = _Coefficients(cfg, "v_th", self._carry(m, advance, v_th_s, "v_th_out",
                                                        reset_less=True))

        m.d.comb += [
            out_valid.eq(valid_out),
            self.m_axis.tvalid.eq(valid_out),
            self.m_axis.tlast.eq(last_out),
            self.m_axis.tdata.eq(Cat(membrane[l][j] >= v_th_out.element(l)
                                     for j in range(steps) for l in range(lanes))),
        ]
        if cfg.membrane_out:
            m.d.comb += self.m_axis.tuser.eq(Cat(membrane[l][j] for j in range(steps)
                                                 for l in range(lanes)))
        return m
