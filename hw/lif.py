"""Streaming LIF-family core: IF, LIF, current-based LIF (CubaLIF) and the leaky integrator
(LI), with channel folding, state in memory and one beat per clock."""

import operator

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..golden.lif_config import LIFConfig
from ..golden.prf_int import csd_digits
from .credit import CreditBuffer, send_results
from .lif_tables import element_codes, pack_tables, position_width, table_layout, table_names
from .stream import AXIStreamSignature
from .tables import WEIGHT_STORAGES, TableROM, check_storage

__all__ = ["LIFCore", "WEIGHT_STORAGES", "lif_latency", "lif_buffer_depth", "loop_stages",
           "current_stages", "lif_specifics"]

#: Register boundaries of a state loop, most useful first. The membrane loop of a spiking
#: variant has six segments, R (read the state), A (reset), B1 (the decay's terms: shifts,
#: or the product), B2 (their sum, rounded), C (add the drive and compare), S (saturate,
#: write back): boundary ``n`` is the register after segment ``n``. The current loop and the
#: leaky integrator have five (R, B1, B2, C, S).
_SPIKING_BOUNDARIES = (4, 3, 0, 2, 1)
_PLAIN_BOUNDARIES = (3, 2, 0, 1)


def loop_stages(config: LIFConfig) -> int:
    """Clock cycles of the membrane loop: from reading a group's state to writing it back.
    At most ``G`` (a group's state is read again ``G`` beats later), so a core with few
    groups has fewer registers in the loop (``G = 1``: the whole update in one cycle); at
    most 6 (5 without spikes)."""
    return min(config.groups, 1 + len(_SPIKING_BOUNDARIES if config.spiking
                                      else _PLAIN_BOUNDARIES))


def current_stages(config: LIFConfig) -> int:
    """Clock cycles of the synaptic-current loop (``cuba_lif``; 0 otherwise)."""
    if config.variant != "cuba_lif":
        return 0
    return min(config.groups, 1 + len(_PLAIN_BOUNDARIES))


def _drive_stage(config: LIFConfig) -> int:
    """Stage (cycles after the input transfer) at which the membrane's drive is ready."""
    return 2 + current_stages(config)


def lif_latency(config: LIFConfig) -> int:
    """Cycles from an input transfer to its output beat: the input register, the table
    read, the current loop (``cuba_lif``), the drive register, the membrane loop, the
    result register, then the output buffer."""
    return _drive_stage(config) + 1 + loop_stages(config) + 1


def lif_buffer_depth(config: LIFConfig) -> int:
    """Output buffer places: every beat in flight, so the stream runs without bubbles."""
    return lif_latency(config) + 1


def lif_specifics(config: LIFConfig, options: dict) -> dict:
    """The LIF part of a generated core's description (``hw/generate.py``)."""
    return {
        "variant": config.variant, "decay_mode": config.decay_mode, "reset": config.reset,
        "spike": config.spike,
        "latency_cycles": lif_latency(config),
        "elements_per_beat": config.lanes,
        "throughput": "one beat (one time step of `lanes` channels) per clock",
        "multipliers": (config.lanes * len(config.decay_tables)
                        if config.decay_mode == "multiply" else 0),
        "loop_stages": loop_stages(config),
        "widths": {"input": config.input_width, "state": config.state_width,
                   "decay_frac_bits": config.decay_frac_bits},
    }


def _boundaries(segments: int, stages: int, priority) -> set[int]:
    return set(priority[:stages - 1]) if segments > 1 else set()


class LIFCore(wiring.Component):
    """LIF-family neurons for ``C`` channels, ``L`` channels per beat, one beat per clock.

    Each beat carries one time step of ``L`` channels; a time step of all ``C`` channels takes
    ``G = C/L`` consecutive beats (channel group ``g`` = channels ``g·L … g·L+L−1``). For every
    lane the core computes exactly :func:`~spikeforge.golden.lif_int.lif_step` (see
    ``docs/lif_fixed_point.md``): the membrane ``u``, its spike and (``cuba_lif``) the
    synaptic current live in one memory word per group and lane (LUT RAM, read
    asynchronously and written back :func:`loop_stages` cycles later; registers when
    ``G = 1``). The first time step of a sample reads zeros instead of the memory, so every
    sample starts from rest without clearing anything.

    The loop is short: whatever does not depend on the state (the aligned input, ``x − θ``
    for the subtractive reset, and the comparison references ``θ − x``) is computed before
    it, so the loop holds the reset (a multiplexer, or a subtraction for
    ``subtract_decayed``), the decay (one subtraction for ``shift``, ``decay_digits − 1``
    additions for ``csd``, a multiplier for ``multiply``), one addition with the comparison
    beside it (the sign of ``d − (θ − x)``: the saturated membrane compares like the sum, θ
    being below the largest state), and a saturation multiplexer. A decay table shared by
    all channels (or ``C = L``) with baked weights makes every shift wiring.

    Protocol: AXI4-Stream on both sides; ``s_axis.tlast`` goes with the final beat of a
    sample and is copied to the matching output beat (``tlast`` elsewhere also ends the
    sample). Flow control is credit-based (:class:`~spikeforge.hw.credit.CreditBuffer` with
    :func:`lif_buffer_depth` places): nothing after the input register stalls, and
    backpressure neither drops nor duplicates beats.

    Latency: :func:`lif_latency` cycles from an input transfer to its output beat (C = 64,
    L = 4 LIF: 10) when the output is not stalled. Throughput: one beat per clock for every
    ``C/L``, no bubbles.

    Members:
        s_axis: input stream; ``tdata`` lane ``l`` is bits ``[l·W, (l+1)·W)``, signed,
            ``W = config.input_width``.
        m_axis: output stream; ``tdata`` bit ``l`` is the spike of lane ``l`` (always 0 for
            ``li``); with ``config.membrane_out`` the membranes (signed, ``state_width`` bits
            each) are on ``tuser``, lane ``l`` at ``[l·M, (l+1)·M)``.
    """

    def __init__(self, config: LIFConfig, *, weight_storage: str = "baked",
                 init_files: dict[str, str] | None = None):
        if not isinstance(config, LIFConfig):
            raise TypeError(f"config must be a LIFConfig, got {type(config).__name__}")
        self.init_files = check_storage(weight_storage, init_files, table_names(config))
        self.config = config
        self.weight_storage = weight_storage
        self.latency = lif_latency(config)
        user_width = config.lanes * config.state_width if config.membrane_out else 0
        super().__init__({
            "s_axis": In(AXIStreamSignature(config.lanes * config.input_width)),
            "m_axis": Out(AXIStreamSignature(config.lanes, user_width=user_width)),
        })

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _delay(m, value, cycles: int, name: str):
        """``value`` ``cycles`` clocks later through datapath registers (no reset, no
        enable); constants pass through."""
        if isinstance(value, Const):
            return value
        for n in range(cycles):
            register = Signal.like(value, name=f"{name}_d{n}", reset_less=True)
            m.d.sync += register.eq(value)
            value = register
        return value

    def _lane_tables(self, m, group):
        """Per lane, ``{table: element}`` for the beat at stage 2: a constant when the table is
        baked and the same for every group of the lane (shared, or ``C = L``), else the lane's
        part of a ROM word read with the stage-1 ``group``."""
        cfg = self.config
        lanes = [{} for _ in range(cfg.lanes)]
        words = pack_tables(cfg)
        for table in table_names(cfg):
            width, _ = table_layout(cfg, table)
            codes = element_codes(cfg, table)
            if self.weight_storage == "file":
                m.submodules[f"{table}_rom"] = rom = TableROM(
                    words[table], width * cfg.lanes, storage="file",
                    init_file=self.init_files[table])
                m.d.comb += [rom.en.eq(1), rom.addr.eq(group if cfg.groups > 1 else 0)]
                for lane in range(cfg.lanes):
                    lanes[lane][table] = rom.data.word_select(lane, width)
                continue
            for lane in range(cfg.lanes):
                parts = codes[lane::cfg.lanes]
                if len(set(parts)) == 1:
                    lanes[lane][table] = Const(parts[0], width)
                    continue
                m.submodules[f"{table}_rom_l{lane}"] = rom = TableROM(parts, width)
                m.d.comb += [rom.en.eq(1), rom.addr.eq(group)]
                lanes[lane][table] = rom.data
        return lanes

    def _constant_coefficient(self, table: str, code):
        """The integer coefficient of a constant decay element, or None."""
        if not isinstance(code, Const):
            return None
        cfg = self.config
        codes = element_codes(cfg, table)
        values = [int(v) for v in cfg.per_channel(table)]
        return values[codes.index(code.value)]

    def _decay(self, table: str, code, v, cut):
        """``(c·v + 2^(F−1)) >> F`` for the decay element ``code`` (constant or from a ROM),
        as ``len(v) + 1`` bits (``|c·v| <= 2^F·|v|``, so the rounded product fits). ``cut``
        registers (or passes) a list of values between the two halves: the terms (shifted
        copies, or the product), then their sum."""
        cfg = self.config
        frac = cfg.decay_frac_bits
        half = 1 << (frac - 1)
        width = len(v) + 1

        def narrow(value):
            return _shr(value, frac)[:width].as_signed()

        coefficient = self._constant_coefficient(table, code)
        if coefficient is not None:
            if coefficient == 1 << frac:
                (v,) = cut([v])
                return v
            if cfg.decay_mode == "multiply":
                (product,) = cut([v * Const(coefficient, unsigned(frac + 1))])
                return narrow(product + half)
            (v,) = cut([v])  # constant shifts are wiring: nothing to register but v
            rounded = Cat(Const(half, frac), v).as_signed()  # (v << F) + 2^(F−1), no adder
            digits = csd_digits(coefficient, frac)
            positive = [v << (frac - e) for sign, e in digits if sign > 0 and e]
            negative = [v << (frac - e) for sign, e in digits if sign < 0]
            if (1, 0) in digits:
                positive.insert(0, rounded)
            else:
                positive.insert(0, Const(half, frac + 1))
            total = _tree(positive)
            if negative:
                total = total - _tree(negative)
            return narrow(total)
        if cfg.decay_mode == "multiply":
            (product,) = cut([v * code])
            return narrow(product + half)
        pw = position_width(cfg)
        if cfg.decay_mode == "shift":
            enable, position = code[pw], code[:pw]
            v, subtracted = cut([v, Mux(enable, v << position, 0)])
            return narrow(Cat(Const(half, frac), v).as_signed() - subtracted)
        terms = []
        for n in range(cfg.decay_digits):
            digit = code.word_select(n, 2 + pw)
            shifted = (v << digit[:pw]).as_signed()
            terms.append(Mux(digit[pw], Mux(digit[pw + 1], -shifted, shifted), 0))
        return narrow(_tree([Const(half, frac + 1)] + cut(terms)))

    def _saturate(self, value):
        """``value`` clamped to the signed ``state_width`` range, from its top bits alone."""
        width = self.config.state_width
        if len(value) <= width:
            return value.as_signed() if len(value) == width else value
        top = value[width - 1:]
        inside = (top == 0) | (top == (1 << len(top)) - 1)
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        return Mux(inside, value[:width].as_signed(),
                   Mux(value[-1], Const(lo, signed(width)), Const(hi, signed(width))))

    def _state(self, m, name: str, width: int, address_read, address_write, write_enable,
               write_data, first):
        """A lane's state word for every group: read at ``address_read`` (zeros while
        ``first``), written at ``address_write`` when ``write_enable``."""
        cfg = self.config
        if cfg.groups == 1:
            stored = Signal(width, name=name, reset_less=True)
            with m.If(write_enable):
                m.d.sync += stored.eq(write_data)
        else:
            m.submodules[name] = mem = memory.Memory(shape=width, depth=cfg.groups, init=[])
            read, write = mem.read_port(domain="comb"), mem.write_port()
            m.d.comb += [read.addr.eq(address_read), write.addr.eq(address_write),
                         write.en.eq(write_enable), write.data.eq(write_data)]
            stored = read.data
        return stored & ~first.replicate(width)

    # -- the core ----------------------------------------------------------------------------

    def elaborate(self, platform):
        cfg = self.config
        lanes, width = cfg.lanes, cfg.input_width
        m = Module()

        out_width = lanes + 1 + (lanes * cfg.state_width if cfg.membrane_out else 0)
        m.submodules.out_buffer = out_buffer = CreditBuffer(out_width, lif_buffer_depth(cfg))
        m.d.comb += [out_buffer.in_valid.eq(self.s_axis.tvalid),
                     self.s_axis.tready.eq(out_buffer.in_ready)]

        # Stage 1: the accepted beat, its channel group and whether it is in the first time
        # step of its sample (counted on the registered take, so the handshake does not
        # reach the counters).
        fire = Signal()
        in_data = Signal(lanes * width, reset_less=True)
        in_last = Signal(reset_less=True)
        m.d.sync += [fire.eq(out_buffer.take), in_data.eq(self.s_axis.tdata),
                     in_last.eq(self.s_axis.tlast)]
        group = Signal(range(cfg.groups))
        first = Signal(init=1)
        at_last = Const(1, 1) if cfg.groups == 1 else Signal()
        with m.If(fire):
            with m.If(in_last):
                m.d.sync += [group.eq(0), first.eq(1)]
            with m.Elif(at_last):
                m.d.sync += [group.eq(0), first.eq(0)]
            with m.Else():
                m.d.sync += group.eq(group + 1)
            if cfg.groups > 1:
                m.d.sync += at_last.eq(~in_last & (group == cfg.groups - 2))

        # Control beside the data: valid, last, group and first per stage from stage 1 on.
        control = {1: (fire, in_last, group, first)}

        def at(stage):
            while stage not in control:
                top = max(control)
                valid, last, grp, fst = control[top]
                n = top + 1
                nv, nl = Signal(name=f"valid_s{n}"), Signal(name=f"last_s{n}", reset_less=True)
                ng = Signal.like(grp, name=f"group_s{n}", reset_less=True)
                nf = Signal(name=f"first_s{n}", reset_less=True)
                m.d.sync += [nv.eq(valid), nl.eq(last), ng.eq(grp), nf.eq(fst)]
                control[n] = (nv, nl, ng, nf)
            return control[stage]

        tables = self._lane_tables(m, group)
        x_all = self._delay(m, in_data, 1, "x_s2")  # stage 2, beside the table words
        drive_stage = _drive_stage(cfg)
        loop_start = drive_stage + 1
        stages = loop_stages(cfg)
        out_stage = loop_start + stages

        spikes, membranes = [], []
        for lane in range(lanes):
            words = tables[lane]
            x = x_all.word_select(lane, width).as_signed()
            drive = x << cfg.align_shift if cfg.align_shift else x

            if cfg.variant == "cuba_lif":
                drive = self._current_loop(m, lane, drive, words["alpha"], at)
            drive = drive.as_signed()

            # The drive stage: everything outside the membrane loop.
            theta = None
            if cfg.spiking:
                theta = words["threshold"]  # θ >= 0: one more bit makes it signed
                theta = (Const(theta.value, signed(cfg.state_width + 1))
                         if isinstance(theta, Const) else Cat(theta, Const(0, 1)).as_signed())
                theta = self._delay(m, theta, drive_stage - 2, f"theta_l{lane}")
            # One subtraction each (2θ is a shift): the spike is d >= ref (ge) or d > ref.
            pre = {"drive0": drive}
            if cfg.spiking:
                pre["ref0"] = theta - drive
                if cfg.reset == "subtract":
                    pre["drive1"] = drive - theta
                    pre["ref1"] = (theta << 1) - drive
            pre = {k: self._delay(m, v, 1, f"{k}_l{lane}") for k, v in pre.items()}
            beta = self._delay(m, words["beta"], loop_start - 2, f"beta_l{lane}")
            if cfg.spiking:
                theta = self._delay(m, theta, 1, f"theta_loop_l{lane}")
            spike, membrane = self._membrane_loop(m, lane, pre, beta, theta, at, loop_start)
            spikes.append(spike)
            membranes.append(membrane)

        valid, last, _, _ = at(out_stage)
        send_results(m, out_buffer, self.m_axis, valid, Cat(spikes), last,
                     Cat(membranes) if cfg.membrane_out else None)
        return m

    def _current_loop(self, m, lane, drive, alpha, at):
        """``i_t = sat(D_α(i_{t−1}) + x')`` from stage 2; returns ``i_t`` registered (stage
        ``2 + current_stages``)."""
        cfg = self.config
        stages = current_stages(cfg)
        cut = _boundaries(5, stages, _PLAIN_BOUNDARIES)
        start = 2
        write_stage = start + stages - 1
        _, _, read_group, read_first = at(start)
        write_valid, _, write_group, _ = at(write_stage)
        feedback = Signal(signed(cfg.state_width), name=f"current_next_l{lane}")
        stored = self._state(m, f"current_l{lane}", cfg.state_width, read_group, write_group,
                             write_valid, feedback, read_first).as_signed()
        stage = start
        value = stored
        if 0 in cut:
            value, stage = self._delay(m, value, 1, f"current_r_l{lane}"), stage + 1

        def between(values):  # the boundary after B1
            nonlocal stage
            if 1 in cut:
                values = [self._delay(m, v, 1, f"current_t{n}_l{lane}")
                          for n, v in enumerate(values)]
                stage += 1
            return values

        value = self._decay("alpha", self._delay(m, alpha, stage - 2, f"alpha_l{lane}"), value,
                            between)
        if 2 in cut:
            value, stage = self._delay(m, value, 1, f"current_b_l{lane}"), stage + 1
        value = value + self._delay(m, drive, stage - 2, f"x_l{lane}")
        if 3 in cut:
            value, stage = self._delay(m, value, 1, f"current_c_l{lane}"), stage + 1
        m.d.comb += feedback.eq(self._saturate(value))
        return self._delay(m, feedback, 1, f"current_l{lane}")

    def _membrane_loop(self, m, lane, pre, beta, theta, at, start):
        """The membrane loop from stage ``start`` (see the class docstring); returns the
        registered ``(spike, membrane)`` at stage ``start + loop_stages``."""
        cfg = self.config
        stages = loop_stages(cfg)
        spiking = cfg.spiking
        segments = 6 if spiking else 5
        cut = _boundaries(segments, stages, _SPIKING_BOUNDARIES if spiking
                          else _PLAIN_BOUNDARIES)
        write_stage = start + stages - 1
        _, _, read_group, read_first = at(start)
        write_valid, _, write_group, _ = at(write_stage)
        word = cfg.state_width + spiking
        feedback = Signal(word, name=f"state_next_l{lane}")
        stored = self._state(m, f"state_l{lane}", word, read_group, write_group, write_valid,
                             feedback, read_first)
        u = stored[:cfg.state_width].as_signed()
        s = stored[cfg.state_width] if spiking else None
        stage = start
        boundary = 0

        def cut_here(values, label):
            nonlocal stage, boundary
            if boundary in cut:
                values = [self._delay(m, v, 1, f"{label}_l{lane}") if v is not None else None
                          for v in values]
                stage += 1
            boundary += 1
            return values

        u, s = cut_here([u, s], "state_r")  # after R
        drive = self._delay(m, pre["drive0"], stage - start, f"drive_a_l{lane}")
        ref = self._delay(m, pre["ref0"], stage - start, f"ref_a_l{lane}") if spiking else None
        if spiking:
            # A: the reset, and (subtract) the drive and reference after a spike, so that C
            # adds registers only.
            if cfg.reset == "zero":
                v = Mux(s, Const(0, signed(cfg.state_width)), u)
            elif cfg.reset == "subtract_decayed":
                v = u - Mux(s, self._delay(m, theta, stage - start, f"theta_a_l{lane}"), 0)
            else:
                v = u
                drive = Mux(s, self._delay(m, pre["drive1"], stage - start,
                                           f"drive1_a_l{lane}"), drive).as_signed()
                ref = Mux(s, self._delay(m, pre["ref1"], stage - start, f"ref1_a_l{lane}"),
                          ref).as_signed()
            v, s, drive, ref = cut_here([v, s, drive, ref], "held")
        else:
            v = u
        # B1 and B2: the decay (its terms, then their sum).
        carried = [s, drive, ref]

        def between(values):
            nonlocal carried
            values = cut_here(list(values) + carried, "terms")
            carried = values[len(values) - 3:]
            return values[:len(values) - 3]

        d = self._decay("beta", self._delay(m, beta, stage - start, f"beta_b_l{lane}"), v,
                        between)
        s, drive, ref = carried
        d, s, drive, ref = cut_here([d, s, drive, ref], "decayed")
        # C: the drive and the spike (two carry chains side by side).
        total = d + drive
        if spiking:
            # The sign of one subtraction (a carry chain): d >= ref ⇔ d − ref >= 0, and
            # d > ref ⇔ ref − d < 0.
            spike = ~(d - ref)[-1] if cfg.spike == "ge" else (ref - d)[-1]
        else:
            spike = Const(0, 1)
        total, spike = cut_here([total, spike], "sum")
        # S: saturation, and the write back.
        membrane = self._saturate(total)
        m.d.comb += feedback.eq(Cat(membrane, spike) if spiking else membrane)
        registered = self._delay(m, feedback, 1, f"result_l{lane}")
        if spiking:
            return registered[cfg.state_width], registered[:cfg.state_width]
        return Const(0, 1), registered


def _shr(value, shift: int):
    """``value >> shift`` (arithmetic), ``shift`` bits narrower: Amaranth's ``>>`` keeps the
    width, and the copies of the sign bit would widen every adder after it."""
    return value[shift:].as_signed()


def _tree(values):
    """Balanced sum of signed values (Amaranth widens every node exactly)."""
    values = list(values)
    while len(values) > 1:
        values = [values[n] + values[n + 1] if n + 1 < len(values) else values[n]
                  for n in range(0, len(values), 2)]
    return values[0]
