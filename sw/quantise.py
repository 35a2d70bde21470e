"""From a trained float network to its integer model, and how much accuracy that costs.

:func:`quantise_network` folds every ``Linear → BatchNorm`` pair into one integer synapse,
chooses each fixed-point scale from calibration data (activations the float network produces
on training samples) and quantises every neuron layer to its core's format (CPSN through its
BatchNorm folding, PRF through :meth:`~spikeforge.golden.prf.PRF.hardware_config`). The rules
are written down in ``docs/network_fixed_point.md``; :func:`quantisation_report` measures the
result and :func:`smallest_widths` searches the narrowest widths within an accuracy tolerance.

Samples of their own lengths travel as a batch padded at the end plus their ``lengths``
(:func:`stack_dataset`): calibration scales, spike agreement, firing rates and saturation
counts then come from each sample's own steps only.
"""

import dataclasses
import math

import numpy as np
import torch

from ..golden.cpsn import CPSN
from ..golden.cpsn_bn import CPSNBN
from ..golden.fixed import check_int, signed_range
from ..golden.lif import LIF, DecoupledResetLIF
from ..golden.lif_config import DECAY_MODES, LIFConfig
from ..golden.network_int import (IntegerLayer, IntegerNetwork, IntegerSynapse, READOUTS,
                                  core_model, pad_samples)
from ..golden.networks import SeqBatchNorm, SpikingNetwork
from ..golden.prf import PRF
from ..golden.prf_config import COEF_MODES

__all__ = ["Formats", "QuantisationError", "stack_dataset", "quantise_network",
           "quantisation_report", "smallest_widths", "frac_bits_for"]

_HARDWARE_NEURONS = (CPSN, CPSNBN, PRF, LIF, DecoupledResetLIF)


class QuantisationError(ValueError):
    """A network cannot be exported; the message names the layer and the reason."""


@dataclasses.dataclass(frozen=True)
class Formats:
    """Bit widths and core options of an export (the ``spikeforge export`` options).

    Members:
        input_width: signed width of the quantised network input ``X``.
        core_input_width: signed width of every core's input ``U``.
        weight_width: signed width of synapse and readout weights.
        percentile: calibration picks each scale so that this percentile of ``|activation|``
            fits (100: the largest value); larger values saturate and are counted.
        lanes: channels per beat of every core (the largest divisor of the layer width that
            is not above it).
        prf_coef_mode, prf_csd_terms, prf_coef_width, prf_state_frac_bits,
            prf_time_parallelism: PRF core format (:class:`~spikeforge.golden.prf_config.PRFConfig`;
            the state width follows from its proven bound).
        lif_decay_mode, lif_decay_digits, lif_decay_frac_bits: LIF decay form
            (:class:`~spikeforge.golden.lif_config.LIFConfig`); β = 1 − 1/τ is rounded by
            ``LIFConfig.quantise_decay`` (exact for τ = 2^k).
        lif_extra_frac_bits: fraction bits of the LIF membrane beyond the core input's (the
            decay's rounding happens this far below an input LSB).
    """

    input_width: int = 8
    core_input_width: int = 8
    weight_width: int = 8
    percentile: float = 99.99
    lanes: int = 8
    prf_coef_mode: str = "shift_add"
    prf_csd_terms: int = 4
    prf_coef_width: int = 16
    prf_state_frac_bits: int = 16
    prf_time_parallelism: int = 1
    lif_decay_mode: str = "csd"
    lif_decay_digits: int = 3
    lif_decay_frac_bits: int = 8
    lif_extra_frac_bits: int = 4

    def __post_init__(self):
        for name in ("input_width", "core_input_width", "weight_width"):
            check_int("Formats", name, getattr(self, name), min_value=2, max_value=24)
        check_int("Formats", "lanes", self.lanes, min_value=1)
        if not 0 < self.percentile <= 100:
            raise ValueError(f"Formats.percentile must lie in (0, 100], got {self.percentile}")
        if self.lif_decay_mode not in DECAY_MODES:
            raise ValueError(f"Formats.lif_decay_mode must be one of {DECAY_MODES}, got "
                             f"{self.lif_decay_mode!r}")
        check_int("Formats", "lif_extra_frac_bits", self.lif_extra_frac_bits, min_value=0,
                  max_value=16)
        if self.prf_coef_mode not in COEF_MODES:
            raise ValueError(f"Formats.prf_coef_mode must be one of {COEF_MODES}, got "
                             f"{self.prf_coef_mode!r}")

    def replace(self, **changes) -> "Formats":
        return dataclasses.replace(self, **changes)


def stack_dataset(dataset, limit: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x [T, N, F] float64, targets [N], lengths [N])`` of the first ``limit`` samples of a
    dataset, padded with zeros at the end to the longest (``T``)."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if count == 0:
        raise QuantisationError("the dataset split is empty")
    samples = [dataset[i] for i in range(count)]
    x, lengths = pad_samples([s[0].double().numpy() for s in samples])
    return x, torch.stack([torch.as_tensor(s[1]) for s in samples]).numpy(), lengths


def _valid(values: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """The values ``[T, N, ...]`` of each sample's own steps (all with ``lengths`` None)."""
    if lengths is None:
        return values
    return values[np.arange(values.shape[0])[:, None] < np.asarray(lengths)[None, :]]


def frac_bits_for(magnitude: float, width: int) -> int:
    """The most fractional bits such that ``magnitude`` still fits a signed ``width``-bit
    integer: ``magnitude · 2^f <= 2^(width−1) − 1``."""
    largest = signed_range(width)[1]
    if not math.isfinite(magnitude):
        raise QuantisationError(f"a calibration activation is not finite ({magnitude})")
    if magnitude <= 0:
        return width - 1
    bits = math.floor(math.log2(largest / magnitude))
    while math.ldexp(magnitude, bits) > largest:  # guard the log's rounding
        bits -= 1
    return max(-32, min(48, bits))


def _hardware_layers(model: SpikingNetwork) -> list[tuple[str, torch.nn.Module,
                                                          torch.nn.Module, torch.nn.Module]]:
    """``(neuron name, Linear, norm, neuron)`` per hidden layer, or why there is no hardware."""
    config = model.config
    if config.arch != "mlp":
        raise QuantisationError(f"export maps 'mlp' networks (Linear → BatchNorm → neuron per "
                                f"layer) to hardware; this run is {config.arch!r}")
    if config.readout not in READOUTS:
        raise QuantisationError(f"export supports the readouts {list(READOUTS)}; this run uses "
                                f"{config.readout!r}")
    modules, layers = dict(model.layers.named_children()), []
    for index in range(len(config.hidden or (128,))):
        neuron = modules[f"sn{index}"]
        if not isinstance(neuron, _HARDWARE_NEURONS):
            raise QuantisationError(
                f"layer sn{index}: {type(neuron).__name__} has no hardware core; export "
                f"supports cpsn, cpsn_bn, prf, lif and decoupled_lif layers")
        if isinstance(neuron, (CPSN, CPSNBN)) and not neuron.quantize:
            raise QuantisationError(f"layer sn{index}: a CPSN trained with quantize: false has "
                                    f"float weights; the core needs power-of-two weights")
        layers.append((f"sn{index}", modules[f"fc{index}"], modules[f"norm{index}"], neuron))
    return layers


def _fold(linear: torch.nn.Linear, norm: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """``(A, c)`` with ``norm(linear(a)) = A·a + c`` in inference mode (float64)."""
    weight = linear.weight.detach().double().cpu().numpy()
    bias = linear.bias.detach().double().cpu().numpy()
    if isinstance(norm, SeqBatchNorm):
        scale = (norm.weight.detach().double() /
                 torch.sqrt(norm.running_var.double() + norm.eps)).cpu().numpy()
        shift = norm.bias.detach().double().cpu().numpy() - \
            norm.running_mean.double().cpu().numpy() * scale
        return weight * scale[:, None], bias * scale + shift
    return weight, bias


@torch.no_grad()
def _float_run(model: SpikingNetwork, x: np.ndarray, names: list[str], lengths=None):
    """``(logits, {name: neuron input}, {name: spikes})`` of the float network."""
    model.eval()
    modules = dict(model.layers.named_children())
    inputs, spikes, handles = {}, {}, []
    for name in names:
        handles.append(modules[name].register_forward_pre_hook(
            lambda _m, args, name=name: inputs.__setitem__(name, args[0].double().numpy())))
        handles.append(modules[name].register_forward_hook(
            lambda _m, _a, out, name=name: spikes.__setitem__(name, out.double().numpy())))
    try:
        logits = model(torch.as_tensor(x, dtype=torch.float32),
                       None if lengths is None else torch.as_tensor(lengths)).double().numpy()
    finally:
        for handle in handles:
            handle.remove()
    return logits, inputs, spikes


def _scale(values: np.ndarray, percentile: float) -> float:
    return float(np.percentile(np.abs(values), percentile)) if values.size else 0.0


def _quantise_weights(matrix: np.ndarray, width: int) -> tuple[np.ndarray, int]:
    frac = frac_bits_for(float(np.abs(matrix).max(initial=0.0)), width)
    lo, hi = signed_range(width)
    return np.clip(np.round(np.ldexp(matrix, frac)), lo, hi).astype(np.int64), frac


def _lanes(channels: int, wanted: int) -> int:
    return max(d for d in range(1, min(wanted, channels) + 1) if channels % d == 0)


def _check_finite(layers) -> None:
    """Refuse non-finite trained tensors by layer before anything runs on them (a NaN would
    otherwise surface later as some module's input error)."""
    for name, *modules in layers:
        for module in modules:
            if module is None:
                continue
            for tensor_name, tensor in [*module.named_parameters(), *module.named_buffers()]:
                if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                    raise QuantisationError(f"layer {name}: the trained {tensor_name} "
                                            f"contains NaN or infinity")


def lif_config(neuron, channels: int, input_width: int, input_frac_bits: int,
               formats: Formats, lanes: int) -> LIFConfig:
    """The LIF core of a trained :class:`~spikeforge.golden.lif.LIF` (or its decoupled-reset
    form, which has the same spikes): ``u_t = β(u_{t−1} − V_th·s_{t−1}) + c_t``, fire on
    ``>=``, i.e. reset ``subtract_decayed``, spike ``ge``. The membrane carries
    ``lif_extra_frac_bits`` more fraction bits than the input, and enough integer bits for
    ``|u| <= (max |c| + V_th)/(1 − β)`` (saturation guards the rest)."""
    frac = formats.lif_decay_frac_bits
    beta = LIFConfig.quantise_decay(neuron.beta, frac, formats.lif_decay_mode,
                                    formats.lif_decay_digits)
    state_frac = input_frac_bits + formats.lif_extra_frac_bits
    theta = round(math.ldexp(neuron.v_threshold, state_frac))
    leak = max(1.0, 1.0 / max(1.0 - beta / (1 << frac), 2.0 ** -frac))
    bound = (math.ldexp(1.0, input_width - 1 + formats.lif_extra_frac_bits) + theta) * leak
    width = max(int(math.ceil(math.log2(bound + 1))) + 1, (theta + 2).bit_length() + 1)
    if width > 40:
        raise QuantisationError(f"the LIF membrane would need {width} bits (threshold "
                                f"{neuron.v_threshold} on a 2^-{state_frac} grid)")
    return LIFConfig(channels=channels, lanes=lanes, variant="lif", beta=[beta],
                     threshold=[theta], decay_frac_bits=frac,
                     decay_mode=formats.lif_decay_mode, decay_digits=formats.lif_decay_digits,
                     reset="subtract_decayed", spike="ge", input_width=input_width,
                     input_frac_bits=input_frac_bits, state_width=width,
                     state_frac_bits=state_frac)


def _core(name: str, neuron: torch.nn.Module, frac_bits: int, formats: Formats,
          channels: int):
    lanes = _lanes(channels, formats.lanes)
    try:
        if isinstance(neuron, (LIF, DecoupledResetLIF)):
            return lif_config(neuron, channels, formats.core_input_width, frac_bits, formats,
                              lanes)
        if isinstance(neuron, PRF):
            return neuron.hardware_config(
                input_width=formats.core_input_width, input_frac_bits=frac_bits, lanes=lanes,
                coef_mode=formats.prf_coef_mode, csd_terms=formats.prf_csd_terms,
                coef_width=formats.prf_coef_width,
                state_frac_bits=formats.prf_state_frac_bits,
                time_parallelism=formats.prf_time_parallelism)
        cpsn = neuron.to_cpsn(input_frac_bits=frac_bits) if isinstance(neuron, CPSNBN) else neuron
        return cpsn.to_config(input_width=formats.core_input_width,
                              input_frac_bits=frac_bits, lanes=lanes)
    except ValueError as exc:
        raise QuantisationError(f"layer {name}: {exc}") from None


def quantise_network(model: SpikingNetwork, calibration_x: np.ndarray,
                     formats: Formats = Formats(), calibration_lengths=None) -> IntegerNetwork:
    """The integer model of ``model`` with scales calibrated on ``calibration_x``
    (float ``[T, N, F]``, training samples; ``calibration_lengths``: their own steps, the
    padding after them ignored)."""
    layers = _hardware_layers(model)
    if not np.all(np.isfinite(calibration_x)):
        raise QuantisationError("the calibration data contains NaN or infinity")
    _check_finite(layers)
    _, inputs, _ = _float_run(model, calibration_x, [name for name, *_ in layers],
                              calibration_lengths)
    inputs = {name: _valid(values, calibration_lengths) for name, values in inputs.items()}
    input_frac = frac_bits_for(_scale(_valid(calibration_x, calibration_lengths),
                                      formats.percentile), formats.input_width)
    activity_frac, activity_bound = input_frac, -signed_range(formats.input_width)[0]
    hidden = []
    for name, linear, norm, neuron in layers:
        matrix, offset = _fold(linear, norm)
        if not (np.all(np.isfinite(matrix)) and np.all(np.isfinite(offset))):
            raise QuantisationError(f"layer {name}: the trained weights contain NaN or infinity")
        weight, weight_frac = _quantise_weights(matrix, formats.weight_width)
        accumulator_frac = weight_frac + activity_frac
        core_frac = frac_bits_for(_scale(inputs[name], formats.percentile),
                                  formats.core_input_width)
        bias = np.round(np.ldexp(offset, accumulator_frac)).astype(np.int64)
        try:
            synapse = IntegerSynapse(weight=weight, bias=bias, weight_width=formats.weight_width,
                                     weight_frac_bits=weight_frac,
                                     shift=accumulator_frac - core_frac,
                                     out_width=formats.core_input_width,
                                     input_bound=activity_bound)
        except ValueError as exc:
            raise QuantisationError(f"layer {name}: {exc}") from None
        hidden.append(IntegerLayer(name, synapse, _core(name, neuron, core_frac, formats,
                                                        synapse.outputs)))
        activity_frac, activity_bound = 0, 1  # spikes
    linear = model.readout.linear
    matrix = linear.weight.detach().double().cpu().numpy()
    weight, weight_frac = _quantise_weights(matrix, formats.weight_width)
    bias = np.round(np.ldexp(linear.bias.detach().double().cpu().numpy(), weight_frac))
    readout = IntegerSynapse(weight=weight, bias=bias.astype(np.int64),
                             weight_width=formats.weight_width, weight_frac_bits=weight_frac,
                             shift=0, out_width=None, input_bound=1)
    return IntegerNetwork(input_width=formats.input_width, input_frac_bits=input_frac,
                          layers=tuple(hidden), readout=readout,
                          readout_kind=model.config.readout)


def quantisation_report(model: SpikingNetwork, network: IntegerNetwork, x: np.ndarray,
                        targets: np.ndarray, lengths=None) -> dict:
    """Float vs integer accuracy on ``(x, targets)`` (``lengths``: each sample's own steps),
    per-layer spike agreement (fraction of equal spikes, float network vs integer model,
    each run end to end) and saturation counts, over the samples' own steps."""
    names = [layer.name for layer in network.layers]
    logits, _, float_spikes = _float_run(model, x, names, lengths)
    trace = network.run(x, lengths)
    samples = len(targets)
    layers = {}
    for layer in network.layers:
        spikes = _valid(trace.spikes[layer.name], lengths)
        floats = _valid(float_spikes[layer.name], lengths)
        layers[layer.name] = {
            "neuron": core_model(layer.core).neuron,
            "channels": layer.core.channels,
            "spike_agreement": float(np.mean(spikes == (floats > 0.5))),
            "firing_rate_integer": float(spikes.mean()),
            "firing_rate_float": float(floats.mean()),
            "saturated": trace.saturated[layer.name],
            "saturated_fraction": trace.saturated[layer.name] /
            _valid(trace.inputs[layer.name], lengths).size,
        }
    return {
        "samples": samples,
        "float_accuracy": float(np.mean(logits.argmax(axis=1) == targets)),
        "integer_accuracy": float(np.mean(trace.predictions == targets)),
        "prediction_agreement": float(np.mean(logits.argmax(axis=1) == trace.predictions)),
        "input_saturated": trace.saturated["input"],
        "layers": layers,
    }


def smallest_widths(model: SpikingNetwork, calibration_x: np.ndarray, x: np.ndarray,
                    targets: np.ndarray, formats: Formats, tolerance: float,
                    widths=range(2, 17), calibration_lengths=None, lengths=None
                    ) -> tuple[Formats, list[dict]]:
    """Narrowest widths whose integer accuracy on ``(x, targets)`` (``lengths``: each
    sample's own steps) is within ``tolerance`` (a fraction, 0.01 = one point) of the float
    network's.

    Searches, in order, the core input width, the weight width and the input width, each the
    smallest in ``widths`` that keeps the drop within the tolerance with the others at their
    current values; returns the formats and every trial.
    """
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must lie in [0, 1), got {tolerance}")
    float_accuracy = quantisation_report(
        model, quantise_network(model, calibration_x, formats, calibration_lengths), x,
        targets, lengths)["float_accuracy"]
    trials = []
    for field in ("core_input_width", "weight_width", "input_width"):
        for width in widths:
            candidate = formats.replace(**{field: width})
            try:
                network = quantise_network(model, calibration_x, candidate, calibration_lengths)
            except QuantisationError:
                continue
            accuracy = float(np.mean(network.run(x, lengths).predictions == targets))
            trials.append({field: width, "accuracy": accuracy})
            if float_accuracy - accuracy <= tolerance:
                formats = candidate
                break
    return formats, trials
