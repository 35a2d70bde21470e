"""Random and edge-case CPSN configurations for co-simulation regressions.

Each case is ``(name, config, samples or None)``; ``None`` means seeded random stimulus.
The same generators serve the pytest regression, ``spikeforge cosim`` and benchmarks.
"""

import numpy as np

from ..hw.cpsn_config import CPSNConfig

__all__ = ["EXPONENT_RANGES", "INPUT_WIDTHS", "random_config", "edge_cases"]

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
