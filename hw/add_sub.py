"""``a ± b`` with the sign a run-time bit: the node of a signed adder tree (``hw/prf.py``)."""

from amaranth import Instance, Signal

from .emit import emitting_verilog

__all__ = ["add_sub", "ADD_SUB_MODULE"]

#: The hand-written module (``hw/verilog/spikeforge_add_sub.v``) that Verilog output
#: instantiates. Its portable form is one adder with ``b`` inverted and a carry in; for ECP5
#: (``SPIKEFORGE_ECP5_CARRY``, defined by ``spikeforge synth``) it is a chain of CCU2C carry
#: cells whose own LUTs invert ``b``, where Yosys would spend a LUT per bit on the inversion.
ADD_SUB_MODULE = "spikeforge_add_sub"


def add_sub(m, a, b, sub, name: str):
    """``(sub ? a − b : a + b) mod 2^len(a)``; ``a`` and ``b`` of one width, ``sub`` one bit.

    Combinational. In Verilog an instance of :data:`ADD_SUB_MODULE`; in the Amaranth
    simulator (which cannot simulate an instance) the same sum written inline. One carry
    chain per instance: synthesis cannot merge two chained instances into one chain as it
    merges plain adders, so use it where a pipeline stage holds one adder level."""
    width = len(a)
    if len(b) != width or len(sub) != 1:
        raise ValueError(f"add_sub needs a and b of one width and a 1-bit sub, got widths "
                         f"{len(a)}, {len(b)}, {len(sub)}")
    if not emitting_verilog():
        return (a + (b ^ sub.replicate(width)) + sub)[:width]
    y = Signal(width, name=f"{name}_y")
    m.submodules[name] = Instance(ADD_SUB_MODULE, p_WIDTH=width, i_a=a, i_b=b, i_sub=sub,
                                  o_y=y)
    return y
