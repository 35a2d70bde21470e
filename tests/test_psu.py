"""PSU, IPSU and RPSU against loops written straight from docs/neurons.md §3.

The references sum the decay terms ``β^(t−j)`` one by one (no matrices) and fire on
``V − V_th > 0`` with a straight-through surrogate, so they share no code with the modules'
matrix form or their ``1 − Θ(V_th − V)`` firing; values, spikes and gradients must agree.
"""

import pytest
import torch

from spikeforge.golden.psu import IPSU, PSU, RPSU, psu_matrices
from spikeforge.golden.surrogate import ATan

REPEATS = range(3)  # each repeat gets its own seed from conftest (printed on failure)


def fire_strictly(v, v_threshold, surrogate):
    """``[V > V_th]`` forward, the surrogate's derivative at ``V − V_th`` backward."""
    smooth = surrogate(v - v_threshold)
    return (v > v_threshold).to(v.dtype) + smooth - smooth.detach()


def leaky_integral(x, tau):
    """``d1_t = Σ_{j<=t} (1/τ)·β^(t−j)·x_j``."""
    beta = 1 - 1 / tau
    return torch.stack([sum(beta ** (t - j) / tau * x[j] for j in range(t + 1))
                        for t in range(x.shape[0])])


def decayed_reset(r, tau):
    """``Σ_{j<t} −β^(t−j)·r_j`` (zero at t = 0)."""
    beta = 1 - 1 / tau
    return torch.stack([sum((-beta ** (t - j) * r[j] for j in range(t)), torch.zeros_like(r[0]))
                        for t in range(r.shape[0])])


def learned_lower_triangular(x, weight, bias):
    """``Σ_{j<=t} W[t][j]·x_j + b[t]``."""
    return torch.stack([bias[t, 0] + sum(weight[t, j] * x[j] for j in range(t + 1))
                        for t in range(x.shape[0])])


def reference_psu(x, tau, v_threshold, surrogate):
    d1 = leaky_integral(x, tau)
    v = d1 + v_threshold * decayed_reset(torch.sigmoid(d1), tau)
    return fire_strictly(v, v_threshold, surrogate), v


def reference_ipsu(x, weight, bias, tau, v_threshold, surrogate):
    v = learned_lower_triangular(x, weight, bias) + decayed_reset(x, tau)
    return fire_strictly(v, v_threshold, surrogate), v


def reference_rpsu(x, weight, bias, tau, v_threshold, surrogate):
    d2 = learned_lower_triangular(x, weight, bias)
    v = leaky_integral(x, tau) + decayed_reset(torch.sigmoid(d2), tau)
    return fire_strictly(v, v_threshold, surrogate), v


def random_input(seed, shape, scale=2.0):
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=generator, dtype=torch.float64)


def assert_matches_reference(neuron, reference, x, seed):
    """Spikes equal, membrane and gradients (input and parameters) close, mixed spikes."""
    neuron.store_v_seq = True
    x = x.clone().requires_grad_()
    upstream = random_input(seed + 100, x.shape)
    params = list(neuron.parameters())
    spikes = neuron(x)
    ref_spikes, ref_v = reference(x)
    assert 0 < spikes.mean().item() < 1, f"seed={seed}: every spike alike, nothing compared"
    assert torch.equal(spikes, ref_spikes), f"seed={seed}: spikes differ"
    torch.testing.assert_close(neuron.v_seq, ref_v, rtol=1e-12, atol=1e-12,
                               msg=f"seed={seed}: membrane differs")
    grads = torch.autograd.grad((spikes * upstream).sum(), [x, *params])
    ref_grads = torch.autograd.grad((ref_spikes * upstream).sum(), [x, *params])
    for name, grad, ref_grad in zip(["input"] + [n for n, _ in neuron.named_parameters()],
                                    grads, ref_grads):
        torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12,
                                   msg=f"seed={seed}: gradient of {name} differs")


@pytest.mark.parametrize("tau, v_threshold", [(2.0, 1.0), (5.0, 0.5)])
@pytest.mark.parametrize("repeat", REPEATS)
def test_psu_matches_loop(repeat, seed, tau, v_threshold):
    neuron = PSU(tau, v_threshold).double()
    x = random_input(seed, (9, 8, 8), scale=3.0)
    assert_matches_reference(
        neuron, lambda x: reference_psu(x, tau, v_threshold, ATan()), x, seed)


@pytest.mark.parametrize("repeat", REPEATS)
def test_ipsu_matches_loop(repeat, seed):
    torch.manual_seed(seed)
    neuron = IPSU(8, tau=3.0).double()
    x = random_input(seed, (8, 8, 8))
    assert_matches_reference(
        neuron, lambda x: reference_ipsu(x, neuron.weight, neuron.bias, 3.0, 1.0, ATan()), x,
        seed)


@pytest.mark.parametrize("repeat", REPEATS)
def test_rpsu_matches_loop(repeat, seed):
    torch.manual_seed(seed)
    neuron = RPSU(8).double()
    x = random_input(seed, (8, 8, 8))
    assert_matches_reference(
        neuron, lambda x: reference_rpsu(x, neuron.weight, neuron.bias, 2.0, 1.0, ATan()), x,
        seed)


def test_reconstructed_matrices():
    m1, m2 = psu_matrices(3, tau=2.0)
    assert torch.equal(m1, torch.tensor([[0.5, 0, 0], [0.25, 0.5, 0], [0.125, 0.25, 0.5]],
                                        dtype=torch.float64))
    assert torch.equal(m2, torch.tensor([[0, 0, 0], [-0.5, 0, 0], [-0.25, -0.5, 0]],
                                        dtype=torch.float64))


def test_fires_only_strictly_above_threshold():
    """``V = V_th`` exactly gives no spike (unlike Θ's >=), yet the gradient is the surrogate's."""
    neuron = PSU(tau=2.0, v_threshold=1.0, store_v_seq=True).double()
    x = torch.tensor([[2.0, 2.0 + 1e-12, 1.0]], dtype=torch.float64, requires_grad=True)
    spikes = neuron(x)  # one step: V = x/τ
    assert neuron.v_seq[0, 0].item() == 1.0
    assert spikes.tolist() == [[0.0, 1.0, 0.0]]
    (grad,) = torch.autograd.grad(spikes.sum(), x)
    assert grad[0, 0].item() == pytest.approx(0.5)  # ATan'(0) = α/2 = 1, times ∂V/∂x = 1/τ


def run_steps(neuron, x):
    neuron.reset()
    neuron.step_mode = "s"
    out, potentials = [], []
    for x_t in x:
        out.append(neuron(x_t))
        potentials.append(neuron.v)
    return torch.stack(out), torch.stack(potentials)


@pytest.mark.parametrize("make", [lambda: PSU(), lambda: PSU(tau=4.0, v_threshold=0.5),
                                  lambda: IPSU(7), lambda: RPSU(7)],
                         ids=["psu", "psu-tau4", "ipsu", "rpsu"])
@pytest.mark.parametrize("repeat", REPEATS)
def test_step_mode_equals_multi_step(repeat, seed, make):
    torch.manual_seed(seed)
    neuron = make().double()
    neuron.store_v_seq = True
    x = random_input(seed, (7, 2, 3)).requires_grad_()
    multi = neuron(x)
    v_seq = neuron.v_seq
    (grad_multi,) = torch.autograd.grad(multi.sum() + v_seq.square().sum(), x)
    single, potentials = run_steps(neuron, x)
    (grad_single,) = torch.autograd.grad(single.sum() + potentials.square().sum(), x)
    assert torch.equal(multi, single), f"seed={seed}"
    torch.testing.assert_close(potentials, v_seq, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_single, grad_multi, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("repeat", REPEATS)
def test_causal(repeat, seed):
    """Changing the input from step 4 on leaves the earlier membrane untouched."""
    torch.manual_seed(seed)
    x = random_input(seed, (8, 5))
    later = x.clone()
    later[4:] += 1.0
    for neuron in (PSU(), IPSU(8), RPSU(8)):
        neuron = neuron.double()
        neuron.store_v_seq = True
        neuron(x)
        before = neuron.v_seq
        neuron(later)
        assert torch.equal(before[:4], neuron.v_seq[:4]), type(neuron).__name__
        assert not torch.equal(before[4:], neuron.v_seq[4:]), type(neuron).__name__


def test_learned_neurons_stop_after_T_single_steps():
    for neuron in (IPSU(2, step_mode="s"), RPSU(2, step_mode="s")):
        neuron(torch.zeros(3))
        neuron(torch.zeros(3))
        with pytest.raises(OverflowError, match="reset"):
            neuron(torch.zeros(3))
        neuron.reset()
        assert neuron.time_step == 0 and neuron.history == []
        neuron(torch.zeros(3))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="T=4"):
        IPSU(4)(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="T=4"):
        RPSU(4)(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="rank"):
        PSU()(torch.zeros(5))
    x = torch.zeros(4, 2)
    x[2, 1] = float("nan")
    for neuron in (PSU(), IPSU(4), RPSU(4)):
        with pytest.raises(ValueError, match="NaN"):
            neuron(x)


@pytest.mark.parametrize("bad_tau", [1.0, 0.5, -2.0, float("inf"), float("nan")])
def test_bad_tau_is_named(bad_tau):
    for make in (lambda: PSU(tau=bad_tau), lambda: IPSU(4, tau=bad_tau),
                 lambda: RPSU(4, tau=bad_tau)):
        with pytest.raises(ValueError, match="tau"):
            make()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="v_threshold"):
        PSU(v_threshold=0.0)
    for bad_T in (0, -3, 1.5):
        with pytest.raises(ValueError, match="T must"):
            IPSU(bad_T)
        with pytest.raises(ValueError, match="T must"):
            RPSU(bad_T)
    with pytest.raises(NotImplementedError, match="no triton kernel"):
        RPSU(4, backend="triton")
