"""CPSN golden models: quantiser, float module, integer model, configuration validation."""

import json

import numpy as np
import pytest
import torch

from spikeforge.golden.cpsn import CPSN, power_of_two_codes, quantize_power_of_two
from spikeforge.golden.cpsn_int import cpsn_integer
from spikeforge.golden.cpsn_config import CPSNConfig
from spikeforge.hw.cpsn_tables import pack_tables, unpack_tables
from spikeforge.hw.memfile import read_hex, write_hex


def test_quantiser_rounds_in_log_domain():
    w = torch.tensor([0.7071, 0.7072, 1.4142, 1.4143, -0.3, 0.0, 0.031, 0.032, 5.0, -1e-9])
    q = quantize_power_of_two(w, -4, 0)
    assert q.tolist() == [0.5, 1.0, 1.0, 1.0, -0.25, 0.0, 0.0, 0.0625, 1.0, 0.0]


def test_quantiser_gradient_is_straight_through():
    w = torch.tensor([0.3, -2.0, 0.0001], requires_grad=True)
    quantize_power_of_two(w, -4, 0).mul(torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert w.grad.tolist() == [1.0, 2.0, 3.0]


def reference_membrane(x, weight, bias, dilation):
    """neurons.md §2 written as a loop: H[t][c] = Σ_i W[c][i]·X[t−(k−1−i)d][c] + b[c]."""
    steps, order = x.shape[0], weight.shape[1]
    h = torch.zeros_like(x) + bias
    for t in range(steps):
        for i in range(order):
            source = t - (order - 1 - i) * dilation
            if source >= 0:
                h[t] = h[t] + weight[:, i] * x[source]
    return h


@pytest.mark.parametrize("order,dilation", [(1, 1), (3, 2), (5, 3), (8, 1)])
def test_float_module_matches_loop_reference_and_gradients(order, dilation, seed):
    torch.manual_seed(seed)
    module = CPSN(6, order, dilation).double()
    with torch.no_grad():
        module.weight.normal_(0, 0.6)
    x = torch.randn(11, 3, 6, dtype=torch.float64, requires_grad=True)
    h = module.membrane(x)
    q = quantize_power_of_two(module.weight, -4, 0)
    reference = reference_membrane(x, q, module.bias, dilation)
    torch.testing.assert_close(h, reference)
    grad = torch.randn_like(h)
    got = torch.autograd.grad(h, [x, module.weight, module.bias], grad)
    want = torch.autograd.grad(reference, [x, module.weight, module.bias], grad)
    for g, w in zip(got, want):  # the STE makes dH/dW equal the reference's dH/dQ(W)
        torch.testing.assert_close(g, w)
    spikes = module(x)
    assert torch.equal(spikes, (h >= 0).double())


@pytest.mark.parametrize("frac_bits,exp_range", [(0, (-4, 0)), (4, (-3, 1)), (6, (0, 2)),
                                                 (2, (-6, -2))])
def test_float_module_on_integer_grid_equals_integer_model(frac_bits, exp_range, seed):
    torch.manual_seed(seed)
    exp_min, exp_max = exp_range
    module = CPSN(10, 4, 2, exp_min=exp_min, exp_max=exp_max).double()
    unit = 2.0 ** (exp_min - frac_bits)
    with torch.no_grad():
        module.weight.normal_(0, 2.0 ** exp_max)
        module.weight[0] = 0  # disabled taps
        module.bias.copy_(torch.round(torch.randn(10) * 40) * unit)
    config = module.to_config(input_width=8, input_frac_bits=frac_bits)
    x_int = np.random.default_rng(seed).integers(-128, 128, size=(16, 5, 10))
    x_int[:, 0] = -128  # extremes
    spikes_int, membrane_int = cpsn_integer(config, x_int)
    x = torch.tensor(x_int, dtype=torch.float64) * 2.0 ** -frac_bits
    membrane = module.membrane(x).detach().numpy() / unit
    assert np.array_equal(membrane, membrane_int.astype(np.float64))
    assert np.array_equal(module(x).detach().numpy(), spikes_int)


def test_integer_model_samples_start_from_empty_history(rng):
    config = CPSNConfig.random(rng, channels=4, order=3, dilation=2)
    a = rng.integers(-128, 128, size=(9, 4))
    b = rng.integers(-128, 128, size=(9, 4))
    both = np.stack([a, b], axis=1)
    spikes, membrane = cpsn_integer(config, both)
    assert np.array_equal(membrane[:, 1], cpsn_integer(config, b)[1])
    assert np.array_equal(membrane[:1, 0], config.bias[None] + (
        config.signs[:, -1] * (a[0] << (config.exponents[:, -1] - config.exp_min)))[None])


def test_widths_bound_the_worst_case(rng):
    config = CPSNConfig.random(rng, channels=3, order=5, input_width=6, exp_min=-2, exp_max=2)
    worst = config.replace(signs=-np.ones((3, 5), dtype=np.int64),
                           exponents=np.full((3, 5), 2))
    _, membrane = cpsn_integer(worst, np.full((8, 3), -32))
    assert membrane.max() - worst.bias.max() == 5 * (32 << 4) == config.sum_range[1]
    lo, hi = config.membrane_range
    assert -(1 << (config.membrane_width - 1)) <= lo and hi < (1 << (config.membrane_width - 1))
    narrower = config.membrane_width - 1  # the width is also the smallest that works
    assert lo < -(1 << (narrower - 1)) or hi >= (1 << (narrower - 1))
    assert (config.term_width, config.bias_width, config.membrane_width) == (11, 13, 14)


def test_tables_round_trip_through_hex(rng, tmp_path):
    config = CPSNConfig.random(rng, channels=24, lanes=4, order=5, exp_min=-6, exp_max=1)
    packed = pack_tables(config)
    for table, words in packed.items():
        width = max(w.bit_length() for w in words) + 3
        write_hex(tmp_path / f"{table}.hex", words, width)
        assert read_hex(tmp_path / f"{table}.hex", width, config.groups) == words
    back = unpack_tables(config.replace(bias=np.zeros(24, dtype=np.int64)), packed)
    assert np.array_equal(back.signs, config.signs)
    assert np.array_equal(back.exponents, config.exponents)
    assert np.array_equal(back.bias, config.bias)


def test_malformed_hex_is_refused(tmp_path):
    (tmp_path / "bad.hex").write_text("0f\nzz\n")
    with pytest.raises(ValueError, match="bad.hex:2: not a hexadecimal word"):
        read_hex(tmp_path / "bad.hex", 8, 2)
    (tmp_path / "short.hex").write_text("0f\n")
    with pytest.raises(ValueError, match="expected 2 words, found 1"):
        read_hex(tmp_path / "short.hex", 8, 2)
    (tmp_path / "wide.hex").write_text("1ff\n00\n")
    with pytest.raises(ValueError, match="does not fit 8 bits"):
        read_hex(tmp_path / "wide.hex", 8, 2)


GOOD = dict(channels=4, order=2, signs=[[1, -1]] * 4, exponents=[[0, -1]] * 4, bias=[0] * 4)


@pytest.mark.parametrize("change,field,error", [
    (dict(order=0), "order", ValueError),
    (dict(order=1.5), "order", TypeError),
    (dict(channels=True), "channels", TypeError),
    (dict(lanes=3), "lanes", ValueError),
    (dict(lanes=8), "lanes", ValueError),
    (dict(dilation=0), "dilation", ValueError),
    (dict(input_width=1), "input_width", ValueError),
    (dict(exp_min=1, exp_max=0), "exp_max", ValueError),
    (dict(signs=[[2, 0]] * 4), "signs", ValueError),
    (dict(signs=[[1, 0, 1]] * 4), "signs", ValueError),
    (dict(signs=[[0.5, 1]] * 4), "signs", TypeError),
    (dict(exponents=[[1, 0]] * 4), "exponents", ValueError),
    (dict(exponents=[["a", "b"]] * 4), "exponents", TypeError),
    (dict(bias=[0] * 3), "bias", ValueError),
    (dict(bias=[1 << 20] * 4), "bias", ValueError),
    (dict(bias_width=0), "bias_width", ValueError),
    (dict(membrane_out="yes"), "membrane_out", TypeError),
])
def test_invalid_configuration_names_the_field(change, field, error):
    with pytest.raises(error, match=f"CPSNConfig.{field}"):
        CPSNConfig(**{**GOOD, **change})


def test_json_round_trip_and_unknown_keys(tmp_path, rng):
    config = CPSNConfig.random(rng, channels=8, lanes=2, order=3, membrane_out=True)
    config.save(tmp_path / "c.json")
    back = CPSNConfig.load(tmp_path / "c.json")
    assert back.to_json() == config.to_json()
    data = json.loads((tmp_path / "c.json").read_text())
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['ordr'\]"):
        CPSNConfig.from_json({**data, "ordr": 3})
    with pytest.raises(ValueError, match=r"missing key\(s\) \['bias'\]"):
        CPSNConfig.from_json({k: v for k, v in data.items() if k != "bias"})


def test_integer_model_refuses_out_of_range_inputs(rng):
    config = CPSNConfig.random(rng, channels=2, order=2, input_width=4)
    with pytest.raises(ValueError, match=r"signed 4-bit range \[-8, 7\]"):
        cpsn_integer(config, np.array([[8, 0]]))
    with pytest.raises(TypeError, match="must be integers"):
        cpsn_integer(config, np.array([[0.5, 0]]))


def test_float_module_rejects_nan_and_bad_shapes():
    module = CPSN(4, 2)
    with pytest.raises(ValueError, match="NaN"):
        module(torch.full((3, 1, 4), float("nan")))
    with pytest.raises(ValueError, match=r"\[T, \.\.\., 4\]"):
        module(torch.zeros(3, 1, 5))


def test_export_widens_the_default_bias_width_and_refuses_a_given_one():
    module = CPSN(2, 2)
    with torch.no_grad():
        module.bias.fill_(-1e6)
    config = module.to_config(input_width=8, input_frac_bits=4)
    assert config.bias[0] == -1e6 * 2 ** 8 and config.bias_width == 29  # -2.56e8 >= -2^28
    with pytest.raises(ValueError, match="CPSNConfig.bias"):
        module.to_config(input_width=8, input_frac_bits=4, bias_width=16)


def test_power_of_two_codes_match_quantiser(seed):
    torch.manual_seed(seed)
    w = torch.randn(200) * 2
    sign, exponent = power_of_two_codes(w, -5, 1)
    assert torch.equal(sign * torch.exp2(exponent.double()),
                       quantize_power_of_two(w.double(), -5, 1))
