"""Bit-exact integer reference of the PRF neuron: what the hardware must compute, bit for bit.

Every rule here is written out in ``docs/prf_fixed_point.md``. In short:

* one datapath rounding rule, :func:`round_shift` (round half up: add ``2^(k−1)``, arithmetic
  shift right by ``k``), applied once per complex-coefficient product component;
* ``shift_add`` mode only restricts the coefficient values (at most ``m`` canonical-signed-digit
  terms, see :func:`csd_quantise`); the sum of the shifted copies is exact and rounded once, so
  both modes share this one model;
* with time parallelism ``P`` each tile of ``P`` steps is computed from the tile's start state
  and the tile's inputs alone, every product rounded on its own (so any adder tree or prefix
  network that sums the terms gives the same bits).

Imports numpy only: the configuration (:mod:`spikeforge.golden.prf_config`) reuses the CSD and
rounding functions defined here.
"""

import functools
import operator

import numpy as np

from .fixed import core_inputs

__all__ = ["round_shift", "csd_digits", "csd_value", "csd_quantise", "prf_integer"]


def round_shift(values, shift: int):
    """Scale by ``2^−shift`` with round half up (ties toward +∞); ``shift <= 0`` is exact.

    This is the only rounding of the PRF datapath. It works on Python ints and on int64
    arrays; numpy's ``>>`` on signed integers is an arithmetic shift, like the hardware's.
    """
    shift = operator.index(shift)
    if shift <= 0:
        return values << -shift
    return (values + (1 << (shift - 1))) >> shift


def csd_digits(value_int: int, frac_bits: int) -> list[tuple[int, int]]:
    """The canonical signed-digit (non-adjacent) form of ``value_int · 2^−frac_bits``.

    Returns ``[(sign, shift), ...]`` most significant first, meaning
    ``value = Σ sign · 2^−shift`` in real units: the product ``x · value`` is
    ``Σ sign · (x << (frac_bits − shift))`` before the single rounding shift by ``frac_bits``.
    The form is unique, has the fewest nonzero digits and no two adjacent ones.
    """
    value = operator.index(value_int)
    digits = []
    position = 0
    while value:
        if value & 1:
            digit = 2 - (value & 3)  # +1 if value ≡ 1 (mod 4), −1 if value ≡ 3 (mod 4)
            value -= digit
            digits.append((digit, frac_bits - position))
        value >>= 1
        position += 1
    return digits[::-1]


def csd_value(digits, frac_bits: int) -> int:
    """Inverse of :func:`csd_digits`: the integer (in ``2^−frac_bits`` units) the digits encode."""
    return sum(sign << (frac_bits - shift) for sign, shift in digits)


@functools.lru_cache(maxsize=None)
def _csd_floor(value: int, terms: int) -> int:
    """Largest ``w <= value`` that is a sum of at most ``terms`` signed powers of two (value >= 0).

    The leading digit of the answer is ``2^e`` or ``2^(e+1)`` with ``e = ⌊log2 value⌋``: a
    non-adjacent form led by ``2^q`` lies strictly between ``(2/3)·2^q`` and ``(4/3)·2^q``.
    """
    if value == 0 or terms == 0:
        return 0
    top = 1 << (value.bit_length() - 1)
    if value == top:
        return value
    best = top + _csd_floor(value - top, terms - 1)
    above = _csd_ceil(2 * top - value, terms - 1)
    if above is not None:
        best = max(best, 2 * top - above)
    return best


@functools.lru_cache(maxsize=None)
def _csd_ceil(value: int, terms: int) -> int | None:
    """Smallest ``w >= value`` with at most ``terms`` signed powers of two, or None (value >= 0)."""
    if value == 0:
        return 0
    if terms == 0:
        return None
    top = 1 << (value.bit_length() - 1)
    if value == top:
        return value
    best = 2 * top - _csd_floor(2 * top - value, terms - 1)
    rest = _csd_ceil(value - top, terms - 1)
    if rest is not None:
        best = min(best, top + rest)
    return best


def csd_quantise(value_int: int, frac_bits: int, max_terms: int, *,
                 toward_zero: bool = False) -> list[tuple[int, int]]:
    """Quantise ``value_int`` to at most ``max_terms`` signed powers of two; return its CSD digits.

    Default: the nearest such value, ties away from zero. With ``toward_zero`` the value of
    largest magnitude not exceeding ``|value_int|`` (used where rounding up could make a pole
    unstable). The result is given as :func:`csd_digits` of the quantised value.
    """
    value = operator.index(value_int)
    max_terms = operator.index(max_terms)
    if max_terms < 1:
        raise ValueError(f"max_terms must be >= 1, got {max_terms}")
    magnitude = abs(value)
    below = _csd_floor(magnitude, max_terms)
    if not toward_zero and below != magnitude:
        above = _csd_ceil(magnitude, max_terms)
        if above - magnitude <= magnitude - below:
            below = above
    return csd_digits(below if value >= 0 else -below, frac_bits)


def prf_integer(config, x_int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the integer PRF of ``config`` (a :class:`~spikeforge.golden.prf_config.PRFConfig`).

    ``x_int``: integers ``[T, N, C]`` or ``[T, C]`` in the signed ``input_width`` range; each
    ``[T, C]`` sample starts from zero state. Returns ``(spikes, u, r)`` as int64 arrays of the
    same shape, ``spikes = (u >= v_th)``. Tiles of ``P = config.time_parallelism`` steps start at
    multiples of ``P``; a last partial tile is padded with zero inputs whose outputs are dropped
    (they cannot affect earlier outputs: the model is causal).
    """
    x, single_sample = core_inputs(config, x_int, "prf_integer")
    steps, batch, channels = x.shape
    parallel = config.time_parallelism
    frac = config.coef_frac_bits
    power_re, power_im = config.powers  # [P + 1, C]; row n is Λ^n, row 0 the identity

    tiles = -(-steps // parallel)
    padded = tiles * parallel
    drive = np.zeros((padded, batch, channels), dtype=np.int64)
    drive[:steps] = round_shift(config.delta * x, config.input_shift)  # Δ·c on the state grid

    # Input part of every output: Σ_{k <= t mod P} R(Λ^k ⊗ drive[t − k]); k = 0 is exact.
    phase = np.arange(padded) % parallel
    input_u = drive.copy()
    input_r = np.zeros_like(drive)
    for lag in range(1, parallel):
        delayed = np.zeros_like(drive)
        delayed[lag:] = drive[:-lag]
        same_tile = (phase >= lag)[:, None, None]
        input_u += np.where(same_tile, round_shift(power_re[lag] * delayed, frac), 0)
        input_r += np.where(same_tile, round_shift(power_im[lag] * delayed, frac), 0)

    # Tile-boundary recurrence: the only sequential part, one step per tile.
    start_u = np.zeros((tiles, batch, channels), dtype=np.int64)
    start_r = np.zeros_like(start_u)
    u = np.zeros((batch, channels), dtype=np.int64)
    r = np.zeros_like(u)
    feedback_re, feedback_im = power_re[parallel], power_im[parallel]
    for tile in range(tiles):
        start_u[tile], start_r[tile] = u, r
        last = tile * parallel + parallel - 1
        u, r = (round_shift(feedback_re * u - feedback_im * r, frac) + input_u[last],
                round_shift(feedback_im * u + feedback_re * r, frac) + input_r[last])

    # Every output: R(Λ^(j+1) ⊗ tile start state) + its input part, j = t mod P.
    state_re, state_im = power_re[phase + 1][:, None, :], power_im[phase + 1][:, None, :]
    tile_u, tile_r = np.repeat(start_u, parallel, axis=0), np.repeat(start_r, parallel, axis=0)
    out_u = round_shift(state_re * tile_u - state_im * tile_r, frac) + input_u
    out_r = round_shift(state_im * tile_u + state_re * tile_r, frac) + input_r
    out_u, out_r = out_u[:steps], out_r[:steps]

    bound = config.state_bound[None, None, :]
    if np.any(np.abs(out_u) > bound) or np.any(np.abs(out_r) > bound):
        raise AssertionError("prf_integer: a state exceeded the proven bound; the bound "
                             "derivation in PRFConfig.state_bound is wrong")
    spikes = (out_u >= config.v_th).astype(np.int64)
    if single_sample:
        return spikes[:, 0], out_u[:, 0], out_r[:, 0]
    return spikes, out_u, out_r
