"""Amaranth-simulator tests of the synapse engines and the readout against the integer model."""

import numpy as np
import pytest

from spikeforge.golden.fixed import signed_range
from spikeforge.golden.network_int import IntegerSynapse
from spikeforge.hw.synapse import Readout, SynapseEngine
from spikeforge.sim.amaranth_sim import run_stream
from spikeforge.sim.network_beats import readout_beat, step_beats, unpack_logits


def synapse_of(rng, outputs, inputs, *, weight_width=6, shift=3, out_width=6, input_bound=1,
               bias_scale=20):
    lo, hi = signed_range(weight_width)
    return IntegerSynapse(weight=rng.integers(lo, hi + 1, size=(outputs, inputs)),
                          bias=rng.integers(-bias_scale, bias_scale + 1, size=outputs),
                          weight_width=weight_width, weight_frac_bits=4, shift=shift,
                          out_width=out_width, input_bound=input_bound)


def engine_of(synapse, *, kind, in_lanes, out_lanes, parallel, input_width=1):
    inputs = synapse.inputs
    return SynapseEngine(synapse.weight, synapse.bias, weight_width=synapse.weight_width,
                         shift=synapse.shift, out_width=synapse.out_width, input_kind=kind,
                         input_width=input_width, in_lanes=in_lanes,
                         in_groups=inputs // in_lanes, input_bound=synapse.input_bound,
                         out_lanes=out_lanes, parallel=parallel)


def check_engine(engine, synapse, samples, rng, **probabilities):
    """Every output beat equals the integer synapse's outputs; returns (cycles, expected)."""
    expected_u = [synapse(a)[0] for a in samples]
    beats = step_beats(samples, engine.in_lanes, engine.input_width)
    want = step_beats(expected_u, engine.out_lanes, engine.out_width)
    got, cycles = run_stream(engine, beats, rng, expected_outputs=len(want), **probabilities)
    assert got == want
    return cycles, expected_u


def spikes(rng, steps, inputs, rate):
    return (rng.random((steps, inputs)) < rate).astype(np.int64)


@pytest.mark.parametrize("pattern", ["none", "all", "random", "single"])
@pytest.mark.parametrize("parallel", [12, 4])
def test_spike_engine_patterns(pattern, parallel, rng):
    synapse = synapse_of(rng, 12, 16)
    steps = 5
    if pattern == "none":
        a = np.zeros((steps, 16), dtype=np.int64)
    elif pattern == "all":
        a = np.ones((steps, 16), dtype=np.int64)
    elif pattern == "single":
        a = np.zeros((steps, 16), dtype=np.int64)
        a[np.arange(steps), rng.integers(0, 16, size=steps)] = 1
    else:
        a = spikes(rng, steps, 16, 0.3)
    engine = engine_of(synapse, kind="spikes", in_lanes=4, out_lanes=3, parallel=parallel)
    check_engine(engine, synapse, [a, a[:2]], rng, valid_probability=0.7,
                 ready_probability=0.6)


@pytest.mark.parametrize("where", ["first", "spread", "last word"])
def test_spike_engine_cycles_follow_active_count(where, rng):
    """Only active spikes cost cycles: B·(1 + n) + D per step once the input is there, with
    the spikes in the first search word, spread over every word, or only in the last word
    (the empty words before it cost nothing)."""
    synapse = synapse_of(rng, 8, 64)
    engine = engine_of(synapse, kind="spikes", in_lanes=64, out_lanes=8, parallel=8)
    for active in (0, 4, 13):
        a = np.zeros((40, 64), dtype=np.int64)
        positions = {"first": np.arange(active), "spread": np.arange(active) * 5,
                     "last word": 63 - np.arange(active)}[where]
        a[:, positions] = 1
        cycles, _ = check_engine(engine, synapse, [a], rng)
        per_step = engine.cycles_per_step(active)
        # 40 steps at the engine's rate, plus filling and draining the pipeline
        assert 40 * per_step <= cycles <= 40 * per_step + 3 * per_step + 10, (active, cycles)


@pytest.mark.parametrize("parallel", [5, 10])
def test_spike_engine_search_words(parallel, rng):
    """70 inputs are five search words (the last one partial): spikes in one word only, in
    the first and last with empty words between, every other word, all, random."""
    synapse = synapse_of(rng, 10, 70)
    patterns = [np.zeros(70, dtype=np.int64) for _ in range(5)]
    patterns[0][[17, 20, 31]] = 1
    patterns[1][[0, 15, 64, 69]] = 1
    patterns[2][np.r_[0:16, 32:48, 64:70]] = 1
    patterns[3][:] = 1
    patterns[4] = spikes(rng, 1, 70, 0.1)[0]
    a = np.stack(patterns + list(spikes(rng, 6, 70, 0.05)))
    engine = engine_of(synapse, kind="spikes", in_lanes=14, out_lanes=5, parallel=parallel)
    check_engine(engine, synapse, [a, a[::-1]], rng, valid_probability=0.8,
                 ready_probability=0.7)


def test_values_engine_saturates_both_ends_and_rounds_ties_up(rng):
    # weights and inputs chosen so that accumulators hit exact .5 ties and both rails
    weight = np.array([[1, 0], [-1, 0], [64 - 1, 64 - 1], [-64, -64], [3, 1]])
    bias = np.array([0, 0, 0, 0, -2])
    synapse = IntegerSynapse(weight=weight, bias=bias, weight_width=7, weight_frac_bits=0,
                             shift=2, out_width=4, input_bound=128)
    a = np.array([[2, 0], [6, 0], [-2, 5], [127, 127], [-128, -128], [-6, 1], [10, -9]])
    _, outputs = check_engine(engine_of(synapse, kind="values", in_lanes=2, out_lanes=5,
                                        parallel=5, input_width=8), synapse, [a], rng)
    u = outputs[0]
    lo, hi = signed_range(4)
    assert u.max() == hi and u.min() == lo  # both rails reached
    assert u[0, 0] == 1 and u[1, 0] == 2 and u[0, 1] == 0  # 2/4 → 1, 6/4 → 2, −2/4 → 0


@pytest.mark.parametrize("shift", [-2, 0, 5])
@pytest.mark.parametrize("parallel", [1, 3, 6])
def test_values_engine_any_shift_and_parallelism(shift, parallel, rng):
    synapse = synapse_of(rng, 6, 5, weight_width=8, shift=shift, out_width=8, input_bound=32,
                         bias_scale=300)
    samples = [rng.integers(-32, 32, size=(steps, 5)) for steps in (1, 4, 3)]
    check_engine(engine_of(synapse, kind="values", in_lanes=5, out_lanes=2, parallel=parallel,
                           input_width=6), synapse, samples, rng, valid_probability=0.6,
                 ready_probability=0.5)


def readout_of(synapse, kind, in_lanes, max_steps):
    return Readout(synapse.weight, synapse.bias, weight_width=synapse.weight_width, kind=kind,
                   in_lanes=in_lanes, in_groups=synapse.inputs // in_lanes,
                   max_steps=max_steps)


def logits_of(synapse, kind, a):
    if kind == "mean_membrane":
        return synapse.accumulate(a).sum(axis=0)
    return synapse.accumulate(a[-1])


@pytest.mark.parametrize("kind", ["mean_membrane", "last_membrane"])
def test_readout_logits_and_class_back_to_back(kind, rng):
    synapse = IntegerSynapse(weight=rng.integers(-128, 128, size=(10, 12)),
                             bias=rng.integers(-500, 500, size=10), weight_width=8,
                             weight_frac_bits=3, shift=0, out_width=None, input_bound=1)
    samples = [spikes(rng, steps, 12, 0.4) for steps in (1, 6, 1, 9, 3)]
    readout = readout_of(synapse, kind, 4, max_steps=9)
    want = [readout_beat(logits_of(synapse, kind, a), readout.logit_width) for a in samples]
    got, _ = run_stream(readout, step_beats(samples, 4, 1), rng, expected_outputs=len(want),
                        valid_probability=0.7, ready_probability=0.4)
    assert got == want


def test_readout_argmax_ties_pick_the_first_index(rng):
    # every class has the same weights except a planted tie between classes 2 and 5
    weight = np.zeros((7, 4), dtype=np.int64)
    weight[[2, 5]] = [3, 1, 2, 1]
    synapse = IntegerSynapse(weight=weight, bias=np.zeros(7, dtype=np.int64), weight_width=4,
                             weight_frac_bits=0, shift=0, out_width=None, input_bound=1)
    readout = readout_of(synapse, "mean_membrane", 2, max_steps=4)
    samples = [np.ones((2, 4), dtype=np.int64), np.zeros((1, 4), dtype=np.int64)]
    got, _ = run_stream(readout, step_beats(samples, 2, 1), rng, expected_outputs=2)
    assert [beat.data for beat in got] == [2, 0]  # a tie, and all-equal logits
    assert list(unpack_logits(got[0].user, 7, readout.logit_width)) == [0, 0, 14, 0, 0, 14, 0]


def test_bad_engine_parameters_are_refused(rng):
    synapse = synapse_of(rng, 6, 4)
    with pytest.raises(ValueError, match="parallel"):
        engine_of(synapse, kind="spikes", in_lanes=4, out_lanes=3, parallel=4)
    with pytest.raises(ValueError, match="out_lanes"):
        engine_of(synapse, kind="spikes", in_lanes=4, out_lanes=4, parallel=6)
    with pytest.raises(ValueError, match="lanes x"):
        engine_of(synapse, kind="spikes", in_lanes=3, out_lanes=3, parallel=6)
    with pytest.raises(ValueError, match="input_kind"):
        engine_of(synapse, kind="floats", in_lanes=4, out_lanes=3, parallel=6)
    with pytest.raises(ValueError, match="kind"):
        Readout(synapse.weight, synapse.bias, weight_width=6, kind="max", in_lanes=4,
                in_groups=1, max_steps=3)


def _verilog(component, name):
    from spikeforge.hw.emit import verilog_text

    return {f"{name}.v": verilog_text(component, name)}


def test_spike_synapses_and_readout_have_no_multiplier(rng):
    from spikeforge.hw.yosys import ECP5, WORD_LEVEL, cell_counts

    synapse = synapse_of(rng, 16, 32, weight_width=8)
    designs = {
        "spikes": engine_of(synapse, kind="spikes", in_lanes=8, out_lanes=4, parallel=8),
        "readout": readout_of(IntegerSynapse(
            weight=synapse.weight[:10], bias=synapse.bias[:10], weight_width=8,
            weight_frac_bits=0, shift=0, out_width=None, input_bound=1), "mean_membrane", 8,
            max_steps=64),
        "values": engine_of(synapse_of(rng, 16, 4, weight_width=8, input_bound=128),
                            kind="values", in_lanes=4, out_lanes=4, parallel=4,
                            input_width=8),
    }
    for name, design in designs.items():
        sources = _verilog(design, name)
        word_level = cell_counts(sources, name, WORD_LEVEL)
        mapped = cell_counts(sources, name, ECP5)
        if name == "values":  # the check can see multipliers: the MAC engine has them
            assert word_level.get("$mul", 0) == 4, word_level
            continue
        assert "$mul" not in word_level, (name, word_level)
        assert "MULT18X18D" not in mapped and "ALU54B" not in mapped, (name, mapped)


@pytest.mark.parametrize("inputs", [1, 3, 5])
def test_spike_engine_with_few_inputs(inputs, rng):
    """Input counts that are not powers of two (padded table rows) and a single input."""
    synapse = synapse_of(rng, 4, inputs)
    engine = engine_of(synapse, kind="spikes", in_lanes=inputs, out_lanes=2, parallel=2)
    check_engine(engine, synapse, [spikes(rng, 6, inputs, 0.5)], rng, ready_probability=0.5)
