"""Soft-reset LIF and its decoupled-reset form against a loop written from docs/neurons.md §4.

The decoupled form must give the sequential LIF's spikes bit for bit in float64 on random
inputs (T up to 4096, sparse to dense firing, both ways of computing U') and, since its
threshold pass is differentiated through the spike trace, the same surrogate gradients.
"""

import pytest
import torch

from spikeforge.golden.lif import LIF, DecoupledResetLIF, reset_free_potential
from spikeforge.golden.surrogate import ATan, Sigmoid

REPEATS = range(3)  # each repeat gets its own seed from conftest (printed on failure)


def reference_lif(c, tau, v_threshold, surrogate, detach_reset=False):
    """``u_t = β·(u_{t−1} − V_th·s_{t−1}) + c_t``, ``s_t = Θ(u_t − V_th)``, ``u_{−1} = s_{−1} = 0``.

    ``detach_reset`` drops the reset term from the backward pass, as SpikingJelly.
    """
    beta = 1 - 1 / tau
    u, s = torch.zeros_like(c[0]), torch.zeros_like(c[0])
    spikes, potentials = [], []
    for c_t in c:
        reset = s.detach() if detach_reset else s
        u = beta * (u - v_threshold * reset) + c_t
        s = surrogate(u - v_threshold)
        spikes.append(s)
        potentials.append(u)
    return torch.stack(spikes), torch.stack(potentials)


def random_input(seed, shape, mean=0.0, std=1.0):
    generator = torch.Generator().manual_seed(seed)
    return mean + std * torch.randn(*shape, generator=generator, dtype=torch.float64)


def assert_matches_reference(neuron, x, seed, *, detach_reset):
    neuron.store_v_seq = True
    x = x.clone().requires_grad_()
    upstream = random_input(seed + 100, x.shape)
    spikes = neuron(x)
    ref_spikes, ref_u = reference_lif(x, neuron.tau, neuron.v_threshold,
                                      neuron.surrogate_function, detach_reset)
    assert 0 < spikes.mean().item() < 1, f"seed={seed}: every spike alike, nothing compared"
    assert torch.equal(spikes, ref_spikes), f"seed={seed}: spikes differ"
    torch.testing.assert_close(neuron.v_seq, ref_u, rtol=1e-12, atol=1e-12,
                               msg=f"seed={seed}: membrane differs")
    (grad,) = torch.autograd.grad((spikes * upstream).sum(), x)
    (ref_grad,) = torch.autograd.grad((ref_spikes * upstream).sum(), x)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12,
                               msg=f"seed={seed}: input gradient differs")


@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("tau, v_threshold", [(2.0, 1.0), (7.0, 0.6)])
@pytest.mark.parametrize("repeat", REPEATS)
def test_lif_matches_loop(repeat, seed, tau, v_threshold, detach_reset):
    x = random_input(seed, (40, 3, 5), mean=0.5)
    assert_matches_reference(LIF(tau, v_threshold, detach_reset=detach_reset), x, seed,
                             detach_reset=detach_reset)


@pytest.mark.parametrize("conv_mode", ["scan", "fft"])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("repeat", REPEATS)
def test_decoupled_matches_loop_with_gradients(repeat, seed, detach_reset, conv_mode):
    """Same spikes, membrane and BPTT gradient as the sequential loop, either reset path."""
    x = random_input(seed, (64, 3, 5), mean=0.5)
    neuron = DecoupledResetLIF(3.0, 0.8, Sigmoid(), detach_reset, conv_mode)
    assert_matches_reference(neuron, x, seed, detach_reset=detach_reset)


# (tau, mean, std, lowest firing rate, highest firing rate): sparse, dense, large, slow decay.
REGIMES = {"sparse": (2.0, 0.0, 1.0, 0.05, 0.3), "dense": (2.0, 1.0, 0.5, 0.6, 0.8),
           "large": (10.0, 0.0, 20.0, 0.3, 0.6), "slow": (100.0, 1.0, 0.5, 0.9, 1.0)}


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("repeat", REPEATS[:2])
def test_decoupled_spikes_identical_to_sequential_for_long_sequences(repeat, seed, regime):
    tau, mean, std, low, high = REGIMES[regime]
    x = random_input(seed, (4096, 64), mean, std)  # cost is per step: neurons come cheap
    with torch.no_grad():
        sequential = LIF(tau, store_v_seq=True)
        expected = sequential(x)
        assert low < expected.mean().item() < high, f"seed={seed}: regime {regime} drifted"
        for conv_mode in ("scan", "fft"):
            decoupled = DecoupledResetLIF(tau, conv_mode=conv_mode, store_v_seq=True)
            spikes = decoupled(x)
            flips = (spikes != expected).nonzero()
            assert flips.numel() == 0, f"seed={seed}, {conv_mode}: first flip at {flips[0]}"
            torch.testing.assert_close(decoupled.v_seq, sequential.v_seq, rtol=1e-10,
                                       atol=1e-10)


def naive_float32_decoupled(x, tau, v_threshold=1.0):
    """The decoupled form with U' and A kept in float32 (the old behaviour, for contrast)."""
    beta = 1 - 1 / tau
    trace, spikes = torch.zeros_like(x[0]), []
    for u_free in reset_free_potential(x, beta, "scan"):
        spike = (u_free - (v_threshold * trace + v_threshold) >= 0).to(x.dtype)
        spikes.append(spike)
        trace = beta * (trace + spike)
    return torch.stack(spikes)


@pytest.mark.parametrize("conv_mode", ["scan", "fft"])
def test_float32_decoupled_is_as_accurate_as_float64_at_large_tau(seed, conv_mode):
    """τ = 100, dense firing: U' and V_th·A reach ~100 while u stays near V_th, so a float32
    threshold pass flips dozens of spikes; computed in float64 (as the module does), none flip
    against the float64 loop on the same float32 input."""
    generator = torch.Generator().manual_seed(seed)
    x = (1.0 + 0.5 * torch.randn(1024, 2048, generator=generator, dtype=torch.float64)).float()
    tau = 100.0
    with torch.no_grad():
        expected = LIF(tau)(x.double())
        assert 0.9 < expected.mean().item() < 1.0
        assert (naive_float32_decoupled(x, tau) != expected).sum() > 0, \
            f"seed={seed}: the float32 form flips nothing here, so this test cannot fail"
        neuron = DecoupledResetLIF(tau, conv_mode=conv_mode, store_v_seq=True)
        spikes = neuron(x)
    assert spikes.dtype == torch.float32 and neuron.v_seq.dtype == torch.float32
    flips = (spikes != expected).nonzero()
    assert flips.numel() == 0, f"seed={seed}: {len(flips)} flips, first at {flips[0].tolist()}"


def test_exact_ties_fire_in_both_forms():
    """Θ fires on u = V_th; with dyadic data (β = 1/2, T = 32) the scan form is exact too."""
    generator = torch.Generator().manual_seed(7)
    x = torch.randint(0, 4, (32, 64), generator=generator).to(torch.float64) / 2
    sequential = LIF(2.0, store_v_seq=True)
    expected = sequential(x)
    assert (sequential.v_seq == 1.0).sum() > 20, "too few exact ties to test"
    assert torch.equal(expected, (sequential.v_seq >= 1.0).to(x.dtype))
    assert torch.equal(DecoupledResetLIF(2.0, conv_mode="scan")(x), expected)
    constant = torch.ones(32, 1, dtype=torch.float64)
    assert torch.equal(LIF()(constant), constant)  # u_t = 1 = V_th at every step


@pytest.mark.parametrize("conv_mode", ["scan", "fft"])
@pytest.mark.parametrize("tau", [2.0, 50.0])
def test_reset_free_potential(conv_mode, tau):
    x = random_input(3, (300, 2, 3))
    beta = 1 - 1 / tau
    direct = torch.stack([sum(beta ** (t - j) * x[j] for j in range(t + 1))
                          for t in range(x.shape[0])])
    torch.testing.assert_close(reset_free_potential(x, beta, conv_mode), direct, rtol=1e-12,
                               atol=1e-12)


def run_steps(neuron, x):
    neuron.reset()
    neuron.step_mode = "s"
    out, potentials = [], []
    for x_t in x:
        out.append(neuron(x_t))
        potentials.append(neuron.v)
    return torch.stack(out), torch.stack(potentials)


@pytest.mark.parametrize("make", [lambda: LIF(), lambda: LIF(5.0, 0.7, detach_reset=True),
                                  lambda: DecoupledResetLIF(),
                                  lambda: DecoupledResetLIF(5.0, 0.7, detach_reset=True)],
                         ids=["lif", "lif-detach", "decoupled", "decoupled-detach"])
@pytest.mark.parametrize("repeat", REPEATS)
def test_step_mode_equals_multi_step(repeat, seed, make):
    neuron = make()
    neuron.store_v_seq = True
    x = random_input(seed, (30, 2, 3), mean=0.5).requires_grad_()
    multi = neuron(x)
    v_seq = neuron.v_seq
    (grad_multi,) = torch.autograd.grad(multi.sum() + v_seq.square().sum(), x)
    single, potentials = run_steps(neuron, x)
    (grad_single,) = torch.autograd.grad(single.sum() + potentials.square().sum(), x)
    assert 0 < multi.mean().item() < 1
    assert torch.equal(multi, single), f"seed={seed}"
    torch.testing.assert_close(potentials, v_seq, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_single, grad_multi, rtol=1e-10, atol=1e-12)


def test_multi_step_calls_start_from_rest():
    neuron = DecoupledResetLIF()
    x = random_input(0, (10, 4), mean=1.0)
    first = neuron(x)
    assert torch.equal(neuron(x), first)


@pytest.mark.parametrize("bad_tau", [1.0, 0.3, 0.0, float("inf"), float("nan")])
def test_bad_tau_is_named(bad_tau):
    for cls in (LIF, DecoupledResetLIF):
        with pytest.raises(ValueError, match="tau"):
            cls(tau=bad_tau)


def test_bad_arguments_are_named():
    for cls in (LIF, DecoupledResetLIF):
        with pytest.raises(ValueError, match="v_threshold"):
            cls(v_threshold=-1.0)
        with pytest.raises(ValueError, match="step_mode"):
            cls(step_mode="multi")
        with pytest.raises(ValueError, match="backend must be one of"):
            cls(backend="cuda")
        assert cls(backend="triton").backend == "triton"  # the fused kernel exists
    with pytest.raises(ValueError, match="conv_mode"):
        DecoupledResetLIF(conv_mode="cumsum")
    with pytest.raises(ValueError, match="conv_mode"):
        reset_free_potential(torch.zeros(3, 1), 0.5, "cumsum")


def test_bad_input_is_refused():
    x = torch.zeros(6, 2)
    x[3, 0] = float("nan")
    for neuron in (LIF(), DecoupledResetLIF()):
        with pytest.raises(ValueError, match="NaN"):
            neuron(x)
        with pytest.raises(ValueError, match="rank"):
            neuron(torch.zeros(6))
        with pytest.raises(TypeError, match="floating-point"):
            neuron(torch.zeros(6, 2, dtype=torch.int32))
    stepper = LIF(step_mode="s")
    stepper(torch.zeros(2))
    with pytest.raises(ValueError, match="reset"):
        stepper(torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        stepper(torch.tensor([float("nan"), 0.0]))


def test_default_surrogate_is_atan():
    assert isinstance(LIF().surrogate_function, ATan)
    assert isinstance(DecoupledResetLIF().surrogate_function, ATan)
