"""Pipelined adder tree: one register level per adder level, no multipliers."""

import operator

from amaranth import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PipelinedAdderTree", "tree_levels"]


def tree_levels(operands: int) -> int:
    """Register levels of a binary tree over ``operands`` inputs (0 for a single input)."""
    operands = operator.index(operands)
    levels = 0
    while operands > 1:
        operands = (operands + 1) // 2
        levels += 1
    return levels


class PipelinedAdderTree(wiring.Component):
    """Sum of signed operands, one binary level per clock, exact (``out_width`` must hold it).

    Each level adds pairs and registers the result when ``en`` is set; an odd operand passes
    through a register so all paths have the same delay. A node is as wide as its operands
    plus one bit, capped at ``out_width``, which the caller proves is enough. The registers
    have no reset (a datapath: the caller's valid bit says which sums count).

    Latency: :func:`tree_levels` cycles (enabled cycles). Throughput: one sum per cycle.

    Members:
        en: advance the pipeline.
        operands: ``len(widths)`` signed inputs of the given widths.
        sum: signed ``out_width``-bit result, registered (combinational for one operand).
    """

    def __init__(self, widths, out_width: int):
        self.widths = tuple(operator.index(w) for w in widths)
        self.out_width = operator.index(out_width)
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be a non-empty list of positive widths, got "
                             f"{self.widths}")
        if self.out_width < max(self.widths):
            raise ValueError(f"out_width {self.out_width} is narrower than an operand "
                             f"({max(self.widths)} bits)")
        self.latency = tree_levels(len(self.widths))
        super().__init__({
            "en": In(1),
            "operands": In(wiring.Signature(
                {f"x{n}": Out(signed(w)) for n, w in enumerate(self.widths)})),
            "sum": Out(signed(self.out_width)),
        })

    def elaborate(self, platform):
        m = Module()
        level = [getattr(self.operands, f"x{n}") for n in range(len(self.widths))]
        depth = 0
        while len(level) > 1:
            nodes = []
            for n in range(0, len(level), 2):
                pair = level[n:n + 2]
                width = min(self.out_width, max(len(v) for v in pair) + (len(pair) == 2))
                node = Signal(signed(width), name=f"l{depth}_n{n // 2}", reset_less=True)
                with m.If(self.en):
                    m.d.sync += node.eq(pair[0] + pair[1] if len(pair) == 2 else pair[0])
                nodes.append(node)
            level, depth = nodes, depth + 1
        m.d.comb += self.sum.eq(level[0])
        return m
