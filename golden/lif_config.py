"""The one description of a LIF-family core (IF, LIF, current-based LIF, leaky integrator).

Integer golden model (:func:`spikeforge.golden.lif_int.lif_integer`), hardware generator,
export and testbench all read a :class:`LIFConfig`; none of them restates a width or a rule.
The module imports neither torch nor amaranth. The contract is written out in
``docs/lif_fixed_point.md``; in short, per channel and time step ``t`` (every sample starts
from ``u = i = 0`` and no spike):

    x'   = x_t << (state_frac_bits − input_frac_bits)             (exact)
    cuba_lif only:  i_t = sat(D_α(i_{t−1}) + x'),  and x' := i_t
    v    = u_{t−1}                                 reset "subtract" or "zero" without a spike
         = 0                                       reset "zero" after a spike
         = u_{t−1} − θ·s_{t−1}                     reset "subtract_decayed"
    u_t  = sat(D_β(v) + x' − θ·s_{t−1}·[reset == "subtract"])
    s_t  = u_t >= θ  (spike "ge")   or   u_t > θ  (spike "gt");   li: no spike, no reset

with ``D_c(v) = round_shift(c·v, F) = (c·v + 2^(F−1)) >> F`` (round half up, the PRF core's
rule; ``F = decay_frac_bits``, ``c`` the integer coefficient, ``β = c·2^−F``) and ``sat`` the
clamp to the signed ``state_width`` range. ``if`` is LIF with ``β = 1`` (``D`` is exact).

Mapping (inference, real values ``= integer · 2^−frac_bits``):

* snnTorch ``Leaky``: ``mem = β·mem + x − s·thr`` (reset_mechanism "subtract") is reset
  ``"subtract"``, spike ``"gt"`` (snnTorch fires on ``mem − thr > 0``); "zero" is ``"zero"``;
  ``Synaptic`` (``syn = α·syn + x; mem = β·mem + syn − …``) is ``cuba_lif``;
* this project's :class:`~spikeforge.golden.lif.LIF` / ``DecoupledResetLIF``
  (``u_t = β·(u_{t−1} − V_th·s_{t−1}) + c_t``, ``Θ`` on ``>=``) is reset
  ``"subtract_decayed"``, spike ``"ge"``;
* NIR ``LIF``/``CubaLIF`` (reset to ``v_reset = 0``, spike on ``>``): ``"zero"``, ``"gt"``.

Decay coefficients are stored as the integer ``c = β·2^F`` per channel (a table of length
``channels``) or shared (length 1). The decay *form* (``decay_mode``) only restricts which
coefficients are allowed and how hardware forms the product; the arithmetic is the same:

* ``"shift"``: ``β = 1 − 2^−k`` (``c = 2^F − 2^(F−k)``, ``1 <= k <= F``) or ``β = 1``: one
  subtraction of a shifted copy;
* ``"csd"``: at most ``decay_digits`` nonzero canonical-signed-digit terms ``±2^−e``:
  ``decay_digits − 1`` additions or subtractions, no multiplier;
* ``"multiply"``: any ``0 <= c <= 2^F``: one multiplier (a DSP block) per lane and state.

A real β that is not representable is rounded by :meth:`LIFConfig.quantise_decay`.
"""

import dataclasses
import math

import numpy as np

from .core_config import CoreConfig
from .fixed import check_bool, check_int, check_int_array, check_lanes, signed_range
from .prf_int import csd_digits, csd_quantise, csd_value

__all__ = ["LIFConfig", "VARIANTS", "RESETS", "SPIKE_RULES", "DECAY_MODES"]

_OWNER = "LIFConfig"
#: ``if``: integrate-and-fire (β = 1); ``lif``: leaky; ``cuba_lif``: synaptic current ``i``
#: (decay α) feeding the membrane; ``li``: leaky integrator, membrane only (a readout).
VARIANTS = ("if", "lif", "cuba_lif", "li")
#: After a spike: ``zero`` the membrane; ``subtract`` θ after the decay (snnTorch);
#: ``subtract_decayed`` θ before the decay, so the reset decays too (SpikingJelly, golden.lif).
RESETS = ("zero", "subtract", "subtract_decayed")
#: ``ge``: spike when ``u >= θ``; ``gt``: when ``u > θ``.
SPIKE_RULES = ("ge", "gt")
DECAY_MODES = ("shift", "csd", "multiply")


def _shift_amount(coefficient: int, frac_bits: int) -> int | None:
    """``k`` with ``coefficient = 2^F − 2^(F−k)``, 0 for β = 1, None for any other value."""
    if coefficient == 1 << frac_bits:
        return 0
    below = (1 << frac_bits) - coefficient
    if below <= 0 or below & (below - 1):
        return None
    return frac_bits - (below.bit_length() - 1)


@dataclasses.dataclass(frozen=True, eq=False)
class LIFConfig(CoreConfig):
    """A LIF-family core: shape, variant, number formats and per-channel (or shared) tables.

    Real values: input ``x · 2^−input_frac_bits``; membrane ``u``, synaptic current ``i`` and
    threshold ``θ`` carry ``state_frac_bits`` (``state_width`` bits, signed, saturating);
    decays ``β = beta · 2^−decay_frac_bits`` (membrane) and ``α = alpha · 2^−decay_frac_bits``
    (synaptic current, ``cuba_lif`` only). Tables ``threshold``, ``beta`` and ``alpha`` have
    length ``channels`` (per channel) or 1 (shared by every channel). ``threshold`` lies in
    ``[0, 2^(state_width−1) − 2]`` and is None for ``li`` (which needs ``membrane_out``); ``beta`` may be left out for ``if`` (it is then ``[2^F]``, β = 1).
    """

    NEURON = "lif"

    channels: int
    threshold: np.ndarray | None = None
    beta: np.ndarray | None = None
    alpha: np.ndarray | None = None
    variant: str = "lif"
    lanes: int = 1
    decay_frac_bits: int = 8
    decay_mode: str = "shift"
    decay_digits: int = 2
    reset: str = "subtract"
    spike: str = "ge"
    input_width: int = 8
    input_frac_bits: int = 0
    state_width: int = 16
    state_frac_bits: int | None = None
    membrane_out: bool = False

    def __post_init__(self):
        def set_(name, value):
            object.__setattr__(self, name, value)

        def choice(name, options):
            value = getattr(self, name)
            if value not in options:
                raise ValueError(f"{_OWNER}.{name} must be one of {options}, got {value!r}")

        set_("channels", check_int(_OWNER, "channels", self.channels, min_value=1))
        set_("lanes", check_lanes(_OWNER, self.lanes, self.channels))
        choice("variant", VARIANTS)
        choice("reset", RESETS)
        choice("spike", SPIKE_RULES)
        choice("decay_mode", DECAY_MODES)
        check_bool(_OWNER, "membrane_out", self.membrane_out)
        set_("input_width", check_int(_OWNER, "input_width", self.input_width, min_value=2,
                                      max_value=32))
        set_("input_frac_bits", check_int(_OWNER, "input_frac_bits", self.input_frac_bits,
                                          min_value=-32, max_value=32))
        set_("state_width", check_int(_OWNER, "state_width", self.state_width, min_value=2,
                                      max_value=40))
        if self.state_frac_bits is None:
            set_("state_frac_bits", self.input_frac_bits)
        set_("state_frac_bits", check_int(_OWNER, "state_frac_bits", self.state_frac_bits,
                                          min_value=self.input_frac_bits,
                                          max_value=self.input_frac_bits + 32))
        if self.input_width + self.align_shift > 48:
            raise ValueError(f"{_OWNER}: an input aligned to the state grid needs "
                             f"input_width + state_frac_bits − input_frac_bits = "
                             f"{self.input_width + self.align_shift} bits; more than 48 is not "
                             f"supported")
        set_("decay_frac_bits", check_int(_OWNER, "decay_frac_bits", self.decay_frac_bits,
                                          min_value=1, max_value=20))
        set_("decay_digits", check_int(_OWNER, "decay_digits", self.decay_digits, min_value=1,
                                       max_value=8))
        one = 1 << self.decay_frac_bits

        if self.variant == "if":
            if self.beta is None:
                set_("beta", [one])
            beta = self._table("beta", self.beta, 0, one)
            if np.any(beta != one):
                raise ValueError(f"{_OWNER}.beta must be 2^decay_frac_bits = {one} (β = 1) for "
                                 f"variant 'if'; use variant 'lif' for a decay")
        elif self.beta is None:
            raise ValueError(f"{_OWNER}.beta (the membrane decay, β·2^{self.decay_frac_bits}) is "
                             f"required for variant {self.variant!r}")
        set_("beta", self._table("beta", self.beta, 0, one))
        if self.variant == "cuba_lif":
            if self.alpha is None:
                raise ValueError(f"{_OWNER}.alpha (the synaptic-current decay) is required for "
                                 f"variant 'cuba_lif'")
            set_("alpha", self._table("alpha", self.alpha, 0, one))
        elif self.alpha is not None:
            raise ValueError(f"{_OWNER}.alpha is only used by variant 'cuba_lif', not "
                             f"{self.variant!r}")
        for name in self.decay_tables:
            self._check_decay_form(name, getattr(self, name))

        lo, hi = self.state_range
        if self.variant == "li":
            if not self.membrane_out:
                raise ValueError(f"{_OWNER}.membrane_out must be true for variant 'li' (its "
                                 f"output is the membrane)")
            if self.threshold is not None:
                raise ValueError(f"{_OWNER}.threshold must be left out for variant 'li' (a "
                                 f"leaky integrator does not spike)")
        else:
            if self.threshold is None:
                raise ValueError(f"{_OWNER}.threshold is required for variant "
                                 f"{self.variant!r}")
            # θ < the largest state: a saturated membrane then spikes under both rules, so
            # hardware may compare the unsaturated sum (docs/lif_fixed_point.md).
            set_("threshold", self._table("threshold", self.threshold, 0, hi - 1))
        if self.state_width + self.decay_frac_bits + 3 > 62:
            raise ValueError(f"{_OWNER}: a decay product needs state_width + decay_frac_bits "
                             f"+ 3 = {self.state_width + self.decay_frac_bits + 3} bits; more "
                             f"than 62 is not supported")

    def _table(self, name, value, lo, hi) -> np.ndarray:
        length = np.size(np.asarray(value))
        shape = (self.channels,) if length == self.channels else (1,)
        if length not in (1, self.channels):
            raise ValueError(f"{_OWNER}.{name} must have length {self.channels} (per channel) "
                             f"or 1 (shared), got {np.shape(np.asarray(value))}")
        return check_int_array(_OWNER, name, np.reshape(np.asarray(value), shape), shape,
                               min_value=lo, max_value=hi)

    def _check_decay_form(self, name, table):
        for index, value in enumerate(table.tolist()):
            where = f"{_OWNER}.{name}[{index}] = {value}"
            if self.decay_mode == "shift" and _shift_amount(value, self.decay_frac_bits) is None:
                raise ValueError(f"{where} is not 1 − 2^−k (k = 1 … {self.decay_frac_bits}) "
                                 f"or 1 in units of 2^−{self.decay_frac_bits}, as decay_mode "
                                 f"'shift' needs; use quantise_decay or decay_mode 'csd'")
            if self.decay_mode == "csd":
                digits = len(csd_digits(value, self.decay_frac_bits))
                if digits > self.decay_digits:
                    raise ValueError(f"{where} has {digits} canonical-signed-digit terms; "
                                     f"decay_digits is {self.decay_digits}")

    # -- derived quantities: computed once here, read by everyone ---------------------------

    @property
    def spiking(self) -> bool:
        """Every variant but ``li`` emits spikes."""
        return self.variant != "li"

    @property
    def decay_tables(self) -> tuple[str, ...]:
        """The decay tables this variant uses: ``beta`` (and ``alpha`` for ``cuba_lif``)."""
        return ("beta", "alpha") if self.variant == "cuba_lif" else ("beta",)

    @property
    def state_range(self) -> tuple[int, int]:
        return signed_range(self.state_width)

    @property
    def membrane_width(self) -> int:
        """Bits of a membrane value on the output stream (the state width)."""
        return self.state_width

    @property
    def align_shift(self) -> int:
        """Left shift from the input grid to the state grid."""
        return self.state_frac_bits - self.input_frac_bits

    def per_channel(self, name: str) -> np.ndarray:
        """Table ``name`` expanded to one value per channel."""
        table = getattr(self, name)
        return np.broadcast_to(table, (self.channels,)).astype(np.int64)

    def decay_digits_of(self, name: str) -> list[list[tuple[int, int]]]:
        """Per channel, the CSD digits ``[(sign, e)]`` (``β = Σ sign·2^−e``) of a decay table."""
        return [csd_digits(int(value), self.decay_frac_bits)
                for value in self.per_channel(name)]

    def shift_of(self, name: str) -> np.ndarray:
        """``decay_mode`` ``shift``: per channel ``k`` of ``β = 1 − 2^−k`` (0 for β = 1)."""
        return np.array([_shift_amount(int(v), self.decay_frac_bits)
                         for v in self.per_channel(name)], dtype=np.int64)

    # -- construction helpers ----------------------------------------------------------------

    def replace(self, **changes) -> "LIFConfig":
        return dataclasses.replace(self, **changes)

    @staticmethod
    def quantise_decay(value: float, frac_bits: int, mode: str = "shift",
                       digits: int = 2) -> int:
        """The integer coefficient (units of ``2^−frac_bits``) for a real decay ``value``.

        ``multiply``: ``round(value·2^F)`` (half up), clipped to ``[0, 2^F]``. ``csd``: the
        nearest value with at most ``digits`` CSD terms (ties away from zero), clipped to
        ``[0, 2^F]``. ``shift``: the nearest of ``1 − 2^−k`` (``k = 1 … F``) and 1, ties to
        the smaller β (a faster decay, as the other rounding errors of a leaky neuron
        already drift toward larger membranes). Exact whenever ``value`` is representable.
        """
        value = float(value)
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"a decay must lie in [0, 1], got {value}")
        frac_bits = check_int(_OWNER, "decay_frac_bits", frac_bits, min_value=1, max_value=20)
        one = 1 << frac_bits
        scaled = value * one
        if mode == "multiply":
            return min(one, max(0, math.floor(scaled + 0.5)))
        if mode == "csd":
            nearest = math.floor(scaled + 0.5)
            coefficient = csd_value(csd_quantise(nearest, frac_bits, digits), frac_bits)
            return min(one, max(0, coefficient))
        if mode == "shift":
            candidates = [one] + [one - (one >> k) for k in range(1, frac_bits + 1)]
            return min(sorted(candidates), key=lambda c: abs(c - scaled))
        raise ValueError(f"mode must be one of {DECAY_MODES}, got {mode!r}")

    @classmethod
    def random(cls, rng: np.random.Generator, *, channels: int, shared: bool = False,
               **fields) -> "LIFConfig":
        """A configuration with random tables (for tests and benchmarks): thresholds and
        decays drawn so that neurons neither never nor always fire."""
        probe = cls(channels=channels, variant="if", threshold=[1],
                    **{k: v for k, v in fields.items() if k not in ("variant", "threshold",
                                                                    "beta", "alpha",
                                                                    "membrane_out")})
        variant = fields.pop("variant", "lif")
        if variant == "li":
            fields["membrane_out"] = True
        frac, mode = probe.decay_frac_bits, probe.decay_mode
        count = 1 if shared else channels

        def decays():
            if mode == "shift":
                ks = rng.integers(1, min(frac, 6) + 1, size=count)
                return (1 << frac) - ((1 << frac) >> ks)
            real = rng.uniform(0.5, 1.0, size=count)
            return np.array([cls.quantise_decay(v, frac, mode, probe.decay_digits)
                             for v in real])

        _, hi = probe.state_range
        scale = max(1, -probe.input_range[0] << probe.align_shift)
        tables = {"beta": fields.pop("beta", None if variant == "if" else decays())}
        if variant == "cuba_lif":
            tables["alpha"] = fields.pop("alpha", decays())
        if variant != "li":
            tables["threshold"] = fields.pop(
                "threshold", np.minimum(hi, rng.integers(scale // 4 + 1, 2 * scale + 2,
                                                         size=count)))
        return cls(channels=channels, variant=variant, **tables, **fields)

    # -- JSON: the on-disk form of a configuration ---------------------------------------

    _JSON_FIELDS = ("channels", "lanes", "variant", "decay_frac_bits", "decay_mode",
                    "decay_digits", "reset", "spike", "input_width", "input_frac_bits",
                    "state_width", "state_frac_bits", "membrane_out")
    _JSON_TABLES = ("threshold", "beta", "alpha")
    _JSON_REQUIRED = ("channels",)
