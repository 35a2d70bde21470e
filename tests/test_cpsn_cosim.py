"""CPSN co-simulation under Verilator: every output beat equals the integer golden model."""

from pathlib import Path

import numpy as np
import pytest

from spikeforge.hw.cores import CoreType
from spikeforge.hw.cpsn import cpsn_latency
from spikeforge.golden.cpsn_config import CPSNConfig
from spikeforge.sim import runner
from spikeforge.sim.regression import edge_cases, random_config

REGRESSION_SIZE = 20


@pytest.fixture(scope="session")
def build_root():
    return Path(__file__).resolve().parent.parent / "build" / "cosim"


def assert_passed(result, config):
    assert result.mismatch is None, result.mismatch
    assert result.checked == result.beats == result.time_steps * config.groups


@pytest.mark.parametrize("index", range(REGRESSION_SIZE))
def test_random_configuration(index, seed, build_root):
    config = random_config(np.random.default_rng([seed, index]))
    result = runner.run_cosim(config, seed=seed + index, samples=6, max_steps=40,
                              valid_probability=0.7, ready_probability=0.7,
                              build_root=build_root)
    print(f"k={config.order} d={config.dilation} C={config.channels} L={config.lanes} "
          f"W={config.input_width} exp=[{config.exp_min},{config.exp_max}]: "
          f"{result.beats} beats, {result.cycles_per_s:.0f} cycles/s")
    assert_passed(result, config)


@pytest.mark.parametrize("case", range(len(edge_cases(np.random.default_rng(0)))))
def test_edge_case(case, seed, build_root):
    name, config, samples = edge_cases(np.random.default_rng(seed))[case]
    result = runner.run_cosim(config, seed=seed, samples=4, max_steps=24,
                              sample_arrays=samples, build_root=build_root)
    print(name, result)
    assert_passed(result, config)


def test_back_to_back_samples_have_no_bubbles(seed, build_root):
    config = CPSNConfig.random(np.random.default_rng(seed), channels=32, lanes=8, order=7,
                               dilation=2, membrane_out=True)
    result = runner.run_cosim(config, seed=seed, samples=10, min_steps=5, max_steps=15,
                              valid_probability=1.0, ready_probability=1.0,
                              build_root=build_root)
    assert_passed(result, config)
    assert result.cycles == result.beats + cpsn_latency(config)


def test_baked_tables_match_file_tables(seed, build_root):
    config = CPSNConfig.random(np.random.default_rng(seed), channels=12, lanes=4, order=3,
                               dilation=2, membrane_out=True)
    result = runner.run_cosim(config, seed=seed, weight_storage="baked", build_root=build_root)
    assert_passed(result, config)


def test_wrong_tables_are_caught_with_position(seed, build_root, monkeypatch):
    config = CPSNConfig.random(np.random.default_rng(seed), channels=8, lanes=4, order=3,
                               membrane_out=True)
    wrong = config.replace(bias=config.bias + 1)
    original = CoreType.table_words
    monkeypatch.setattr(CoreType, "table_words", lambda self, c: original(self, wrong))
    result = runner.run_cosim(config, seed=seed, samples=3, build_root=build_root,
                              sample_arrays=[np.zeros((4, 8), dtype=np.int64)])
    assert result.mismatch is not None
    assert "(sample 0, group 0), time step 0, channel 0" in result.mismatch
    assert f"seed {seed}" in result.mismatch


def test_waves_on_request(seed, tmp_path):
    config = CPSNConfig.random(np.random.default_rng(seed), channels=2, lanes=2, order=2)
    result = runner.run_cosim(config, seed=seed, samples=2, build_root=tmp_path, waves=True)
    assert_passed(result, config)
    assert result.waves and Path(result.waves).stat().st_size > 0
