"""How often the integer PRF's spikes differ from the float64 recurrence (docs/prf_quantisation.md).

Usage: ``python -m spikeforge.golden.prf_agreement [--seed N]``; prints the Markdown tables.

Both models see the same quantised input, so the table measures the neuron's arithmetic only:
coefficient and Δ quantisation (coefficient width, dsp or CSD with m terms), the state rounding,
and the tiling for time parallelism P. Each regime draws its own channels; the input is white
Gaussian noise scaled per channel so the float membrane has unit RMS (the threshold is 1), then
quantised to a 16-bit input whose format covers ±4 RMS of the largest channel.
"""

import argparse
import itertools
import math
import time

import numpy as np
import torch

from .prf_config import PRFConfig
from .prf import prf_membrane
from .prf_int import prf_integer

__all__ = ["REGIMES", "COEF_CODINGS", "measure", "main"]

TAU = 2.0
V_TH = 1.0
CHANNELS = 8
BATCH = 16
INPUT_WIDTH = 16
STATE_FRAC_BITS = 16
WIDTHS = (8, 12, 16)
PARALLELISMS = (1, 4)
LENGTHS = (256, 4096)
COEF_CODINGS = (("dsp", 3), ("shift_add", 2), ("shift_add", 3), ("shift_add", 4))
_NEAR_ZERO_ANGLE = (1e-3, 0.05)
_NEAR_PI_ANGLE = (math.pi - 0.05, math.pi - 1e-3)

# name -> (Δ sampler, rotation angle Δ·θ sampler); ρ = |λ| = e^(−Δ/τ)
REGIMES = {
    "paper init": (lambda rng, n: np.exp(rng.uniform(math.log(1e-3), math.log(1e-1), n)),
                   None),
    "ρ≈1, Δθ≈0": (lambda rng, n: np.exp(rng.uniform(math.log(1e-3), math.log(1e-2), n)),
                    _NEAR_ZERO_ANGLE),
    "ρ≈1, Δθ≈π": (lambda rng, n: np.exp(rng.uniform(math.log(1e-3), math.log(1e-2), n)),
                    _NEAR_PI_ANGLE),
    "ρ≈0, Δθ≈0": (lambda rng, n: rng.uniform(4.0, 8.0, n), _NEAR_ZERO_ANGLE),
    "ρ≈0, Δθ≈π": (lambda rng, n: rng.uniform(4.0, 8.0, n), _NEAR_PI_ANGLE),
}


def _channels(rng, regime):
    """Per-channel (log Δ, log θ) of a regime; 'paper init' uses θ = 2π·u (fr_scale = 1)."""
    sample_delta, angle_range = REGIMES[regime]
    delta = sample_delta(rng, CHANNELS)
    if angle_range is None:
        theta = 2 * math.pi * (1 - rng.random(CHANNELS))
    else:
        theta = rng.uniform(*angle_range, CHANNELS) / delta
    return np.log(delta), np.log(theta)


def _float_membrane(c, log_delta, log_theta):
    membrane = prf_membrane(torch.from_numpy(c), torch.from_numpy(np.exp(log_delta)),
                            torch.from_numpy(np.exp(log_theta)), TAU, "recurrence")
    return membrane.real.numpy()


def measure(seed: int):
    """Yield ``(regime, steps, float spike rate, {(mode, m, width, P): mismatch rate})``."""
    for regime_index, regime in enumerate(REGIMES):
        for steps in LENGTHS:
            rng = np.random.default_rng([seed, regime_index, steps])
            log_delta, log_theta = _channels(rng, regime)
            noise = rng.normal(size=(steps, BATCH, CHANNELS))
            gain = 1 / _float_membrane(noise, log_delta, log_theta).std(axis=(0, 1))
            input_frac_bits = math.floor(INPUT_WIDTH - 1 - math.log2(4 * gain.max()))
            scale = 2.0 ** input_frac_bits
            limit = 2 ** (INPUT_WIDTH - 1)
            x_int = np.clip(np.round(noise * gain * scale), -limit, limit - 1).astype(np.int64)
            spikes_float = _float_membrane(x_int / scale, log_delta, log_theta) >= V_TH
            mismatch = {}
            for (mode, terms), width, parallel in itertools.product(COEF_CODINGS, WIDTHS,
                                                                    PARALLELISMS):
                config = PRFConfig.from_float(
                    log_delta, log_theta, TAU, V_TH, coef_mode=mode, csd_terms=terms,
                    coef_width=width, delta_width=width, input_width=INPUT_WIDTH,
                    input_frac_bits=input_frac_bits, state_frac_bits=STATE_FRAC_BITS,
                    time_parallelism=parallel)
                spikes_int, _, _ = prf_integer(config, x_int)
                mismatch[mode, terms, width, parallel] = float((spikes_int != spikes_float).mean())
            yield regime, steps, float(spikes_float.mean()), mismatch


def _label(mode: str, terms: int) -> str:
    return "dsp" if mode == "dsp" else f"shift_add m={terms}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = {}
    for regime, steps, rate, mismatch in measure(args.seed):
        results[regime, steps] = (rate, mismatch)
    regimes = list(REGIMES)
    for steps in LENGTHS:
        print(f"### T = {steps}: spike mismatch, % of all (t, n, c) decisions\n")
        print("| mode | coef bits | P | " + " | ".join(regimes) + " |")
        print("|---|---|---|" + "---|" * len(regimes))
        print("| *float spike rate* | | | " + " | ".join(
            f"*{100 * results[r, steps][0]:.1f}*" for r in regimes) + " |")
        for (mode, terms), width, parallel in itertools.product(COEF_CODINGS, WIDTHS, PARALLELISMS):
            cells = [100 * results[r, steps][1][mode, terms, width, parallel] for r in regimes]
            print(f"| {_label(mode, terms)} | {width} | {parallel} | "
                  + " | ".join(f"{cell:.2f}" for cell in cells) + " |")
        print()
    print(f"Seed {args.seed}; {CHANNELS} channels x {BATCH} samples per regime; measured in "
          f"{time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
