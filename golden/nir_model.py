"""The float model of an imported NIR graph: a time-first ``[T, N, F]`` PyTorch module that
simulates the graph step by step under explicit choices (docs/nir.md).

NIR describes neurons in continuous time and leaves four things to the reader: the time step
``dt``, how the equations are discretised, what a reset does beyond ``v ← v_reset`` and
whether a spike needs ``v > θ`` or ``v ≥ θ``. :class:`Choices` holds them; :func:`discretise`
turns a node's NIR parameters into per-step coefficients; :class:`NIRNetwork` runs a graph
given as plain data (:func:`check_spec`), so golden never reads a file (``sw/nir_import.py``
does).

Per time step ``t`` and neuron (state ``v``, synaptic current ``i``, last spike ``s``; all 0
before the first step), inputs summed over the node's incoming edges, ``x_t``:

    cubalif / cubali:  i_t = a_syn·i_{t−1} + g_syn·x_t          and the membrane's input is i_t
    v'  = v_reset where s_{t−1} (reset "zero"), v − θ·s_{t−1} ("subtract_decayed"), else v
    v_t = a_mem·v' + g_mem·x_t + l_mem − θ·s_{t−1}·[reset == "subtract"]
    s_t = v_t > θ ("gt")  or  v_t ≥ θ ("ge");  li / cubali / i: no spike, output v_t

    euler:  a = 1 − dt/τ,      g = (dt/τ)·R  (syn: (dt/τ_syn)·w_in),   l = (dt/τ)·v_leak
    exact:  a = exp(−dt/τ),    g = (1 − a)·R (syn: (1 − a)·w_in),     l = (1 − a)·v_leak
    if / i: a = 1, g = dt·R under both (dv/dt = R·I has no leak)

``exact`` is the exact solution of each equation for an input held over the step (zero-order
hold); for CubaLIF the current is updated first and held for the membrane's step (the
semi-implicit order snnTorch's ``Synaptic`` uses under ``euler``). Stateless nodes: Affine
``W·x + b``, Linear ``W·x``, Scale ``s ⊙ x``, Threshold ``x > θ`` (``≥`` under "ge"), Delay
``x_{t−n}`` with ``n = delay/dt`` steps. A recurrent (back) edge carries its source's value of
the previous step; into step 0 its value at rest (zero input, silent neurons), so an Affine
on the recurrent path adds its bias from the first step on, as snnTorch's ``RLeaky`` and
``RSynaptic`` do (``recurrent(spk = 0)``).

Coefficients are computed in float64 and then rounded to the precision of the file's
parameters (float32 for snnTorch's files), and a gain within 4 units in the last place of 1
is 1: a float32 file stores ``τ = dt/(1 − β)`` and ``R = τ/dt``, and only this rounding gives
back the writer's β and gain 1 exactly (measured: β ≥ 0.8 round-trips for every float32 β).
"""

import dataclasses
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .data import step_mask, valid_mean

__all__ = ["DISCRETISATIONS", "RESETS", "SPIKE_RULES", "NEURON_KINDS", "SYNAPSE_KINDS",
           "KINDS", "PARAMS", "Choices", "ModelInfo", "discretise", "check_spec",
           "NIRNetwork"]

DISCRETISATIONS = ("euler", "exact")
#: ``zero``: v ← v_reset after a spike; ``subtract``: θ subtracted after the decay at the next
#: step (snnTorch); ``subtract_decayed``: θ subtracted before the decay (SpikingJelly,
#: ``golden.lif``). The names are :data:`spikeforge.golden.lif_config.RESETS`.
RESETS = ("zero", "subtract", "subtract_decayed")
SPIKE_RULES = ("gt", "ge")
#: Stateful nodes (NIR type in lower case): spiking ones emit 0/1, the others their membrane.
NEURON_KINDS = ("lif", "cubalif", "if", "li", "cubali", "i")
SPIKING = ("lif", "cubalif", "if")
SYNAPSE_KINDS = ("affine", "linear", "scale")
KINDS = ("input", "output", "identity", *SYNAPSE_KINDS, "threshold", "delay", *NEURON_KINDS)
#: The parameters each kind needs (as NIR names them).
PARAMS = {
    "input": (), "output": (), "identity": (), "affine": ("weight", "bias"), "linear": ("weight",),
    "scale": ("scale",), "threshold": ("threshold",), "delay": ("delay",),
    "lif": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "cubalif": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "if": ("r", "v_threshold", "v_reset"),
    "li": ("tau", "r", "v_leak"),
    "cubali": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    "i": ("r",),
}
#: LIFConfig's variant for each neuron kind (what a hardware core would be).
LIF_VARIANTS = {"lif": "lif", "cubalif": "cuba_lif", "if": "if", "li": "li"}


@dataclasses.dataclass(frozen=True)
class Choices:
    """What NIR leaves to the reader: time step (seconds), discretisation, reset, spike rule."""

    dt: float
    discretisation: str = "euler"
    reset: str = "subtract"
    spike_when: str = "gt"

    def __post_init__(self):
        if not (isinstance(self.dt, (int, float)) and math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be a finite time step > 0 (seconds), got {self.dt!r}")
        for name, allowed in (("discretisation", DISCRETISATIONS), ("reset", RESETS),
                              ("spike_when", SPIKE_RULES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got "
                                 f"{getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What ``spikeforge evaluate`` prints about a model (``arch``, ``neuron_label``)."""

    arch: str
    neuron_label: str


def _round_to(values: np.ndarray, precision) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).astype(precision).astype(np.float64)


def _snap_one(values: np.ndarray, precision) -> np.ndarray:
    """Gains within 4 ulps (of ``precision``) of 1 are 1."""
    eps = float(np.finfo(precision).eps)
    return np.where(np.abs(values - 1.0) <= 4 * eps, 1.0, values)


def discretise(kind: str, params: dict, choices: Choices, precision=np.float64) -> dict:
    """Per-step coefficients of a neuron node (float64 arrays, one value per neuron):
    ``mem_decay``, ``mem_gain``, ``mem_leak`` and, for CubaLIF/CubaLI, ``syn_decay``,
    ``syn_gain``; spiking kinds add ``threshold`` and ``v_reset``. ``precision`` is the file's
    parameter dtype (see the module docstring). Raises ``ValueError`` naming the parameter
    when a coefficient is not a decay in [0, 1] or not finite."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    dt = choices.dt

    def leaky(tau, gain_factor, what):
        if np.any(tau <= 0):
            raise ValueError(f"{what} must be > 0, got {float(tau.min()):g}")
        ratio = dt / tau
        if choices.discretisation == "euler":
            if np.any(ratio > 1):
                raise ValueError(f"dt/{what} = {float(ratio.max()):g} > 1: the Euler step is "
                                 f"unstable (dt = {dt:g} s; is dt or {what} in other units?)")
            decay = 1.0 - ratio
            gain_base = ratio
        else:
            decay = np.exp(-ratio)
            gain_base = 1.0 - decay
        decay = _round_to(decay, precision)
        gain = _snap_one(_round_to(gain_base * gain_factor, precision), precision)
        return decay, gain, gain_base

    out = {}
    if kind in ("lif", "li"):
        decay, gain, base = leaky(p["tau"], p["r"], "tau")
        out.update(mem_decay=decay, mem_gain=gain, mem_leak=base * p["v_leak"])
    elif kind in ("cubalif", "cubali"):
        a_syn, g_syn, _ = leaky(p["tau_syn"], p["w_in"], "tau_syn")
        decay, gain, base = leaky(p["tau_mem"], p["r"], "tau_mem")
        out.update(syn_decay=a_syn, syn_gain=g_syn, mem_decay=decay, mem_gain=gain,
                   mem_leak=base * p["v_leak"])
    elif kind in ("if", "i"):
        out.update(mem_decay=np.ones_like(p["r"]),
                   mem_gain=_snap_one(_round_to(dt * p["r"], precision), precision),
                   mem_leak=np.zeros_like(p["r"]))
    else:
        raise ValueError(f"{kind!r} is not a neuron kind")
    if kind in SPIKING:
        out.update(threshold=p["v_threshold"], v_reset=p["v_reset"])
    for name, value in out.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"the discretised {name} is not finite")
    return out


# -- the specification: plain data -------------------------------------------------------------

def check_spec(spec: dict) -> None:
    """Check a graph specification, raising ``ValueError`` that names the node.

    ``spec = {"nodes": [...], "input": name, "output": name, "precision": "float32"|"float64"}``;
    each node ``{"name", "kind", "params": {name: array}, "inputs": [names],
    "recurrent": [names], "precision": optional, the dtype its parameters were stored in}`` in
    execution order: every name in ``inputs`` comes earlier,
    ``recurrent`` names (back edges, previous step) may come anywhere.
    """
    seen = set()
    names = [node["name"] for node in spec["nodes"]]
    if len(set(names)) != len(names):
        raise ValueError("node names must be unique")
    for node in spec["nodes"]:
        name, kind = node["name"], node["kind"]
        if kind not in KINDS:
            raise ValueError(f"node {name!r}: unknown kind {kind!r}")
        missing = [k for k in PARAMS[kind] if k not in node["params"]]
        if missing:
            raise ValueError(f"node {name!r}: missing parameter(s) {missing}")
        for source in node["inputs"]:
            if source not in seen:
                raise ValueError(f"node {name!r}: input {source!r} is not an earlier node")
        for source in node.get("recurrent", ()):
            if source not in names:
                raise ValueError(f"node {name!r}: recurrent input {source!r} is not a node")
        seen.add(name)
    for key in ("input", "output"):
        if spec[key] not in names:
            raise ValueError(f"the graph's {key} {spec[key]!r} is not a node")


# -- node modules --------------------------------------------------------------------------------

def _buffers(module: nn.Module, values: dict) -> None:
    for key, value in values.items():
        module.register_buffer(key, torch.as_tensor(np.asarray(value, dtype=np.float64)))


class _Synapse(nn.Module):
    def __init__(self, kind: str, params: dict):
        super().__init__()
        self.kind = kind
        _buffers(self, {k: params[k] for k in PARAMS[kind]})

    @property
    def size(self) -> int:
        return int(self.scale.shape[0]) if self.kind == "scale" else int(self.weight.shape[0])

    def forward(self, x):
        if self.kind == "affine":
            return F.linear(x, self.weight, self.bias)
        if self.kind == "linear":
            return F.linear(x, self.weight)
        return x * self.scale


class _Threshold(nn.Module):
    def __init__(self, params: dict, spike_when: str):
        super().__init__()
        self.spike_when = spike_when
        _buffers(self, {"threshold": params["threshold"]})

    def forward(self, x):
        fired = x > self.threshold if self.spike_when == "gt" else x >= self.threshold
        return fired.to(x.dtype)


class _Delay(nn.Module):
    def __init__(self, steps: np.ndarray):
        super().__init__()
        self.register_buffer("steps", torch.as_tensor(np.asarray(steps, dtype=np.int64)))


class _Neuron(nn.Module):
    """One LIF-family node; :meth:`step` advances it by one time step."""

    def __init__(self, kind: str, coefficients: dict, choices: Choices):
        super().__init__()
        self.kind, self.reset, self.spike_when = kind, choices.reset, choices.spike_when
        self.spiking = kind in SPIKING
        self.cuba = kind in ("cubalif", "cubali")
        _buffers(self, coefficients)
        self.has_leak = bool(np.any(np.asarray(coefficients["mem_leak"]) != 0))

    @property
    def size(self) -> int:
        return int(self.mem_decay.shape[0])

    def step(self, inputs: list, state):
        v, i, s = state
        if self.cuba:
            acc = self.syn_decay * i
            for x in inputs:
                acc = acc + self.syn_gain * x
            i, inputs = acc, [acc]
        if self.spiking and s is not None:
            if self.reset == "zero":
                v = torch.where(s > 0, self.v_reset.expand_as(v), v)
            elif self.reset == "subtract_decayed":
                v = v - self.threshold * s
        acc = self.mem_decay * v
        for x in inputs:
            acc = acc + self.mem_gain * x
        if self.has_leak:
            acc = acc + self.mem_leak
        if self.spiking and s is not None and self.reset == "subtract":
            acc = acc - s * self.threshold
        v = acc
        if not self.spiking:
            return v, (v, i, None)
        fired = v > self.threshold if self.spike_when == "gt" else v >= self.threshold
        s = fired.to(v.dtype)
        return s, (v, i, s)

    def lif_view(self) -> dict:
        """This node in :class:`~spikeforge.golden.lif_config.LIFConfig` terms (real values):
        ``variant``, ``reset``, ``spike``, ``beta``, ``alpha``, ``threshold``,
        ``input_gain`` (what multiplies the input before it is added; hardware adds it with
        gain 1, so an exporter folds it into the synapse), ``v_leak_term``, ``v_reset``."""
        def arr(name):
            return getattr(self, name).detach().double().cpu().numpy() \
                if hasattr(self, name) else None

        return {"variant": LIF_VARIANTS.get(self.kind, self.kind), "reset": self.reset,
                "spike": self.spike_when, "beta": arr("mem_decay"), "alpha": arr("syn_decay"),
                "threshold": arr("threshold"),
                "input_gain": arr("syn_gain") if self.cuba else arr("mem_gain"),
                "membrane_gain": arr("mem_gain") if self.cuba else None,
                "v_leak_term": arr("mem_leak"), "v_reset": arr("v_reset")}


class _Probe(nn.Module):
    """Called once per forward with a neuron node's whole ``[T, N, C]`` output, so forward
    hooks (firing rates, rasters) see what a trained network's neuron layers give them."""

    def forward(self, x):
        return x


# -- the network -----------------------------------------------------------------------------------

class NIRNetwork(nn.Module):
    """``forward(x [T, N, F]) → [N, C]``: the time-mean of the graph's output node (spike
    rates for a spiking output, the mean membrane for a leaky integrator or an Affine).

    ``spec`` as :func:`check_spec` describes; parameters become float64 buffers (``.float()``
    gives a float32 model). :meth:`simulate` returns every node's ``[T, N, C]`` sequence.
    """

    def __init__(self, spec: dict, choices: Choices):
        super().__init__()
        check_spec(spec)
        self.spec, self.choices = spec, choices
        precision = np.float32 if spec.get("precision") == "float32" else np.float64
        self.node_names = [node["name"] for node in spec["nodes"]]
        self.nodes = nn.ModuleDict()
        self.probes = nn.ModuleDict()
        for index, node in enumerate(spec["nodes"]):
            kind, params = node["kind"], node["params"]
            key = f"n{index}"
            if kind in SYNAPSE_KINDS:
                self.nodes[key] = _Synapse(kind, params)
            elif kind == "threshold":
                self.nodes[key] = _Threshold(params, choices.spike_when)
                self.probes[key] = _Probe()
            elif kind == "delay":
                steps = np.asarray(params["delay"], dtype=np.float64) / choices.dt
                rounded = np.round(steps)
                if np.any(np.abs(steps - rounded) > 1e-6 * np.maximum(1, rounded)) or \
                        np.any(rounded < 0):
                    raise ValueError(f"node {node['name']!r}: delay {params['delay']} s is not "
                                     f"a whole number of steps of dt = {choices.dt:g} s")
                self.nodes[key] = _Delay(rounded)
            elif kind in NEURON_KINDS:
                node_precision = {"float32": np.float32, "float64": np.float64}.get(
                    node.get("precision"), precision)
                try:
                    coefficients = discretise(kind, params, choices, node_precision)
                except ValueError as exc:
                    raise ValueError(f"node {node['name']!r}: {exc}") from None
                self.nodes[key] = _Neuron(kind, coefficients, choices)
                if kind in SPIKING:
                    self.probes[key] = _Probe()
            else:
                self.nodes[key] = nn.Identity()
        self.config = ModelInfo(arch="nir", neuron_label=self.neuron_label)

    @property
    def neuron_label(self) -> str:
        kinds = [n["kind"] for n in self.spec["nodes"] if n["kind"] in NEURON_KINDS]
        return "nir:" + "+".join(dict.fromkeys(kinds)) if kinds else "nir"

    @property
    def in_features(self) -> int:
        return int(self.spec["sizes"][self.spec["input"]])

    def neuron_layers(self) -> list:
        """``(node name, probe)`` of every spiking node (neurons and thresholds), in
        execution order."""
        return [(self.node_names[int(key[1:])], probe) for key, probe in self.probes.items()]

    def hardware_layers(self) -> list:
        """The graph as LIF-core layers, in the terms an exporter quantises
        (:class:`~spikeforge.golden.lif_config.LIFConfig` plus the synapses), input to output:
        per spiking or LI node ``{"name", "source" (the layer or input feeding it),
        "weight" [C, F], "bias" [C] (the input gain folded in: the core adds its input with
        gain 1), "recurrent": [(weight [C, C], bias [C])] (previous step's own spikes, gain
        folded), "lif": lif_view()}``; an Affine straight into the output (a time-mean
        membrane readout) comes last with ``"lif": None, "readout": True``. Raises
        ``ValueError`` naming the node where the graph is not such a chain (an Affine or
        Linear into each neuron, no leak, v_reset 0, a CubaLIF membrane gain of 1)."""
        spec = self.spec
        nodes = {n["name"]: n for n in spec["nodes"]}
        modules = {n["name"]: self.nodes[f"n{i}"] for i, n in enumerate(spec["nodes"])}
        layers, sources = [], {spec["input"]}
        for node in spec["nodes"]:
            name, kind = node["name"], node["kind"]
            consumers = [nodes[c]["kind"] for c in self._consumers(name)]
            if kind in ("affine", "linear") and consumers == ["output"]:
                if len(node["inputs"]) != 1 or node["inputs"][0] not in sources:
                    raise ValueError(f"node {name!r}: its input is not a layer")
                weight = np.asarray(node["params"]["weight"], dtype=np.float64)
                bias = np.asarray(node["params"].get("bias", np.zeros(weight.shape[0])),
                                  dtype=np.float64)
                layers.append({"name": name, "source": node["inputs"][0], "weight": weight,
                               "bias": bias, "recurrent": [], "lif": None, "readout": True})
                continue
            if kind in ("input", "output") or kind in SYNAPSE_KINDS and consumers and all(
                    k in NEURON_KINDS for k in consumers):
                continue
            if kind not in LIF_VARIANTS:
                raise ValueError(f"node {name!r}: a {kind} node has no LIF core")
            view = modules[name].lif_view()
            if np.any(view["v_leak_term"] != 0):
                raise ValueError(f"node {name!r}: v_leak != 0 has no core")
            if view["v_reset"] is not None and np.any(view["v_reset"] != 0):
                raise ValueError(f"node {name!r}: v_reset != 0 has no core")
            if view["membrane_gain"] is not None and np.any(view["membrane_gain"] != 1):
                raise ValueError(f"node {name!r}: a CubaLIF membrane gain other than 1 has no "
                                 f"core (R·dt/tau_mem = {view['membrane_gain'][0]:g})")
            if len(node["inputs"]) != 1 or nodes[node["inputs"][0]]["kind"] not in (
                    "affine", "linear"):
                raise ValueError(f"node {name!r}: a core takes one Affine or Linear synapse")
            synapse = nodes[node["inputs"][0]]
            if len(synapse["inputs"]) != 1 or synapse["inputs"][0] not in sources:
                raise ValueError(f"node {synapse['name']!r}: its input is not the network "
                                 f"input or a layer")
            gain = view["input_gain"]

            def folded(syn):
                weight = np.asarray(syn["params"]["weight"], dtype=np.float64)
                bias = np.asarray(syn["params"].get("bias", np.zeros(weight.shape[0])),
                                  dtype=np.float64)
                return weight * gain[:, None], bias * gain

            recurrent = []
            for source in node.get("recurrent", ()):
                rec = nodes[source]
                if rec["kind"] not in ("affine", "linear") or rec["inputs"] != [name]:
                    raise ValueError(f"node {name!r}: its recurrent input {source!r} is not "
                                     f"an Affine or Linear of its own spikes")
                recurrent.append(folded(rec))
            weight, bias = folded(synapse)
            layers.append({"name": name, "source": synapse["inputs"][0], "weight": weight,
                           "bias": bias, "recurrent": recurrent, "lif": view})
            sources.add(name)
        return layers

    def _consumers(self, name: str) -> list:
        return [n["name"] for n in self.spec["nodes"]
                if name in n["inputs"] or name in n.get("recurrent", ())]

    def set_epoch(self, epoch: int, epochs: int) -> None:
        """Nothing follows a schedule in an imported graph."""

    def _dtype(self):
        for buffer in self.buffers():
            if buffer.is_floating_point():
                return buffer.dtype
        return torch.float64

    def simulate(self, x: torch.Tensor) -> dict:
        """Every node's output ``[T, N, C]`` for the input ``x [T, N, F]``."""
        if x.ndim != 3:
            raise ValueError(f"an imported graph takes time-first [T, N, F], got "
                             f"{list(x.shape)}")
        x = x.to(self._dtype())
        steps, batch = x.shape[:2]
        nodes = self.spec["nodes"]
        modules = [self.nodes[f"n{i}"] for i in range(len(nodes))]
        states = [None] * len(nodes)
        history = [[] for _ in nodes]
        previous = self._rest(batch, x)
        outputs = {node["name"]: [] for node in nodes}
        for t in range(steps):
            values = {}
            for index, (node, module) in enumerate(zip(nodes, modules)):
                kind = node["kind"]
                inputs = [values[name] for name in node["inputs"]]
                for name in node.get("recurrent", ()):
                    inputs.append(previous.get(name))
                if kind == "input":
                    out = x[t]
                elif kind in NEURON_KINDS:
                    size = module.size
                    inputs = [torch.zeros(batch, size, dtype=x.dtype, device=x.device)
                              if v is None else v for v in inputs]
                    if states[index] is None:
                        zero = torch.zeros(batch, size, dtype=x.dtype, device=x.device)
                        states[index] = (zero, zero, None)
                    out, states[index] = module.step(inputs, states[index])
                else:
                    present = [v for v in inputs if v is not None]
                    if not present:  # only recurrent inputs, at t = 0
                        present = [torch.zeros(batch, int(self.spec["sizes"][node["name"]]),
                                               dtype=x.dtype, device=x.device)]
                    total = present[0]
                    for v in present[1:]:
                        total = total + v
                    if kind == "delay":
                        history[index].append(total)
                        out = torch.zeros_like(total)
                        for lag in torch.unique(module.steps).tolist():
                            if t - lag >= 0:
                                mask = module.steps == lag
                                out[:, mask] = history[index][t - lag][:, mask]
                    elif kind in ("output", "identity"):
                        out = total
                    else:
                        out = module(total)
                values[node["name"]] = out
                outputs[node["name"]].append(out)
            previous = values
        return {name: torch.stack(seq) for name, seq in outputs.items()}

    def _rest(self, batch: int, x: torch.Tensor) -> dict:
        """Every node's output at rest (step −1: zero input, neurons silent at 0): what a
        recurrent edge carries into step 0 (an Affine on it gives its bias, as snnTorch's
        ``recurrent(spk = 0)``)."""
        values = {}
        for index, node in enumerate(self.spec["nodes"]):
            size = int(self.spec["sizes"][node["name"]])
            kind, module = node["kind"], self.nodes[f"n{index}"]
            zero = torch.zeros(batch, size, dtype=x.dtype, device=x.device)
            inputs = [values[name] for name in node["inputs"]]
            if kind in ("input", "delay") or kind in NEURON_KINDS or not inputs:
                values[node["name"]] = zero
                continue
            total = inputs[0]
            for v in inputs[1:]:
                total = total + v
            values[node["name"]] = total if kind in ("output", "identity") else module(total)
        return values

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``lengths`` ``[N]``: each sample's own steps, ``x`` padded after them."""
        sequences = self.simulate(x)
        for key, probe in self.probes.items():
            probe(sequences[self.node_names[int(key[1:])]])
        return self.output_mean(sequences, lengths)

    def output_mean(self, sequences: dict, lengths: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """The network's output from :meth:`simulate`'s ``sequences``: the output node's mean
        over each sample's own steps (the graph runs step by step, so padding after them
        changes none of them)."""
        output = sequences[self.spec["output"]]
        if lengths is None:
            return output.mean(0)
        return valid_mean(output, step_mask(torch.as_tensor(lengths, device=output.device),
                                            output.shape[0]))
