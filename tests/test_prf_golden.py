"""PRF golden models: float paths against each other, integer model against its own definition.

Seeded: each test derives its seed from ``SPIKEFORGE_SEED`` (default below) and its name, and
prints it, so pytest shows it with any failure.
"""

import itertools
import json
import math
import os
import zlib
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from spikeforge.golden.fixed import signed_range
from spikeforge.golden.prf import MODES, PRF, param_groups, prf_membrane
from spikeforge.golden.prf_int import csd_digits, csd_quantise, csd_value, prf_integer
from spikeforge.golden.prf_config import PRFConfig

BASE_SEED = int(os.environ.get("SPIKEFORGE_SEED", "20241003"))


@pytest.fixture
def rng(request):
    seed = BASE_SEED + zlib.crc32(request.node.name.encode())
    print(f"seed = {seed} (SPIKEFORGE_SEED={BASE_SEED}, test {request.node.name})")
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def _random_prf(rng, channels, delta_range=(1e-3, 1.0)):
    """A float64 PRF whose Δ spans slow and fast channels and θ spans the whole circle."""
    module = PRF(channels).double()
    with torch.no_grad():
        module.log_delta.copy_(torch.from_numpy(rng.uniform(*np.log(delta_range), channels)))
        module.log_theta.copy_(torch.from_numpy(np.log(rng.uniform(0.05, 3.1, channels)
                                                       / module.log_delta.exp().numpy())))
    return module


def _round_half_up(value: int, shift: int) -> int:
    """Written out again, not imported: the tests check the model's rounding, not reuse it."""
    return (value + (1 << (shift - 1))) >> shift if shift > 0 else value << -shift


# -- float model ----------------------------------------------------------------------------

def test_float_paths_agree_in_float64(rng):
    module = _random_prf(rng, channels=6)
    x = torch.from_numpy(rng.normal(0, 20, (200, 3, 6)))
    results = {}
    for mode in MODES:
        module.mode = mode
        results[mode] = module(x, return_membrane=True)
    spikes_ref, membrane_ref = results["recurrence"]
    assert 0.02 < spikes_ref.mean() < 0.98
    decided = (membrane_ref - module.v_threshold).abs() > 1e-9  # a tie could flip either way
    for mode in ("fft", "scan"):
        spikes, membrane = results[mode]
        torch.testing.assert_close(membrane, membrane_ref, rtol=0, atol=1e-10)
        assert torch.equal(spikes[decided], spikes_ref[decided]), mode


def test_float_gradients_agree_across_paths(rng):
    module = _random_prf(rng, channels=4)
    x_data = torch.from_numpy(rng.normal(0, 20, (64, 2, 4)))
    spike_weight = torch.from_numpy(rng.normal(size=x_data.shape))
    membrane_weight = torch.from_numpy(rng.normal(size=x_data.shape))
    grads = {}
    for mode in MODES:
        module.mode = mode
        module.zero_grad()
        x = x_data.clone().requires_grad_(True)
        spikes, membrane = module(x, return_membrane=True)
        ((spikes * spike_weight).sum() + (membrane * membrane_weight).sum()).backward()
        grads[mode] = [x.grad, module.log_delta.grad.clone(), module.log_theta.grad.clone()]
    for mode in ("fft", "scan"):
        for got, want, name in zip(grads[mode], grads["recurrence"], ("x", "log_delta",
                                                                      "log_theta")):
            assert got.abs().sum() > 0, (mode, name)
            torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-9, msg=f"{mode}: {name}")


@pytest.mark.parametrize("mode", MODES)
def test_float_gradcheck(rng, mode):
    x = torch.from_numpy(rng.normal(size=(6, 2, 3))).requires_grad_(True)
    log_delta = torch.from_numpy(np.log([0.05, 0.3, 1.2])).requires_grad_(True)
    log_theta = torch.from_numpy(np.log([0.5, 2.0, 9.0])).requires_grad_(True)

    def membrane(x, log_delta, log_theta):
        return prf_membrane(x, log_delta.exp(), log_theta.exp(), 2.0, mode).real

    assert torch.autograd.gradcheck(membrane, (x, log_delta, log_theta))


def test_single_step_matches_multi_step(rng):
    module = _random_prf(rng, channels=5)
    x = torch.from_numpy(rng.normal(0, 10, (40, 2, 5)))
    spikes_ref, membrane_ref = module(x, return_membrane=True)
    module.step_mode = "s"
    for _ in range(2):  # the second pass checks that reset() really starts over
        module.reset()
        steps = [module(x_t, return_membrane=True) for x_t in x]
        torch.testing.assert_close(torch.stack([m for _, m in steps]), membrane_ref,
                                   rtol=0, atol=1e-12)
        assert torch.equal(torch.stack([s for s, _ in steps]), spikes_ref)


def test_delta_one_theta_zero_is_lif_without_reset(rng):
    """The paper's theorem: Δ = 1, θ = 0 gives u_t = β·u_{t−1} + c_t with β = e^(−1/τ)."""
    tau = 3.0
    module = PRF(4, tau=tau).double()
    with torch.no_grad():
        module.log_delta.zero_()
        module.log_theta.fill_(-math.inf)
    x = torch.from_numpy(rng.normal(0.3, 1, (50, 2, 4)))
    beta = math.exp(-1 / tau)
    leaky, state = [], torch.zeros_like(x[0])
    for x_t in x:
        state = beta * state + x_t
        leaky.append(state)
    leaky = torch.stack(leaky)
    for mode in MODES:
        module.mode = mode
        spikes, membrane = module(x, return_membrane=True)
        torch.testing.assert_close(membrane, leaky, rtol=0, atol=1e-12, msg=mode)
        assert torch.equal(spikes, (leaky >= 1).double()), mode


@pytest.mark.parametrize("mode", ["recurrence", "scan"])
def test_float_threshold_is_inclusive(mode):
    """Θ(0) = 1: a membrane exactly at V_th fires (Δ = 1 makes u_0 = c_0 exactly)."""
    module = PRF(1, mode=mode).double()
    with torch.no_grad():
        module.log_delta.zero_()
    x = torch.tensor([[[1.0], [1 - 1e-12]]], dtype=torch.float64)  # [T=1, N=2, C=1]
    spikes, membrane = module(x, return_membrane=True)
    assert membrane[0, 0, 0].item() == 1.0
    assert spikes[0, :, 0].tolist() == [1.0, 0.0]


def test_extra_dimensions_fold_into_batch(rng):
    module = _random_prf(rng, channels=3)
    x = torch.from_numpy(rng.normal(0, 10, (20, 2, 4, 3)))
    spikes, membrane = module(x, return_membrane=True)
    assert spikes.shape == x.shape
    _, membrane_slice = module(x[:, 1, 2:3], return_membrane=True)
    torch.testing.assert_close(membrane[:, 1, 2:3], membrane_slice, rtol=0, atol=1e-12)


def test_param_groups_separate_neuron_parameters():
    model = nn.Sequential(nn.Linear(4, 6), PRF(6), nn.Linear(6, 6), PRF(6))
    groups = param_groups(model)
    neuron = {id(p) for p in groups[1]["params"]}
    expected = {id(m.log_delta) for m in model if isinstance(m, PRF)} | {
        id(m.log_theta) for m in model if isinstance(m, PRF)}
    assert neuron == expected
    assert groups[1]["lr"] == 1e-3 and groups[1]["weight_decay"] == 0.0
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.parameters()))
    assert not neuron & {id(p) for p in groups[0]["params"]}
    torch.optim.AdamW(groups, lr=1e-2, weight_decay=0.1)  # the groups are optimizer-ready


def test_float_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        PRF(3, mode="conv")
    with pytest.raises(ValueError, match="PRF mode"):
        PRF(3).mode = "conv"
    with pytest.raises(ValueError, match="step_mode"):
        PRF(3, step_mode="x")
    with pytest.raises(ValueError, match="3 channels"):
        PRF(3)(torch.zeros(5, 2, 4))
    bad = [({"channels": 0}, "channels"), ({"channels": 2.0}, "channels"),
           ({"tau": 0.0}, "tau"), ({"tau": math.inf}, "tau"), ({"v_threshold": -1.0},
                                                             "v_threshold"),
           ({"fr_scale": 0.0}, "fr_scale"), ({"delta_min": 0.0}, "delta_min"),
           ({"delta_min": 0.2, "delta_max": 0.1}, "delta_max"), ({"backend": "cuda"}, "backend")]
    for changes, name in bad:
        with pytest.raises(ValueError, match=name):
            PRF(**{"channels": 3, **changes})


def test_follows_the_parallel_neuron_contract(rng):
    """PRF is a ParallelNeuron: the common input checks, store_v_seq and reset()."""
    from spikeforge.golden.base import ParallelNeuron
    module = _random_prf(rng, channels=3)
    assert isinstance(module, ParallelNeuron) and module.causal
    x = torch.from_numpy(rng.normal(0, 10, (30, 2, 3)))
    spikes, membrane = module(x, return_membrane=True)
    assert module.v_seq is None  # kept only on request
    module.store_v_seq = True
    assert torch.equal(module(x), spikes)
    assert torch.equal(module.v_seq, membrane)
    module.reset()
    assert module.v_seq is None
    module.step_mode = "s"
    for x_t in x[:3]:
        module(x_t)
    torch.testing.assert_close(module.v, membrane[2], rtol=0, atol=1e-12)
    assert module.state is not None and module.state.is_complex()
    with pytest.raises(ValueError, match="reset"):
        module(x[0, :1])  # another batch size while holding state
    module.reset()
    assert module.state is None and module.v is None
    assert torch.equal(module(x[0]), spikes[0])
    module.reset()
    module.step_mode = "m"
    nan = x.clone()
    nan[4, 1, 2] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        module(nan)
    with pytest.raises(ValueError, match="rank"):
        module(x[0, 0])
    with pytest.raises(TypeError, match="floating-point"):
        module(x.long())
    assert module.backends == ("torch", "triton")
    module.backend = "auto"  # a CPU input runs the torch path
    assert torch.equal(module(x), spikes)


# -- integer model: helpers -------------------------------------------------------------------

def _paper_config(rng, channels=6, **formats):
    """Parameters as the paper initialises them, plus one fast channel, quantised."""
    log_delta = rng.uniform(math.log(1e-3), math.log(1e-1), channels)
    log_delta[0] = math.log(0.7)
    log_theta = np.log(2 * math.pi * (1 - rng.random(channels)))
    return PRFConfig.from_float(log_delta, log_theta, **formats), log_delta, log_theta


def _multiply(config):
    """coef × value as the hardware computes it: a DSP product, or a sum of shifted copies."""
    if config.coef_mode == "dsp":
        return lambda coef, value, frac: coef * value
    return lambda coef, value, frac: sum(sign * (value << (frac - shift))
                                         for sign, shift in csd_digits(coef, frac))


def _naive_tiles(config, x):
    """The tile formula of docs/prf_fixed_point.md §4, element by element in Python ints."""
    steps, batch, channels = x.shape
    parallel, frac = config.time_parallelism, config.coef_frac_bits
    power_re, power_im = (p.tolist() for p in config.powers)
    multiply = _multiply(config)
    out_u = np.zeros(x.shape, dtype=np.int64)
    out_r = np.zeros(x.shape, dtype=np.int64)
    padded = -(-steps // parallel) * parallel
    for n, c in itertools.product(range(batch), range(channels)):
        drive = [_round_half_up(multiply(int(config.delta[c]), int(x[t, n, c]),
                                         config.delta_frac_bits), config.input_shift)
                 for t in range(steps)] + [0] * (padded - steps)
        u = r = 0
        for start in range(0, padded, parallel):
            tile = []
            for j in range(parallel):
                a, b = power_re[j + 1][c], power_im[j + 1][c]
                tile_u = _round_half_up(multiply(a, u, frac) - multiply(b, r, frac), frac)
                tile_r = _round_half_up(multiply(b, u, frac) + multiply(a, r, frac), frac)
                for m in range(j + 1):
                    if m == j:
                        tile_u += drive[start + m]
                    else:
                        lag = j - m
                        tile_u += _round_half_up(multiply(power_re[lag][c], drive[start + m],
                                                          frac), frac)
                        tile_r += _round_half_up(multiply(power_im[lag][c], drive[start + m],
                                                          frac), frac)
                tile.append((tile_u, tile_r))
                if start + j < steps:
                    out_u[start + j, n, c], out_r[start + j, n, c] = tile_u, tile_r
            u, r = tile[-1]
    return out_u, out_r


# -- integer model ----------------------------------------------------------------------------

@pytest.mark.parametrize("coef_mode", ["dsp", "shift_add"])
def test_integer_p1_is_the_plain_recurrence(rng, coef_mode):
    config, _, _ = _paper_config(rng, channels=4, coef_mode=coef_mode, csd_terms=3)
    x = rng.integers(*config.input_range, size=(300, 2, 4), endpoint=True)
    spikes, u_model, r_model = prf_integer(config, x)
    f = config.coef_frac_bits
    for n, c in itertools.product(range(2), range(4)):
        phi_re, phi_im = int(config.phi_re[c]), int(config.phi_im[c])
        u = r = 0
        for t in range(300):
            drive = _round_half_up(int(config.delta[c]) * int(x[t, n, c]), config.input_shift)
            u, r = (_round_half_up(phi_re * u - phi_im * r, f) + drive,
                    _round_half_up(phi_im * u + phi_re * r, f))
            assert (u_model[t, n, c], r_model[t, n, c]) == (u, r), (t, n, c)
            assert spikes[t, n, c] == (u >= config.v_th[c])
    assert 0 < spikes.mean() < 1


@pytest.mark.parametrize("coef_mode", ["dsp", "shift_add"])
@pytest.mark.parametrize("parallel", [1, 2, 4, 8])
def test_integer_tiles_match_the_naive_tile_formula(rng, coef_mode, parallel):
    """37 steps: the last tile is partial for every P > 1; shift_add multiplies by shifting only."""
    config, _, _ = _paper_config(rng, channels=3, coef_mode=coef_mode, csd_terms=2,
                                 time_parallelism=parallel)
    x = rng.integers(*config.input_range, size=(37, 2, 3), endpoint=True)
    spikes, u, r = prf_integer(config, x)
    naive_u, naive_r = _naive_tiles(config, x)
    np.testing.assert_array_equal(u, naive_u)
    np.testing.assert_array_equal(r, naive_r)
    np.testing.assert_array_equal(spikes, (naive_u >= config.v_th).astype(np.int64))
    # a [T, C] input is one sample
    single = prf_integer(config, x[:, 1])
    np.testing.assert_array_equal(single[1], u[:, 1])


def test_all_time_parallelisms_agree_when_no_product_rounds(rng):
    """Poles ±1/2 and ±i/2 and inputs that are multiples of 2^16: every product is exact, so the
    tile definition demands identical results for every P, equal to the exact complex sum."""
    frac = 15
    phi_re = [1 << (frac - 1), -(1 << (frac - 1)), 0, 0]
    phi_im = [0, 0, 1 << (frac - 1), -(1 << (frac - 1))]
    x = rng.integers(-3, 4, size=(16, 2, 4)) << 16
    lam = [complex(a, b) / (1 << frac) for a, b in zip(phi_re, phi_im)]
    exact = np.zeros(x.shape, dtype=complex)
    for t in range(16):
        exact[t] = sum(np.array(lam) ** (t - s) * x[s] for s in range(t + 1))
    v_th = exact.real[9, 0].astype(np.int64)  # some u lands exactly on the threshold: it fires
    for parallel in (1, 2, 4, 8):
        config = PRFConfig(channels=4, phi_re=phi_re, phi_im=phi_im, delta=[1] * 4,
                           v_th=v_th, time_parallelism=parallel, input_width=24,
                           input_frac_bits=0, coef_width=16, coef_frac_bits=frac, delta_width=2,
                           delta_frac_bits=0, state_frac_bits=0)
        spikes, u, r = prf_integer(config, x)
        np.testing.assert_array_equal(u, exact.real.astype(np.int64), err_msg=f"P={parallel}")
        np.testing.assert_array_equal(r, exact.imag.astype(np.int64), err_msg=f"P={parallel}")
        np.testing.assert_array_equal(spikes, exact.real >= v_th, err_msg=f"P={parallel}")
        assert spikes[9, 0].all()


def test_dsp_powers_are_rounded_exact_powers_of_phi(rng):
    config, _, _ = _paper_config(rng, channels=6, coef_width=12, time_parallelism=8)
    f = config.coef_frac_bits
    power_re, power_im = config.powers
    assert (power_re[0] == 1 << f).all() and (power_im[0] == 0).all()
    np.testing.assert_array_equal(power_re[1], config.phi_re)
    np.testing.assert_array_equal(power_im[1], config.phi_im)

    def nearest(value: Fraction) -> int:  # ties away from zero
        return int(math.copysign(math.floor(abs(value) + Fraction(1, 2)), value))

    for c in range(6):
        phi = (int(config.phi_re[c]), int(config.phi_im[c]))
        exact = (1, 0)
        for n in range(1, 9):
            exact = (exact[0] * phi[0] - exact[1] * phi[1], exact[0] * phi[1] + exact[1] * phi[0])
            target = [Fraction(v, 1 << ((n - 1) * f)) for v in exact]
            want = [nearest(v) for v in target]
            if want[0] ** 2 + want[1] ** 2 >= 1 << (2 * f):  # documented fallback: toward zero
                want = [int(v) for v in target]
            assert (power_re[n, c], power_im[n, c]) == tuple(want), (n, c)


def test_shift_add_tables_fit_the_digit_budget(rng):
    for terms in (2, 3, 4):
        config, _, _ = _paper_config(rng, channels=6, coef_mode="shift_add", csd_terms=terms,
                                     time_parallelism=8)
        power_re, power_im = config.powers
        limit = 1 << (2 * config.coef_frac_bits)
        for n, c in itertools.product(range(1, 9), range(6)):
            re, im = int(power_re[n, c]), int(power_im[n, c])
            assert re * re + im * im < limit
            for value in (re, im):
                assert len(csd_digits(value, config.coef_frac_bits)) <= terms
        for value in config.delta.tolist():
            assert len(csd_digits(value, config.delta_frac_bits)) <= terms


def test_csd_digits_are_canonical():
    for value in range(-3000, 3001):
        digits = csd_digits(value, 10)
        assert csd_value(digits, 10) == value
        assert all(sign in (-1, 1) for sign, _ in digits)
        shifts = [shift for _, shift in digits]
        assert all(later - earlier >= 2 for earlier, later in zip(shifts, shifts[1:])), value
        assert min(shifts, default=10) <= 10


def test_csd_quantise_is_nearest_and_toward_zero_by_brute_force():
    positions = range(13)
    for terms in (1, 2, 3):
        representable = {0}
        for count in range(1, terms + 1):
            for chosen in itertools.combinations(positions, count):
                for signs in itertools.product((-1, 1), repeat=count):
                    representable.add(sum(s << p for s, p in zip(signs, chosen)))
        ordered = np.array(sorted(representable))
        for value in range(-1500, 1501):
            digits = csd_quantise(value, 8, terms)
            assert len(digits) <= terms
            distance = np.abs(ordered - value)
            nearest = ordered[distance == distance.min()]
            assert csd_value(digits, 8) == max(nearest, key=abs), (terms, value)  # ties: away
            below = ordered[(ordered >= 0) & (ordered <= abs(value))].max()
            down = csd_value(csd_quantise(value, 8, terms, toward_zero=True), 8)
            assert down == (below if value >= 0 else -below), (terms, value)


def test_integer_tracks_float_for_wide_widths(rng):
    module = _random_prf(rng, channels=6, delta_range=(1e-3, 1e-1))
    c = np.round(rng.normal(0.5, 8, (512, 3, 6)) * 256) / 256
    membrane = module(torch.from_numpy(c), return_membrane=True)[1].detach().numpy()
    assert 0.01 < (membrane >= 1).mean() < 0.99
    decided = np.abs(membrane - 1) > 1e-4  # farther from the threshold than the error allowed
    for parallel in (1, 4):
        config = module.hardware_config(coef_width=24, delta_width=24, input_width=16,
                                        input_frac_bits=8, state_frac_bits=24,
                                        time_parallelism=parallel)
        spikes, u, _ = prf_integer(config, (c * 256).astype(np.int64))
        error = np.abs(u / 2.0 ** 24 - membrane).max()
        assert error < 1e-4, (parallel, error)
        np.testing.assert_array_equal(spikes[decided], (membrane >= 1)[decided])


@pytest.mark.parametrize("parallel", [1, 4])
def test_state_stays_within_the_proven_bound_on_long_runs(rng, parallel):
    """T = 4096 with random, constant and alternating full-scale inputs; the model itself raises
    if a state leaves the bound, the config guarantees the bound fits the state width, and the
    slow θ ≈ 0 channel must come close to the bound (so the bound is not vacuous)."""
    log_delta = np.log([1e-2, 1e-2, 3e-3, 0.7, 4.0])
    angle = np.array([1e-3, math.pi - 1e-3, 0.3, 2.0, math.pi - 0.01])
    config = PRFConfig.from_float(log_delta, np.log(angle / np.exp(log_delta)),
                                  coef_width=16, time_parallelism=parallel)
    lo, hi = config.input_range
    steps = 4096
    x = np.stack([rng.integers(lo, hi, size=(steps, 5), endpoint=True),
                  np.full((steps, 5), hi), np.full((steps, 5), lo),
                  np.where(np.arange(steps) % 2 == 0, hi, lo)[:, None].repeat(5, 1)], axis=1)
    _, u, r = prf_integer(config, x)
    peak = np.maximum(np.abs(u), np.abs(r)).max(axis=(0, 1))
    assert (peak <= config.state_bound).all()
    assert config.state_bound.max() <= config.state_range[1]
    assert peak[0] >= 0.9 * config.state_bound[0], (peak, config.state_bound)
    # the derived accumulator widths hold the products these states and inputs produce
    power_re, power_im = config.powers
    largest = int(((np.abs(power_re[1:]) + np.abs(power_im[1:])).max(axis=0) * peak).max())
    assert largest + (1 << (config.coef_frac_bits - 1)) <= \
        signed_range(config.state_product_width)[1]
    assert int(config.delta.max()) * lo >= signed_range(config.input_product_width)[0]


def test_from_float_keeps_near_unit_poles_stable():
    """|λ| = e^(−0.0005) rounds to 1.0 with 7 fraction bits; the fallback truncates instead."""
    config = PRFConfig.from_float(np.log([1e-3]), np.log([1e-3]), coef_width=8)
    assert (int(config.phi_re[0]), int(config.phi_im[0])) == (127, 0)
    with pytest.raises(ValueError, match=r"PRFConfig.from_float: log_delta\[0\]"):
        PRFConfig.from_float(np.log([1e-20]), np.log([1.0]))


def test_json_round_trip(rng, tmp_path):
    config, _, _ = _paper_config(rng, coef_mode="shift_add", csd_terms=3, time_parallelism=4)
    data = json.loads(json.dumps(config.to_json()))
    again = PRFConfig.from_json(data)
    assert again.to_json() == config.to_json()
    for got, want in zip(again.powers, config.powers):
        np.testing.assert_array_equal(got, want)
    config.save(tmp_path / "prf.json")
    assert PRFConfig.load(tmp_path / "prf.json").to_json() == config.to_json()
    with pytest.raises(ValueError, match="unknown key"):
        PRFConfig.from_json({**data, "coef_bits": 3})
    with pytest.raises(ValueError, match=r"missing key\(s\) \['phi_im'\]"):
        PRFConfig.from_json({k: v for k, v in data.items() if k != "phi_im"})


def test_integer_rejects_bad_input(rng):
    config, _, _ = _paper_config(rng, channels=3)
    with pytest.raises(ValueError, match="input range"):
        prf_integer(config, np.full((4, 3), config.input_range[1] + 1))
    with pytest.raises(TypeError, match="integers"):
        prf_integer(config, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="shape"):
        prf_integer(config, np.zeros((4, 2), dtype=np.int64))


def _unstable(config):
    phi_re = config.phi_re.copy()
    phi_im = config.phi_im.copy()
    phi_re[1], phi_im[1] = (1 << config.coef_frac_bits) - 1, 300
    return {"phi_re": phi_re, "phi_im": phi_im}


BAD_FIELDS = [
    ("channels", lambda c: {"channels": 0}),
    ("lanes", lambda c: {"lanes": 4}),
    ("time_parallelism", lambda c: {"time_parallelism": 3}),
    ("time_parallelism", lambda c: {"time_parallelism": True}),
    ("coef_mode", lambda c: {"coef_mode": "multiply"}),
    ("csd_terms", lambda c: {"csd_terms": 0}),
    ("coef_frac_bits", lambda c: {"coef_frac_bits": 16}),
    ("input_width", lambda c: {"input_width": 40}),
    ("delta_frac_bits", lambda c: {"delta_frac_bits": 62, "state_frac_bits": -32}),
    ("phi_re", _unstable),
    ("phi_re", lambda c: {"phi_re": c.phi_re + 0.5}),
    ("phi_im", lambda c: {"phi_im": c.phi_im[:3]}),
    ("delta", lambda c: {"delta": -c.delta}),
    ("v_th", lambda c: {"v_th": np.full(6, 1 << 40)}),
    ("state_width", lambda c: {"state_width": 12}),
    ("state_width", lambda c: {"coef_width": 32, "state_width": 40}),
    (r"phi_re\[\d\]", lambda c: {"coef_mode": "shift_add", "csd_terms": 1}),
]


@pytest.mark.parametrize("field, changes", BAD_FIELDS, ids=[f for f, _ in BAD_FIELDS])
def test_bad_configs_name_the_field(rng, field, changes):
    config, _, _ = _paper_config(rng)
    with pytest.raises((ValueError, TypeError), match=f"PRFConfig.{field}"):
        config.replace(**changes(config))
