"""Network builders, the neuron registry and the BatchNorm-threshold CPSN with its folding."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from spikeforge.golden.cpsn import CPSN
from spikeforge.golden.cpsn_bn import CPSNBN
from spikeforge.golden.cpsn_int import cpsn_integer
from spikeforge.golden.networks import (NEURONS, Heaviside, ModelConfig, NeuronConfig,
                                        build_model, sawtooth_dilation)
from spikeforge.golden.psn import MaskedPSN


def loop_conv(x, weight, dilation):
    """``Σ_i W[c][i]·X[t − (k−1−i)·d][c]`` written as a loop (neurons.md §2)."""
    order = weight.shape[1]
    h = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for i in range(order):
            source = t - (order - 1 - i) * dilation
            if source >= 0:
                h[t] = h[t] + weight[:, i] * x[source]
    return h


def trained_bn(seed, channels=6, order=3, dilation=2, quantize=False, **kw):
    """A CPSNBN with random weights, γ, β and running statistics from a few batches."""
    torch.manual_seed(seed)
    module = CPSNBN(channels, order, dilation, quantize=quantize, **kw).double()
    with torch.no_grad():
        module.weight.normal_(0, 0.5)
        module.bn_weight.uniform_(0.5, 2.0)
        module.bn_bias.uniform_(-1.5, 0.5)
    for _ in range(5):
        module(torch.randn(9, 4, channels, dtype=torch.float64) * 2 + 0.5)
    return module.eval()


def test_sawtooth_dilations():
    assert [sawtooth_dilation(layer) for layer in range(7)] == [1, 2, 3, 1, 2, 3, 1]
    assert [sawtooth_dilation(layer, 2) for layer in range(5)] == [1, 2, 1, 2, 1]
    assert [sawtooth_dilation(layer, 1) for layer in range(3)] == [1, 1, 1]
    with pytest.raises(ValueError, match="period >= 1"):
        sawtooth_dilation(0, 0)


@pytest.mark.parametrize("name", ["cpsn", "cpsn_bn"])
@pytest.mark.parametrize("period,want", [(None, [1, 2, 3, 1, 2]), (2, [1, 2, 1, 2, 1])])
def test_mlp_cpsn_layers_take_sawtooth_dilations(name, period, want):
    neuron = NeuronConfig(name=name, order=2, dilation_period=period)
    model = build_model(ModelConfig(neuron=neuron, hidden=(8,) * 5), 3, 4, 10)
    assert [m.dilation for _, m in model.neuron_layers()] == want
    receptive = 1 + sum(want)  # 1 + (k − 1)·Σ d_l with k = 2
    x = torch.zeros(12, 1, 3)
    x[0] = 5.0  # an impulse: the last layer at step t depends on it only if t < receptive
    model.eval()
    with torch.no_grad():
        base = model.layers(torch.zeros_like(x))
        moved = model.layers(x)
    changed = (moved != base).any(-1).any(-1)
    assert not changed[receptive:].any()


def test_bn_training_statistics_equal_batchnorm(seed):
    """Training mode normalises ``conv(X, W)`` with batch statistics, exactly BatchNorm1d."""
    torch.manual_seed(seed)
    module = CPSNBN(5, 3, 2, quantize=False).double()
    with torch.no_grad():
        module.weight.normal_(0, 0.7)
    reference = nn.BatchNorm1d(5).double()
    with torch.no_grad():
        reference.bias.fill_(-1.0)
    for _ in range(4):
        x = torch.randn(7, 6, 5, dtype=torch.float64) + 1
        h = module.membrane(x)
        raw = loop_conv(x, module.weight.detach(), 2)
        want = reference(raw.reshape(-1, 5)).reshape(raw.shape)
        torch.testing.assert_close(h, want)
    torch.testing.assert_close(module.running_mean, reference.running_mean)
    torch.testing.assert_close(module.running_var, reference.running_var)


def test_bn_module_gradients_reach_weight_and_affine(seed):
    torch.manual_seed(seed)
    module = CPSNBN(4, 2, 1)
    x = torch.randn(6, 3, 4)
    (module(x) * torch.randn(6, 3, 4)).sum().backward()
    for name in ("weight", "bn_weight", "bn_bias"):
        grad = getattr(module, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_folded_inference_equals_bn_module_without_quantisation(seed):
    module = trained_bn(seed)
    x = torch.randn(11, 5, 6, dtype=torch.float64)
    folded = module.to_cpsn()
    assert type(folded) is CPSN and not folded.quantize
    with torch.no_grad():
        h_bn, h_folded = module.membrane(x), folded.membrane(x)
        raw = loop_conv(x, module.weight, module.dilation)
        scale = module.bn_weight / torch.sqrt(module.running_var + module.eps)
        want = (raw - module.running_mean) * scale + module.bn_bias  # BatchNorm, eval mode
    torch.testing.assert_close(h_bn, want)
    torch.testing.assert_close(h_folded, want)
    clear = (want.abs() > 1e-9)  # no spike sits on the threshold at this precision
    assert clear.all()
    assert torch.equal(module(x), folded(x))
    assert torch.equal(folded(x), (want >= 0).double())


@pytest.mark.parametrize("frac_bits", [0, 3])
def test_folded_cpsn_spikes_are_what_the_hardware_gets(frac_bits, seed):
    module = trained_bn(seed, channels=8, order=3, dilation=2, quantize=True, exp_min=-5,
                        exp_max=2)
    folded = module.to_cpsn()
    x_int = np.random.default_rng(seed).integers(-128, 128, size=(20, 6, 8))
    x = torch.tensor(x_int, dtype=torch.float64) * 2.0 ** -frac_bits
    with torch.no_grad():
        assert torch.equal(module(x), folded(x))  # eval BN module == its folded CPSN
        on_grid = module.to_cpsn(input_frac_bits=frac_bits)
        unit = 2.0 ** (module.exp_min - frac_bits)
        assert torch.equal(on_grid.bias / unit, torch.round(folded.bias / unit))
        spikes = on_grid(x).numpy()
    config = on_grid.to_config(input_width=8, input_frac_bits=frac_bits)
    hardware, _ = cpsn_integer(config, x_int)
    assert np.array_equal(spikes, hardware)
    assert 0.05 < spikes.mean() < 0.95  # the comparison sees both spikes and silence


def test_bn_module_rejects_bad_arguments():
    with pytest.raises(ValueError, match="CPSNConfig.order"):
        CPSNBN(4, 0)
    with pytest.raises(ValueError, match="momentum"):
        CPSNBN(4, 2, momentum=0)
    with pytest.raises(ValueError, match=r"\[T, \.\.\., 4\]"):
        CPSNBN(4, 2)(torch.zeros(3, 2, 5))


@pytest.mark.parametrize("name", sorted(NEURONS))
@pytest.mark.parametrize("arch", ["mlp", "sdtcm"])
def test_every_neuron_builds_and_backpropagates(name, arch, seed):
    torch.manual_seed(seed)
    sizes = {"hidden": (12, 12)} if arch == "mlp" else {"width": 12, "blocks": 2}
    config = ModelConfig(neuron=NeuronConfig(name=name), arch=arch, readout="mean_spikes",
                         **sizes)
    model = build_model(config, 5, 3, 8)
    layers = [m for _, m in model.neuron_layers() if not isinstance(m, Heaviside)]
    assert len(layers) == 3 and all(isinstance(m, NEURONS[name].cls) for m in layers)
    out = model(torch.rand(8, 4, 5) * 3)
    assert out.shape == (4, 3)
    out.sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_sdtcm_block_follows_the_equations(seed):
    torch.manual_seed(seed)
    config = ModelConfig(neuron=NeuronConfig(name="prf"), arch="sdtcm", width=6, blocks=1,
                         norm="none")
    model = build_model(config, 4, 2, 10).eval()
    block = model.layers.block0
    u = torch.randn(10, 3, 6) * 4
    s = block.neuron(u)
    r = u + block.linear1(s)
    s2 = (r - 0.5 >= 0).float()
    torch.testing.assert_close(block(u), r + block.linear2(s2))


def test_readouts(seed):
    torch.manual_seed(seed)
    x = torch.rand(7, 2, 3)
    for readout in ("mean_membrane", "last_membrane"):
        model = build_model(ModelConfig(neuron=NeuronConfig(name="lif"), hidden=(5,),
                                        readout=readout), 3, 4, 7).eval()
        hidden = model.layers(x)
        h = model.readout.linear(hidden)
        want = h.mean(0) if readout == "mean_membrane" else h[-1]
        torch.testing.assert_close(model(x), want)


def test_masked_psn_lambda_follows_the_epochs():
    model = build_model(ModelConfig(neuron=NeuronConfig(name="masked_psn", order=3),
                                    hidden=(4,)), 2, 2, 6)
    neuron = dict(model.neuron_layers())["sn0"]
    assert isinstance(neuron, MaskedPSN) and neuron.k == 3
    lambdas = []
    for epoch in range(17):
        model.set_epoch(epoch, 17)
        lambdas.append(neuron.lambda_)
    assert lambdas[0] == 0 and lambdas[1] == 0.5 and lambdas[2:] == [1.0] * 15
    model.set_epoch(0, 1)
    assert neuron.lambda_ == 1.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="lif", order=3), "model.neuron.order is not an option of neuron 'lif'"),
    (dict(name="psn", tau=2.0), "model.neuron.tau is not an option of neuron 'psn'"),
    (dict(name="cpsn", fr_scale=1.0), "model.neuron.fr_scale"),
    (dict(name="nope"), "unknown neuron 'nope'"),
    (dict(name="cpsn", surrogate="tanh"), "unknown surrogate 'tanh'"),
    (dict(name="cpsn", order=0), "model.neuron.order must be >= 1"),
    (dict(name="lif", backend="cuda"), "model.neuron.backend: unknown backend 'cuda'"),
    (dict(name="cpsn_bn", backend="auto"), "model.neuron.backend is not an option"),
])
def test_neuron_config_rejects_options_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NeuronConfig(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(arch="mlp", width=8), "model.width is not an option of arch 'mlp'"),
    (dict(arch="sdtcm", hidden=(8,)), "model.hidden is not an option of arch 'sdtcm'"),
    (dict(readout="max"), "model.readout"),
    (dict(hidden=(8, 0)), "hidden widths"),
    (dict(dropout=1.0), "model.dropout"),
])
def test_model_config_rejects_keys_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(neuron=NeuronConfig(name="cpsn"), **kwargs)


def test_neuron_options_reach_the_constructor():
    neuron = NeuronConfig(name="prf", tau=3.0, v_threshold=0.5, fr_scale=0.25, alpha=4.0,
                          surrogate="sigmoid")
    model = build_model(ModelConfig(neuron=neuron, hidden=(4,)), 2, 2, 5)
    prf = dict(model.neuron_layers())["sn0"]
    assert (prf.tau, prf.v_threshold) == (3.0, 0.5)
    assert type(prf.surrogate_function).__name__ == "Sigmoid"
    assert prf.surrogate_function.alpha == 4.0
    assert math.isclose(NeuronConfig(name="cpsn").options()["exp_max"], 0)
    lif = build_model(ModelConfig(neuron=NeuronConfig(name="lif", backend="auto"),
                                  hidden=(4,)), 2, 2, 5)
    assert dict(lif.neuron_layers())["sn0"].backend == "auto"


def test_mlp_layers_can_mix_neurons():
    cpsn, prf = NeuronConfig("cpsn_bn", order=3), NeuronConfig("prf")
    config = ModelConfig(neuron=NeuronConfig("lif"), hidden=(8, 6), neurons=(cpsn, prf))
    model = build_model(config, in_features=4, outputs=3, steps=5)
    layers = dict(model.neuron_layers())
    assert type(layers["sn0"]).__name__ == "CPSNBN" and layers["sn0"].order == 3
    assert type(layers["sn1"]).__name__ == "PRF"
    assert config.neuron_label == "cpsn_bn+prf"
    assert model(torch.rand(5, 2, 4)).shape == (2, 3)
    with pytest.raises(ValueError, match="model.neurons lists 1 neuron"):
        ModelConfig(neuron=NeuronConfig("lif"), hidden=(8, 6), neurons=(cpsn,))
    with pytest.raises(ValueError, match="model.neurons is not an option of arch 'sdtcm'"):
        ModelConfig(neuron=NeuronConfig("prf"), arch="sdtcm", neurons=(prf,))
