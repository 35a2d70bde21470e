"""Amaranth-simulator tests of the PRF scan unit against the integer golden model."""

import numpy as np
import pytest

from spikeforge.hw.cores import core_verilog
from spikeforge.hw.prf import PRFCore
from spikeforge.hw.yosys import WORD_LEVEL, cell_counts
from spikeforge.sim.amaranth_sim import run_stream
from spikeforge.sim.beats import expected_beats, input_beats, random_samples
from spikeforge.sim.regression import PRF_REGIMES, random_prf_config
from spikeforge.sim.scoreboard import Scoreboard


def simulate(config, samples, rng, **probabilities):
    core = PRFCore(config)
    expected = expected_beats(config, samples)
    outputs, cycles = run_stream(core, input_beats(config, samples), rng, **probabilities)
    board = Scoreboard(config, expected)
    for beat in outputs:
        board.check(beat)
    assert board.done
    return core, cycles, expected


@pytest.mark.parametrize("mode", ["dsp", "shift_add"])
@pytest.mark.parametrize("parallelism", [1, 2, 4, 8])
def test_every_time_parallelism_is_bit_exact(mode, parallelism, rng):
    spikes = 0
    for regime in ("fast", "resonant_pi", "slow"):
        config = random_prf_config(rng, regime=regime, coef_mode=mode,
                                   time_parallelism=parallelism, membrane_out=True)
        samples = random_samples(config, rng, 3, max_steps=3 * parallelism + 5)
        _, _, expected = simulate(config, samples, rng, valid_probability=0.7,
                                  ready_probability=0.6)
        spikes += sum(bin(beat.data).count("1") for _, beat in expected)
    assert spikes, "no spikes at all: the comparison would miss threshold errors"


@pytest.mark.parametrize("regime", sorted(PRF_REGIMES))
def test_pole_regimes_with_channel_folding(regime, rng):
    config = random_prf_config(rng, regime=regime, lanes=2, membrane_out=True)
    samples = random_samples(config, rng, 2, max_steps=40)
    simulate(config, samples, rng, valid_probability=0.8, ready_probability=0.7)


def test_state_memory_and_register_paths(rng):
    for lanes, channels in ((4, 4), (1, 2), (2, 16)):  # G = 1 (register), 2, 8 (memory)
        config = random_prf_config(rng, regime="mixed", lanes=lanes, membrane_out=True)
        config = config.replace(channels=channels, **{
            name: np.resize(getattr(config, name), channels)
            for name in ("phi_re", "phi_im", "delta", "v_th")})
        simulate(config, random_samples(config, rng, 3, max_steps=20), rng,
                 valid_probability=0.5, ready_probability=0.5)


def test_streams_one_tile_per_clock(rng):
    config = random_prf_config(rng, regime="fast", lanes=2, time_parallelism=4)
    samples = random_samples(config, rng, 3, min_steps=16, max_steps=16)
    core, cycles, expected = simulate(config, samples, rng)
    assert cycles == len(expected) + core.latency


@pytest.mark.parametrize("mode", ["dsp", "shift_add"])
def test_shift_add_has_no_multiplier(mode, rng):
    config = random_prf_config(rng, regime="mixed", coef_mode=mode, time_parallelism=2,
                               lanes=2)
    cells = cell_counts({"prf.v": core_verilog(config, "prf", "baked")}, "prf", WORD_LEVEL)
    if mode == "shift_add":
        assert "$mul" not in cells, cells
    else:
        assert cells.get("$mul", 0) > 0, cells
