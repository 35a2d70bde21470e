"""Samples longer than the readout was sized for (issue 28, item 4): the logits saturate
(sticky) instead of wrapping, in the integer model and, bit for bit, in the hardware."""

import dataclasses

import numpy as np
import pytest

from spikeforge.golden.fixed import signed_range
from spikeforge.golden.network_int import (IntegerSynapse, readout_logit_width,
                                           readout_step_bound, saturating_sum)
from spikeforge.hw.generate import generate_network, load_network_dir
from spikeforge.sim.network_beats import sample_traces
from spikeforge.sim.network_runner import run_network_cosim
from spikeforge.sim.regression import random_network


def wrapped(values, width):
    """What an accumulator of ``width`` bits without saturation holds (two's complement)."""
    values = np.asarray(values, dtype=np.int64)
    return ((values + (1 << (width - 1))) % (1 << width)) - (1 << (width - 1))


def test_saturating_sum_is_exact_in_range_and_sticky_outside():
    width = 6  # range [-32, 31]
    lo, hi = signed_range(width)
    steps = np.array([[10], [15], [5], [-40], [3]])  # 10, 25, 30, -10, -7: never out
    assert saturating_sum(steps, width).tolist() == [steps.sum()]
    # 10, 25, 35 -> 31 (stuck), then -40 must not bring it back
    steps = np.array([[10], [15], [10], [-40], [3]])
    assert saturating_sum(steps, width).tolist() == [hi]
    assert wrapped(steps.sum(), width) == -2  # what the unsaturated hardware said
    steps = np.array([[-20], [-20], [60]])  # -20, -40 -> -32 (stuck), +60 ignored
    assert saturating_sum(steps, width).tolist() == [lo]
    # several logits at once, each its own way
    steps = np.array([[20, -20, 1], [20, -20, 1]])
    assert saturating_sum(steps, width).tolist() == [hi, lo, 2]


@pytest.mark.parametrize("kind", ["mean_membrane", "last_membrane"])
def test_no_sample_up_to_max_steps_reaches_a_range_end(kind):
    rng = np.random.default_rng(5)
    weight = rng.integers(-31, 32, size=(4, 7))
    bias = rng.integers(-31, 32, size=4)
    bound = readout_step_bound(weight, bias)
    for max_steps in (1, 2, 5, 64):
        width = readout_logit_width(weight, bias, kind, max_steps)
        lo, hi = signed_range(width)
        largest = bound * (max_steps if kind == "mean_membrane" else 1)
        assert -largest >= lo and largest <= hi
        if kind == "mean_membrane":  # both ends unreachable, and no bit to spare
            assert lo < -largest and largest < hi
            assert largest + 1 > signed_range(width - 1)[1]
    with pytest.raises(ValueError, match="max_steps"):
        readout_logit_width(weight, bias, "mean_membrane", 0)


def overflowing_network(seed, readout="mean_membrane"):
    """A one-layer CPSN network whose readout grows quickly: class 0 adds +31 per active
    spike, class 1 subtracts, the others are random."""
    rng = np.random.default_rng(seed)
    network = random_network(rng, neurons=("cpsn",), hidden=(12,), lanes=(4,), classes=5,
                             readout=readout)
    weight = network.readout.weight.copy()
    weight[0], weight[1] = 31, -32
    synapse = IntegerSynapse(weight=weight, bias=network.readout.bias, weight_width=6,
                             weight_frac_bits=0, shift=0, out_width=None, input_bound=1)
    samples = [rng.integers(-128, 128, size=(int(steps), network.in_features))
               for steps in rng.integers(1, 13, size=30)]
    return dataclasses.replace(network, readout=synapse), samples


def test_the_hardware_saturates_as_the_model_and_never_wraps(tmp_path):
    """max_steps = 2, samples of 1..12 steps: samples overflow, each logit of the hardware
    equals the sticky saturation of the model, and is not the wrapped value an unsaturated
    readout would give (a readout that wraps fails this test)."""
    network, samples = overflowing_network(seed=11)
    sized = dataclasses.replace(network, max_steps=2)
    width = sized.logit_width
    lo, hi = signed_range(width)
    exact = np.concatenate([t.logits for t in sample_traces(network, samples)])
    saturated = np.concatenate([t.logits for t in sample_traces(sized, samples)])
    long = np.array([len(s) > 2 for s in samples])
    short = ~long
    assert (saturated[short] == exact[short]).all()  # exact up to max_steps
    at_end = (saturated == lo) | (saturated == hi)
    assert at_end[long].any(axis=1).sum() >= 5, "too few samples overflow to test"
    assert not at_end[short].any()
    # somewhere the wrapped value is a different class: the case that was silent
    assert (wrapped(exact, width).argmax(axis=1) != saturated.argmax(axis=1)).any()
    # a long sample that did not overflow stays exact
    assert ((saturated == exact).all(axis=1) & long).any()

    description = generate_network(network, tmp_path, max_steps=2, macs=4, spike_parallel=4)
    readout = next(s for s in description["stages"] if s["name"] == "readout")
    assert readout["logit_width"] == width and readout["overflow"] == "saturate"
    _, files = load_network_dir(tmp_path)
    tables = {n: text for n, text in files.items() if n.endswith(".hex")}
    for valid, ready in ((0.7, 0.5), (1.0, 1.0)):
        result = run_network_cosim(sized, samples, files["network.v"], tables, seed=4,
                                   valid_probability=valid, ready_probability=ready)
        assert result.passed, result.mismatch
        assert result.logit_agreement == 1.0
    # a readout that wraps gives wrapped(exact), which differs from the model above on the
    # overflowing samples (asserted before the run), so this co-simulation can fail
    assert (wrapped(exact, width) != saturated).any(axis=1).sum() >= 5


def test_last_membrane_needs_no_saturation(tmp_path):
    """last_membrane keeps one step: any length is exact, whatever max_steps."""
    network, samples = overflowing_network(seed=12, readout="last_membrane")
    sized = dataclasses.replace(network, max_steps=1)
    exact = np.concatenate([t.logits for t in sample_traces(network, samples)])
    assert (np.concatenate([t.logits for t in sample_traces(sized, samples)]) == exact).all()
    generate_network(network, tmp_path, max_steps=1, macs=4, spike_parallel=4)
    _, files = load_network_dir(tmp_path)
    tables = {n: text for n, text in files.items() if n.endswith(".hex")}
    result = run_network_cosim(sized, samples, files["network.v"], tables, seed=2)
    assert result.passed, result.mismatch
