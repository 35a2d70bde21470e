"""Delay lines counted in stream transfers, not clock cycles."""

import operator

from amaranth import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["TransferDelay"]


class TransferDelay(wiring.Component):
    """Registered output that shows the input from ``depth`` enabled cycles ago.

    On every cycle with ``en`` set, ``o`` becomes the ``i`` that was presented ``depth`` enabled
    cycles earlier (``depth = 0``: this cycle's ``i``; a plain register). Cycles without ``en``
    change nothing, so a stalled stream keeps its history. Nothing is reset (registers and
    memory alike): a user masks history it has not written. Depths of two or more are a
    circular buffer in one simple dual-port memory, which synthesis maps to block or
    distributed RAM; the output is the memory's read register (read-before-write).

    ``clearable`` lines (depth 0 or 1: registers only, which a synchronous reset empties in
    one cycle) have a ``clear`` input: a cycle with ``clear`` set, enabled or not, puts zero
    into every register (a transfer in that cycle is not taken), so the line forgets its
    history and reads as zeros, as if zeros had been its input, until new transfers arrive.
    ``clear`` does not depend on ``en``, so both can come straight from flip-flops.

    Latency: 1 cycle (``o`` is a register). Throughput: one transfer per cycle.

    Members:
        en: advance the line by one transfer.
        i: ``width``-bit input.
        o: ``width``-bit registered output.
        clear: (``clearable`` only) empty the line.
    """

    def __init__(self, width: int, depth: int, *, clearable: bool = False):
        self.width = operator.index(width)
        self.depth = operator.index(depth)
        self.clearable = bool(clearable)
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.depth < 0:
            raise ValueError(f"depth must be >= 0, got {self.depth}")
        if self.clearable and self.depth >= 2:
            raise ValueError(f"a line of depth {self.depth} is a memory, which cannot be "
                             f"cleared in one cycle; clearable lines have depth 0 or 1")
        members = {"en": In(1), "i": In(self.width), "o": Out(self.width)}
        if self.clearable:
            members["clear"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        if self.depth < 2:  # registers without reset: history is data, not state
            out = Signal(self.width, reset_less=True)
            m.d.comb += self.o.eq(out)
            registers = [out] if self.depth == 0 else [Signal(self.width, reset_less=True),
                                                        out]
            with m.If(self.en):
                m.d.sync += [register.eq(source) for register, source
                             in zip(registers, [self.i] + registers[:-1])]
            if self.clearable:
                with m.If(self.clear):
                    m.d.sync += [register.eq(0) for register in registers]
        else:
            m.submodules.buffer = buffer = memory.Memory(shape=self.width, depth=self.depth,
                                                         init=[])
            read, write = buffer.read_port(), buffer.write_port()
            pointer = Signal(range(self.depth))
            m.d.comb += [
                read.addr.eq(pointer), read.en.eq(self.en), self.o.eq(read.data),
                write.addr.eq(pointer), write.en.eq(self.en), write.data.eq(self.i),
            ]
            with m.If(self.en):
                m.d.sync += pointer.eq(pointer + 1)
                with m.If(pointer == self.depth - 1):
                    m.d.sync += pointer.eq(0)
        return m
