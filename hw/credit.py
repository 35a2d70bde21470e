"""Flow control for a pipeline that never stalls: credits at its input, a buffer at its
output."""

import operator

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CreditBuffer"]


class CreditBuffer(wiring.Component):
    """Output buffer of a fixed-latency pipeline, with the credits that keep it from
    overflowing, so that no stream handshake reaches the pipeline's enables.

    The buffer has ``depth`` places, and ``depth`` credits say how many are not yet promised:
    a beat accepted at the input (``take``) takes one, a beat read at the output gives it
    back. The pipeline writes every result (``w_en``) without asking: with at most ``depth``
    beats accepted and not yet read, there is always room. To keep the input running
    without bubbles, ``depth`` must count every beat in flight: the pipeline's cycles from
    ``take`` to ``w_en``, plus the beat being read, plus the one whose credit returns as the
    next beat is offered.

    Timing: ``in_ready``, ``r_rdy`` and ``r_data`` are registers; the credits and the fill
    level are thermometer codes (one flip-flop per place, each updated from its neighbours)
    and the write needs no fill-level compare, so no carry chain or read multiplexer lies on
    the handshake paths. The places are flip-flops (``width × depth``), not RAM.

    Latency: a written beat can be read in the next cycle. Throughput: one write and one read
    per cycle.

    Members:
        take: a beat is accepted at the input this cycle; only with ``in_ready``.
        in_ready: a credit is left (registered); drive the input's ``tready`` with it.
        w_en: the pipeline writes ``w_data`` (a beat that took a credit).
        w_data: ``width`` bits.
        r_rdy: the buffer holds a beat (registered); ``r_data`` is the oldest.
        r_data: ``width`` bits.
        r_en: the reader takes ``r_data`` (when ``r_rdy``) and its credit returns.
    """

    def __init__(self, width: int, depth: int):
        self.width = operator.index(width)
        self.depth = operator.index(depth)
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        super().__init__({
            "take": In(1), "in_ready": Out(1),
            "w_en": In(1), "w_data": In(self.width),
            "r_rdy": Out(1), "r_data": Out(self.width), "r_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        read = Signal()
        m.d.comb += read.eq(self.r_en & self.r_rdy)

        # credits[i]: more than i credits are left.
        credits = Signal(self.depth, init=(1 << self.depth) - 1)
        taken_only, returned_only = self.take & ~read, read & ~self.take
        for i in range(self.depth):
            fewer = credits[i + 1] if i + 1 < self.depth else 0
            more = credits[i - 1] if i else 1
            m.d.sync += credits[i].eq(Mux(taken_only, fewer, Mux(returned_only, more,
                                                                  credits[i])))
        m.d.comb += self.in_ready.eq(credits[0])

        # The buffer is a shift register, so that its outputs come straight from flip-flops
        # (no read multiplexer before the sink): slot 0 is the oldest beat, a read moves
        # every beat down one slot, a write fills the first free slot (the one a read
        # frees, when both happen). held[i]: slot i holds a beat.
        slots = [Signal(self.width, name=f"slot{i}", reset_less=True)
                 for i in range(self.depth)]
        held = Signal(self.depth)
        for i in range(self.depth):
            below = held[i - 1] if i else 1
            if i + 1 < self.depth:
                above, incoming = held[i + 1], Mux(read & held[i + 1], slots[i + 1],
                                                   self.w_data)
            else:
                above, incoming = 0, self.w_data
            with m.If(read | (self.w_en & below & ~held[i])):
                m.d.sync += slots[i].eq(incoming)
            m.d.sync += held[i].eq(Mux(read & ~self.w_en, above,
                                       Mux(self.w_en & ~read, held[i] | below, held[i])))
        m.d.comb += [self.r_rdy.eq(held[0]), self.r_data.eq(slots[0])]
        return m
