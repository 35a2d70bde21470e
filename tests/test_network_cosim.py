"""Whole networks against IntegerNetwork under both testbenches (the fast Verilog harness
and cocotb), fault detection and location, and the fast harness's own rules."""

import shutil

import numpy as np
import pytest

from spikeforge.hw.generate import generate_network, load_network_dir, NETWORK_MODULE
from spikeforge.sim import harness as fast
from spikeforge.sim.network_beats import sample_traces, step_beats
from spikeforge.sim.network_runner import run_network_cosim
from spikeforge.sim.runner import default_build_root
from spikeforge.sim.regression import random_network

NETWORKS = {
    # name: (neurons, hidden widths, lanes, readout): CPSN only, PRF only, mixed; 1 and 3
    # hidden layers; lanes 1/2/4/8, folded (C > L) and not
    "mixed_folded": (("cpsn", "prf"), (8, 8), (4, 2), "mean_membrane"),
    "three_layers": (("cpsn", "prf", "cpsn"), (8, 16, 4), (1, 8, 2), "last_membrane"),
    "prf_only": (("prf",), (8,), (8,), "mean_membrane"),
    "cpsn_only": (("cpsn",), (12,), (4,), "last_membrane"),
}


def generated(name, tmp_path, seed=0, count=24):
    neurons, hidden, lanes, readout = NETWORKS[name]
    rng = np.random.default_rng(seed)
    network = random_network(rng, neurons=neurons, hidden=hidden, lanes=lanes,
                             readout=readout)
    samples = [rng.integers(-128, 128, size=(int(steps), network.in_features))
               for steps in rng.integers(1, 10, size=count)]
    generate_network(network, tmp_path, max_steps=9, macs=4, spike_parallel=4)
    description, files = load_network_dir(tmp_path)
    tables = {n: text for n, text in files.items() if n.endswith(".hex")}
    return network, samples, files["network.v"], tables


def busiest_input(network, samples) -> int:
    """The sn0 neuron that spikes most: the row of synapse_sn1's weights it selects."""
    active = sum(t.spikes["sn0"][:, 0, :].sum(axis=0) for t in sample_traces(network, samples))
    return int(np.argmax(active))


def corrupt_busiest_weight_word(network, samples, tables, row=None):
    """Invert every weight of the synapse_sn1 word of the input that spikes most (or of
    input ``row``; the export's check bypassed): the hardware must then differ from the
    integer model."""
    row = busiest_input(network, samples) if row is None else row
    lines = tables["synapse_sn1_weights.hex"].splitlines()
    lines[row] = f"{~int(lines[row], 16) & ((1 << 4 * len(lines[row])) - 1):0{len(lines[row])}x}"
    return {**tables, "synapse_sn1_weights.hex": "\n".join(lines) + "\n"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow)
                                  if n == "three_layers" else n for n in sorted(NETWORKS)])
def test_whole_network_matches_integer_model(name, tmp_path):
    network, samples, verilog, tables = generated(name, tmp_path)
    traces = sample_traces(network, samples)
    for layer in network.layers:  # every core fires, so a spike error would show
        assert sum(int(t.spikes[layer.name].sum()) for t in traces) > 0, layer.name
    for valid, ready in ((0.7, 0.4), (1.0, 1.0)):
        result = run_network_cosim(network, samples, verilog, tables, seed=3,
                                   valid_probability=valid, ready_probability=ready)
        assert result.harness == "fast"
        assert result.passed, result.mismatch
        assert result.class_agreement == result.logit_agreement == 1.0


def test_the_two_harnesses_agree_cycle_for_cycle_in_length(tmp_path):
    """Same samples, same probabilities: both testbenches pass, and their cycle counts (one
    random handshake sequence each) are within a few per cent; at full rate within a cycle
    or two (reset and the last transfer are counted alike)."""
    network, samples, verilog, tables = generated("mixed_folded", tmp_path)
    for valid, ready in ((0.8, 0.8), (1.0, 1.0)):
        results = {h: run_network_cosim(network, samples, verilog, tables, seed=3, harness=h,
                                        valid_probability=valid, ready_probability=ready)
                   for h in ("fast", "cocotb")}
        assert all(r.passed for r in results.values()), {h: r.mismatch for h, r in
                                                         results.items()}
        cycles = {h: r.cycles for h, r in results.items()}
        tolerance = 2 if valid == 1.0 else 0.1 * cycles["cocotb"]
        assert abs(cycles["fast"] - cycles["cocotb"]) <= tolerance, cycles


@pytest.mark.parametrize("harness", ["fast", "cocotb"])
def test_corrupted_weight_word_is_caught_and_located(harness, tmp_path):
    """Both testbenches fail the run and name the sample; the probed rerun names the layer
    behind the corrupted synapse, the time step and the channels."""
    network, samples, verilog, tables = generated("mixed_folded", tmp_path)
    tables = corrupt_busiest_weight_word(network, samples, tables)
    result = run_network_cosim(network, samples, verilog, tables, seed=3, harness=harness)
    assert not result.passed and result.first_mismatch_sample is not None
    assert result.mismatch.startswith(f"sample {result.first_mismatch_sample}:")

    from spikeforge.hw.generate import network_accelerator, network_verilog

    probed = network_verilog(network_accelerator(network, max_steps=9, macs=4,
                                                 spike_parallel=4, probes=True))
    rerun = run_network_cosim(network, samples[:result.first_mismatch_sample + 1], probed,
                              tables, seed=3, probes=True, harness=harness)
    where = rerun.layer_mismatch
    assert where is not None and where["layer"] == "sn1", where
    assert where["sample"] <= result.first_mismatch_sample and where["channels"], where


def test_shards_report_the_whole_set(tmp_path):
    """Samples split over processes: the same verdict, every sample checked once, and a
    mismatch named by its index in the whole set. The hardware's outputs do not depend on
    the handshakes, so the shards (seeds of their own) find the same first sample as one
    process; the samples are ordered so that it lies in the last shard."""
    network, samples, verilog, tables = generated("mixed_folded", tmp_path)
    one = run_network_cosim(network, samples, verilog, tables, seed=5, jobs=1)
    three = run_network_cosim(network, samples, verilog, tables, seed=5, jobs=3)
    assert one.passed and three.passed and three.jobs == 3
    assert three.checked == len(samples) == one.checked
    # corrupt the word of the sn0 neuron that spikes in the fewest samples (but some): only
    # those samples can differ, and they go into the last shard
    fired = np.array([t.spikes["sn0"][:, 0, :].any(axis=0)
                      for t in sample_traces(network, samples)])
    counts = fired.sum(axis=0)
    row = int(np.argmin(np.where(counts > 0, counts, len(samples) + 1)))
    bad = corrupt_busiest_weight_word(network, samples, tables, row)
    touched = [s for s, hit in zip(samples, fired[:, row]) if hit]
    untouched = [s for s, hit in zip(samples, fired[:, row]) if not hit]
    assert untouched and touched, counts
    ordered = (untouched * 16)[:16] + (touched * 8)[:8]
    whole = run_network_cosim(network, ordered, verilog, bad, seed=5, jobs=1)
    shards = run_network_cosim(network, ordered, verilog, bad, seed=5, jobs=3)
    assert not whole.passed and not shards.passed
    assert shards.first_mismatch_sample == whole.first_mismatch_sample >= 16, \
        (whole.first_mismatch_sample, shards.first_mismatch_sample)
    assert shards.mismatch.startswith(f"sample {whole.first_mismatch_sample}:")
    assert (shards.class_agreement, shards.logit_agreement) == \
        (whole.class_agreement, whole.logit_agreement)


def test_a_sample_that_never_ends_is_reported_as_a_stall(tmp_path):
    """Input without tlast on the last beat: the network waits for the rest of the sample,
    the harness sees no transfer for its idle limit and says how far it got."""
    network, samples, verilog, tables = generated("prf_only", tmp_path)
    build = fast.build_harness(verilog, NETWORK_MODULE, default_build_root(),
                               optimisation="-O0")  # shared with the other prf_only runs
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name, text in tables.items():
        (run_dir / name).write_text(text)
    beats = step_beats(samples[:2], network.in_features, network.input_width)
    beats[-1] = type(beats[-1])(beats[-1].data, False)
    fast.write_stimulus(run_dir / "stimulus.hex", beats, network.in_features *
                        network.input_width)
    run = fast.run_harness(build.executable, run_dir, beats=len(beats), samples=2, seed=1,
                           valid_probability=1.0, ready_probability=1.0, idle_limit=200)
    assert run["status"] == "stalled" and run["sent"] == len(beats) and run["received"] == 1


def test_a_simulation_without_its_stimulus_is_an_error_not_a_verdict(tmp_path):
    network, samples, verilog, tables = generated("prf_only", tmp_path)
    build = fast.build_harness(verilog, NETWORK_MODULE, default_build_root(),
                               optimisation="-O0")  # shared with the other prf_only runs
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(fast.SimulationError, match="sim.log"):
        fast.run_harness(build.executable, empty, beats=1, samples=1, seed=0,
                         valid_probability=1.0, ready_probability=1.0)


def test_a_table_missing_from_the_description_is_named_before_any_build(tmp_path):
    network, samples, verilog, tables = generated("prf_only", tmp_path)
    del tables["sn0_powers.hex"]
    with pytest.raises(ValueError, match="sn0_powers.hex"):
        run_network_cosim(network, samples, verilog, tables, build_root=tmp_path / "none")
    assert not (tmp_path / "none").exists()


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed")
@pytest.mark.parametrize("simulator", ["icarus-2012", "icarus-2005"])
def test_the_harness_runs_under_icarus_with_the_same_transfers(simulator, tmp_path):
    """The same testbench under Icarus: the same handshakes from the same seed, so the same
    output transfers on the same cycles as under Verilator."""
    network, samples, verilog, tables = generated("prf_only", tmp_path, count=8)
    logged = {}
    for sim in ("verilator", simulator):
        result = run_network_cosim(network, samples, verilog, tables, seed=7,
                                   simulator=sim, run_dir=tmp_path / sim)
        assert result.passed, (sim, result.mismatch)
        logged[sim] = fast.read_outputs(tmp_path / sim)
    assert logged["verilator"] == logged[simulator]


def test_top_ports_and_harness_refuse_what_is_not_a_network():
    verilog = "module other(clk, x);\n  input clk;\n  output [3:0] x;\nendmodule\n"
    assert fast.top_ports(verilog, "other") == {"clk": fast.Port("input", 1),
                                                "x": fast.Port("output", 4)}
    with pytest.raises(ValueError, match="no module"):
        fast.top_ports(verilog, NETWORK_MODULE)
    with pytest.raises(ValueError, match="not a network accelerator"):
        fast.harness_verilog(fast.top_ports(verilog, "other"), "other")


def test_the_optimisation_follows_the_expected_cycles():
    assert fast.choose_optimisation(0) == "-O0"
    assert fast.choose_optimisation(fast.O1_FROM_CYCLES - 1) == "-O0"
    assert fast.choose_optimisation(fast.O1_FROM_CYCLES) == "-O1"
    assert fast.choose_optimisation(fast.O2_FROM_CYCLES) == "-O2"
    with pytest.raises(ValueError, match="optimisation"):
        fast.build_harness("", NETWORK_MODULE, "unused", optimisation="-O3")


def test_a_cocotb_run_without_a_result_is_one_line_naming_its_log(tmp_path, monkeypatch):
    """The cocotb path too: a simulation that wrote no result (its directory cleaned while
    it ran, a crash) is a SimulationError with the log's last lines, not a bare traceback."""
    from spikeforge.sim import runner

    monkeypatch.setattr(runner, "run_test", lambda simulator, **arguments: None)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "sim.log").write_text("starting\nsegmentation fault\n")
    with pytest.raises(fast.SimulationError, match="segmentation fault.*sim.log"):
        runner.run_job("verilator", "module", "top", tmp_path, run_dir, {})


def test_progress_is_logged_while_the_harness_runs(tmp_path):
    """With ``progress_seconds`` the samples out so far (read from the output file the harness
    flushes beat by beat) and the cycles per second are logged while it runs, between the
    stage lines."""
    network, samples, verilog, tables = generated("mixed_folded", tmp_path)
    lines = []
    # 960 samples offered on 2 % of cycles: 0.7 s here, so dozens of 20 ms ticks
    result = run_network_cosim(network, samples * 40, verilog, tables, seed=1,
                               valid_probability=0.02, jobs=2, progress_seconds=0.02,
                               log=lines.append)
    assert result.passed, result.mismatch
    start = next(i for i, line in enumerate(lines) if "simulating 960 samples" in line)
    progress = [line for line in lines[start + 1:] if "samples out after" in line]
    assert len(progress) >= 2, (result.wall_s, lines)
    done = [int(line.split("/")[0]) for line in progress]
    assert done == sorted(done) and 0 < done[-1] <= 960, progress
    assert all("/960 samples out after" in line and "cycles/s" in line for line in progress)


def test_output_progress_counts_complete_lines_only(tmp_path):
    assert fast.output_progress(tmp_path) == (0, 0)  # not started yet
    (tmp_path / "output.txt").write_text("360 1 3 0a\n720 1 4 0b\n10")
    assert fast.output_progress(tmp_path) == (2, 720)


def test_a_cached_build_keeps_only_the_runs_of_live_processes(tmp_path):
    """Every co-simulation gets a run directory under its (shared) build: those of processes
    that have ended go, those of running ones (parallel test workers) stay."""
    import os
    import subprocess

    from spikeforge.sim.runner import fresh_run_dir

    ended = subprocess.Popen(["true"])
    ended.wait()
    runs = tmp_path / "runs"
    for name in (f"seed-0-{ended.pid}", f"seed-3-{ended.pid}", "seed-0-1"):  # 1: init, alive
        (runs / name).mkdir(parents=True)
        (runs / name / "sim.log").write_text("old\n")
    mine = fresh_run_dir(tmp_path, 7)
    assert mine == runs / f"seed-7-{os.getpid()}" and mine.is_dir()
    assert sorted(p.name for p in runs.iterdir()) == sorted(["seed-0-1", mine.name])
