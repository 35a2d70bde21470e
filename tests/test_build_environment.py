"""Builds do not leak their environment: a cocotb build must not decide how a later fast
harness build of the same process is compiled."""

import contextlib
import os
from pathlib import Path

import pytest

from spikeforge.sim import runner
from spikeforge.sim.verilator import MissingToolError, verilator_env

COUNTER = """\
module counter(input clk, input rst, output reg [3:0] m_axis__tdata);
  always @(posedge clk) m_axis__tdata <= rst ? 4'd0 : m_axis__tdata + 4'd1;
endmodule
"""


def test_a_cocotb_build_leaves_the_process_environment_as_it_was(tmp_path):
    """The runner reads Verilator's environment (MAKEFLAGS with ``OPT_FAST=-O0``, PATH) from
    ``os.environ``; it used to stay there, so every fast harness built later in the process
    (``bench cosim`` after its core regression) compiled at -O0 while reporting -O1."""
    # A fresh build root (the model is built, never found in a cache) that shares the
    # suite's compiled run-time library.
    shared = Path(__file__).resolve().parent.parent / "build" / "cosim" / "verilator-runtime"
    shared.mkdir(parents=True, exist_ok=True)
    (tmp_path / "verilator-runtime").symlink_to(shared, target_is_directory=True)
    before = dict(os.environ)
    try:
        build_dir, _ = runner.build_verilog("counter", COUNTER, "counter", tmp_path)
    except MissingToolError as exc:
        pytest.skip(str(exc))
    assert (build_dir / "counter").is_file()
    assert dict(os.environ) == before


def test_an_explicit_optimisation_wins_over_the_users_makeflags(monkeypatch):
    monkeypatch.setenv("MAKEFLAGS", "-j1 OPT_FAST=-O0")
    try:
        forced = verilator_env(opt_fast="-O1")["MAKEFLAGS"].split()
    except MissingToolError as exc:
        pytest.skip(str(exc))
    assert [w for w in forced if w.startswith("OPT_FAST=")] == ["OPT_FAST=-O1"]
    assert "-j1" in forced and "VM_PARALLEL_BUILDS=0" in forced
    default = verilator_env()["MAKEFLAGS"].split()  # cocotb builds: the user's level stays
    assert [w for w in default if w.startswith("OPT_FAST=")] == ["OPT_FAST=-O0"]
    monkeypatch.setenv("MAKEFLAGS", "OPT_FAST=-O2")
    assert "OPT_FAST=-O2" in verilator_env()["MAKEFLAGS"].split()


def test_build_caches_key_on_the_users_compile_settings(monkeypatch):
    """A model the user compiled at another level, or with other compiler flags, is not
    reused as ours (nor ours as theirs); make's own flags (``-j``, the jobserver's pipe,
    which changes every run) leave the key alone."""
    from spikeforge.sim.verilator import build_settings

    monkeypatch.delenv("MAKEFLAGS", raising=False)
    monkeypatch.delenv("CXXFLAGS", raising=False)
    ours = build_settings()
    assert "OPT_FAST=-O0" in ours and build_settings("-O1") != ours
    monkeypatch.setenv("MAKEFLAGS", "-j2 --jobserver-auth=3,4")
    assert build_settings() == ours
    monkeypatch.setenv("MAKEFLAGS", "-j2 --jobserver-auth=5,6 -- OPT_FAST=-O2")
    assert build_settings() != ours and "OPT_FAST=-O2" in build_settings()
    forced = build_settings("-O1")  # the fast harness's explicit level wins over the user's
    assert "OPT_FAST=-O1" in forced and "OPT_FAST=-O2" not in forced
    monkeypatch.setenv("CXXFLAGS", "-march=native")
    assert "CXXFLAGS=-march=native" in build_settings("-O1")


def test_a_cocotb_build_is_cached_per_compile_setting(tmp_path, monkeypatch):
    """The cocotb runner's cache directory follows :func:`build_settings` (its build is
    replaced by a stand-in that leaves the model file)."""
    class StandIn:
        def build(self, *, build_dir, hdl_toplevel, **_):
            (Path(build_dir) / hdl_toplevel).write_text("model")

    monkeypatch.setattr(runner, "_runner", lambda simulator: StandIn())
    monkeypatch.setattr(runner, "_runner_environment", lambda *a: contextlib.nullcontext())
    monkeypatch.delenv("MAKEFLAGS", raising=False)
    default, _ = runner.build_verilog("counter", COUNTER, "counter", tmp_path)
    again, _ = runner.build_verilog("counter", COUNTER, "counter", tmp_path)
    monkeypatch.setenv("MAKEFLAGS", "OPT_FAST=-O2")
    optimised, _ = runner.build_verilog("counter", COUNTER, "counter", tmp_path)
    assert default == again and optimised != default
