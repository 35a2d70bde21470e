"""Random and edge-case CPSN and PRF configurations for co-simulation regressions.

Each case is ``(name, config, samples or None)``; ``None`` means seeded random stimulus.
The same generators serve the pytest regression, ``spikeforge cosim`` and benchmarks.
"""

import math

import numpy as np

from ..golden.network_int import IntegerLayer, IntegerNetwork, IntegerSynapse, core_outputs
from ..golden.cpsn_config import CPSNConfig
from ..golden.prf_config import PRFConfig

__all__ = ["EXPONENT_RANGES", "INPUT_WIDTHS", "random_config", "edge_cases", "PRF_REGIMES",
           "random_prf_config", "random_network"]

EXPONENT_RANGES = ((-4, 0), (-2, 2), (0, 0), (-6, -2), (-1, 3), (-8, 0))
INPUT_WIDTHS = (2, 4, 6, 8, 12, 16)


def random_config(rng: np.random.Generator, *, max_channels: int = 256) -> CPSNConfig:
    """k in 1–16, d in 1–8, L in 1–16, C ≤ ``max_channels``, varied widths and ranges."""
    lanes = int(rng.choice([1, 2, 3, 4, 8, 16]))
    groups = int(rng.integers(1, max(1, max_channels // lanes) + 1))
    groups = min(groups, int(rng.choice([1, 2, 4, 8, 32, 64])))
    exp_min, exp_max = EXPONENT_RANGES[rng.integers(len(EXPONENT_RANGES))]
    return CPSNConfig.random(
        rng, channels=lanes * groups, lanes=lanes, order=int(rng.integers(1, 17)),
        dilation=int(rng.integers(1, 9)), input_width=int(rng.choice(INPUT_WIDTHS)),
        exp_min=int(exp_min), exp_max=int(exp_max), membrane_out=bool(rng.random() < 0.5),
        zero_fraction=float(rng.choice([0.0, 0.1, 0.5])))


def _threshold_case(rng: np.random.Generator) -> tuple[CPSNConfig, list[np.ndarray]]:
    """Membranes that land exactly on 0 (fires: Θ(0) = 1) and one unit below (silent)."""
    probe = CPSNConfig.random(rng, channels=8, lanes=4, order=3, membrane_out=True)
    signs = np.zeros_like(probe.signs)
    signs[:, -1] = 1  # only the newest tap
    lo, hi = probe.input_range
    levels = rng.integers(lo // 2, hi // 2 + 1, size=probe.channels)
    shifts = probe.exponents[:, -1] - probe.exp_min
    config = probe.replace(signs=signs, bias=-(levels << shifts))
    steps = 12
    x = np.broadcast_to(levels, (steps, probe.channels)).copy()
    x[1::2] -= 1  # H = −2^shift on odd steps
    return config, [x]


def edge_cases(rng: np.random.Generator) -> list[tuple[str, CPSNConfig, list | None]]:
    cases = []
    cases.append(("order_1", CPSNConfig.random(rng, channels=16, lanes=4, order=1,
                                               membrane_out=True), None))
    negative = CPSNConfig.random(rng, channels=12, lanes=3, order=5, dilation=2,
                                 membrane_out=True)
    cases.append(("all_negative_weights", negative.replace(signs=-np.ones_like(negative.signs)),
                  None))
    extreme = CPSNConfig.random(rng, channels=8, lanes=8, order=6, dilation=3, input_width=8,
                                exp_min=-5, exp_max=3, membrane_out=True)
    lo, hi = extreme.input_range
    extreme = extreme.replace(signs=rng.choice([-1, 1], size=extreme.signs.shape),
                              exponents=np.full_like(extreme.exponents, extreme.exp_max),
                              bias=np.zeros(extreme.channels, dtype=np.int64))
    cases.append(("inputs_at_extremes", extreme, [
        np.full((20, 8), lo), np.full((20, 8), hi),
        np.where(np.arange(20)[:, None] % 2, lo, hi) * np.ones((1, 8), dtype=np.int64)]))
    config, samples = _threshold_case(rng)
    cases.append(("membrane_at_threshold", config, samples))
    short = CPSNConfig.random(rng, channels=6, lanes=2, order=4, dilation=2)
    cases.append(("one_step_samples", short,
                  [rng.integers(*short.input_range, size=(1, 6), endpoint=True)
                   for _ in range(12)]))
    cases.append(("many_channels_folded", CPSNConfig.random(
        rng, channels=2048, lanes=16, order=4, dilation=3), None))
    return cases


#: Pole regimes of the PRF regression: (log Δ range, Δ·θ range) → |λ| = e^(−Δ/τ), ∠λ = Δ·θ.
PRF_REGIMES = {
    "slow": ((math.log(1e-3), math.log(3e-2)), (0.0, 0.3)),  # |λ| near 1
    "fast": ((math.log(2.0), math.log(8.0)), (0.0, 3.0)),  # |λ| near 0
    "resonant_low": ((math.log(1e-2), math.log(1e-1)), (1e-4, 1e-2)),  # θ near 0
    "resonant_pi": ((math.log(1e-2), math.log(1e-1)), (math.pi - 0.05, math.pi)),  # θ near π
    "mixed": ((math.log(1e-3), math.log(1.0)), (0.0, math.pi)),
}


def random_prf_config(rng: np.random.Generator, *, regime: str | tuple | None = None,
                      max_channels: int = 32, **fields) -> PRFConfig:
    """A quantised PRF core: random P, L, C, widths, coefficient mode and pole regime.

    ``regime`` may name several regimes: channel ``c`` then takes regime ``c mod n``, so one
    core (one build) covers them all. Thresholds are drawn per channel log-uniformly between
    0.1 % and 20 % of its proven state bound, so spikes are neither absent nor constant
    whatever the pole regime.
    """
    regime = regime or str(rng.choice(sorted(PRF_REGIMES)))
    regimes = (regime,) if isinstance(regime, str) else tuple(regime)
    lanes = int(fields.pop("lanes", rng.choice([1, 2, 4])))
    channels = lanes * int(rng.choice([g for g in (1, 2, 3, 8) if g * lanes <= max_channels]))
    bounds = np.array([PRF_REGIMES[regimes[c % len(regimes)]] for c in range(channels)])
    log_delta = rng.uniform(bounds[:, 0, 0], bounds[:, 0, 1], channels)
    angle = rng.uniform(bounds[:, 1, 0], bounds[:, 1, 1], channels)
    with np.errstate(divide="ignore"):
        log_theta = np.log(angle / np.exp(log_delta))  # θ = angle / Δ
    choices = dict(coef_mode=str(rng.choice(["dsp", "shift_add"])),
                   csd_terms=int(rng.integers(2, 5)),
                   coef_width=int(rng.choice([10, 12, 16])),
                   input_width=int(rng.choice([6, 8, 12])), input_frac_bits=4,
                   state_frac_bits=int(rng.choice([8, 12])),
                   time_parallelism=int(rng.choice([1, 2, 4, 8])), lanes=lanes)
    choices.update(fields)
    membrane_out = bool(choices.pop("membrane_out", rng.random() < 0.5))
    config = PRFConfig.from_float(log_delta, log_theta, 2.0, 1.0, **choices)
    fraction = np.exp(rng.uniform(math.log(1e-3), math.log(0.2), channels))
    v_th = np.round(fraction * config.state_bound).astype(np.int64)
    return config.replace(v_th=v_th, membrane_out=membrane_out)


def _random_core(rng: np.random.Generator, neuron: str, channels: int, lanes: int,
                 input_width: int):
    if neuron == "cpsn":
        return CPSNConfig.random(rng, channels=channels, lanes=lanes,
                                 order=int(rng.integers(1, 5)), dilation=int(rng.integers(1, 3)),
                                 input_width=input_width, exp_min=-3, exp_max=1)
    log_delta = rng.uniform(math.log(1e-2), math.log(1.0), channels)
    log_theta = np.log(rng.uniform(0.05, 3.0, channels) / np.exp(log_delta))
    config = PRFConfig.from_float(log_delta, log_theta, 2.0, 1.0,
                                  coef_mode=str(rng.choice(["dsp", "shift_add"])),
                                  csd_terms=3, coef_width=10, input_width=input_width,
                                  input_frac_bits=4, state_frac_bits=8, lanes=lanes)
    fraction = np.exp(rng.uniform(math.log(0.02), math.log(0.2), channels))
    return config.replace(v_th=np.round(fraction * config.state_bound).astype(np.int64))


def random_network(rng: np.random.Generator, *, neurons=("cpsn", "prf"), features: int = 6,
                   hidden=(8, 8), lanes=(4, 2), classes: int = 5, input_width: int = 8,
                   core_input_width: int = 8, weight_width: int = 6,
                   readout: str = "mean_membrane"):
    """A random :class:`~spikeforge.golden.network_int.IntegerNetwork` whose cores fire:
    each synapse's shift puts its typical accumulator near the core input's full scale."""
    lo, hi = -(1 << (weight_width - 1)), (1 << (weight_width - 1)) - 1
    inputs, bound = features, 1 << (input_width - 1)
    probe = rng.integers(-bound, bound, size=(64, features))
    layers = []
    for index, (neuron, width, lane) in enumerate(zip(neurons, hidden, lanes)):
        weight = rng.integers(lo, hi + 1, size=(width, inputs))
        bias = rng.integers(-4 * hi, 4 * hi + 1, size=width)
        typical = float(np.abs(probe @ weight.T + bias).mean()) + 1
        shift = max(0, math.ceil(math.log2(typical)) - (core_input_width - 2))
        synapse = IntegerSynapse(weight=weight, bias=bias, weight_width=weight_width,
                                 weight_frac_bits=0, shift=shift, out_width=core_input_width,
                                 input_bound=bound if index == 0 else 1)
        core = _random_core(rng, neuron, width, lane, core_input_width)
        if neuron == "prf":  # thresholds at the 75th percentile of each channel's membrane
            _, membrane = core_outputs(core, synapse(probe)[0])
            v_th = np.maximum(1, np.percentile(membrane, 75, axis=0)).astype(np.int64)
            core = core.replace(v_th=np.minimum(v_th, core.state_range[1]))
        layers.append(IntegerLayer(f"sn{index}", synapse, core))
        inputs, bound = width, 1
        probe = (rng.random((64, width)) < 0.3).astype(np.int64)
    readout_synapse = IntegerSynapse(weight=rng.integers(lo, hi + 1, size=(classes, inputs)),
                                     bias=rng.integers(-hi, hi + 1, size=classes),
                                     weight_width=weight_width, weight_frac_bits=0, shift=0,
                                     out_width=None, input_bound=1)
    return IntegerNetwork(input_width=input_width, input_frac_bits=0, layers=tuple(layers),
                          readout=readout_synapse, readout_kind=readout)
