"""Generated Verilog is cached by request and generator: elaborated once, never stale."""

import numpy as np
import pytest

from spikeforge.golden.cpsn_config import CPSNConfig
from spikeforge.hw import cores, verilog_cache
from spikeforge.hw.cores import core_verilog


@pytest.fixture
def generations(monkeypatch, tmp_path):
    """The cache in ``tmp_path``; counts the elaborations that really happen."""
    monkeypatch.setenv("SPIKEFORGE_BUILD", str(tmp_path))
    count = []
    real = cores.verilog_text
    monkeypatch.setattr(cores, "verilog_text", lambda *a: count.append(1) or real(*a))
    return count


def config(seed=0, **fields):
    return CPSNConfig.random(np.random.default_rng(seed), channels=4, lanes=2, order=2,
                             **fields)


def test_a_core_is_elaborated_once_and_read_back_identical(generations, tmp_path):
    first = core_verilog(config(), "core", "file")
    assert len(generations) == 1 and list((tmp_path / "cosim" / "verilog").glob("*.v"))
    assert core_verilog(config(), "core", "file") == first and len(generations) == 1


@pytest.mark.parametrize("change", ["tables", "name", "storage", "options"])
def test_any_change_of_the_request_generates_again(change, generations):
    core_verilog(config(), "core", "file")
    other = {"tables": lambda: core_verilog(config(seed=1), "core", "file"),
             "name": lambda: core_verilog(config(), "other", "file"),
             "storage": lambda: core_verilog(config(), "core", "baked"),
             "options": lambda: core_verilog(config(), "core", "file", arith="multiply")}
    text = other[change]()
    assert len(generations) == 2
    assert ("module other" in text) == (change == "name")


def test_a_changed_generator_never_reads_an_old_text(generations, monkeypatch):
    core_verilog(config(), "core", "baked")
    monkeypatch.setattr(verilog_cache, "generator_fingerprint", lambda: "another generator")
    core_verilog(config(), "core", "baked")
    assert len(generations) == 2


def test_the_fingerprint_covers_the_generator_and_golden_sources():
    from importlib import resources
    from pathlib import Path

    sources = {p.name for package in ("spikeforge.hw", "spikeforge.golden")
               for p in verilog_cache._sources(Path(str(resources.files(package))))}
    assert {"prf.py", "emit.py", "cpsn_config.py", "spikeforge_add_sub.v"} <= sources
    assert len(verilog_cache.generator_fingerprint()) == 64


def test_an_unwritable_cache_still_generates(generations, monkeypatch, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("SPIKEFORGE_BUILD", str(blocked))
    assert "module core" in core_verilog(config(), "core", "baked")
    assert "module core" in core_verilog(config(), "core", "baked")
    assert len(generations) == 2
