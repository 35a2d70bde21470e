"""Flow control for a pipeline that never stalls: credits at its input, a buffer at its
output."""

import operator

from amaranth import Cat, Module, Mux, Signal
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

    ``copies``: the "a credit is left" register is kept in that many copies, each updated
    from its own value, so synthesis cannot merge them, and ``take`` comes in as many
    copies: a pipeline registers each copy of ``take`` as the enable of one part of itself,
    so that no single enable net spans the whole pipeline (Fmax).

    Latency: a written beat can be read in the next cycle. Throughput: one write and one read
    per cycle.

    Members:
        in_valid: the input offers a beat.
        in_ready: a credit is left (registered); drive the input's ``tready`` with it.
        take: ``copies`` bits, each ``in_valid & in_ready``: a beat is accepted this cycle.
        w_en: the pipeline writes ``w_data`` (a beat that took a credit).
        w_data: ``width`` bits.
        r_rdy: the buffer holds a beat (registered); ``r_data`` is the oldest.
        r_data: ``width`` bits.
        r_en: the reader takes ``r_data`` (when ``r_rdy``) and its credit returns.
    """

    def __init__(self, width: int, depth: int, *, copies: int = 1):
        self.width = operator.index(width)
        self.depth = operator.index(depth)
        self.copies = operator.index(copies)
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        if self.copies < 1:
            raise ValueError(f"copies must be >= 1, got {self.copies}")
        super().__init__({
            "in_valid": In(1), "in_ready": Out(1), "take": Out(self.copies),
            "w_en": In(1), "w_data": In(self.width),
            "r_rdy": Out(1), "r_data": Out(self.width), "r_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        read = Signal()
        m.d.comb += read.eq(self.r_en & self.r_rdy)

        # credits[i]: more than i credits are left; credits[0] is kept in ``copies`` copies.
        credits = Signal(self.depth, init=(1 << self.depth) - 1)
        firsts = [credits[0]] + [Signal(init=1, name=f"credit0_copy{c}")
                                 for c in range(1, self.copies)]
        m.d.comb += [self.in_ready.eq(credits[0]),
                     self.take.eq(Cat(self.in_valid & first for first in firsts))]
        for i in range(self.depth):
            fewer = credits[i + 1] if i + 1 < self.depth else 0
            more = credits[i - 1] if i else 1
            for c, bit in enumerate(firsts if i == 0 else [credits[i]]):
                take = self.take[c]  # each copy of credits[0] with its own copy of take
                m.d.sync += bit.eq(Mux(take & ~read, fewer, Mux(read & ~take, more, bit)))

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
