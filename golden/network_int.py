"""Bit-exact integer model of a whole network: what an exported network computes.

A network is an input quantiser, then per hidden layer an integer *synapse* (fully connected,
BatchNorm folded in) feeding a neuron *core* (CPSN or PRF, exactly the hardware's integer
model), then an integer readout. Semantics (``docs/network_fixed_point.md``):

    input       X = sat_W0(round(x · 2^f0))                      (round half to even)
    synapse l   A = Wq · a + Vq · S_{t−1} + bq                    (exact, int64; V: recurrent)
                U = sat_Wl(round_shift(A, shift_l))               (round half up)
    core l      S = core(U)                                       (cpsn_integer / prf_integer)
    readout     Z = Σ_t (Rq · S_t + rq)   or   Rq · S_{T−1} + rq  (exact), class = argmax Z

``a`` is ``X`` for the first layer and the previous core's spikes after it; a *recurrent*
layer (``IntegerSynapse.recurrent``, snnTorch's RLeaky/RSynaptic) also adds its own core's
spikes of the previous time step (none at ``t = 0``), so its core runs step by step (only
cores with a step model, :attr:`CoreModel.step`: LIF). Samples of their own lengths (the
hardware's ``tlast`` ends each) run as a batch padded at the end with their ``lengths``:
each runs on its own steps only, so ``mean_membrane`` sums its own steps and
``last_membrane`` reads its own last one. The neuron inputs
``U`` are what the cores receive on their input stream; :class:`NetworkTrace` records them so
co-simulation can feed each core the integers the model saw.
"""

import dataclasses
from typing import Callable

import numpy as np

from .cpsn_config import CPSNConfig
from .lif_config import LIFConfig
from .lif_int import lif_integer, lif_step
from .prf_config import PRFConfig
from .cpsn_int import check_inputs, cpsn_integer
from .fixed import check_int, check_int_array, signed_range, signed_width
from .prf_int import prf_integer, round_shift

__all__ = ["IntegerSynapse", "IntegerLayer", "IntegerNetwork", "NetworkTrace", "READOUTS",
           "pad_samples",
           "CoreModel", "core_model", "core_outputs", "core_spikes", "saturate",
           "readout_step_bound", "readout_logit_width", "saturating_sum"]

READOUTS = ("mean_membrane", "last_membrane")
_ACCUMULATOR_BITS = 62  # every sum must fit int64 with margin


def pad_samples(samples) -> tuple[np.ndarray, np.ndarray]:
    """``(x [T, N, F], lengths [N])`` of ``[T_i, F]`` samples, zero-padded at the end to the
    longest; :meth:`IntegerNetwork.run` takes both."""
    lengths = np.array([len(sample) for sample in samples], dtype=np.int64)
    if not len(lengths) or lengths.min() < 1:
        raise ValueError("pad_samples needs one or more samples of one or more steps")
    first = np.asarray(samples[0])
    x = np.zeros((int(lengths.max()), len(samples), first.shape[1]), dtype=first.dtype)
    for index, sample in enumerate(samples):
        x[:len(sample), index] = sample
    return x, lengths


def saturate(values: np.ndarray, width: int) -> tuple[np.ndarray, int]:
    """Clip to the signed ``width``-bit range; returns ``(values, number clipped)``."""
    lo, hi = signed_range(width)
    clipped = int(np.count_nonzero((values < lo) | (values > hi)))
    return np.clip(values, lo, hi), clipped


def readout_step_bound(weight, bias) -> int:
    """Largest ``|R·s + r|`` of one readout step over all spike vectors ``s``: the largest
    row sum of ``|R|`` plus the largest ``|r|``."""
    return int(np.abs(np.asarray(weight, dtype=np.int64)).sum(axis=1).max()) + \
        int(np.abs(np.asarray(bias, dtype=np.int64)).max())


def readout_logit_width(weight, bias, kind: str, max_steps: int) -> int:
    """``Wz``, the width of the logits of a readout sized for samples of up to
    ``max_steps`` steps.

    ``last_membrane`` keeps one step: ``signed_width(B)`` for ``B`` the step bound, whatever
    the sample's length. ``mean_membrane`` sums the steps: ``signed_width(B_z + 1)`` with
    ``B_z = max_steps · B``, one more than the largest sum, so that neither end of the
    signed range (``−2^(Wz−1)``, ``2^(Wz−1) − 1``) can be reached by a sample of up to
    ``max_steps`` steps: a logit at a range end is a saturated one (see
    :func:`saturating_sum`)."""
    if kind not in READOUTS:
        raise ValueError(f"readout kind must be one of {READOUTS}, got {kind!r}")
    check_int("readout_logit_width", "max_steps", max_steps, min_value=1)
    bound = readout_step_bound(weight, bias)
    if kind == "last_membrane":
        return signed_width(-bound, bound)
    total = max_steps * bound + 1
    return signed_width(-total, total)


def saturating_sum(steps: np.ndarray, width: int) -> np.ndarray:
    """The ``mean_membrane`` logits of the hardware: the sum over axis 0 of ``steps``
    (``[T, ..., K]`` per-step readouts ``R·S_t + r``), kept in the signed ``width``-bit range
    by a *sticky* saturation: after each step a logit outside the range is clipped to the
    range end it passed, and a logit at a range end stays there for the rest of the sample.

        Z_0 = 0;  Z_t = Z_{t−1}                         if Z_{t−1} ∈ {lo, hi} (t ≥ 1)
                  Z_t = sat(Z_{t−1} + R·S_t + r)        otherwise

    Exact (the plain sum) while every partial sum stays inside ``(lo, hi)``, which
    :func:`readout_logit_width` guarantees for samples up to ``max_steps`` steps. A longer
    sample either stays exact or ends with a logit at ``lo`` or ``hi`` (never a wrapped
    value, never a value that went out of range and came back)."""
    steps = np.asarray(steps, dtype=np.int64)
    lo, hi = signed_range(width)
    total = np.zeros(steps.shape[1:], dtype=np.int64)
    stuck = np.zeros(steps.shape[1:], dtype=bool)
    for step in steps:
        total = np.where(stuck, total, np.clip(total + step, lo, hi))
        stuck = (total == lo) | (total == hi)
    return total


@dataclasses.dataclass(frozen=True)
class CoreModel:
    """A neuron kind as the integer models and the stream format see it.

    Members:
        neuron: the configuration's ``NEURON`` name.
        outputs: ``(config, x) -> (spikes, membrane)`` for ``x`` ``[T, N, C]`` or ``[T, C]``.
        steps: ``config -> time steps per beat`` (PRF: ``time_parallelism``).
        membrane_width: ``config -> bits of a membrane on the output stream``, None when the
            core has no membrane output.
        check: ``(config, sample) -> sample`` as int64 ``[T, C]``, refusing invalid inputs.
        step: ``(config, x_t, state) -> (spikes_t, state)`` for ``x_t`` ``[N, C]`` (state
            None at ``t = 0``), for recurrent layers; None when the kind has no step model.
    """

    neuron: str
    outputs: Callable
    steps: Callable
    membrane_width: Callable
    check: Callable
    step: Callable | None = None


def _prf_outputs(config, x):
    spikes, u, _ = prf_integer(config, x)
    return spikes, u


def _lif_step(config, x, state):
    x = np.asarray(x, dtype=np.int64)
    lo, hi = config.input_range
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"a LIF step input lies outside the signed {config.input_width}-bit "
                         f"range")
    if state is None:
        state = (np.zeros_like(x),) * 3
    membrane, current, spike = state
    spike, membrane, current = lif_step(config, x, membrane, current, spike)
    return spike, (membrane, current, spike)


def _int64(config, sample):
    return np.asarray(sample, dtype=np.int64)  # the model validates


#: Every neuron kind, keyed by its configuration class (hw/cores.py keeps the hardware side).
CORE_MODELS = {
    CPSNConfig: CoreModel("cpsn", cpsn_integer, lambda c: 1,
                          lambda c: c.membrane_width if c.membrane_out else None,
                          lambda c, s: check_inputs(c, s)[:, 0]),
    PRFConfig: CoreModel("prf", _prf_outputs, lambda c: c.time_parallelism,
                         lambda c: c.state_width if c.membrane_out else None, _int64),
    LIFConfig: CoreModel("lif", lif_integer, lambda c: 1,
                         lambda c: c.state_width if c.membrane_out else None, _int64,
                         _lif_step),
}


def core_model(config) -> CoreModel:
    try:
        return CORE_MODELS[type(config)]
    except KeyError:
        raise TypeError(f"no integer core model for a {type(config).__name__}; known: "
                        f"{sorted(cls.__name__ for cls in CORE_MODELS)}") from None


def core_outputs(config, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(spikes, membrane)`` of a core's integer model (PRF's membrane is the real state
    ``u``; LIF's the membrane before its reset) for inputs ``x`` (``[T, N, C]`` or
    ``[T, C]``)."""
    return core_model(config).outputs(config, x)


def core_spikes(config, x: np.ndarray) -> np.ndarray:
    """Spikes (int64) of a core's integer model for inputs ``x``."""
    return core_outputs(config, x)[0].astype(np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class IntegerSynapse:
    """A fully connected layer in integer arithmetic.

    Members:
        weight: ``[outputs, inputs]`` signed ``weight_width``-bit integers, real value
            ``weight · 2^−weight_frac_bits``.
        bias: ``[outputs]`` integers on the accumulator grid.
        weight_width, weight_frac_bits: the weight format.
        shift: right shift (round half up) from the accumulator to the output grid; negative
            is an exact left shift. Ignored when ``out_width`` is None.
        out_width: signed width the output saturates to (a core's ``input_width``); None keeps
            the exact accumulator (the readout).
        input_bound: largest ``|a|`` the inputs may have (1 for spikes), for the overflow check.
        recurrent: ``[outputs, outputs]`` weights (same format) from the layer's own spikes of
            the previous time step, or None (a feed-forward layer).
    """

    weight: np.ndarray
    bias: np.ndarray
    weight_width: int
    weight_frac_bits: int
    shift: int
    out_width: int | None
    input_bound: int
    recurrent: np.ndarray | None = None

    def __post_init__(self):
        owner = "IntegerSynapse"
        width = check_int(owner, "weight_width", self.weight_width, min_value=2, max_value=32)
        check_int(owner, "weight_frac_bits", self.weight_frac_bits, min_value=-64, max_value=64)
        check_int(owner, "shift", self.shift, min_value=-62, max_value=62)
        check_int(owner, "input_bound", self.input_bound, min_value=1)
        if self.out_width is not None:
            check_int(owner, "out_width", self.out_width, min_value=2, max_value=32)
        weight = np.asarray(self.weight)
        if weight.ndim != 2:
            raise ValueError(f"{owner}.weight must be [outputs, inputs], got {list(weight.shape)}")
        lo, hi = signed_range(width)
        object.__setattr__(self, "weight", check_int_array(owner, "weight", weight, weight.shape,
                                                           min_value=lo, max_value=hi))
        object.__setattr__(self, "bias", check_int_array(owner, "bias", self.bias,
                                                         (weight.shape[0],)))
        recurrent_sum = 0
        if self.recurrent is not None:
            if self.out_width is None:
                raise ValueError(f"{owner}: the readout cannot be recurrent")
            outputs = weight.shape[0]
            object.__setattr__(self, "recurrent", check_int_array(
                owner, "recurrent", self.recurrent, (outputs, outputs), min_value=lo,
                max_value=hi))
            recurrent_sum = int(np.abs(self.recurrent).sum(axis=1).max())
        largest = (int(np.abs(self.weight).sum(axis=1).max()) * self.input_bound
                   + recurrent_sum + int(np.abs(self.bias).max()))
        if largest.bit_length() >= _ACCUMULATOR_BITS:
            raise ValueError(f"{owner}: the accumulator could reach {largest}, more than "
                             f"{_ACCUMULATOR_BITS} bits; reduce the weight or input widths")

    @property
    def inputs(self) -> int:
        return self.weight.shape[1]

    @property
    def outputs(self) -> int:
        return self.weight.shape[0]

    def accumulate(self, a: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
        """``W · a + V · s + b`` exactly, for ``a`` ``[..., inputs]`` integers and (recurrent
        synapses) the layer's spikes ``previous`` ``[..., outputs]`` of the step before."""
        total = np.asarray(a, dtype=np.int64) @ self.weight.T + self.bias
        if self.recurrent is not None and previous is not None:
            total = total + np.asarray(previous, dtype=np.int64) @ self.recurrent.T
        return total

    def __call__(self, a: np.ndarray, previous: np.ndarray | None = None
                 ) -> tuple[np.ndarray, int]:
        """``(outputs, number saturated)`` on the output grid."""
        return saturate(round_shift(self.accumulate(a, previous), self.shift), self.out_width)


@dataclasses.dataclass(frozen=True, eq=False)
class IntegerLayer:
    """A hidden layer: ``name`` (the core's name, e.g. ``sn0``), its synapse and its core."""

    name: str
    synapse: IntegerSynapse
    core: object  # a configuration of CORE_MODELS

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"layer name {self.name!r} must be an identifier")
        if self.synapse.out_width != self.core.input_width:
            raise ValueError(f"layer {self.name!r}: the synapse saturates to "
                             f"{self.synapse.out_width} bits but the core takes "
                             f"{self.core.input_width}-bit inputs")
        if self.synapse.outputs != self.core.channels:
            raise ValueError(f"layer {self.name!r}: the synapse has {self.synapse.outputs} "
                             f"outputs but the core has {self.core.channels} channels")
        if self.recurrent and core_model(self.core).step is None:
            raise ValueError(f"layer {self.name!r}: a recurrent layer needs a core that runs "
                             f"step by step (LIF); a {core_model(self.core).neuron} core "
                             f"has no step model")

    @property
    def recurrent(self) -> bool:
        """Whether the layer's spikes of step ``t`` feed its synapse at step ``t + 1``."""
        return self.synapse.recurrent is not None

    def run(self, activity: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """``(core inputs U, spikes, number saturated)`` for inputs ``[T, N, inputs]``."""
        if not self.recurrent:
            drive, clipped = self.synapse(activity)
            return drive, core_spikes(self.core, drive), clipped
        step = core_model(self.core).step
        drives, spikes, clipped, state = [], [], 0, None
        previous = None
        for a in np.asarray(activity, dtype=np.int64):
            drive, count = self.synapse(a, previous)
            previous, state = step(self.core, drive, state)
            drives.append(drive)
            spikes.append(previous.astype(np.int64))
            clipped += count
        return np.stack(drives), np.stack(spikes), clipped


@dataclasses.dataclass
class NetworkTrace:
    """What one run of :class:`IntegerNetwork` saw.

    Members:
        logits: ``[N, outputs]`` int64 readout ``Z``.
        inputs: layer name → ``[T, N, C]`` integer core inputs ``U``.
        spikes: layer name → ``[T, N, C]`` core spikes.
        saturated: ``"input"`` and each layer name → number of values clipped;
            ``"readout"`` → number of logits at a range end (saturated; always 0 without
            ``IntegerNetwork.max_steps``).
        lengths: ``[N]`` steps of each sample; ``inputs`` and ``spikes`` are zero after them
            (not run).
    """

    logits: np.ndarray
    inputs: dict
    spikes: dict
    saturated: dict
    lengths: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        """``[T, N]`` booleans: the steps each sample ran."""
        steps = next(iter(self.spikes.values())).shape[0]
        return np.arange(steps)[:, None] < self.lengths[None, :]

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


@dataclasses.dataclass(frozen=True, eq=False)
class IntegerNetwork:
    """The exported network (see the module docstring).

    Members:
        input_width, input_frac_bits: format of the quantised network input ``X``.
        layers: the hidden layers, input to output.
        readout: the output synapse (``out_width=None``).
        readout_kind: ``mean_membrane`` (sum over time) or ``last_membrane`` (last step).
        max_steps: None: exact int64 logits, whatever the sample's length. A number: the
            logits of an accelerator sized for samples of up to ``max_steps`` steps
            (``generate --max-steps``): ``logit_width`` bits, ``mean_membrane`` summed with
            :func:`saturating_sum` (identical for samples up to ``max_steps`` steps; a
            longer one that overflows ends with that logit at a range end).
    """

    input_width: int
    input_frac_bits: int
    layers: tuple
    readout: IntegerSynapse
    readout_kind: str
    max_steps: int | None = None

    def __post_init__(self):
        check_int("IntegerNetwork", "input_width", self.input_width, min_value=2, max_value=32)
        if self.max_steps is not None:
            check_int("IntegerNetwork", "max_steps", self.max_steps, min_value=1)
        if self.readout_kind not in READOUTS:
            raise ValueError(f"IntegerNetwork.readout_kind must be one of {READOUTS}, got "
                             f"{self.readout_kind!r}")
        if not self.layers:
            raise ValueError("IntegerNetwork needs at least one hidden layer")
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.readout.out_width is not None:
            raise ValueError("IntegerNetwork.readout must keep the exact accumulator "
                             "(out_width=None)")
        widths = [self.layers[0].synapse.inputs] + [layer.core.channels for layer in self.layers]
        consumers = [layer.synapse for layer in self.layers] + [self.readout]
        for index, (width, synapse) in enumerate(zip(widths, consumers)):
            if synapse.inputs != width:
                what = "the readout" if index == len(self.layers) else \
                    f"layer {self.layers[index].name!r}"
                raise ValueError(f"{what} takes {synapse.inputs} inputs but receives {width}")

    @property
    def in_features(self) -> int:
        return self.layers[0].synapse.inputs

    @property
    def logit_width(self) -> int | None:
        """Bits of each logit of the accelerator sized for ``max_steps`` (None: unsized)."""
        if self.max_steps is None:
            return None
        return readout_logit_width(self.readout.weight, self.readout.bias, self.readout_kind,
                                   self.max_steps)

    def quantise_input(self, x) -> tuple[np.ndarray, int]:
        """``(X, number saturated)`` for a float input ``[T, N, in_features]``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 3 or x.shape[2] != self.in_features:
            raise ValueError(f"network input must be [T, N, {self.in_features}], got "
                             f"{list(x.shape)}")
        if not np.all(np.isfinite(x)):
            raise ValueError("network input contains NaN or infinity")
        return saturate(np.round(np.ldexp(x, self.input_frac_bits)).astype(np.int64),
                        self.input_width)

    def run(self, x, lengths=None) -> NetworkTrace:
        """Run on a float input ``[T, N, in_features]`` (quantised by :meth:`quantise_input`);
        ``lengths`` ``[N]`` (default: ``T`` each): each sample's own steps, ``x`` padded after
        them. Samples of one length run as one batch, exactly as each would alone."""
        if lengths is None:
            trace = self._run(x)
            steps, count = next(iter(trace.spikes.values())).shape[:2]
            trace.lengths = np.full(count, steps, dtype=np.int64)
            return trace
        x = np.asarray(x, dtype=np.float64)
        lengths = np.asarray(lengths, dtype=np.int64)
        if x.ndim != 3 or lengths.shape != (x.shape[1],) or not (
                lengths.size and 1 <= lengths.min() and lengths.max() <= x.shape[0]):
            raise ValueError(f"lengths must be one value in [1, T] per sample of a [T, N, F] "
                             f"input; got {lengths.tolist()} for {list(x.shape)}")
        steps = x.shape[0]
        trace = NetworkTrace(logits=np.zeros((x.shape[1], self.readout.outputs), np.int64),
                             inputs={}, spikes={}, saturated={}, lengths=lengths)
        for length in np.unique(lengths):
            group = np.flatnonzero(lengths == length)
            part = self._run(x[:length, group])
            trace.logits[group] = part.logits
            for name, values in part.saturated.items():
                trace.saturated[name] = trace.saturated.get(name, 0) + values
            for store, values in ((trace.inputs, part.inputs), (trace.spikes, part.spikes)):
                for name, array in values.items():
                    if name not in store:
                        store[name] = np.zeros((steps, x.shape[1], array.shape[2]), array.dtype)
                    store[name][:length, group] = array
        return trace

    def _run(self, x) -> NetworkTrace:
        """:meth:`run` on samples of one length."""
        activity, clipped = self.quantise_input(x)
        trace = NetworkTrace(logits=None, inputs={}, spikes={}, saturated={"input": clipped})
        for layer in self.layers:
            drive, activity, clipped = layer.run(activity)
            trace.inputs[layer.name], trace.spikes[layer.name] = drive, activity
            trace.saturated[layer.name] = clipped
        if self.readout_kind == "mean_membrane":
            steps = self.readout.accumulate(activity)
            if self.max_steps is None:
                trace.logits = steps.sum(axis=0)
            else:
                trace.logits = saturating_sum(steps, self.logit_width)
        else:
            trace.logits = self.readout.accumulate(activity[-1])
        trace.saturated["readout"] = 0
        if self.max_steps is not None and self.readout_kind == "mean_membrane":
            lo, hi = signed_range(self.logit_width)
            trace.saturated["readout"] = int(np.count_nonzero(
                (trace.logits == lo) | (trace.logits == hi)))
        return trace
