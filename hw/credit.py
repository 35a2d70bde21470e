"""Flow control for a pipeline that never stalls: credits at its input, a buffer at its
output."""

import operator

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CreditBuffer", "BUFFER_STORAGES", "send_results"]

#: Where :class:`CreditBuffer` keeps its beats.
BUFFER_STORAGES = ("registers", "ram")


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

    Timing: ``in_ready``, ``r_rdy`` and ``r_data`` are registers; the credits (and, with
    ``registers`` storage, the fill level) are thermometer codes (one flip-flop per place,
    each updated from its neighbours) and the write needs no fill-level compare, so no carry
    chain or read multiplexer lies on the handshake paths.

    ``storage``: ``"registers"`` keeps the places in flip-flops, a shift register whose
    output is its first place (``width × depth`` flip-flops, each with a multiplexer: no
    RAM and no read multiplexer, for small buffers and targets without LUT RAM);
    ``"ram"`` keeps every beat but the oldest in a memory with an asynchronous read (LUT
    RAM on ECP5: one ``TRELLIS_DPR16X4`` per 4 bits of 16 places) behind the ``r_data``
    register, with a write pointer, a read pointer and a "the memory holds a beat" flag;
    a beat written while the memory is empty and ``r_data`` is free goes straight to
    ``r_data``. Same behaviour cycle for cycle, about ``width + 20`` LUTs rather than
    ``width × depth`` (wide or deep buffers).

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

    def __init__(self, width: int, depth: int, *, copies: int = 1,
                 storage: str = "registers"):
        self.width = operator.index(width)
        self.depth = operator.index(depth)
        self.copies = operator.index(copies)
        if storage not in BUFFER_STORAGES:
            raise ValueError(f"storage must be one of {', '.join(BUFFER_STORAGES)}, "
                             f"got {storage!r}")
        self.storage = storage
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

        if self.storage == "ram":
            self._ram_places(m, read)
        else:
            self._register_places(m, read)
        return m

    def _register_places(self, m, read):
        """The places as a shift register, so that the outputs come straight from
        flip-flops (no read multiplexer before the sink): slot 0 is the oldest beat, a read
        moves every beat down one slot, a write fills the first free slot (the one a read
        frees, when both happen). ``held[i]``: slot ``i`` holds a beat."""
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

    def _ram_places(self, m, read):
        """The oldest beat in the ``r_data`` register, the others in a memory (a ring of
        ``places`` words, at least ``depth − 1``, a power of two so that the pointers wrap
        by themselves). ``r_data`` is refilled when it is free (empty or read this cycle):
        from the memory when it holds a beat, else from a write of this cycle."""
        places = 1 << max(self.depth - 2, 0).bit_length()
        m.submodules.places = ring = memory.Memory(shape=self.width, depth=places, init=[])
        write, fetch = ring.write_port(), ring.read_port(domain="comb")
        write_at, read_at = Signal(range(places)), Signal(range(places))
        stored = Signal()  # the memory holds a beat
        out_data = Signal(self.width)
        out_held = Signal()
        free = ~out_held | read
        pop = free & stored
        bypass = free & ~stored & self.w_en
        push = self.w_en & ~bypass
        m.d.comb += [write.addr.eq(write_at), write.data.eq(self.w_data), write.en.eq(push),
                     fetch.addr.eq(read_at)]
        with m.If(push):
            m.d.sync += write_at.eq(write_at + 1)
        with m.If(pop):
            m.d.sync += [read_at.eq(read_at + 1), out_data.eq(fetch.data)]
        with m.Elif(bypass):
            m.d.sync += out_data.eq(self.w_data)
        # After a pop without a push the memory is empty when the next read would reach
        # the write pointer.
        m.d.sync += [
            stored.eq(Mux(push, 1, Mux(pop, (read_at + 1)[:len(read_at)] != write_at,
                                       stored))),
            out_held.eq(Mux(free, stored | self.w_en, 1)),
        ]
        m.d.comb += [self.r_rdy.eq(out_held), self.r_data.eq(out_data)]


def send_results(m, buffer: CreditBuffer, stream, valid, spikes, last, membranes=None):
    """Write the pipeline's result beat into ``buffer`` when ``valid`` and send the buffer's
    oldest beat on the output ``stream``. The beat packs ``spikes`` (``tdata``), ``last``
    (``tlast``) and, when given, ``membranes`` (``tuser``); one packing serves the write and
    the read, so the two cannot disagree."""
    beat = [spikes, last]
    fields = [stream.tdata, stream.tlast]
    if membranes is not None:
        beat.append(membranes)
        fields.append(stream.tuser)
    m.d.comb += [
        buffer.w_en.eq(valid),
        buffer.w_data.eq(Cat(beat)),
        stream.tvalid.eq(buffer.r_rdy),
        Cat(fields).eq(buffer.r_data),
        buffer.r_en.eq(stream.tready),
    ]
