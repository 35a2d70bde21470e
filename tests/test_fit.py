"""Folding (hw/fit.py): cycle figures as describe_network's, balanced defaults, relaning,
and the --fit search over a resource model."""

import dataclasses

import numpy as np
import pytest

from spikeforge.hw import fit as fitting
from spikeforge.hw.fit import FitError, Folding, balance, divisors, relane, stage_cycles
from spikeforge.hw.generate import generate_network, load_network_dir
from spikeforge.hw.network import NetworkAccelerator, describe_network
from spikeforge.sim.network_beats import sample_traces
from spikeforge.sim.network_runner import run_network_cosim
from spikeforge.sim.regression import random_network

ACTIVITY = {"sn0": 0.3, "sn1": 0.2, "sn2": 0.4}


def network_of(seed, neurons=("cpsn", "cpsn"), hidden=(16, 8), lanes=(8, 8)):
    return random_network(np.random.default_rng(seed), neurons=neurons, hidden=hidden,
                          lanes=lanes)


@pytest.mark.filterwarnings("ignore:.*created but never used")
@pytest.mark.parametrize("lanes, macs, spike", [(1, 1, 1), (2, 4, 8), (8, 16, 64), (4, 3, 5)])
def test_stage_cycles_are_describe_networks(lanes, macs, spike):
    network = relane(network_of(1, neurons=("cpsn", "prf", "cpsn"), hidden=(16, 8, 12),
                                lanes=(8, 8, 4)), lanes)
    accelerator = NetworkAccelerator(network, max_steps=8, macs=macs, spike_parallel=spike)
    described = describe_network(accelerator, steps=8, activity=ACTIVITY)
    per_lane = {layer.name: layer.core.lanes for layer in network.layers}
    for worst in (False, True):
        key = "worst" if worst else "typical"
        want = {s["name"]: s["cycles_per_step"][key] for s in described["stages"]}
        assert stage_cycles(network, lanes=per_lane, macs=macs, spike_parallel=spike,
                            activity=ACTIVITY, worst=worst) == want


def slowest(network, folding, activity=ACTIVITY):
    return max(stage_cycles(network, lanes=folding.lanes, macs=folding.macs,
                            spike_parallel=folding.spike_parallel, activity=activity).values())


def test_balance_keeps_the_throughput_with_the_least_parallelism():
    network = network_of(2)
    most = Folding({layer.name: layer.core.lanes for layer in network.layers}, 16, 8)
    folding = balance(network, macs=16, spike_parallel=64, activity=ACTIVITY)
    assert slowest(network, folding) == slowest(network, most)
    # no stage can give up one more step of parallelism without slowing the network
    for name, lanes in folding.lanes.items():
        fewer = [d for d in divisors(16 if name == "sn0" else 8) if d < lanes]
        for d in fewer:
            assert slowest(network, dataclasses.replace(
                folding, lanes={**folding.lanes, name: d})) > slowest(network, most)
    for d in divisors(16, folding.macs - 1):
        assert slowest(network, dataclasses.replace(folding, macs=d)) > slowest(network, most)
    for d in divisors(8, folding.spike_parallel - 1):
        assert slowest(network, dataclasses.replace(folding, spike_parallel=d)) > \
            slowest(network, most)
    assert sum(folding.lanes.values()) < sum(most.lanes.values())  # something was saved


def test_demo_shape_is_balanced_at_fewer_lanes():
    """The demo's shape (8 features, CPSN 64 → 64, 16 MACs): the first engine needs
    4·(1 + 8) + 9 = 45 cycles per step, so 8 lanes (8 cycles per step in the cores) buy
    nothing; the balanced folding keeps 45 with 2 lanes (32 cycles per step)."""
    network = random_network(np.random.default_rng(3), neurons=("cpsn", "cpsn"), features=8,
                             hidden=(64, 64), lanes=(8, 8), classes=10)
    folding = balance(network, macs=16, spike_parallel=64, activity={"sn0": 0.2, "sn1": 0.2})
    assert folding.macs == 16 and folding.lanes == {"sn0": 2, "sn1": 2}
    assert slowest(network, folding, {"sn0": 0.2, "sn1": 0.2}) == 45


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_a_relaned_network_computes_the_same_and_cosimulates(tmp_path):
    network = network_of(4)
    rng = np.random.default_rng(4)
    samples = [rng.integers(-128, 128, size=(int(t), network.in_features))
               for t in rng.integers(1, 8, size=12)]
    folding = balance(network, macs=16, spike_parallel=64, activity=ACTIVITY)
    relaned = relane(network, folding.lanes)
    assert [layer.core.lanes for layer in relaned.layers] == list(folding.lanes.values())
    for a, b in zip(sample_traces(network, samples), sample_traces(relaned, samples)):
        assert (a.logits == b.logits).all()
    generate_network(relaned, tmp_path, max_steps=8, **folding.options())
    description, files = load_network_dir(tmp_path)
    assert {s["name"]: s["lanes"] for s in description["stages"] if "lanes" in s} == \
        folding.lanes
    tables = {n: t for n, t in files.items() if n.endswith(".hex")}
    result = run_network_cosim(relaned, samples, files["network.v"], tables, seed=1)
    assert result.passed, result.mismatch


def fake_resources(per_unit):
    """A resource model instead of Yosys: stage logic = 100 + per_unit × parallelism."""
    def resources(stage, name, log=None):
        parallel = getattr(stage, "parallel", None) or stage.config.lanes
        return {"logic_luts": 100 + per_unit * parallel, "ffs": 50 * parallel, "bram": 0,
                "dsp": parallel if name == "synapse_sn0" else 0, "lutram": 0}
    return resources


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_fit_takes_the_fastest_folding_that_fits(monkeypatch):
    network = network_of(5)
    monkeypatch.setattr(fitting, "_stage_resources", fake_resources(10))
    roomy = fitting.fit(network, "ecp5-25k", max_steps=8, activity=ACTIVITY)
    fastest = min(slowest(network, balance(network, macs=m, spike_parallel=s, lanes=l,
                                           activity=ACTIVITY))
                  for l in (1, 2, 4, 8, 16) for m in (1, 2, 4, 8, 16) for s in (1, 2, 4, 8))
    assert roomy["cycles_per_step"] == fastest
    # the same network on a device where logic is scarce: a slower folding, within margin
    monkeypatch.setattr(fitting, "_stage_resources", fake_resources(700))
    tight = fitting.fit(network, "ecp5-25k", max_steps=8, activity=ACTIVITY, margin=0.2)
    assert tight["cycles_per_step"] > roomy["cycles_per_step"]
    assert tight["estimate"]["logic"] <= 0.8 * 24288
    # the chosen folding is the fastest of those the estimate admits
    folding = tight["folding"]
    assert slowest(network, folding) == tight["cycles_per_step"]
    monkeypatch.setattr(fitting, "_stage_resources", fake_resources(50_000))
    with pytest.raises(FitError, match="no folding of this network fits ecp5-25k"):
        fitting.fit(network, "ecp5-25k", max_steps=8, activity=ACTIVITY)
    with pytest.raises(FitError, match="targets"):
        fitting.fit(network, "ice40-up5k", max_steps=8)


def test_block_rams_of_a_weight_table():
    """DP16KD count in the cheapest shape: the digits-pixels engines (128 × 128, 8-bit
    weights) need 8 blocks at 1 accumulator (16,384 × 8: 16k × 1 shape), 15 at 64
    (256 × 512) and 29 at 128 (128 × 1,024: 512 × 36 shape), as Yosys maps them."""
    assert fitting.block_rams(16384, 8) == 8
    assert fitting.block_rams(256, 512) == 15
    assert fitting.block_rams(128, 1024) == 29
    assert fitting.block_rams(1, 1) == 1


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_estimate_interpolates_and_follows_the_weight_table_rams():
    network = network_of(6, hidden=(16, 16), lanes=(8, 8))
    low = Folding({"sn0": 1, "sn1": 1}, 1, 1)
    high = Folding({"sn0": 16, "sn1": 16}, 16, 16)
    ram = {p: fitting._weight_rams("synapse_sn1", network, p) for p in (1, 4, 16)}
    points = {
        "synapse_sn1": [(1, {"logic_luts": 100, "ffs": 10, "bram": ram[1], "dsp": 0,
                             "lutram": 0}),
                        (16, {"logic_luts": 1600, "ffs": 160, "bram": ram[16], "dsp": 0,
                              "lutram": 0})],
        "sn0": [(1, {"logic_luts": 50, "ffs": 0, "bram": 4, "dsp": 0, "lutram": 0}),
                (16, {"logic_luts": 800, "ffs": 0, "bram": 0, "dsp": 0, "lutram": 0})]}
    used = fitting.estimate(points, network, Folding({"sn0": 4, "sn1": 4}, 1, 4))
    assert used["logic_luts"] == 100 + 1500 * 3 // 15 + 50 + 750 * 3 // 15
    assert used["bram"] == ram[4] + 4 - 4 * 3 // 15  # table rule for the engine, line for sn0
    assert used["dsp"] == 1


def test_generate_refuses_folding_options_without_an_export(tmp_path):
    from click.testing import CliRunner

    from spikeforge.sw.cli import main

    for extra in (["--fit", "ecp5-25k"], ["--max-steps", "100"], ["--no-balance"]):
        result = CliRunner().invoke(main, ["generate", "--config", "examples/cpsn.json",
                                           "--out", str(tmp_path / "x"), *extra])
        assert result.exit_code != 0
        assert "use them with --from" in result.output, result.output
        assert not (tmp_path / "x").exists()
    result = CliRunner().invoke(main, ["generate", "--from", str(tmp_path), "--out",
                                       str(tmp_path / "y"), "--fit", "ice40-up5k"])
    assert result.exit_code != 0 and "ice40-up5k" in result.output
