"""Network builders and the neuron registry.

Every neuron is one :data:`NEURONS` entry: its class, the structural arguments the builder
supplies (``channels``, ``T``, ``dilation``) and the options a configuration may set, with
defaults. Two architectures, both time-first ``[T, N, C]`` in and ``[N, outputs]`` out:

- ``mlp``: ``Linear → BatchNorm → neuron`` per hidden layer, then a readout. CPSN layers take
  sawtooth dilations ``d_l = (l mod period) + 1`` (**OPEN** choice, docs/neurons.md §2; the period
  is ``model.neuron.dilation_period``, default 3).
- ``sdtcm``: the PRF block of docs/neurons.md §4, ``S = neuron(U)``, ``R = U + Linear(S)``,
  ``S' = Θ(R − 0.5)``, ``U' = R + Linear(S')``, after a ``Linear`` encoder; the shortcuts
  carry float membranes.

Readouts: ``mean_membrane`` (time-mean of the output ``Linear``: an integrator that never
fires), ``last_membrane`` (its value at the last step, for long-range tasks) or
``mean_spikes`` (firing rate of a spiking output layer).

Samples of their own lengths: ``forward(x, lengths)`` takes a batch padded at the end to its
longest sample and each sample's length. Padded steps then change no sample's output: the
readouts average over (or take the last of) each sample's own steps, BatchNorm statistics
(``SeqBatchNorm``, ``cpsn_bn``) come from valid steps only, and a causal neuron's valid steps
never see the padding after them. Non-causal neurons (``psn``; ``masked_psn`` while λ < 1)
mix every step into every other, so they refuse samples shorter than ``T``: train them with
``data.pad: end`` (fixed-length mode). Neurons built for ``T`` steps (``psn``,
``masked_psn``, ``ipsu``, ``rpsu``) get the batch padded on to ``T``.
"""

import dataclasses
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .base import BACKENDS
from .cpsn import CPSN
from .cpsn_bn import CPSNBN
from .data import step_mask, valid_mean
from .lif import LIF, DecoupledResetLIF
from .prf import PRF
from .psn import PSN, MaskedPSN, SlidingPSN
from .psu import IPSU, PSU, RPSU
from .surrogate import SURROGATES, get_surrogate

__all__ = ["NeuronSpec", "NEURONS", "NeuronConfig", "ModelConfig", "SpikingNetwork",
           "SeqBatchNorm", "Heaviside", "sawtooth_dilation", "build_model", "make_neuron",
           "ARCHS", "READOUTS"]


def sawtooth_dilation(layer: int, period: int = 3) -> int:
    """Dilation of the ``layer``-th (0-based) stacked CPSN layer: ``(layer mod period) + 1``.

    **OPEN** (docs/neurons.md §2): the paper's rule is lost; this reimplementation's rule gives
    d = 1, 2, 3, 1, 2, 3, … for the default period 3 (Fig. 2: d = (1, 2, 3) for 3 layers).
    """
    if layer < 0 or period < 1:
        raise ValueError(f"sawtooth_dilation needs layer >= 0 and period >= 1, "
                         f"got {layer}, {period}")
    return layer % period + 1


@dataclasses.dataclass(frozen=True)
class NeuronSpec:
    """A registry entry: ``cls(**structural, **options, surrogate_function=...)``.

    ``args`` names the structural arguments in the constructor's spelling, taken from
    ``channels``, ``T`` (time steps) and ``dilation`` (sawtooth, needs the
    ``dilation_period`` option); ``options`` maps each configurable key to its default;
    ``rename`` maps a configuration key to the constructor's keyword where they differ;
    ``on_epoch(module, epoch, epochs)`` runs at the start of every training epoch.
    """

    cls: type
    args: tuple[str, ...] = ()
    options: dict = dataclasses.field(default_factory=dict)
    rename: dict = dataclasses.field(default_factory=dict)
    on_epoch: object = None

    def build(self, channels: int, steps: int, layer: int, options: dict,
              surrogate_function: nn.Module) -> nn.Module:
        options = dict(options)
        structural = {"channels": channels, "T": steps}
        if "dilation" in self.args:
            structural["dilation"] = sawtooth_dilation(layer, options.pop("dilation_period"))
        kwargs = {name: structural[name] for name in self.args}
        kwargs.update({self.rename.get(key, key): value for key, value in options.items()})
        return self.cls(**kwargs, surrogate_function=surrogate_function)


def _anneal_lambda(neuron: MaskedPSN, epoch: int, epochs: int) -> None:
    """The authors' λ schedule; a one-epoch run trains the causal band (λ = 1) directly."""
    neuron.lambda_ = MaskedPSN.lambda_schedule(epoch, epochs) if epochs >= 2 else 1.0


_B = {"backend": "torch"}  # "auto" runs a neuron's Triton kernel where one applies (CUDA)
_LEAKY = {**_B, "tau": 2.0, "v_threshold": 1.0}
_CPSN_OPTIONS = {"order": 2, "dilation_period": 3, "exp_min": -4, "exp_max": 0,
                 "quantize": True}

#: Neuron name → how to build it. Adding a neuron is one entry here.
NEURONS = {
    "psn": NeuronSpec(PSN, ("T",), dict(_B)),
    "masked_psn": NeuronSpec(MaskedPSN, ("T",), {**_B, "order": 2}, {"order": "k"},
                             _anneal_lambda),
    "sliding_psn": NeuronSpec(SlidingPSN, (), {**_B, "order": 2}, {"order": "k"}),
    "cpsn": NeuronSpec(CPSN, ("channels", "dilation"), {**_B, **_CPSN_OPTIONS,
                                                        "v_threshold": 1.0}),
    "cpsn_bn": NeuronSpec(CPSNBN, ("channels", "dilation"), dict(_CPSN_OPTIONS)),
    "psu": NeuronSpec(PSU, (), dict(_LEAKY)),
    "ipsu": NeuronSpec(IPSU, ("T",), dict(_LEAKY)),
    "rpsu": NeuronSpec(RPSU, ("T",), dict(_LEAKY)),
    "lif": NeuronSpec(LIF, (), {**_LEAKY, "detach_reset": False}),
    "decoupled_lif": NeuronSpec(DecoupledResetLIF, (), {**_LEAKY, "detach_reset": False}),
    "prf": NeuronSpec(PRF, ("channels",), {**_LEAKY, "fr_scale": 1.0, "delta_min": 1e-3,
                                           "delta_max": 1e-1}),
}


_COMMON = ("name", "surrogate", "alpha")


@dataclasses.dataclass(frozen=True)
class NeuronConfig:
    """``model.neuron``: a registry name, a surrogate and that neuron's options.

    Options are ``None`` unless set; one the neuron does not take is an error naming
    ``model.neuron.<key>``.
    """

    name: str
    surrogate: str = "atan"
    alpha: float | None = None
    order: int | None = None
    dilation_period: int | None = None
    exp_min: int | None = None
    exp_max: int | None = None
    quantize: bool | None = None
    v_threshold: float | None = None
    tau: float | None = None
    fr_scale: float | None = None
    delta_min: float | None = None
    delta_max: float | None = None
    detach_reset: bool | None = None
    backend: str | None = None

    def __post_init__(self):
        if self.name not in NEURONS:
            raise ValueError(f"model.neuron.name: unknown neuron {self.name!r}; choose one of "
                             f"{sorted(NEURONS)}")
        if self.surrogate not in SURROGATES:
            raise ValueError(f"model.neuron.surrogate: unknown surrogate {self.surrogate!r}; "
                             f"choose one of {sorted(SURROGATES)}")
        takes = NEURONS[self.name].options
        for key in (f.name for f in dataclasses.fields(self) if f.name not in _COMMON):
            if getattr(self, key) is not None and key not in takes:
                raise ValueError(f"model.neuron.{key} is not an option of neuron "
                                 f"{self.name!r} (it takes {sorted(takes) or 'none'})")
        if self.backend is not None and self.backend not in BACKENDS:
            raise ValueError(f"model.neuron.backend: unknown backend {self.backend!r}; choose "
                             f"one of {list(BACKENDS)}")
        for key in ("order", "dilation_period"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"model.neuron.{key} must be >= 1, got {getattr(self, key)}")

    def options(self) -> dict:
        """The neuron's keyword options: the set ones, the rest at their defaults."""
        return {key: default if getattr(self, key) is None else getattr(self, key)
                for key, default in NEURONS[self.name].options.items()}

    def surrogate_function(self) -> nn.Module:
        return get_surrogate(self.surrogate, **({} if self.alpha is None else
                                                {"alpha": self.alpha}))


ARCHS = ("mlp", "sdtcm")
READOUTS = ("mean_membrane", "last_membrane", "mean_spikes")
NORMS = ("batchnorm", "none")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """``model``: architecture, sizes, readout and the neuron.

    ``mlp`` takes ``hidden`` (layer widths, default ``[128]``) and optionally ``neurons``, one
    neuron per hidden layer (e.g. a CPSN layer then a PRF layer; ``neuron`` then serves only a
    ``mean_spikes`` readout); ``sdtcm`` takes ``width`` (default 64) and ``blocks`` (default 2).
    """

    neuron: NeuronConfig
    arch: str = "mlp"
    hidden: tuple[int, ...] | None = None
    neurons: tuple[NeuronConfig, ...] | None = None
    width: int | None = None
    blocks: int | None = None
    readout: str = "mean_membrane"
    norm: str = "batchnorm"
    dropout: float = 0.0

    def __post_init__(self):
        for key, allowed in (("arch", ARCHS), ("readout", READOUTS), ("norm", NORMS)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"model.{key}: unknown value {getattr(self, key)!r}; choose "
                                 f"one of {list(allowed)}")
        takes = {"mlp": ("hidden", "neurons"), "sdtcm": ("width", "blocks")}[self.arch]
        for key in ("hidden", "width", "blocks", "neurons"):
            if getattr(self, key) is not None and key not in takes:
                raise ValueError(f"model.{key} is not an option of arch {self.arch!r} "
                                 f"(it takes {list(takes)})")
        sizes = list(self.hidden or ()) + [v for v in (self.width, self.blocks) if v is not None]
        if any(v < 1 for v in sizes) or self.hidden == ():
            raise ValueError(f"model: hidden widths, width and blocks must be >= 1 "
                             f"(hidden={self.hidden}, width={self.width}, blocks={self.blocks})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"model.dropout must lie in [0, 1), got {self.dropout}")
        layers = len(self.hidden or (128,))
        if self.neurons is not None and len(self.neurons) != layers:
            raise ValueError(f"model.neurons lists {len(self.neurons)} neuron(s) but the "
                             f"network has {layers} hidden layer(s)")

    def layer_neuron(self, layer: int) -> NeuronConfig:
        """The neuron of hidden layer ``layer`` (0-based): ``neurons[layer]`` or ``neuron``."""
        return self.neurons[layer] if self.neurons else self.neuron

    @property
    def neuron_label(self) -> str:
        """The hidden layers' neurons for logs, e.g. ``cpsn_bn+prf``."""
        names = [n.name for n in self.neurons] if self.neurons else [self.neuron.name]
        return "+".join(dict.fromkeys(names))


class SeqBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channels of ``[T, N, C]``, time folded into the batch. With
    ``valid`` (``[T, N]`` booleans) only the valid steps are normalised and enter the batch
    statistics; padded steps come out as zeros."""

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if valid is None:
            return super().forward(flat).reshape(x.shape)
        keep = valid.reshape(-1)
        out = flat.new_zeros(flat.shape)
        out[keep] = super().forward(flat[keep])
        return out.reshape(x.shape)


class Heaviside(nn.Module):
    """``Θ(x − v_threshold)`` with a surrogate gradient: the block's stateless firing."""

    def __init__(self, v_threshold: float, surrogate_function: nn.Module):
        super().__init__()
        self.v_threshold = v_threshold
        self.surrogate_function = surrogate_function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.surrogate_function(x - self.v_threshold)

    def extra_repr(self) -> str:
        return f"v_threshold={self.v_threshold}"


def make_neuron(config: NeuronConfig, channels: int, steps: int, layer: int) -> nn.Module:
    """The ``layer``-th neuron layer (0-based; sets the sawtooth dilation) of a network."""
    return NEURONS[config.name].build(channels, steps, layer, config.options(),
                                      config.surrogate_function())


def _norm(kind: str, channels: int) -> nn.Module:
    return SeqBatchNorm(channels) if kind == "batchnorm" else nn.Identity()


def _masked(module: nn.Module, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """``module(x)``, with the valid steps for the modules whose statistics need them."""
    if valid is not None and isinstance(module, (SeqBatchNorm, CPSNBN, SDTCMBlock)):
        return module(x, valid)
    return module(x)


class Readout(nn.Module):
    """``[T, N, C]`` → ``[N, outputs]`` (see the module docstring for the kinds)."""

    def __init__(self, in_features: int, outputs: int, kind: str, config: ModelConfig,
                 steps: int, layer: int):
        super().__init__()
        self.kind = kind
        self.linear = nn.Linear(in_features, outputs)
        if kind == "mean_spikes":
            self.norm = _norm(config.norm, outputs)
            self.neuron = make_neuron(config.neuron, outputs, steps, layer)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """``valid`` (``[T, N]`` booleans, a prefix of each column): average over, or take
        the last of, each sample's valid steps only."""
        if self.kind == "last_membrane":
            if valid is None:
                return self.linear(x[-1])
            last = valid.sum(0) - 1
            return self.linear(x[last, torch.arange(x.shape[1], device=x.device)])
        h = self.linear(x)
        if self.kind == "mean_spikes":
            h = _masked(self.neuron, _masked(self.norm, h, valid), valid)
        if valid is None:
            return h.mean(0)
        return valid_mean(h, valid)


class SDTCMBlock(nn.Module):
    """``S = neuron(U)``; ``R = U + Linear(S)``; ``S' = Θ(R − 0.5)``; ``U' = R + Linear(S')``.

    With ``norm: batchnorm`` the neuron sees ``BatchNorm(U)``; the shortcuts stay raw.
    """

    def __init__(self, width: int, config: ModelConfig, steps: int, layer: int):
        super().__init__()
        self.norm = _norm(config.norm, width)
        self.neuron = make_neuron(config.neuron, width, steps, layer)
        self.linear1 = nn.Linear(width, width)
        self.fire = Heaviside(0.5, config.neuron.surrogate_function())
        self.linear2 = nn.Linear(width, width)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, u: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        r = u + self.linear1(self.dropout(_masked(self.neuron, _masked(self.norm, u, valid),
                                                  valid)))
        return r + self.linear2(self.dropout(self.fire(r)))


class SpikingNetwork(nn.Module):
    """A built network: ``forward([T, N, in_features]) → [N, outputs]``.

    :meth:`neuron_layers` lists the spiking modules (for firing rates, rasters and the
    neurons' optimizer group); :meth:`set_epoch` lets neurons follow a schedule.
    """

    def __init__(self, config: ModelConfig, in_features: int, outputs: int, steps: int):
        super().__init__()
        self.config = config
        self.in_features, self.outputs, self.steps = in_features, outputs, steps
        layers, width = {}, in_features
        if config.arch == "mlp":
            for layer, hidden in enumerate(config.hidden or (128,)):
                layers[f"fc{layer}"] = nn.Linear(width, hidden)
                layers[f"norm{layer}"] = _norm(config.norm, hidden)
                layers[f"sn{layer}"] = make_neuron(config.layer_neuron(layer), hidden, steps,
                                                   layer)
                layers[f"drop{layer}"] = nn.Dropout(config.dropout)
                width = hidden
        else:
            width = config.width or 64
            layers["encoder"] = nn.Linear(in_features, width)
            for layer in range(config.blocks or 2):
                layers[f"block{layer}"] = SDTCMBlock(width, config, steps, layer)
        self.layers = nn.Sequential(OrderedDict(layers))
        depth = sum(not isinstance(m, Heaviside) for _, m in self._neurons(self.layers))
        self.readout = Readout(width, outputs, config.readout, config, steps, depth)
        self._fixed_steps = any(getattr(module, "T", None) is not None
                                for _, module in self.neuron_layers())

    @staticmethod
    def _neurons(module: nn.Module):
        classes = tuple(spec.cls for spec in NEURONS.values()) + (Heaviside,)
        for name, child in module.named_modules():
            if isinstance(child, classes):
                yield name, child

    def neuron_layers(self) -> list[tuple[str, nn.Module]]:
        """``(name, module)`` of every spiking layer, input to output (``sn0``,
        ``block1.neuron``, ``readout.neuron``, …)."""
        return [(name.removeprefix("layers."), module) for name, module in self._neurons(self)]

    def set_epoch(self, epoch: int, epochs: int) -> None:
        """Call at the start of every epoch (0-based) of ``epochs`` (e.g. masked PSN's λ)."""
        schedules = {spec.cls: spec.on_epoch for spec in NEURONS.values() if spec.on_epoch}
        for _, module in self.neuron_layers():
            if type(module) in schedules:
                schedules[type(module)](module, epoch, epochs)

    @property
    def causal(self) -> bool:
        """Whether every neuron is causal now (a padded step never changes an earlier one)."""
        return all(getattr(module, "causal", True) for _, module in self.neuron_layers())

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``x [T, N, in_features]`` → ``[N, outputs]``; ``lengths`` ``[N]``: each sample's
        own steps, ``x`` padded after them (see the module docstring)."""
        if x.ndim != 3 or x.shape[2] != self.in_features:
            raise ValueError(f"network expects time-first [T, N, {self.in_features}], "
                             f"got {list(x.shape)}")
        steps = x.shape[0]
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=x.device)
            if lengths.shape != (x.shape[1],) or lengths.min() < 1 or lengths.max() > steps:
                raise ValueError(f"lengths must be [{x.shape[1]}] values in [1, {steps}], got "
                                 f"{lengths.tolist()}")
        if self._fixed_steps and steps < self.steps:  # neurons built for T steps
            lengths = torch.full((x.shape[1],), steps, device=x.device) \
                if lengths is None else lengths
            x = F.pad(x, (0, 0, 0, 0, 0, self.steps - steps))
        valid = None if lengths is None or bool((lengths == x.shape[0]).all()) else \
            step_mask(lengths, x.shape[0])
        if valid is not None and not self.causal:
            raise ValueError(f"{self.config.neuron_label} is not causal (every step reads "
                             f"every other), so samples shorter than T = {self.steps} would "
                             f"see their padding: train it on fixed-length samples "
                             f"(data.pad: end)")
        for module in self.layers:
            x = _masked(module, x, valid)
        return self.readout(x, valid)


def build_model(config: ModelConfig, in_features: int, outputs: int, steps: int
                ) -> SpikingNetwork:
    """The network that ``config`` describes for a dataset's sizes (see
    :class:`~spikeforge.golden.data.SequenceData`)."""
    return SpikingNetwork(config, in_features, outputs, steps)
