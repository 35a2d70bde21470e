"""LIF-family co-simulation under Verilator: every output beat equals the integer model."""

from pathlib import Path

import numpy as np
import pytest

from spikeforge.golden.lif_config import LIFConfig
from spikeforge.golden.lif_int import lif_integer
from spikeforge.sim import runner


@pytest.fixture(scope="session")
def build_root():
    return Path(__file__).resolve().parent.parent / "build" / "cosim"


def assert_passed(result):
    assert result.mismatch is None, result.mismatch
    assert result.checked == result.beats > 0


@pytest.mark.parametrize("variant,reset,spike,mode,storage", [
    ("lif", "subtract_decayed", "ge", "shift", "baked"),
    ("lif", "subtract", "gt", "csd", "file"),
    ("cuba_lif", "zero", "gt", "multiply", "file"),
    ("li", "zero", "ge", "shift", "file"),
    ("if", "subtract", "ge", "shift", "baked"),
])
def test_random_configuration(variant, reset, spike, mode, storage, seed, build_root):
    rng = np.random.default_rng([seed, len(variant), len(reset), len(mode)])
    config = LIFConfig.random(rng, channels=16, lanes=4, variant=variant, reset=reset,
                              spike=spike, decay_mode=mode, decay_digits=3,
                              membrane_out=True, state_width=14, state_frac_bits=2)
    result = runner.run_cosim(config, seed=seed, samples=4, max_steps=24,
                              valid_probability=0.7, ready_probability=0.7,
                              build_root=build_root, weight_storage=storage)
    print(f"{variant} {reset} {spike} {mode} {storage}: {result.beats} beats, "
          f"{result.cycles_per_s:.0f} cycles/s")
    assert_passed(result)


def test_long_saturating_samples_full_rate(seed, build_root):
    """The benchmark shape (C = 64, L = 4, shared shift decay), 300 steps of full-scale input
    at full rate: the state sits at its saturation bounds for long stretches."""
    config = LIFConfig(channels=64, lanes=4, variant="lif", beta=[256 - 16], threshold=[400],
                       reset="subtract", spike="gt", input_width=8, state_width=10,
                       membrane_out=True)
    rng = np.random.default_rng(seed)
    lo, hi = config.input_range
    constant = np.full((300, config.channels), hi)
    constant[:, ::2] = lo
    noisy = rng.integers(lo, hi, size=(200, config.channels), endpoint=True)
    spikes, membrane = lif_integer(config, constant)
    assert (membrane == config.state_range[0]).mean() > 0.2 and spikes.mean() > 0.1
    result = runner.run_cosim(config, seed=seed, sample_arrays=[constant, noisy],
                              valid_probability=1.0, ready_probability=0.95,
                              build_root=build_root, weight_storage="baked")
    assert_passed(result)
    assert result.beats == 500 * config.groups


def test_a_wrong_model_is_caught(seed, build_root, monkeypatch):
    """The testbench fails when the golden model differs (the reset order swapped)."""
    rng = np.random.default_rng(seed)
    config = LIFConfig.random(rng, channels=8, lanes=4, reset="subtract", membrane_out=True)
    wrong = config.replace(reset="subtract_decayed")
    from spikeforge.hw import cores

    real = cores.core_verilog
    monkeypatch.setattr(runner, "core_verilog",
                        lambda cfg, *a, **k: real(config, *a, **k))
    result = runner.run_cosim(wrong, seed=seed, samples=3, max_steps=16,
                              build_root=build_root, weight_storage="baked")
    assert result.mismatch is not None and "membrane" in result.mismatch
