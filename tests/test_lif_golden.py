"""LIFConfig validation and JSON, and the integer LIF model against float references."""

import json

import numpy as np
import pytest
import torch

from spikeforge.golden.lif import LIF, DecoupledResetLIF
from spikeforge.golden.lif_config import DECAY_MODES, RESETS, VARIANTS, LIFConfig
from spikeforge.golden.lif_int import decay, lif_integer


def _float_reference(config, x_real):
    """Float64 LIF family with the documented semantics (snnTorch's forms, project LIF)."""
    beta = config.per_channel("beta") / (1 << config.decay_frac_bits)
    alpha = (config.per_channel("alpha") / (1 << config.decay_frac_bits)
             if config.variant == "cuba_lif" else None)
    theta = (config.per_channel("threshold") / 2.0 ** config.state_frac_bits
             if config.spiking else None)
    u = np.zeros(x_real.shape[1:])
    i = np.zeros_like(u)
    s = np.zeros_like(u)
    spikes, mems = [], []
    for x in x_real:
        if config.variant == "cuba_lif":
            i = alpha * i + x
            x = i
        if not config.spiking:
            u = beta * u + x
        elif config.reset == "zero":
            u = beta * np.where(s > 0, 0.0, u) + x
        elif config.reset == "subtract":
            u = beta * u + x - s * theta
        else:
            u = beta * (u - s * theta) + x
        if config.spiking:
            s = (u >= theta if config.spike == "ge" else u > theta).astype(float)
        spikes.append(s.copy())
        mems.append(u.copy())
    return np.array(spikes), np.array(mems)


def _exact_config(variant, reset, spike, k=2, steps=8, channels=6, **fields):
    """Formats in which no product is ever rounded: each step adds at most k fraction bits."""
    frac = k * steps + 2
    one = 1 << k
    tables = {}
    if variant != "if":
        tables["beta"] = [one - 1]
    if variant == "cuba_lif":
        tables["alpha"] = [one - 2] if k > 1 else [1]
    if variant != "li":
        tables["threshold"] = np.arange(channels) % 3 * (1 << frac) // 2 + (1 << frac)
    return LIFConfig(channels=channels, variant=variant, reset=reset, spike=spike,
                     decay_frac_bits=k, decay_mode="csd", input_width=6, input_frac_bits=0,
                     state_width=frac + 14, state_frac_bits=frac,
                     membrane_out=variant == "li", **tables, **fields)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("spike", ["ge", "gt"])
def test_integer_model_equals_float_where_exact(variant, reset, spike):
    rng = np.random.default_rng([3, VARIANTS.index(variant), RESETS.index(reset)])
    config = _exact_config(variant, reset, spike)
    x = rng.integers(-8, 20, size=(8, 5, config.channels))
    spikes, membrane = lif_integer(config, x)
    want_spikes, want_membrane = _float_reference(config, x.astype(float))
    np.testing.assert_array_equal(membrane / 2.0 ** config.state_frac_bits, want_membrane)
    np.testing.assert_array_equal(spikes, want_spikes)
    if config.spiking:
        assert 0 < spikes.mean() < 1
    else:
        assert not spikes.any()


@pytest.mark.parametrize("decoupled", [False, True])
def test_matches_project_lif_module(decoupled):
    """golden.lif.LIF (u = β(u − V_th·s) + c, Θ on >=) is reset subtract_decayed, spike ge."""
    rng = np.random.default_rng(7)
    k, steps = 2, 8
    config = _exact_config("lif", "subtract_decayed", "ge", k=k, steps=steps)
    config = config.replace(threshold=[1 << config.state_frac_bits])
    x = rng.integers(-8, 20, size=(steps, 4, config.channels))
    spikes, membrane = lif_integer(config, x)
    module = (DecoupledResetLIF if decoupled else LIF)(tau=float(1 << k), v_threshold=1.0)
    with torch.no_grad():
        module.store_v_seq = True
        out = module(torch.tensor(x, dtype=torch.float64))
    np.testing.assert_array_equal(spikes, out.numpy())
    np.testing.assert_array_equal(membrane / 2.0 ** config.state_frac_bits,
                                  module.v_seq.numpy())


def test_rounding_is_half_up_and_saturation_clamps():
    # 3/4 of 1, -1, 2, -2, 5: 0.75 -> 1, -0.75 -> -1, 1.5 -> 2, -1.5 -> -1, 3.75 -> 4
    assert decay(3, np.array([1, -1, 2, -2, 5]), 2).tolist() == [1, -1, 2, -1, 4]
    config = LIFConfig(channels=1, variant="lif", beta=[255], threshold=[100], state_width=8,
                       input_width=8, reset="subtract", decay_mode="csd")
    spikes, membrane = lif_integer(config, np.array([[127], [127], [127], [-128]]))
    # 127; then round(127·255/256) = 127, + 127 − 100 = 154 saturates to 127; again; then
    # 127 − 128 − 100 = −101.
    assert membrane[:, 0].tolist() == [127, 127, 127, -101]
    assert spikes[:, 0].tolist() == [1, 1, 1, 0]


def test_a_wrong_rule_would_be_caught():
    """The float comparison is sensitive: ge and gt differ on this input."""
    config = _exact_config("if", "subtract", "ge")
    x = np.full((4, 1, config.channels), 0)
    x[0] = 1
    theta = config.per_channel("threshold")
    x[0] = theta >> config.state_frac_bits  # exactly at the threshold where it is an integer
    ge, _ = lif_integer(config, x)
    gt, _ = lif_integer(config.replace(spike="gt"), x)
    assert (ge != gt).any()


@pytest.mark.parametrize("mode", DECAY_MODES)
def test_quantise_decay(mode):
    for k in range(1, 8):
        exact = 1.0 - 2.0 ** -k
        assert LIFConfig.quantise_decay(exact, 8, mode) == 256 - (256 >> k)
    value = LIFConfig.quantise_decay(0.8, 8, mode, digits=2)
    assert value == {"shift": 192, "csd": 192, "multiply": 205}[mode]
    assert LIFConfig.quantise_decay(0.8, 8, "csd", digits=3) == 208  # 256 − 64 + 16
    LIFConfig(channels=2, beta=[value], threshold=[10], decay_mode=mode)


def test_validation_messages():
    with pytest.raises(ValueError, match="beta.*required"):
        LIFConfig(channels=4, threshold=[1])
    with pytest.raises(ValueError, match="not 1 − 2"):
        LIFConfig(channels=4, beta=[200], threshold=[1], decay_mode="shift")
    with pytest.raises(ValueError, match="canonical-signed-digit"):
        LIFConfig(channels=4, beta=[0b10101011], threshold=[1], decay_mode="csd",
                  decay_digits=2)
    with pytest.raises(ValueError, match="length 4"):
        LIFConfig(channels=4, beta=[192, 192], threshold=[1])
    with pytest.raises(ValueError, match="threshold must be left out"):
        LIFConfig(channels=4, variant="li", beta=[192], threshold=[1], membrane_out=True)
    with pytest.raises(ValueError, match="membrane_out must be true"):
        LIFConfig(channels=4, variant="li", beta=[192])
    with pytest.raises(ValueError, match="maximum 32766"):
        LIFConfig(channels=4, beta=[192], threshold=[32767])
    with pytest.raises(ValueError, match="alpha.*required"):
        LIFConfig(channels=4, variant="cuba_lif", beta=[192], threshold=[1])
    with pytest.raises(ValueError, match="must be 2\\^decay_frac_bits"):
        LIFConfig(channels=4, variant="if", beta=[192], threshold=[1])
    with pytest.raises(ValueError, match="lanes"):
        LIFConfig(channels=6, lanes=4, beta=[192], threshold=[1])
    with pytest.raises(ValueError, match="reset must be one of"):
        LIFConfig(channels=4, beta=[192], threshold=[1], reset="soft")
    with pytest.raises(TypeError, match="channels"):
        LIFConfig(channels=4.5, beta=[192], threshold=[1])


@pytest.mark.parametrize("variant", VARIANTS)
def test_json_round_trip(variant, tmp_path):
    config = LIFConfig.random(np.random.default_rng(1), channels=8, lanes=2, variant=variant,
                              decay_mode="csd", reset="zero", spike="gt", membrane_out=True)
    path = tmp_path / "lif.json"
    config.save(path)
    again = LIFConfig.load(path)
    assert json.loads(path.read_text())["neuron"] == "lif"
    assert again.to_json() == config.to_json()
    x = np.random.default_rng(2).integers(-128, 128, size=(12, 3, 8))
    for a, b in zip(lif_integer(config, x), lif_integer(again, x)):
        np.testing.assert_array_equal(a, b)
