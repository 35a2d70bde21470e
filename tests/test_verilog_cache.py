"""Generated Verilog is cached by request and generator: elaborated once, never stale, and
only where a simulation build cache asks for it."""

import numpy as np
import pytest

from spikeforge.golden.cpsn_config import CPSNConfig
from spikeforge.hw import cores, verilog_cache
from spikeforge.hw.cores import core_verilog


@pytest.fixture
def generations(monkeypatch):
    """Counts the elaborations that really happen."""
    count = []
    real = cores.verilog_text
    monkeypatch.setattr(cores, "verilog_text", lambda *a: count.append(1) or real(*a))
    return count


def config(seed=0, **fields):
    return CPSNConfig.random(np.random.default_rng(seed), channels=4, lanes=2, order=2,
                             **fields)


def test_a_core_is_elaborated_once_and_read_back_identical(generations, tmp_path):
    first = core_verilog(config(), "core", "file", cache_dir=tmp_path)
    assert len(generations) == 1 and len(list(tmp_path.glob("*.v"))) == 1
    assert core_verilog(config(), "core", "file", cache_dir=tmp_path) == first
    assert len(generations) == 1
    assert core_verilog(config(), "core", "file") == first and len(generations) == 2  # no cache


def test_a_simulation_build_caches_in_its_build_root_and_generate_nowhere(tmp_path,
                                                                          monkeypatch):
    from spikeforge.hw.generate import generate_core
    from spikeforge.sim import runner

    monkeypatch.chdir(tmp_path)
    generate_core(config(), tmp_path / "out", weight_storage="file")
    assert not (tmp_path / "build").exists()  # generate writes what it was asked for only
    monkeypatch.setattr(runner, "build_verilog", lambda *a, **k: (tmp_path, 0.0))  # no compile
    runner.build_core(config(), tmp_path / "cosim", weight_storage="file")
    assert len(list((tmp_path / "cosim" / "verilog").glob("*.v"))) == 1


@pytest.mark.parametrize("change", ["tables", "name", "storage", "options"])
def test_any_change_of_the_request_generates_again(change, generations, tmp_path):
    cached = {"cache_dir": tmp_path}
    core_verilog(config(), "core", "file", **cached)
    other = {"tables": lambda: core_verilog(config(seed=1), "core", "file", **cached),
             "name": lambda: core_verilog(config(), "other", "file", **cached),
             "storage": lambda: core_verilog(config(), "core", "baked", **cached),
             "options": lambda: core_verilog(config(), "core", "file", arith="multiply",
                                             **cached)}
    text = other[change]()
    assert len(generations) == 2
    assert ("module other" in text) == (change == "name")


def test_a_changed_generator_never_reads_an_old_text(generations, monkeypatch, tmp_path):
    core_verilog(config(), "core", "baked", cache_dir=tmp_path)
    monkeypatch.setattr(verilog_cache, "generator_fingerprint", lambda: "another generator")
    core_verilog(config(), "core", "baked", cache_dir=tmp_path)
    assert len(generations) == 2


def test_the_fingerprint_covers_the_generator_and_golden_sources():
    from importlib import resources
    from pathlib import Path

    sources = {p.name for package in ("spikeforge.hw", "spikeforge.golden")
               for p in verilog_cache._sources(Path(str(resources.files(package))))}
    assert {"prf.py", "emit.py", "cpsn_config.py", "spikeforge_add_sub.v"} <= sources
    assert len(verilog_cache.generator_fingerprint()) == 64


def test_an_unwritable_cache_still_generates(generations, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    assert "module core" in core_verilog(config(), "core", "baked", cache_dir=blocked / "v")
    assert "module core" in core_verilog(config(), "core", "baked", cache_dir=blocked / "v")
    assert len(generations) == 2
