"""Verilog text of a component that every simulator starts the same way.

Amaranth's ``verilog.convert`` keeps combinational logic as ``always @*`` processes (Yosys
``proc -nomux``) and starts them at time 0 with an initialised trigger register. Under IEEE
1800 rules (Icarus ``-g2012``, SystemVerilog simulators) that initialiser makes no event, so
such a process stays X until one of its inputs changes, and registers without reset capture
the X. Here every process is turned into cells first (Yosys ``proc``), so combinational logic
is written as continuous assignments, which every simulator evaluates at time 0, and no
output depends on a simulator's time-0 scheduling. Yosys's own names (``$procmux$…``) are
shortened to ``_N_`` (no ``-norename``): it writes a ``$pmux`` as a function named after the
cell, which Icarus would read as an unknown system function; named signals keep their names.
"""

from amaranth.back import rtlil

__all__ = ["verilog_text"]

_SCRIPT = """read_rtlil <<rtlil
{rtlil}
rtlil
proc
memory_collect
attrmap -remove generator -remove top -remove src -remove amaranth.hierarchy -remove amaranth.decoding
attrmap -modattr -remove generator -remove top -remove src -remove amaranth.hierarchy -remove amaranth.decoding
opt_clean
write_verilog
"""


def verilog_text(component, name: str) -> str:
    """Reproducible Verilog (no source paths) of ``component`` as module ``name``."""
    from amaranth._toolchain.yosys import find_yosys

    text = rtlil.convert(component, name=name, emit_src=False)
    yosys = find_yosys(lambda version: version >= (0, 40))
    return yosys.run(["-q", "-"], _SCRIPT.format(rtlil=text), ignore_warnings=True)
