"""Amaranth-simulator tests of the LIF-family core against the integer golden model."""

import numpy as np
import pytest

from spikeforge.golden.lif_config import DECAY_MODES, RESETS, VARIANTS, LIFConfig
from spikeforge.hw.cores import config_from_json, core_type, core_verilog
from spikeforge.hw.lif import LIFCore, lif_latency, loop_stages
from spikeforge.hw.lif_tables import pack_tables, table_names
from spikeforge.sim.amaranth_sim import run_stream
from spikeforge.sim.beats import Beat, expected_beats, input_beats, random_samples
from spikeforge.sim.scoreboard import Mismatch, Scoreboard


def _spike_rate(expected, lanes):
    bits = sum(bin(beat.data).count("1") for _, beat in expected)
    return bits / (len(expected) * lanes)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("reset", RESETS)
def test_variants_and_resets_bit_exact(variant, reset, simulate_core):
    rng = np.random.default_rng([11, VARIANTS.index(variant), RESETS.index(reset)])
    for spike, mode in (("ge", "shift"), ("gt", "csd")):
        config = LIFConfig.random(rng, channels=8, lanes=2, variant=variant, reset=reset,
                                  spike=spike, decay_mode=mode, decay_digits=3,
                                  membrane_out=True, input_width=6, state_width=10,
                                  state_frac_bits=2)
        samples = random_samples(config, rng, 3, max_steps=14)
        _, _, expected = simulate_core(config, samples, rng, valid_probability=0.7,
                                       ready_probability=0.6)
        if config.spiking:
            assert 0 < _spike_rate(expected, config.lanes) < 1


@pytest.mark.parametrize("mode", DECAY_MODES)
@pytest.mark.parametrize("shared", [False, True])
def test_decay_forms_per_channel_and_shared(mode, shared, simulate_core):
    rng = np.random.default_rng([12, DECAY_MODES.index(mode), shared])
    config = LIFConfig.random(rng, channels=12, lanes=3, variant="cuba_lif", shared=shared,
                              decay_mode=mode, decay_digits=2, decay_frac_bits=6,
                              membrane_out=True, state_width=14, state_frac_bits=3)
    simulate_core(config, random_samples(config, rng, 3, max_steps=12), rng,
                  valid_probability=0.8, ready_probability=0.7)


@pytest.mark.parametrize("groups", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("variant", ["lif", "cuba_lif", "li"])
def test_state_loop_at_every_group_count(groups, variant, simulate_core):
    """G = 1 keeps the state in registers and updates it in one cycle; G >= 2 in memory with
    min(G, 6) loop stages (min(G, 5) without spikes). At full rate a group's beats are exactly G cycles apart, the
    closest they get; short samples restart the groups from zero at every phase."""
    rng = np.random.default_rng([13, groups, len(variant)])
    config = LIFConfig.random(rng, channels=2 * groups, lanes=2, variant=variant,
                              reset="subtract_decayed", membrane_out=True, state_width=12)
    assert loop_stages(config) == min(groups, 6 if config.spiking else 5)
    samples = random_samples(config, rng, 4, min_steps=1, max_steps=9)
    simulate_core(config, samples, rng)  # full rate
    simulate_core(config, samples, rng, valid_probability=0.5, ready_probability=0.5)


def test_full_rate_and_latency(simulate_core):
    rng = np.random.default_rng(14)
    config = LIFConfig.random(rng, channels=64, lanes=4, shared=True, membrane_out=True)
    samples = random_samples(config, rng, 2, min_steps=6, max_steps=6)
    _, cycles, expected = simulate_core(config, samples, rng)
    beats = len(expected)
    # One beat per clock, and the last output arrives lif_latency cycles after the last
    # input is accepted (the first cycle offers the first beat).
    assert cycles == beats + lif_latency(config)
    assert lif_latency(config) == 10


def test_saturation_and_threshold_edges(simulate_core):
    """Inputs at the range ends drive the membrane into saturation; θ at its maximum."""
    rng = np.random.default_rng(15)
    config = LIFConfig(channels=4, lanes=2, variant="if", threshold=[0, 1, 126, 126],
                       reset="subtract", spike="gt", input_width=8, state_width=8,
                       membrane_out=True)
    x = np.array([[127, -128, 127, -128]] * 5 + [[-128, 127, -128, 127]] * 5)
    simulate_core(config, [x, x[::-1]], rng, valid_probability=0.9, ready_probability=0.9)
    _, membrane = config, None
    spikes, membrane = __import__("spikeforge.golden.lif_int", fromlist=["x"]).lif_integer(
        config, x)
    assert membrane.max() == 127 and membrane.min() == -128


def test_a_wrong_model_fails():
    """The comparison catches a model that differs in one rule (reset order)."""
    rng = np.random.default_rng(16)
    config = LIFConfig.random(rng, channels=4, lanes=2, reset="subtract", membrane_out=True)
    samples = random_samples(config, rng, 2, max_steps=12)
    wrong = config.replace(reset="subtract_decayed")
    outputs, _ = run_stream(LIFCore(config), input_beats(config, samples), rng)
    board = Scoreboard(wrong, expected_beats(wrong, samples))
    with pytest.raises(Mismatch):
        for beat in outputs:
            board.check(beat)


def test_registry_and_file_tables(tmp_path):
    rng = np.random.default_rng(17)
    config = LIFConfig.random(rng, channels=8, lanes=2, variant="cuba_lif", decay_mode="csd")
    kind = core_type(config)
    assert kind.neuron == "lif"
    assert config_from_json(config.to_json()).to_json() == config.to_json()
    assert set(kind.table_words(config)) == set(table_names(config))
    words = pack_tables(config)
    assert all(len(w) == config.groups for w in words.values())
    text = core_verilog(config, "lif_core", weight_storage="file")
    assert "$readmemh" not in text or "INIT_FILE" in text
    assert "lif_core_beta.hex" in text
    baked = core_verilog(config, "lif_core")
    assert "readmemh" not in baked


def test_config_is_checked():
    with pytest.raises(TypeError, match="LIFConfig"):
        LIFCore(object())
    config = LIFConfig(channels=2, beta=[192], threshold=[5])
    with pytest.raises(ValueError, match="init_files"):
        LIFCore(config, weight_storage="file")
