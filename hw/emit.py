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
Identical cells with identical inputs are then merged (Yosys ``opt_merge``; built-in cells
only, so instances of our library modules stay): the elaborated PRF datapath repeats the same
multiplexer hundreds of times, and a P = 1, L = 4 shift-add core came out at 4.35 MB of
Verilog without it and 0.25 MB with it, which every simulator compiles and every synthesis
reads.
"""

import contextlib
import contextvars
import re
from importlib import resources

__all__ = ["verilog_text", "emitting_verilog", "LIBRARY_MODULES"]

#: Hand-written modules (``hw/verilog/<name>.v``) that a component may instantiate while
#: :func:`verilog_text` elaborates it; the text that uses one gets a copy of it, renamed
#: ``<top>_<suffix>``, so every generated file stands alone and two of them never define the
#: same module.
LIBRARY_MODULES = {"spikeforge_add_sub": "add_sub"}

_EMITTING = contextvars.ContextVar("spikeforge_emitting_verilog", default=False)


def emitting_verilog() -> bool:
    """Whether the component being elaborated becomes Verilog (:func:`verilog_text`), where it
    may instantiate :data:`LIBRARY_MODULES`; elsewhere (the Amaranth simulator, which cannot
    simulate an instance) it builds the same logic inline."""
    return _EMITTING.get()


@contextlib.contextmanager
def _emitting():
    token = _EMITTING.set(True)
    try:
        yield
    finally:
        _EMITTING.reset(token)

_SCRIPT = """read_rtlil <<rtlil
{rtlil}
rtlil
proc
memory_collect
attrmap -remove generator -remove top -remove src -remove amaranth.hierarchy -remove amaranth.decoding
attrmap -modattr -remove generator -remove top -remove src -remove amaranth.hierarchy -remove amaranth.decoding
opt_merge
opt_clean
write_verilog
"""


def verilog_text(component, name: str) -> str:
    """Reproducible Verilog (no source paths) of ``component`` as module ``name``."""
    from amaranth._toolchain.yosys import find_yosys
    from amaranth.back import rtlil  # here: importing this module must not load Amaranth

    with _emitting():
        text = rtlil.convert(component, name=name, emit_src=False)
    yosys = find_yosys(lambda version: version >= (0, 40))
    verilog = yosys.run(["-q", "-"], _SCRIPT.format(rtlil=text), ignore_warnings=True)
    for module, suffix in LIBRARY_MODULES.items():
        pattern = re.compile(rf"\b{module}\b")
        if pattern.search(verilog):
            source = (resources.files(__package__) / "verilog" / f"{module}.v").read_text()
            verilog = pattern.sub(f"{name}_{suffix}", verilog + "\n" + source)
    return verilog
