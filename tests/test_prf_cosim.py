"""PRF co-simulation under Verilator: every output tile equals the integer golden model."""

from pathlib import Path

import numpy as np
import pytest

from spikeforge.hw.prf import LOOP_STAGES, prf_latency, prf_loop_depth
from spikeforge.sim import runner
from spikeforge.sim.regression import random_prf_config

REGRESSION_SIZE = 10


@pytest.fixture(scope="session")
def build_root():
    return Path(__file__).resolve().parent.parent / "build" / "cosim"


def tiles(config, lengths):
    return sum(-(-t // config.time_parallelism) for t in lengths) * config.groups


def assert_passed(result):
    assert result.mismatch is None, result.mismatch
    assert result.checked == result.beats > 0


def _random_case(seed: int, index: int, full: bool):
    """The regression's configuration; without ``full`` its time parallelism is redrawn from
    1, 2 and 4 (a P = 8 core unrolls to megabytes of Verilog and minutes of compile)."""
    fields = {} if full else {"time_parallelism": int(
        np.random.default_rng([seed, index, 1]).choice([1, 2, 4]))}
    return random_prf_config(np.random.default_rng([seed, index]), **fields)


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)])
@pytest.mark.parametrize("index", range(REGRESSION_SIZE))
def test_random_configuration(index, full, seed, build_root):
    """Random PRF cores under Verilator. The default suite draws P from 1–4; P = 8 (every
    mode) runs under ``-m slow`` here and, in the default suite, bit-exact in the Amaranth
    simulator (tests/test_prf_hw.py, every time parallelism)."""
    config = _random_case(seed, index, full)
    result = runner.run_cosim(config, seed=seed + index, samples=4, max_steps=48,
                              valid_probability=0.7, ready_probability=0.7,
                              build_root=build_root)
    print(f"P={config.time_parallelism} L={config.lanes} C={config.channels} "
          f"{config.coef_mode}: {result.beats} beats, {result.cycles_per_s:.0f} cycles/s")
    assert_passed(result)


@pytest.mark.parametrize("regime,mode", [("slow", "dsp"),
                                         pytest.param(("slow", "resonant_pi"), "shift_add",
                                                      id="slow+resonant_pi-shift_add")])
def test_long_samples_do_not_drift_or_overflow(regime, mode, seed, build_root):
    """4096 steps at full-scale inputs: the state sits near its bound for a long time. The
    shift-add core mixes both regimes channel by channel (one build instead of two)."""
    config = random_prf_config(np.random.default_rng(seed), regime=regime, coef_mode=mode,
                               time_parallelism=4, lanes=2, max_channels=4, membrane_out=True)
    rng = np.random.default_rng(seed)
    hi = config.input_range[1]
    constant = np.full((4096, config.channels), hi)
    constant[:, ::2] = config.input_range[0]
    noisy = rng.integers(*config.input_range, size=(4100, config.channels), endpoint=True)
    result = runner.run_cosim(config, seed=seed, sample_arrays=[constant, noisy],
                              valid_probability=1.0, ready_probability=0.9,
                              build_root=build_root)
    assert_passed(result)
    assert result.beats == tiles(config, [4096, 4100])


@pytest.mark.parametrize("groups,mode,storage", [(2, "shift_add", "file"), (3, "dsp", "file"),
                                                 (3, "shift_add", "baked")])
def test_pipelined_state_update(groups, mode, storage, seed, build_root):
    """The two-stage state update at its boundary group counts: G = 2 (a group's next beat
    reads its word in the cycle it is written) and G = 3 (just after), under gaps and
    backpressure and at full rate (the beats of a group closest), P = 2, both storages."""
    config = random_prf_config(np.random.default_rng(seed), regime="resonant_pi",
                               coef_mode=mode, time_parallelism=2, lanes=2, membrane_out=True)
    channels = config.lanes * groups
    config = config.replace(channels=channels, **{
        name: np.resize(getattr(config, name), channels)
        for name in ("phi_re", "phi_im", "delta", "v_th")})
    for valid, ready in ((0.6, 0.6), (1.0, 1.0)):
        result = runner.run_cosim(config, seed=seed, samples=6, max_steps=24,
                                  valid_probability=valid, ready_probability=ready,
                                  weight_storage=storage, build_root=build_root)
        assert_passed(result)
    assert result.cycles == result.beats + prf_latency(config)


def test_edge_cases_one_step_samples_and_back_to_back(seed, build_root):
    config = random_prf_config(np.random.default_rng(seed), regime="fast", time_parallelism=8,
                               lanes=1, max_channels=3, membrane_out=True)
    rng = np.random.default_rng(seed)
    samples = [rng.integers(*config.input_range, size=(t, config.channels), endpoint=True)
               for t in (1, 1, 7, 8, 9, 1, 16)]
    result = runner.run_cosim(config, seed=seed, sample_arrays=samples,
                              valid_probability=1.0, ready_probability=1.0,
                              build_root=build_root)
    assert_passed(result)
    assert result.cycles == result.beats + prf_latency(config)


def with_groups(config, groups, lanes=None):
    lanes = lanes or config.lanes
    channels = lanes * groups
    return config.replace(channels=channels, lanes=lanes, **{
        name: np.resize(getattr(config, name), channels)
        for name in ("phi_re", "phi_im", "delta", "v_th")})


@pytest.mark.parametrize("mode", ["shift_add", "dsp"])
@pytest.mark.parametrize("relation", ["below", "equal", "above"])
def test_loop_depth_against_group_count(mode, relation, seed, build_root):
    """The C-slow loop with G below (a loop of G + 1 registers, dsp max(G, 3), the read
    transparent to the write of the same cycle), equal to and above the loop stage count S: one beat per clock at full rate, back-to-back samples of
    one to several tiles, and backpressure that holds a group's update mid-loop."""
    config = random_prf_config(np.random.default_rng(seed), regime="resonant_pi",
                               coef_mode=mode, time_parallelism=1, lanes=2, membrane_out=True)
    stages = LOOP_STAGES(config)
    groups = {"below": stages - 2, "equal": stages, "above": stages + 3}[relation]
    config = with_groups(config, groups)
    depth = prf_loop_depth(config)
    assert depth == min(stages, groups + 1 if mode == "shift_add" else max(groups, 3))
    rng = np.random.default_rng(seed)
    samples = [rng.integers(*config.input_range, size=(t, config.channels), endpoint=True)
               for t in (1, 3, 1, 2, 7, 1)]
    result = runner.run_cosim(config, seed=seed, sample_arrays=samples,
                              valid_probability=1.0, ready_probability=1.0,
                              weight_storage="file", build_root=build_root)
    assert_passed(result)
    assert result.cycles == result.beats + prf_latency(config)
    for valid, ready in ((1.0, 0.3), (0.5, 0.5)):
        result = runner.run_cosim(config, seed=seed + 1, samples=5, max_steps=12,
                                  valid_probability=valid, ready_probability=ready,
                                  weight_storage="file", build_root=build_root)
        assert_passed(result)


def test_time_parallel_loop_with_folding(seed, build_root):
    """P = 4 with G = 4: only the last output of a tile feeds back, the others leave the loop;
    baked tables (positions limited to those the table uses)."""
    config = random_prf_config(np.random.default_rng(seed), regime="mixed",
                               coef_mode="shift_add", time_parallelism=4, lanes=2,
                               membrane_out=True)
    config = with_groups(config, 4)
    result = runner.run_cosim(config, seed=seed, samples=6, max_steps=21,
                              valid_probability=0.8, ready_probability=0.6,
                              weight_storage="baked", build_root=build_root)
    assert_passed(result)
