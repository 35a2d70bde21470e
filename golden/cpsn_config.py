"""The one description of a CPSN core (multiplication-free channel-wise PSN).

Golden model, hardware generator, weight export and testbench all read a :class:`CPSNConfig`;
none of them restates a width or a table. The module imports neither torch nor amaranth.

Weight format (see ``docs/fixed_point.md``): every tap weight is ``sign · 2^exponent`` with
``sign ∈ {−1, 0, +1}`` (0 disables the tap) and ``exponent ∈ [exp_min, exp_max]``. Inputs are
signed ``input_width``-bit integers. The accumulator carries ``−exp_min`` extra fractional bits
so every shift is a left shift by ``exponent − exp_min`` and the sum is exact.
"""

import dataclasses
import math

import numpy as np

from .fixed import (check_bool, check_int, check_int_array, check_lanes, signed_range,
                    signed_width)
from .core_config import CoreConfig

__all__ = ["CPSNConfig"]

_OWNER = "CPSNConfig"


@dataclasses.dataclass(frozen=True, eq=False)
class CPSNConfig(CoreConfig):
    """A CPSN core: shape, number format and per-channel tables.

    Tables follow ``neurons.md`` §2: ``signs[c][i]`` and ``exponents[c][i]`` weight input
    ``X[t − (k−1−i)·d][c]``, so index ``k−1`` is the newest input. ``bias[c]`` is an integer on
    the accumulator grid (``2^(exp_min − input_frac_bits)`` per unit); the neuron fires when
    ``H = Σ taps + bias >= 0``, i.e. the threshold is ``−bias``.
    """

    NEURON = "cpsn"

    channels: int
    order: int
    signs: np.ndarray
    exponents: np.ndarray
    bias: np.ndarray
    lanes: int = 1
    dilation: int = 1
    input_width: int = 8
    input_frac_bits: int = 0
    exp_min: int = -4
    exp_max: int = 0
    bias_width: int | None = None
    membrane_out: bool = False

    def __post_init__(self):
        def set_(name, value):
            object.__setattr__(self, name, value)

        set_("channels", check_int(_OWNER, "channels", self.channels, min_value=1))
        set_("order", check_int(_OWNER, "order", self.order, min_value=1))
        set_("lanes", check_lanes(_OWNER, self.lanes, self.channels))
        set_("dilation", check_int(_OWNER, "dilation", self.dilation, min_value=1))
        set_("input_width", check_int(_OWNER, "input_width", self.input_width, min_value=2,
                                      max_value=32))
        set_("input_frac_bits", check_int(_OWNER, "input_frac_bits", self.input_frac_bits,
                                          min_value=-64, max_value=64))
        set_("exp_min", check_int(_OWNER, "exp_min", self.exp_min, min_value=-32, max_value=32))
        set_("exp_max", check_int(_OWNER, "exp_max", self.exp_max, min_value=self.exp_min,
                                  max_value=32))
        check_bool(_OWNER, "membrane_out", self.membrane_out)
        shape = (self.channels, self.order)
        set_("signs", check_int_array(_OWNER, "signs", self.signs, shape,
                                      min_value=-1, max_value=1))
        set_("exponents", check_int_array(_OWNER, "exponents", self.exponents, shape,
                                          min_value=self.exp_min, max_value=self.exp_max))
        sum_lo, sum_hi = self.sum_range
        if self.bias_width is None:
            set_("bias_width", signed_width(sum_lo, sum_hi))
        set_("bias_width", check_int(_OWNER, "bias_width", self.bias_width, min_value=1,
                                     max_value=48))
        bias_lo, bias_hi = signed_range(self.bias_width)
        set_("bias", check_int_array(_OWNER, "bias", self.bias, (self.channels,),
                                     min_value=bias_lo, max_value=bias_hi))
        if self.membrane_width > 62:
            raise ValueError(f"{_OWNER}: the membrane needs {self.membrane_width} bits; more "
                             f"than 62 is not supported (reduce input_width, the exponent "
                             f"range or bias_width)")

    # -- derived quantities: computed once here, read by everyone ---------------------------

    @property
    def shift_max(self) -> int:
        """Largest left shift applied to an input: ``exp_max − exp_min``."""
        return self.exp_max - self.exp_min

    @property
    def exp_code_width(self) -> int:
        """Bits of the stored shift code ``exponent − exp_min``."""
        return max(1, self.shift_max.bit_length())

    @property
    def term_range(self) -> tuple[int, int]:
        """Bounds of one tap ``±(x << shift)``; negating the most negative input is included."""
        lo, _ = self.input_range
        magnitude = -lo << self.shift_max
        return -magnitude, magnitude

    @property
    def term_width(self) -> int:
        return signed_width(*self.term_range)

    @property
    def sum_range(self) -> tuple[int, int]:
        """Bounds of the k-tap sum, valid for *any* table in the format."""
        lo, hi = self.term_range
        return self.order * lo, self.order * hi

    @property
    def membrane_range(self) -> tuple[int, int]:
        sum_lo, sum_hi = self.sum_range
        bias_lo, bias_hi = signed_range(self.bias_width)
        return sum_lo + bias_lo, sum_hi + bias_hi

    @property
    def membrane_width(self) -> int:
        """Accumulator width: holds every membrane value, so no sum can overflow."""
        return signed_width(*self.membrane_range)

    @property
    def receptive_field(self) -> int:
        """Time steps that one output depends on: ``1 + (k−1)·d``."""
        return 1 + (self.order - 1) * self.dilation

    @property
    def accumulator_scale(self) -> float:
        """Real value of one accumulator unit: ``2^(exp_min − input_frac_bits)``."""
        return math.ldexp(1.0, self.exp_min - self.input_frac_bits)

    # -- construction helpers ----------------------------------------------------------------

    def replace(self, **changes) -> "CPSNConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def random(cls, rng: np.random.Generator, *, channels: int, order: int,
               zero_fraction: float = 0.1, **fields) -> "CPSNConfig":
        """A configuration with random tables (for tests and benchmarks)."""
        exp_min, exp_max = fields.get("exp_min", -4), fields.get("exp_max", 0)
        shape = (channels, order)
        signs = rng.choice([-1, 1], size=shape)
        signs[rng.random(shape) < zero_fraction] = 0
        exponents = rng.integers(exp_min, exp_max + 1, size=shape)
        probe = cls(channels=channels, order=order, signs=signs, exponents=exponents,
                    bias=np.zeros(channels, dtype=np.int64), **fields)
        lo, hi = signed_range(probe.bias_width)
        # Thresholds near the typical membrane so that spikes are neither all 0 nor all 1.
        typical = max(1, (-probe.input_range[0] << probe.shift_max) // 2)
        bias = np.clip(rng.integers(-typical, typical + 1, size=channels), lo, hi)
        return probe.replace(bias=bias)

    # -- JSON: the on-disk form of a configuration ---------------------------------------

    _JSON_FIELDS = ("channels", "lanes", "order", "dilation", "input_width", "input_frac_bits",
                    "exp_min", "exp_max", "bias_width", "membrane_out")
    _JSON_TABLES = ("signs", "exponents", "bias")
    _JSON_REQUIRED = ("channels", "order", *_JSON_TABLES)
