"""Bit-exact integer model of the CPSN core: what the hardware must compute, beat for beat.

Semantics (``docs/fixed_point.md``): with ``shift = exponent − exp_min ≥ 0``,

    H[t][c] = Σ_i sign[c][i] · (X[t − (k−1−i)·d][c] << shift[c][i]) + bias[c]
    S[t][c] = 1 if H[t][c] >= 0 else 0

Every sample starts from empty history (``X[j] = 0`` for ``j < 0``). There is no rounding and
no saturation: :class:`~spikeforge.golden.cpsn_config.CPSNConfig` sizes the accumulator so the sum
is exact for every table the format can hold.
"""

import numpy as np

from .cpsn_config import CPSNConfig
from .fixed import core_inputs

__all__ = ["cpsn_integer", "check_inputs"]


def check_inputs(config: CPSNConfig, x) -> np.ndarray:
    """Return ``x`` as int64 ``[T, N, C]`` (a ``[T, C]`` input gets ``N = 1``) or raise."""
    x, _ = core_inputs(config, x, "CPSN integer model")
    if x.shape[0] < 1:
        raise ValueError("CPSN integer inputs need at least one time step")
    return x


def cpsn_integer(config: CPSNConfig, x) -> tuple[np.ndarray, np.ndarray]:
    """Run the integer CPSN on ``x`` (``[T, N, C]`` or ``[T, C]``, each ``N`` a sample).

    Returns ``(spikes, membrane)``, both shaped like the input; spikes are uint8, the membrane
    is int64 (what the core's optional debug output shows).
    """
    squeeze = np.asarray(x).ndim == 2
    x = check_inputs(config, x)
    steps = x.shape[0]
    shifts = config.exponents - config.exp_min  # [C, k]
    membrane = np.broadcast_to(config.bias, x.shape).copy()
    for i in range(config.order):
        delay = (config.order - 1 - i) * config.dilation
        if delay >= steps:
            continue
        delayed = np.zeros_like(x)
        delayed[delay:] = x[:steps - delay]
        membrane += config.signs[:, i] * (delayed << shifts[:, i])
    spikes = (membrane >= 0).astype(np.uint8)
    if squeeze:
        return spikes[:, 0], membrane[:, 0]
    return spikes, membrane
