"""The one description of a PRF core (parallel resonate-and-fire neuron).

Integer golden model, hardware generator, weight export and testbench all read a
:class:`PRFConfig`; none of them restates a width, a table or a bound. The module imports
neither torch nor amaranth. The number formats, the rounding and the state-bound proof are in
``docs/prf_fixed_point.md``; the arithmetic itself is :func:`spikeforge.golden.prf_int.prf_integer`.
"""

import dataclasses
import math
from fractions import Fraction

import numpy as np

from .fixed import (check_bool, check_int, check_int_array, check_lanes, signed_range,
                    signed_width)
from .prf_int import csd_digits, csd_quantise, csd_value, round_shift
from .core_config import CoreConfig

__all__ = ["PRFConfig", "COEF_MODES"]

_OWNER = "PRFConfig"
COEF_MODES = ("dsp", "shift_add")
# Upper bound on |e| for the rounding error e of one complex product: each component of
# round_shift is off by at most 1/2 LSB, so |e| <= √2/2 = 0.7071… < 0.71.
_ROUNDING_ERROR = Fraction(71, 100)


def _ceil_sqrt(value: int) -> int:
    root = math.isqrt(value)
    return root + (root * root != value)


def _round_to_int(value: Fraction, toward_zero: bool = False) -> int:
    """Nearest integer with ties away from zero, or the integer part (toward zero)."""
    magnitude = abs(value)
    integer = math.floor(magnitude) if toward_zero else math.floor(magnitude + Fraction(1, 2))
    return -integer if value < 0 else integer


def _quantise_scalar(value: Fraction, frac_bits: int, coef_mode: str, csd_terms: int,
                     toward_zero: bool) -> int:
    """One table entry (``value`` in LSBs): :func:`_round_to_int`, then CSD in shift_add."""
    integer = _round_to_int(value, toward_zero)
    if coef_mode == "shift_add":
        integer = csd_value(csd_quantise(integer, frac_bits, csd_terms, toward_zero=toward_zero),
                            frac_bits)
    return integer


def _quantise_pole(re: Fraction, im: Fraction, frac_bits: int, coef_mode: str,
                   csd_terms: int) -> tuple[int, int] | None:
    """Quantise a complex coefficient (in LSBs) so that it stays strictly inside the unit circle.

    Nearest first; if that lands on or outside the circle, both parts toward zero (which keeps
    ``|q| <= |target|``). None when even that fails, i.e. the target itself has ``|λ| >= 1``.
    """
    limit = 1 << (2 * frac_bits)
    for toward_zero in (False, True):
        q_re = _quantise_scalar(re, frac_bits, coef_mode, csd_terms, toward_zero)
        q_im = _quantise_scalar(im, frac_bits, coef_mode, csd_terms, toward_zero)
        if q_re * q_re + q_im * q_im < limit:
            return q_re, q_im
    return None


@dataclasses.dataclass(frozen=True, eq=False)
class PRFConfig(CoreConfig):
    """A PRF core: shape, number formats and per-channel integer tables.

    Real values: input ``c = x · 2^−input_frac_bits``;
    ``φ = (phi_re + i·phi_im) · 2^−coef_frac_bits`` (the quantised pole λ);
    ``Δ = delta · 2^−delta_frac_bits``; state ``u, r`` and threshold ``v_th`` carry
    ``state_frac_bits``. ``state_width=None`` picks the smallest width that holds the proven
    state bound and the thresholds; a given width is checked against it.
    """

    NEURON = "prf"

    channels: int
    phi_re: np.ndarray
    phi_im: np.ndarray
    delta: np.ndarray
    v_th: np.ndarray
    lanes: int = 1
    time_parallelism: int = 1
    input_width: int = 16
    input_frac_bits: int = 8
    coef_width: int = 16
    coef_frac_bits: int | None = None
    delta_width: int = 16
    delta_frac_bits: int = 16
    state_width: int | None = None
    state_frac_bits: int = 16
    coef_mode: str = "dsp"
    csd_terms: int = 3
    membrane_out: bool = False

    def __post_init__(self):
        def set_(name, value):
            object.__setattr__(self, name, value)

        set_("channels", check_int(_OWNER, "channels", self.channels, min_value=1))
        set_("lanes", check_lanes(_OWNER, self.lanes, self.channels))
        parallel = check_int(_OWNER, "time_parallelism", self.time_parallelism, min_value=1,
                             max_value=64)
        if parallel & (parallel - 1):
            raise ValueError(f"{_OWNER}.time_parallelism must be a power of two "
                             f"(1, 2, 4, 8, ...), got {parallel}")
        set_("time_parallelism", parallel)
        if self.coef_mode not in COEF_MODES:
            raise ValueError(f"{_OWNER}.coef_mode must be one of {COEF_MODES}, "
                             f"got {self.coef_mode!r}")
        check_bool(_OWNER, "membrane_out", self.membrane_out)
        set_("csd_terms", check_int(_OWNER, "csd_terms", self.csd_terms, min_value=1,
                                    max_value=8))
        set_("input_width", check_int(_OWNER, "input_width", self.input_width, min_value=2,
                                      max_value=32))
        set_("input_frac_bits", check_int(_OWNER, "input_frac_bits", self.input_frac_bits,
                                          min_value=-32, max_value=62))
        set_("coef_width", check_int(_OWNER, "coef_width", self.coef_width, min_value=2,
                                     max_value=32))
        if self.coef_frac_bits is None:
            set_("coef_frac_bits", self.coef_width - 1)
        set_("coef_frac_bits", check_int(_OWNER, "coef_frac_bits", self.coef_frac_bits,
                                         min_value=1, max_value=self.coef_width - 1))
        set_("delta_width", check_int(_OWNER, "delta_width", self.delta_width, min_value=2,
                                      max_value=32))
        set_("delta_frac_bits", check_int(_OWNER, "delta_frac_bits", self.delta_frac_bits,
                                          min_value=-32, max_value=62))
        set_("state_frac_bits", check_int(_OWNER, "state_frac_bits", self.state_frac_bits,
                                          min_value=-32, max_value=62))
        if abs(self.input_shift) > 62:
            raise ValueError(f"{_OWNER}.delta_frac_bits: the Δ·x product is shifted by "
                             f"delta_frac_bits + input_frac_bits − state_frac_bits = "
                             f"{self.input_shift}; more than 62 either way is not supported")

        shape = (self.channels,)
        coef_lo, coef_hi = signed_range(self.coef_width)
        set_("phi_re", check_int_array(_OWNER, "phi_re", self.phi_re, shape,
                                       min_value=coef_lo, max_value=coef_hi))
        set_("phi_im", check_int_array(_OWNER, "phi_im", self.phi_im, shape,
                                       min_value=coef_lo, max_value=coef_hi))
        set_("delta", check_int_array(_OWNER, "delta", self.delta, shape, min_value=0,
                                      max_value=signed_range(self.delta_width)[1]))
        limit = 1 << (2 * self.coef_frac_bits)
        for channel, (re, im) in enumerate(zip(self.phi_re.tolist(), self.phi_im.tolist())):
            if re * re + im * im >= limit:
                raise ValueError(
                    f"{_OWNER}.phi_re/phi_im[{channel}] = ({re}, {im}) is not stable: "
                    f"φ_re² + φ_im² = {re * re + im * im} >= 2^(2·coef_frac_bits) = {limit}, "
                    f"so |λ| >= 1 and the state would grow without bound")
        if self.coef_mode == "shift_add":
            for name in ("phi_re", "phi_im", "delta"):
                frac = self.delta_frac_bits if name == "delta" else self.coef_frac_bits
                for channel, value in enumerate(getattr(self, name).tolist()):
                    terms = len(csd_digits(value, frac))
                    if terms > self.csd_terms:
                        raise ValueError(
                            f"{_OWNER}.{name}[{channel}] = {value} needs {terms} canonical "
                            f"signed digits; coef_mode 'shift_add' allows csd_terms = "
                            f"{self.csd_terms} (quantise it with csd_quantise)")

        threshold = check_int_array(_OWNER, "v_th", self.v_th, shape)

        set_("_powers", self._derive_powers())
        set_("_drive_bound", self._derive_drive_bound())
        set_("_state_bound", self._derive_state_bound())
        bound = int(self._state_bound.max())
        needed = signed_width(-bound, bound)
        if self.state_width is None:
            set_("state_width", max(needed, signed_width(min(int(threshold.min()), 0),
                                                         max(int(threshold.max()), 0))))
        set_("state_width", check_int(_OWNER, "state_width", self.state_width, min_value=2,
                                      max_value=62))
        if self.state_width < needed:
            raise ValueError(f"{_OWNER}.state_width = {self.state_width} is too small: the "
                             f"proven state bound |u|, |r| <= {bound} needs {needed} bits")
        if self.coef_width + self.state_width > 62:
            raise ValueError(f"{_OWNER}.state_width ({self.state_width}) + "
                             f"{_OWNER}.coef_width ({self.coef_width}) must be <= 62 so every "
                             f"product fits the int64 golden model")
        if self.delta_width + self.input_width > 62:
            raise ValueError(f"{_OWNER}.delta_width ({self.delta_width}) + "
                             f"{_OWNER}.input_width ({self.input_width}) must be <= 62")
        state_lo, state_hi = signed_range(self.state_width)
        set_("v_th", check_int_array(_OWNER, "v_th", threshold, shape, min_value=state_lo,
                                     max_value=state_hi))

    # -- derived tables: computed once here, read by everyone --------------------------------

    def _derive_powers(self) -> tuple[np.ndarray, np.ndarray]:
        """Λ^n for n = 0..P from the quantised φ (exact integer powers, then quantised)."""
        parallel, frac = self.time_parallelism, self.coef_frac_bits
        power_re = np.zeros((parallel + 1, self.channels), dtype=np.int64)
        power_im = np.zeros_like(power_re)
        power_re[0] = 1 << frac
        for channel, (re, im) in enumerate(zip(self.phi_re.tolist(), self.phi_im.tolist())):
            exact_re, exact_im = 1, 0  # φ^n, scaled by 2^(n·frac)
            for n in range(1, parallel + 1):
                exact_re, exact_im = exact_re * re - exact_im * im, exact_re * im + exact_im * re
                scale = Fraction(1, 1 << ((n - 1) * frac))
                power_re[n, channel], power_im[n, channel] = _quantise_pole(
                    exact_re * scale, exact_im * scale, frac, self.coef_mode, self.csd_terms)
        power_re.setflags(write=False)
        power_im.setflags(write=False)
        return power_re, power_im

    def _derive_drive_bound(self) -> np.ndarray:
        """Per channel, ``D = max |R(Δ·x)|`` over the input range, on the state grid."""
        input_lo, input_hi = self.input_range
        bounds = np.array([max(abs(round_shift(delta * input_lo, self.input_shift)),
                               abs(round_shift(delta * input_hi, self.input_shift)))
                           for delta in self.delta.tolist()], dtype=np.int64)
        bounds.setflags(write=False)
        return bounds

    def _derive_state_bound(self) -> np.ndarray:
        """Per channel, an integer B with |u|, |r| <= B at every step for every input.

        See ``docs/prf_fixed_point.md`` §5: D bounds |Δ·c| on the state grid, ρ_n bounds |Λ^n|,
        each rounded complex product adds at most 0.71 LSB, and the tile-end state obeys
        ``|z'| <= |Λ^P|·|z| + S`` so ``|z| <= S / (1 − |Λ^P|)``.
        """
        parallel, frac = self.time_parallelism, self.coef_frac_bits
        one = 1 << frac
        power_re, power_im = self._powers
        bounds = np.zeros(self.channels, dtype=np.int64)
        for channel in range(self.channels):
            drive = int(self._drive_bound[channel])
            norms = [int(power_re[n, channel]) ** 2 + int(power_im[n, channel]) ** 2
                     for n in range(parallel + 1)]
            rho = [Fraction(1)] + [Fraction(_ceil_sqrt(norm), one) for norm in norms[1:]]
            inverse_gap = Fraction(one * (one + _ceil_sqrt(norms[parallel])),
                                   one * one - norms[parallel])  # >= 1 / (1 − |Λ^P|)
            # input part of output j of a tile: Σ_{n<=j} |Λ^n|·D plus j rounded products
            input_part = [sum(rho[: j + 1]) * drive + j * _ROUNDING_ERROR for j in range(parallel)]
            tile_end = (input_part[-1] + _ROUNDING_ERROR) * inverse_gap
            within_tile = max(rho[j + 1] * tile_end + input_part[j] + _ROUNDING_ERROR
                              for j in range(parallel))
            bounds[channel] = math.floor(max(tile_end, within_tile))
        bounds.setflags(write=False)
        return bounds

    @property
    def powers(self) -> tuple[np.ndarray, np.ndarray]:
        """``(re, im)``, each ``[P + 1, C]``: row n holds Λ^n with ``coef_frac_bits``.

        Row 0 is the identity ``(2^coef_frac_bits, 0)``: a pass-through in hardware, never a
        multiply (it may not even fit ``coef_width``). Row 1 is ``(phi_re, phi_im)``. Row P is
        the tile feedback coefficient; rows 1..P−1 weight the state and inputs inside a tile.
        """
        return self._powers

    @property
    def state_bound(self) -> np.ndarray:
        """Per-channel integer B: every u, r and partial sum of a tile's terms lies in [−B, B]."""
        return self._state_bound

    @property
    def drive_bound(self) -> np.ndarray:
        """Per-channel integer D: every drive ``R(Δ·x)`` lies in [−D, D]."""
        return self._drive_bound

    @property
    def state_range(self) -> tuple[int, int]:
        return signed_range(self.state_width)

    @property
    def input_shift(self) -> int:
        """Right shift (round half up; a left shift if negative) taking Δ·x to the state grid."""
        return self.delta_frac_bits + self.input_frac_bits - self.state_frac_bits

    @property
    def input_product_width(self) -> int:
        """Width of ``delta · x`` plus its rounding offset, before the shift."""
        lo, hi = self.input_range
        largest = int(self.delta.max())
        offset = (1 << (self.input_shift - 1)) if self.input_shift > 0 else 0
        return signed_width(largest * lo, largest * hi + offset)

    @property
    def state_product_width(self) -> int:
        """Width of ``a·x ∓ b·y + 2^(coef_frac_bits−1)`` for any power row n >= 1 and state."""
        power_re, power_im = self._powers
        magnitude = (np.abs(power_re[1:]) + np.abs(power_im[1:])).max(axis=0)
        largest = max(int(m) * int(b) for m, b in zip(magnitude, self._state_bound))
        return signed_width(-largest, largest + (1 << (self.coef_frac_bits - 1)))

    # -- construction helpers ----------------------------------------------------------------

    def replace(self, **changes) -> "PRFConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_float(cls, log_delta, log_theta, tau: float = 2.0, v_th=1.0, *,
                   coef_mode: str = "dsp", csd_terms: int = 3, coef_width: int = 16,
                   coef_frac_bits: int | None = None, delta_width: int = 16,
                   delta_frac_bits: int | None = None, input_width: int = 16,
                   input_frac_bits: int = 8, state_width: int | None = None,
                   state_frac_bits: int = 16, lanes: int = 1,
                   time_parallelism: int = 1) -> "PRFConfig":
        """Quantise a trained float PRF (per-channel ``log_delta``, ``log_theta``; numpy-like).

        φ = λ = exp(Δ·(−1/τ + iθ)) goes to the nearest grid point (ties away from zero, then CSD
        in ``shift_add``), or toward zero if nearest would leave the unit circle. Δ goes to the
        nearest point too; ``delta_frac_bits=None`` picks the finest format that holds max Δ.
        ``v_th`` (scalar or per channel) rounds to nearest on the state grid.
        """
        log_delta = np.asarray(log_delta, dtype=np.float64)
        log_theta = np.asarray(log_theta, dtype=np.float64)
        if log_delta.ndim != 1 or log_theta.shape != log_delta.shape:
            raise ValueError(f"{_OWNER}.from_float: log_delta and log_theta must be 1-D of the "
                             f"same length, got {log_delta.shape} and {log_theta.shape}")
        if not (np.all(np.isfinite(log_delta)) and np.all(np.isfinite(log_theta) |
                                                        (log_theta == -np.inf))):
            raise ValueError(f"{_OWNER}.from_float: log_delta must be finite and log_theta "
                             f"finite or −inf (θ = 0)")
        tau = float(tau)
        if not tau > 0:
            raise ValueError(f"{_OWNER}.from_float: tau must be > 0, got {tau}")
        channels = log_delta.size
        # The fields quantisation depends on are checked here; __post_init__ checks the rest.
        if coef_mode not in COEF_MODES:
            raise ValueError(f"{_OWNER}.coef_mode must be one of {COEF_MODES}, got {coef_mode!r}")
        csd_terms = check_int(_OWNER, "csd_terms", csd_terms, min_value=1, max_value=8)
        coef_width = check_int(_OWNER, "coef_width", coef_width, min_value=2, max_value=32)
        if coef_frac_bits is None:
            coef_frac_bits = coef_width - 1
        coef_frac_bits = check_int(_OWNER, "coef_frac_bits", coef_frac_bits, min_value=1,
                                   max_value=coef_width - 1)
        delta_width = check_int(_OWNER, "delta_width", delta_width, min_value=2, max_value=32)
        frac_scale = Fraction(1 << coef_frac_bits)
        delta_float = np.exp(log_delta)
        theta_float = np.exp(log_theta)

        phi_re, phi_im = [], []
        for channel in range(channels):
            delta, theta = float(delta_float[channel]), float(theta_float[channel])
            magnitude = math.exp(-delta / tau)
            target_re = Fraction(magnitude * math.cos(delta * theta)) * frac_scale
            target_im = Fraction(magnitude * math.sin(delta * theta)) * frac_scale
            pole = _quantise_pole(target_re, target_im, coef_frac_bits, coef_mode, csd_terms)
            if pole is None:
                raise ValueError(f"{_OWNER}.from_float: log_delta[{channel}] = "
                                 f"{log_delta[channel]} gives |λ| = 1 in float64 (Δ/τ too "
                                 f"small); no stable coefficient exists")
            phi_re.append(pole[0])
            phi_im.append(pole[1])

        delta_hi = signed_range(delta_width)[1]

        def quantise_delta(frac_bits):
            return [_quantise_scalar(Fraction(float(d)) * Fraction(2) ** frac_bits, frac_bits,
                                     coef_mode, csd_terms, toward_zero=False)
                    for d in delta_float]

        if delta_frac_bits is None:
            _, exponent = math.frexp(float(delta_float.max()))  # max Δ < 2^exponent
            delta_frac_bits = min(delta_width - 1 - exponent, 62)
            while max(quantise_delta(delta_frac_bits)) > delta_hi:
                delta_frac_bits -= 1
        delta_int = quantise_delta(delta_frac_bits)

        v_th_float = np.broadcast_to(np.asarray(v_th, dtype=np.float64), (channels,))
        v_th_int = [_round_to_int(Fraction(float(v)) * Fraction(2) ** state_frac_bits)
                    for v in v_th_float]
        return cls(channels=channels, phi_re=phi_re, phi_im=phi_im, delta=delta_int,
                   v_th=v_th_int, lanes=lanes, time_parallelism=time_parallelism,
                   input_width=input_width, input_frac_bits=input_frac_bits,
                   coef_width=coef_width, coef_frac_bits=coef_frac_bits,
                   delta_width=delta_width, delta_frac_bits=delta_frac_bits,
                   state_width=state_width, state_frac_bits=state_frac_bits,
                   coef_mode=coef_mode, csd_terms=csd_terms)

    # -- JSON: the on-disk form of a configuration -------------------------------------------

    _JSON_FIELDS = ("channels", "lanes", "time_parallelism", "input_width", "input_frac_bits",
                    "coef_width", "coef_frac_bits", "delta_width", "delta_frac_bits",
                    "state_width", "state_frac_bits", "coef_mode", "csd_terms", "membrane_out")
    _JSON_TABLES = ("phi_re", "phi_im", "delta", "v_th")
    _JSON_REQUIRED = ("channels", *_JSON_TABLES)
