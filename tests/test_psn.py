"""PSN, MaskedPSN and SlidingPSN against loops written straight from docs/neurons.md §1.

Each reference computes ``H[t]`` term by term and fires through the same surrogate, so values,
spikes and surrogate gradients (input and parameters) must agree in float64. If SpikingJelly
imports, the modules are also compared with its ``neuron.{PSN, MaskedPSN, SlidingPSN}``.
"""

import math

import pytest
import torch

from spikeforge.golden.psn import PSN, MaskedPSN, SlidingPSN
from spikeforge.golden.surrogate import ATan

REPEATS = range(3)  # each repeat gets its own seed from conftest (printed on failure)


def reference_psn(x, weight, bias, surrogate):
    steps = x.shape[0]
    h = []
    for t in range(steps):
        h_t = bias[t, 0] + sum(weight[t, j] * x[j] for j in range(steps))
        h.append(h_t)
    h = torch.stack(h)
    return surrogate(h), h


def reference_masked_psn(x, weight, bias, k, lambda_, surrogate):
    steps = x.shape[0]
    h = []
    for t in range(steps):
        h_t = bias[t, 0]
        for j in range(steps):
            in_band = 1.0 if j <= t <= j + k - 1 else 0.0
            h_t = h_t + (lambda_ * in_band + 1.0 - lambda_) * weight[t, j] * x[j]
        h.append(h_t)
    h = torch.stack(h)
    return surrogate(h), h


def reference_sliding_psn(x, weight, bias, surrogate):
    k = weight.shape[0]
    h = []
    for t in range(x.shape[0]):
        h_t = bias
        for i in range(k):
            if t - k + 1 + i >= 0:
                h_t = h_t + weight[i] * x[t - k + 1 + i]
        h.append(h_t)
    h = torch.stack(h)
    return surrogate(h), h


def random_input(seed, shape, scale=2.0):
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=generator, dtype=torch.float64)


def assert_matches_reference(neuron, reference, x, seed):
    """Spikes equal, membrane and all gradients close, and the spikes are not all alike."""
    neuron = neuron.double()
    neuron.store_v_seq = True
    x = x.clone().requires_grad_()
    upstream = random_input(seed + 100, x.shape)
    params = list(neuron.parameters())
    spikes = neuron(x)
    ref_spikes, ref_h = reference(x)
    assert 0 < spikes.mean().item() < 1, f"seed={seed}: every spike alike, nothing compared"
    assert torch.equal(spikes, ref_spikes), f"seed={seed}: spikes differ"
    torch.testing.assert_close(neuron.v_seq, ref_h, rtol=1e-12, atol=1e-12,
                               msg=f"seed={seed}: membrane differs")
    grads = torch.autograd.grad((spikes * upstream).sum(), [x, *params])
    ref_grads = torch.autograd.grad((ref_spikes * upstream).sum(), [x, *params])
    for name, grad, ref_grad in zip(["input"] + [n for n, _ in neuron.named_parameters()],
                                    grads, ref_grads):
        torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12,
                                   msg=f"seed={seed}: gradient of {name} differs")


def randomise_bias(neuron, seed):
    """Spread the thresholds so that a short test sequence has both spikes and silence."""
    generator = torch.Generator().manual_seed(seed + 200)
    with torch.no_grad():
        neuron.bias.copy_(0.5 * torch.randn(neuron.bias.shape, generator=generator))


@pytest.mark.parametrize("repeat", REPEATS)
def test_psn_matches_loop(repeat, seed):
    torch.manual_seed(seed)
    neuron = PSN(T=6)
    randomise_bias(neuron, seed)
    x = random_input(seed, (6, 3, 4))
    assert_matches_reference(
        neuron, lambda x: reference_psn(x, neuron.weight, neuron.bias, ATan()), x, seed)


@pytest.mark.parametrize("lambda_", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("repeat", REPEATS)
def test_masked_psn_matches_loop(repeat, seed, lambda_):
    torch.manual_seed(seed)
    neuron = MaskedPSN(k=3, T=7, lambda_init=lambda_)
    randomise_bias(neuron, seed)
    x = random_input(seed, (7, 5))
    assert_matches_reference(
        neuron,
        lambda x: reference_masked_psn(x, neuron.weight, neuron.bias, 3, lambda_, ATan()),
        x, seed)


@pytest.mark.parametrize("k, steps", [(4, 9), (1, 5), (6, 3)])
@pytest.mark.parametrize("repeat", REPEATS)
def test_sliding_psn_matches_loop(repeat, seed, k, steps):
    torch.manual_seed(seed)
    neuron = SlidingPSN(k)
    with torch.no_grad():
        neuron.weight.uniform_(0.5, 1.5)  # weights large enough for some spikes at every k
    x = random_input(seed, (steps, 4, 6))
    assert_matches_reference(
        neuron, lambda x: reference_sliding_psn(x, neuron.weight, neuron.bias, ATan()), x, seed)


def test_initialisation_follows_the_paper():
    torch.manual_seed(0)
    steps = 16
    for neuron in (PSN(steps), MaskedPSN(4, steps)):
        bound = 1 / math.sqrt(steps)
        assert neuron.weight.shape == (steps, steps)
        assert neuron.weight.abs().max() <= bound
        assert neuron.weight.abs().max() > 0.8 * bound
        assert torch.equal(neuron.bias, torch.full((steps, 1), -1.0))
    sliding = SlidingPSN(5)
    assert torch.equal(sliding.weight.detach(), torch.tensor([1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0]))
    assert sliding.bias.shape == () and sliding.bias.item() == -1.0
    kaiming = SlidingPSN(5, exp_init=False).weight
    assert kaiming.shape == (5,) and kaiming.abs().max() <= 1 / math.sqrt(5)


def test_masked_weight_keeps_the_band_when_lambda_is_one():
    neuron = MaskedPSN(k=2, T=4, lambda_init=1.0)
    band = torch.tensor([[1.0, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]])
    assert torch.equal(neuron.masked_weight(), neuron.weight * band)
    neuron.lambda_ = 0.0
    assert torch.equal(neuron.masked_weight(), neuron.weight)


def test_lambda_schedule():
    assert [MaskedPSN.lambda_schedule(e, 17) for e in (0, 1, 2, 3, 16)] == [0.0, 0.5, 1.0, 1.0,
                                                                            1.0]
    with pytest.raises(ValueError, match="epochs"):
        MaskedPSN.lambda_schedule(0, 1)
    with pytest.raises(ValueError, match="epoch"):
        MaskedPSN.lambda_schedule(5, 5)


def run_steps(neuron, x):
    neuron.reset()
    neuron.step_mode = "s"
    out, potentials = [], []
    for x_t in x:
        out.append(neuron(x_t))
        potentials.append(neuron.v)
    return torch.stack(out), torch.stack(potentials)


@pytest.mark.parametrize("make", [lambda: SlidingPSN(3), lambda: SlidingPSN(4, exp_init=False),
                                  lambda: MaskedPSN(3, 8, lambda_init=1.0)],
                         ids=["sliding", "sliding-kaiming", "masked"])
@pytest.mark.parametrize("repeat", REPEATS)
def test_step_mode_equals_multi_step(repeat, seed, make):
    torch.manual_seed(seed)
    neuron = make().double()
    neuron.store_v_seq = True
    x = random_input(seed, (8, 2, 3)).requires_grad_()
    multi = neuron(x)
    v_seq = neuron.v_seq
    (grad_multi,) = torch.autograd.grad(multi.sum() + v_seq.square().sum(), x)
    single, potentials = run_steps(neuron, x)
    (grad_single,) = torch.autograd.grad(single.sum() + potentials.square().sum(), x)
    assert torch.equal(multi, single), f"seed={seed}"
    torch.testing.assert_close(potentials, v_seq, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_single, grad_multi, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("repeat", REPEATS)
def test_causality(repeat, seed):
    """Changing the input from step 4 on changes no earlier membrane, except in the PSN."""
    torch.manual_seed(seed)
    x = random_input(seed, (8, 5))
    later = x.clone()
    later[4:] += 1.0
    for neuron, causal in ((SlidingPSN(3), True), (MaskedPSN(3, 8, lambda_init=1.0), True),
                           (PSN(8), False), (MaskedPSN(3, 8, lambda_init=0.5), False)):
        neuron = neuron.double()
        neuron.store_v_seq = True
        neuron(x)
        before = neuron.v_seq
        neuron(later)
        assert torch.equal(before[:4], neuron.v_seq[:4]) == causal, type(neuron).__name__
        assert neuron.causal == causal


def test_single_step_refused_when_not_causal():
    with pytest.raises(ValueError, match="not causal"):
        PSN(4, step_mode="s")
    with pytest.raises(ValueError, match="not causal"):
        MaskedPSN(2, 4, lambda_init=0.5, step_mode="s")
    neuron = MaskedPSN(2, 4, lambda_init=1.0, step_mode="s")
    neuron(torch.ones(3))
    neuron.lambda_ = 0.9
    with pytest.raises(ValueError, match="not causal"):
        neuron(torch.ones(3))


def test_masked_psn_single_step_stops_after_T_steps():
    neuron = MaskedPSN(2, 3, lambda_init=1.0, step_mode="s")
    for _ in range(3):
        neuron(torch.zeros(2))
    with pytest.raises(OverflowError, match="reset"):
        neuron(torch.zeros(2))
    neuron.reset()
    assert neuron.time_step == 0 and neuron.queue == [] and neuron.v is None
    neuron(torch.zeros(2))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="T=4"):
        PSN(4)(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="T=4"):
        MaskedPSN(2, 4)(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="rank"):
        SlidingPSN(2)(torch.zeros(5))
    x = torch.zeros(4, 2)
    x[1, 0] = float("nan")
    for neuron in (PSN(4), MaskedPSN(2, 4), SlidingPSN(2)):
        with pytest.raises(ValueError, match="NaN"):
            neuron(x)
    with pytest.raises(TypeError, match="floating-point"):
        SlidingPSN(2)(torch.zeros(4, 2, dtype=torch.int64))
    stepper = SlidingPSN(2, step_mode="s")
    stepper(torch.zeros(3))
    with pytest.raises(ValueError, match="reset"):
        stepper(torch.zeros(4))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_arguments_name_themselves(bad):
    with pytest.raises(ValueError, match="T must"):
        PSN(bad)
    with pytest.raises(ValueError, match="k must"):
        SlidingPSN(bad)
    with pytest.raises(ValueError, match="k must"):
        MaskedPSN(bad, 4)
    with pytest.raises(ValueError, match="T must"):
        MaskedPSN(1, bad)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="k must"):
        MaskedPSN(5, 4)
    with pytest.raises(ValueError, match="lambda_"):
        MaskedPSN(2, 4, lambda_init=1.5)
    with pytest.raises(ValueError, match="step_mode"):
        SlidingPSN(2, step_mode="x")


def test_backends():
    with pytest.raises(NotImplementedError, match="no triton kernel"):
        SlidingPSN(2, backend="triton")
    with pytest.raises(ValueError, match="backend"):
        PSN(4, backend="cuda")
    x = random_input(0, (4, 3))
    neuron = PSN(4).double()
    expected = neuron(x)
    neuron.backend = "auto"
    assert torch.equal(neuron(x), expected)


def test_v_seq_kept_only_on_request():
    neuron = SlidingPSN(2)
    neuron(torch.ones(3, 2))
    assert neuron.v_seq is None
    neuron.store_v_seq = True
    neuron(torch.ones(3, 2))
    assert torch.equal(neuron.v_seq, torch.tensor([[0.0, 0.0], [0.5, 0.5], [0.5, 0.5]]))
    neuron.reset()
    assert neuron.v_seq is None


# --- SpikingJelly, when it imports -----------------------------------------------------------

def spikingjelly_neuron():
    return pytest.importorskip("spikingjelly.activation_based.neuron")


@pytest.mark.parametrize("repeat", REPEATS)
def test_same_initialisation_as_spikingjelly(repeat, seed):
    sj = spikingjelly_neuron()
    pairs = [(lambda: PSN(8), lambda: sj.PSN(8)),
             (lambda: MaskedPSN(3, 8), lambda: sj.MaskedPSN(3, 8)),
             (lambda: SlidingPSN(5), lambda: sj.SlidingPSN(5)),
             (lambda: SlidingPSN(5, exp_init=False), lambda: sj.SlidingPSN(5, exp_init=False))]
    for ours, theirs in pairs:
        torch.manual_seed(seed)
        a = ours()
        torch.manual_seed(seed)
        b = theirs()
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias), type(a).__name__


@pytest.mark.parametrize("repeat", REPEATS)
def test_same_outputs_and_gradients_as_spikingjelly(repeat, seed):
    sj = spikingjelly_neuron()
    torch.manual_seed(seed)
    pairs = [(PSN(8), sj.PSN(8)), (MaskedPSN(3, 8, 0.4), sj.MaskedPSN(3, 8, 0.4, step_mode="m")),
             (SlidingPSN(4, exp_init=False), sj.SlidingPSN(4, exp_init=False, step_mode="m"))]
    for ours, theirs in pairs:
        ours, theirs = ours.double(), theirs.double()
        randomise_bias(ours, seed)
        theirs.load_state_dict(ours.state_dict(), strict=False)
        x = random_input(seed, (8, 3, 2)).requires_grad_()
        upstream = random_input(seed + 1, x.shape)
        spikes, ref_spikes = ours(x), theirs(x)
        assert torch.equal(spikes, ref_spikes), type(ours).__name__
        grads = torch.autograd.grad((spikes * upstream).sum(), [x, ours.weight, ours.bias])
        ref_grads = torch.autograd.grad((ref_spikes * upstream).sum(),
                                        [x, theirs.weight, theirs.bias])
        for grad, ref_grad in zip(grads, ref_grads):
            torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("repeat", REPEATS)
def test_same_single_steps_as_spikingjelly(repeat, seed):
    sj = spikingjelly_neuron()
    torch.manual_seed(seed)
    x = random_input(seed, (8, 3, 2))
    for ours, theirs in ((SlidingPSN(3, exp_init=False), sj.SlidingPSN(3, exp_init=False)),
                         (MaskedPSN(3, 8, 1.0), sj.MaskedPSN(3, 8, 1.0))):
        ours, theirs = ours.double(), theirs.double()
        theirs.load_state_dict(ours.state_dict(), strict=False)
        spikes, _ = run_steps(ours, x)
        assert torch.equal(spikes, torch.stack([theirs(x_t) for x_t in x])), type(ours).__name__


@pytest.mark.parametrize("repeat", REPEATS)
def test_spikingjelly_state_dicts_load_strictly(repeat, seed):
    """SpikingJelly's own state dicts (MaskedPSN's with its mask0/mask1 buffers) load with
    strict=True and give SpikingJelly's outputs; masks of another k are refused."""
    sj = spikingjelly_neuron()
    torch.manual_seed(seed)
    pairs = [(sj.PSN(8), PSN(8)), (sj.MaskedPSN(3, 8, 0.4, step_mode="m"), MaskedPSN(3, 8)),
             (sj.SlidingPSN(4, exp_init=False, step_mode="m"), SlidingPSN(4))]
    for theirs, ours in pairs:
        theirs = theirs.double()
        randomise_bias(theirs, seed)
        state = theirs.state_dict()
        keys = set(state)
        if isinstance(ours, MaskedPSN):
            assert {"mask0", "mask1", "_lambda_"} <= keys  # what SpikingJelly 2.0 stores
        ours = ours.double()
        result = ours.load_state_dict(state, strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        assert set(state) == keys  # the caller's dict is left whole
        x = random_input(seed, (8, 3, 2))
        spikes = ours(x)
        assert 0 < spikes.mean() < 1
        assert torch.equal(spikes, theirs(x)), type(ours).__name__
    assert pairs[1][1].lambda_ == float(torch.tensor(0.4, dtype=torch.float32))
    band = sj.MaskedPSN(2, 8, 0.4).state_dict()
    with pytest.raises(RuntimeError, match=r"mask0: .*band mask M_k of this MaskedPSN \(k=3"):
        MaskedPSN(3, 8).load_state_dict(band)
    with pytest.raises(RuntimeError, match=r"mask0: .*expected \[6, 6\]"):
        MaskedPSN(3, 6).load_state_dict(sj.MaskedPSN(3, 8).state_dict())
    bad_lambda = sj.MaskedPSN(3, 8).state_dict()
    bad_lambda["_lambda_"] = torch.tensor(1.5)
    neuron = MaskedPSN(3, 8, lambda_init=0.25)
    with pytest.raises(RuntimeError, match=r"_lambda_: lambda_ must be one number in \[0, 1\]"):
        neuron.load_state_dict(bad_lambda)
    assert neuron.lambda_ == 0.25
