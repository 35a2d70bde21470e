"""Bit-exact integer reference of the LIF-family core: what the hardware computes, bit for bit.

The rules are those of :mod:`spikeforge.golden.lif_config` (and ``docs/lif_fixed_point.md``):
one rounding (:func:`decay`, round half up, once per decay product), saturation of every
state to ``state_width`` bits after each step, and the reset and spike rules the
configuration names. Imports numpy only.
"""

import numpy as np

from .fixed import core_inputs
from .prf_int import round_shift

__all__ = ["decay", "lif_integer", "lif_step"]


def decay(coefficient, values, frac_bits: int):
    """``D_c(v) = (c·v + 2^(F−1)) >> F``: the product rounded half up (exact for ``c = 2^F``)."""
    return round_shift(np.asarray(coefficient, dtype=np.int64) * values, frac_bits)


def _check(config, x_int) -> tuple[np.ndarray, bool]:
    return core_inputs(config, x_int, "lif_integer")


def lif_step(config, x, membrane, current, spike):
    """One time step for every neuron: ``x`` integer inputs ``[..., C]`` (already checked),
    the previous ``membrane`` ``u``, synaptic ``current`` ``i`` and ``spike`` ``s`` (int64, same
    shape). Returns the new ``(spike, membrane, current)``."""
    lo, hi = config.state_range
    frac = config.decay_frac_bits
    drive = x << config.align_shift
    if config.variant == "cuba_lif":
        current = np.clip(decay(config.per_channel("alpha"), current, frac) + drive, lo, hi)
        drive = current
    if not config.spiking:
        membrane = np.clip(decay(config.per_channel("beta"), membrane, frac) + drive, lo, hi)
        return np.zeros_like(membrane), membrane, current
    theta = config.per_channel("threshold")
    fired = spike != 0
    if config.reset == "zero":
        held = np.where(fired, 0, membrane)
    elif config.reset == "subtract_decayed":
        held = membrane - np.where(fired, theta, 0)
    else:  # subtract, after the decay
        held = membrane
    total = decay(config.per_channel("beta"), held, frac) + drive
    if config.reset == "subtract":
        total = total - np.where(fired, theta, 0)
    membrane = np.clip(total, lo, hi)
    spike = (membrane >= theta) if config.spike == "ge" else (membrane > theta)
    return spike.astype(np.int64), membrane, current


def lif_integer(config, x_int) -> tuple[np.ndarray, np.ndarray]:
    """Run the integer core of ``config`` (a :class:`~spikeforge.golden.lif_config.LIFConfig`).

    ``x_int``: integers ``[T, N, C]`` or ``[T, C]`` in the signed ``input_width`` range; each
    ``[T, C]`` sample starts from zero state and no spike. Returns ``(spikes, membrane)`` int64
    arrays of the same shape: the membrane ``u_t`` that the spike compares (before its
    reset, which acts at step ``t + 1``); ``li`` gives all-zero spikes.
    """
    x, single = _check(config, x_int)
    steps, batch, channels = x.shape
    spikes = np.zeros_like(x)
    membranes = np.zeros_like(x)
    membrane = np.zeros((batch, channels), dtype=np.int64)
    current = np.zeros_like(membrane)
    spike = np.zeros_like(membrane)
    for t in range(steps):
        spike, membrane, current = lif_step(config, x[t], membrane, current, spike)
        spikes[t], membranes[t] = spike, membrane
    if single:
        return spikes[:, 0], membranes[:, 0]
    return spikes, membranes
