"""Reading a NIR graph (``.nir``, HDF5) into a spikeforge run: validation, the node table,
refusals and the default choices (docs/nir.md).

:func:`read_graph` reads the file with the ``nir`` package and turns any failure into an
:class:`ImportRefused` that names the node; :func:`plan_import` flattens nested subgraphs,
checks every node, edge and shape, orders the nodes (recurrent edges carry the previous step)
and returns an :class:`ImportPlan`: the node table, the refusals and, when nothing is
refused, the graph specification :class:`~spikeforge.golden.nir_model.NIRNetwork` runs.
:func:`write_run` stores an accepted plan as a run directory that ``evaluate`` loads like a
trained one (:func:`load_imported`).
"""

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch
import yaml

from ..golden.nir_model import NEURON_KINDS, PARAMS, SPIKING, Choices, NIRNetwork, discretise

__all__ = ["ImportRefused", "Row", "ImportPlan", "CONVENTIONS", "read_graph", "flatten_graph",
           "detect_source", "plan_import", "default_choices", "build_model", "write_run",
           "load_imported", "RUN_FILES", "nir_checkpoint"]

#: What ``import`` writes into a run directory.
RUN_FILES = ("config.yaml", "best.pt", "last.pt", "summary.json", "graph.nir")

#: NIR type → our kind; anything else is refused as an unsupported type.
_KINDS = {"Input": "input", "Output": "output", "Affine": "affine", "Linear": "linear",
          "Scale": "scale", "Threshold": "threshold", "Delay": "delay", "LIF": "lif",
          "CubaLIF": "cubalif", "IF": "if", "LI": "li", "Flatten": "flatten",
          "NIRGraph": "graph"}
#: Types the nir package reads but we do not run (with the reason).
_UNSUPPORTED = {"Conv1d": "convolutions are not supported (MLP graphs only)",
                "Conv2d": "convolutions are not supported (MLP graphs only)",
                "SumPool2d": "pooling is not supported (MLP graphs only)",
                "AvgPool2d": "pooling is not supported (MLP graphs only)",
                "I": "a non-leaky, non-spiking integrator has no core",
                "CubaLI": "a current-based leaky integrator has no core (LI and CubaLIF do)"}

#: Where dt is not in the file: the writer's convention decides (docs/nir.md).
CONVENTIONS = {
    "snntorch": {"dt": 1e-4, "discretisation": "euler", "reset": "subtract",
                 "spike_when": "gt",
                 "why": "snnTorch 1.0 writes tau = dt/(1 - beta), R = tau/dt with dt = 1e-4; "
                        "its Leaky/Synaptic default reset is subtract, spikes on mem > thr"},
    "norse": {"dt": 1e-3, "discretisation": "euler", "reset": "zero", "spike_when": "gt",
              "why": "Norse writes R = 1 and integrates with dt = 1e-3 (from_nir's default); "
                     "it resets to v_reset and spikes on v > v_th"},
    "spikeforge": {"why": "written by spikeforge export --nir: the choices are in the file's "
                          "metadata"},
}


class ImportRefused(ValueError):
    """The graph cannot be imported; the message names the node and the reason."""


@dataclasses.dataclass
class Row:
    """One line of the node table."""

    node: str
    nir_type: str
    shape: str
    became: str = ""
    refused: str = ""


@dataclasses.dataclass
class ImportPlan:
    rows: list
    refusals: list          # (node, reason)
    spec: dict | None
    source: str
    precision: str
    metadata: dict

    @property
    def accepted(self) -> bool:
        return not self.refusals and self.spec is not None


# -- reading ---------------------------------------------------------------------------------

def _h5_nodes(group, prefix=""):
    """``(name, type, group)`` of every node in an HDF5 NIR graph group, depth first."""
    nodes = group.get("nodes")
    if nodes is None:
        return
    for key in nodes:
        child = nodes[key]
        kind = child["type"][()] if "type" in child else b"?"
        kind = kind.decode("utf8", "replace") if isinstance(kind, bytes) else str(kind)
        yield prefix + key, kind, child
        if kind == "NIRGraph":
            yield from _h5_nodes(child, prefix + key + ".")


def _diagnose(path: Path, exc: Exception) -> str:
    """Name the node that made ``nir.read`` fail, reading the HDF5 file node by node."""
    import h5py
    from nir.serialization import read_node

    try:
        with h5py.File(path, "r") as file:
            if "node" not in file:
                return "not a NIR file (no 'node' group)"
            root = file["node"]
            if "nodes" not in root or "edges" not in root:
                return "not a NIR graph (the root node has no nodes or edges)"
            for name, kind, group in _h5_nodes(root):
                if kind not in _KINDS and kind not in _UNSUPPORTED:
                    return f"node {name!r}: unsupported NIR type {kind!r}"
                if kind == "NIRGraph":
                    continue
                try:
                    read_node(group)
                except Exception as inner:  # the nir package asserts on bad parameters
                    return f"node {name!r} ({kind}): cannot be read: " \
                           f"{_message(inner)}"
    except OSError as inner:
        return f"not a readable HDF5 file ({_message(inner)}): truncated or not NIR"
    return _message(exc)


def _message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if not text or isinstance(exc, AssertionError) \
        else text


def read_graph(path, type_check: bool = True):
    """``nir.read(path, type_check)`` or :class:`ImportRefused` with a one-line reason."""
    import nir

    path = Path(path)
    if not path.is_file():
        raise ImportRefused(f"{path}: no such file")
    try:
        graph = nir.read(path, type_check=False)
    except Exception as exc:  # h5py and nir's asserts raise many kinds
        raise ImportRefused(f"{path}: {_diagnose(path, exc)}") from None
    if type_check:
        # nir's type check also *adds* Input/Output nodes for dangling ones, so the graph
        # is planned from the unchecked read; the check only accepts or refuses the file
        try:
            nir.read(path, type_check=True)
        except Exception as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            graph.type_check_error = (f"the type check failed ({text}); an older file? "
                                      f"--no-type-check reads it without")
    return graph


# -- planning --------------------------------------------------------------------------------

def _array(value) -> np.ndarray:
    return np.asarray(value)


def flatten_graph(graph, prefix=""):
    """``(nodes {name: node}, edges [(a, b)], graph names)`` with nested subgraphs inlined:
    their Input/Output nodes become pass-through ``identity`` nodes named ``sub.input``."""
    import nir

    nodes, edges, subgraphs, passthrough = {}, [], [], set()
    for key, node in graph.nodes.items():
        name = prefix + key
        if isinstance(node, nir.NIRGraph):
            inner_nodes, inner_edges, inner_passthrough = flatten_graph(node, name + ".")
            nodes.update(inner_nodes)
            edges.extend(inner_edges)
            passthrough |= inner_passthrough
            passthrough |= {name + "." + k for k, n in node.nodes.items()
                            if isinstance(n, (nir.Input, nir.Output))}
            subgraphs.append((name, node))
        else:
            nodes[name] = node
    for a, b in graph.edges:
        edges.append((prefix + a, prefix + b))
    # edges touching a subgraph go to its Input / come from its Output
    for name, sub in subgraphs:
        ins = [name + "." + k for k, n in sub.nodes.items() if isinstance(n, nir.Input)]
        outs = [name + "." + k for k, n in sub.nodes.items() if isinstance(n, nir.Output)]
        fixed = []
        for a, b in edges:
            if b == name:
                if len(ins) != 1:
                    raise ImportRefused(f"node {name!r}: a subgraph needs exactly one Input "
                                        f"node, it has {len(ins)}")
                b = ins[0]
            if a == name:
                if len(outs) != 1:
                    raise ImportRefused(f"node {name!r}: a subgraph needs exactly one Output "
                                        f"node, it has {len(outs)}")
                a = outs[0]
            fixed.append((a, b))
        edges = fixed
    return nodes, edges, passthrough


def _shape_text(node) -> str:
    for attr in ("weight", "scale", "threshold", "delay", "v_threshold", "tau", "tau_mem", "r"):
        value = getattr(node, attr, None)
        if value is not None:
            return "x".join(str(d) for d in _array(value).shape) or "scalar"
    for attr in ("input_type", "output_type"):
        types = getattr(node, attr, None) or {}
        for value in types.values():
            if value is not None:
                return "x".join(str(int(d)) for d in np.ravel(value)) or "scalar"
    return ""


def _io_size(node, attr) -> int | None:
    types = getattr(node, attr, None) or {}
    for value in types.values():
        if value is None:
            continue
        flat = np.ravel(np.asarray(value))
        if flat.size == 0:
            return None
        return int(np.prod(flat))
    return None


def _params(name: str, kind: str, node, tau_scale: float):
    """``(params float64, sizes)`` or a refusal reason."""
    params = {}
    for key in PARAMS[kind]:
        value = getattr(node, key, None)
        if value is None:
            if key == "v_reset":
                value = 0.0
            else:
                return None, f"parameter {key} is missing"
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return None, f"parameter {key} is not numeric"
        if not np.all(np.isfinite(array)):
            return None, f"parameter {key} contains NaN or infinity"
        if key.startswith("tau"):
            array = array * tau_scale
        params[key] = array
    return params, None


def _broadcast(name: str, kind: str, params: dict, size: int | None):
    """Scalars broadcast per neuron (NIR#176); every parameter ends with shape [size]."""
    sizes = {k: v.size for k, v in params.items() if v.size != 1}
    shapes = set(sizes.values())
    if len(shapes) > 1:
        return None, "shape mismatch between parameters " + ", ".join(
            f"{k}[{n}]" for k, n in sizes.items())
    n = shapes.pop() if shapes else size
    if n is None:
        return None, "every parameter is a scalar and no edge gives the neuron count"
    for key, value in params.items():
        if value.ndim > 1 and value.size != 1:
            return None, f"parameter {key} has shape {list(value.shape)}; one value per " \
                         f"neuron (1-D) is needed"
        params[key] = np.broadcast_to(value.reshape(-1), (n,)).copy()
    return params, None


def _node_precision(node) -> str:
    """``float32`` when every floating parameter of the node is stored in float32 (snnTorch
    writes its Leaky/Synaptic so, but RSynaptic/RLeaky in float64), else ``float64``."""
    dtypes = {np.asarray(value).dtype for key in ("tau", "tau_mem", "tau_syn", "r", "w_in",
                                                    "v_threshold", "weight", "scale")
              if (value := getattr(node, key, None)) is not None}
    return "float32" if dtypes and dtypes <= {np.dtype(np.float32)} else "float64"


def _file_precision(nodes) -> str:
    precisions = {_node_precision(node) for node in nodes.values()}
    return "float32" if precisions == {"float32"} else "float64"


def _close(a, b, **kw) -> bool:
    a, b = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float))
    keep = np.isfinite(a) & np.isfinite(b)
    return bool(np.allclose(a[keep], b[keep], **kw))


def detect_source(nodes: dict, metadata: dict) -> str:
    """The writer that the parameters point to: ``spikeforge`` (our metadata),
    ``snntorch`` (R = τ/1e-4), ``norse`` (R = 1) or ``unknown``."""
    if str(_meta(metadata, "source")) == "spikeforge":
        return "spikeforge"
    votes = set()
    for node in nodes.values():
        kind = type(node).__name__
        if kind in ("LIF", "LI"):
            tau, r = np.asarray(node.tau, float), np.asarray(node.r, float)
        elif kind == "CubaLIF":
            tau, r = np.asarray(node.tau_mem, float), np.asarray(node.r, float)
            w_in, tau_syn = np.asarray(node.w_in, float), np.asarray(node.tau_syn, float)
            if _close(w_in, tau_syn / 1e-4, rtol=1e-5) and _close(r, tau / 1e-4, rtol=1e-5):
                votes.add("snntorch")
                continue
        else:
            continue
        if _close(r, tau / 1e-4, rtol=1e-5):
            votes.add("snntorch")
        elif _close(r, 1.0):
            votes.add("norse")
        else:
            votes.add("unknown")
    if len(votes) == 1:
        return votes.pop()
    return "none" if not votes else "unknown"


def _meta(metadata, key):
    value = (metadata or {}).get(key)
    if isinstance(value, bytes):
        value = value.decode("utf8")
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
        if isinstance(value, bytes):
            value = value.decode("utf8")
    return value


def default_choices(source: str, metadata: dict, given: dict) -> tuple[dict, dict]:
    """``(choices, where each came from)``: what the user gave, else the file's metadata
    (spikeforge), else the source's convention. Raises :class:`ImportRefused` when dt is
    needed and nothing gives it."""
    values, origin = {}, {}
    convention = CONVENTIONS.get(source, {})
    for key in ("dt", "discretisation", "reset", "spike_when"):
        if given.get(key) is not None:
            values[key], origin[key] = given[key], "given"
        elif source == "spikeforge" and _meta(metadata, key) is not None:
            value = _meta(metadata, key)
            values[key] = float(value) if key == "dt" else str(value)
            origin[key] = "file metadata"
        elif key in convention:
            values[key], origin[key] = convention[key], f"{source} convention"
        elif key == "dt" and source == "none":
            values[key], origin[key] = 1e-3, "unused (no neurons)"
        elif key == "dt":
            raise ImportRefused(
                "dt is not in the file and its neurons follow no known convention (snnTorch: "
                "R = tau/1e-4; Norse: R = 1); give --dt")
        else:
            values[key] = {"discretisation": "euler", "reset": "zero",
                           "spike_when": "gt"}[key]
            origin[key] = "NIR's definition" if key != "discretisation" else "default"
    return values, origin


def plan_import(graph, choices: Choices, *, in_features: int | None = None,
                outputs: int | None = None, tau_scale: float = 1.0, source: str = "") -> ImportPlan:
    """Check ``graph`` node by node under ``choices``; the plan lists every node (what it
    became or why it is refused) and, when nothing is refused, the specification."""
    import nir

    metadata = dict(getattr(graph, "metadata", None) or {})
    nodes, edges, passthrough = flatten_graph(graph)
    precision = _file_precision(nodes)
    rows, refusals = {}, []

    def refuse(name, reason):
        refusals.append((name, reason))
        if name in rows:
            rows[name].refused = rows[name].refused or reason

    kinds, params = {}, {}
    for name, node in nodes.items():
        nir_type = type(node).__name__
        rows[name] = Row(name, nir_type, _shape_text(node))
        kind = _KINDS.get(nir_type)
        if kind is None:
            refuse(name, f"unsupported type {nir_type}: " +
                   _UNSUPPORTED.get(nir_type, "not a node spikeforge runs"))
            continue
        if kind == "flatten":
            types = [np.ravel(v) for v in (node.input_type or {}).values() if v is not None]
            if types and len(types[0]) > 1:
                refuse(name, f"Flatten of a {len(types[0])}-D input: only 1-D (MLP) graphs "
                             f"are supported")
                continue
            kind = "identity"
        if name in passthrough:  # a nested subgraph's own Input/Output
            kind = "identity"
        kinds[name] = kind
        if kind in PARAMS and PARAMS[kind]:
            values, reason = _params(name, kind, node, tau_scale)
            if reason:
                refuse(name, reason)
                continue
            params[name] = values
        else:
            params[name] = {}

    # -- edges and structure ------------------------------------------------------------
    names = set(nodes)
    seen_edges = set()
    for a, b in edges:
        for end in (a, b):
            if end not in names:
                refuse(end if end in rows else a if a in rows else b,
                       f"edge {a} -> {b} names a node that does not exist ({end!r})")
        if (a, b) in seen_edges:
            refuse(b, f"duplicate edge {a} -> {b} (edges into a node are summed: a duplicate "
                      f"doubles that input)")
        seen_edges.add((a, b))
    edges = [(a, b) for a, b in dict.fromkeys(edges) if a in names and b in names]
    inputs = [n for n, k in kinds.items() if k == "input"]
    outputs_ = [n for n, k in kinds.items() if k == "output"]
    if len(inputs) != 1:
        refusals.append(("graph", f"needs exactly one Input node, found {len(inputs)}"
                                  f"{': ' + ', '.join(inputs) if inputs else ''}"))
    if len(outputs_) != 1:
        refusals.append(("graph", f"needs exactly one Output node, found {len(outputs_)}"
                                  f"{': ' + ', '.join(outputs_) if outputs_ else ''}"))
    incoming = {n: [a for a, b in edges if b == n] for n in nodes}
    outgoing = {n: [b for a, b in edges if a == n] for n in nodes}
    for name in nodes:
        if kinds.get(name) == "input":
            if incoming[name]:
                refuse(name, f"the Input node has incoming edges ({', '.join(incoming[name])})")
        elif not incoming[name]:
            refuse(name, "missing edge: nothing feeds this node")
    if refusals and any(n == "graph" for n, _ in refusals):
        return _finish(rows, refusals, None, source, precision, metadata)

    start, end = inputs[0], outputs_[0]
    # depth-first from the input: an edge to a node on the stack is recurrent
    order, state, back = [], {}, set()

    def visit(node):
        stack = [(node, iter(outgoing[node]))]
        state[node] = "open"
        while stack:
            current, children = stack[-1]
            for child in children:
                if state.get(child) == "open":
                    back.add((current, child))
                elif child not in state:
                    state[child] = "open"
                    stack.append((child, iter(outgoing[child])))
                    break
            else:
                state[current] = "done"
                order.append(current)
                stack.pop()

    visit(start)
    order.reverse()
    unreached = [n for n in nodes if n not in state]
    for name in unreached:
        refuse(name, "not reachable from the input node (a missing edge?)")
    reaches = {end}
    changed = True
    while changed:
        changed = False
        for a, b in edges:
            if b in reaches and a not in reaches:
                reaches.add(a)
                changed = True
    for name in nodes:
        if name not in reaches and name not in unreached:
            refuse(name, "does not reach the output node (a missing edge?)")
    for a, b in back:
        if kinds.get(b) not in NEURON_KINDS:
            refuse(b, f"recurrent edge {a} -> {b} into a {rows[b].nir_type}: a cycle must "
                      f"close on a neuron node")
    # the reverse post-order of the DFS orders the forward edges topologically

    # -- sizes ---------------------------------------------------------------------------
    sizes = {}
    for name in order:
        kind = kinds.get(name)
        if kind is None or name not in params:
            continue
        p = params[name]
        feeds = [sizes.get(a) for a in incoming[name] if (a, name) not in back]
        feed = next((s for s in feeds if s is not None), None)
        if kind in ("affine", "linear"):
            weight = p["weight"]
            if weight.ndim != 2:
                refuse(name, f"weight has shape {list(weight.shape)}; a 2-D [out, in] matrix "
                             f"is needed")
                continue
            if kind == "affine" and p["bias"].size not in (1, weight.shape[0]):
                refuse(name, f"shape mismatch: bias has {p['bias'].size} values for "
                             f"{weight.shape[0]} outputs")
                continue
            if kind == "affine":
                p["bias"] = np.broadcast_to(p["bias"].reshape(-1), (weight.shape[0],)).copy()
            in_size, out_size = weight.shape[1], weight.shape[0]
        elif kind in ("scale", "threshold", "delay") or kind in NEURON_KINDS:
            if kind in NEURON_KINDS:
                fixed, reason = _broadcast(name, kind, p, feed)
            else:
                key = PARAMS[kind][0]
                fixed, reason = _broadcast(name, kind, {key: p[key]}, feed)
            if reason:
                refuse(name, reason)
                continue
            params[name] = p = fixed
            in_size = out_size = next(iter(p.values())).size
        elif kind == "input":
            in_size = out_size = _io_size(nodes[name], "input_type") or \
                (in_features if in_features else None)
        else:  # output, identity
            in_size = out_size = feed if feed is not None else _io_size(nodes[name],
                                                                         "input_type")
        for a in incoming[name]:
            got = sizes.get(a)
            if got is not None and in_size is not None and got != in_size:
                refuse(name, f"shape mismatch: edge {a} -> {name} carries {got} values, "
                             f"{name} takes {in_size}")
        if out_size is not None:
            sizes[name] = int(out_size)
    # recurrent edges carry sizes too
    for a, b in back:
        if a in sizes and b in sizes and sizes[a] != sizes[b]:
            refuse(b, f"shape mismatch: recurrent edge {a} -> {b} carries {sizes[a]} values, "
                      f"{b} takes {sizes[b]}")
    if in_features is not None and sizes.get(start) not in (None, in_features):
        refuse(start, f"shape mismatch: the graph takes {sizes[start]} input features, the "
                      f"data has {in_features}")
    if outputs is not None and sizes.get(end) not in (None, outputs):
        refuse(end, f"shape mismatch: the graph gives {sizes[end]} outputs, the data has "
                    f"{outputs} classes")

    # -- neurons: discretisation and what hardware can express ----------------------------
    for name in order:
        kind = kinds.get(name)
        if kind not in NEURON_KINDS or name not in params or rows[name].refused:
            continue
        p = params[name]
        try:
            coefficients = discretise(kind, p, choices,
                                      np.dtype(_node_precision(nodes[name])).type)
        except ValueError as exc:
            hint = ""
            if source == "norse" and "unstable" in str(exc):
                hint = (" (Norse 1.1.0 writes tau multiplied by dt, norse#411: try "
                        "--tau-scale 1000)")
            refuse(name, f"{exc}{hint}")
            continue
        reason = _hardware_reason(kind, p, coefficients, choices)
        if reason:
            refuse(name, reason)
            continue
        rows[name].became = _describe(kind, coefficients, choices)
    for name in order:
        kind = kinds.get(name)
        row = rows[name]
        if row.refused or row.became:
            continue
        if kind == "delay":
            steps = params[name]["delay"] / choices.dt
            if np.any(np.abs(steps - np.round(steps)) > 1e-6 * np.maximum(1, np.round(steps))) \
                    or np.any(steps < 0):
                refuse(name, f"delay {params[name]['delay'].tolist()} s is not a whole number of "
                             f"steps of dt = {choices.dt:g} s")
                continue
        row.became = _describe(kind, params.get(name, {}), choices,
                               recurrent=[a for a, b in back if b == name])
    for name in order:
        if kinds.get(name) in NEURON_KINDS and not rows[name].refused:
            rec = [a for a, b in back if b == name]
            if rec:
                rows[name].became += f"; recurrent input from {', '.join(rec)} (previous step)"

    rows = {n: rows[n] for n in [*order, *[m for m in rows if m not in order]]}
    if refusals:
        return _finish(rows, refusals, None, source, precision, metadata)
    spec = {"nodes": [], "input": start, "output": end, "precision": precision,
            "sizes": {n: sizes[n] for n in order}}
    for name in order:
        spec["nodes"].append({
            "name": name, "kind": kinds[name], "params": params[name],
            "precision": _node_precision(nodes[name]),
            "inputs": sorted((a for a in incoming[name] if (a, name) not in back),
                             key=lambda a: incoming[name].index(a)),
            "recurrent": [a for a in incoming[name] if (a, name) in back]})
    return _finish(rows, refusals, spec, source, precision, metadata)


def _finish(rows, refusals, spec, source, precision, metadata) -> ImportPlan:
    return ImportPlan(list(rows.values()), refusals, spec, source, precision, metadata)


def _hardware_reason(kind, params, coefficients, choices) -> str:
    """Why a neuron cannot be a LIF-family core (golden/lif_config.py), or ''."""
    if kind in ("lif", "cubalif", "li") and np.any(params["v_leak"] != 0):
        return "parameter v_leak != 0: the cores have no leak potential (v_leak = 0 only)"
    if kind in SPIKING:
        if np.any(params["v_threshold"] < 0):
            return "parameter v_threshold < 0: a core's threshold is >= 0"
        if choices.reset == "zero" and np.any(params["v_reset"] != 0):
            return "parameter v_reset != 0: the cores reset to 0 (reset zero)"
    for key in ("mem_decay", "syn_decay"):
        value = coefficients.get(key)
        if value is not None and (np.any(value < 0) or np.any(value > 1)):
            return f"the decay {key} lies outside [0, 1]"
    return ""


def _span(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    return f"{lo:.6g}" if lo == hi else f"{lo:.6g}..{hi:.6g}"


def _describe(kind, values, choices, recurrent=()) -> str:
    if kind in ("lif", "cubalif", "if", "li"):
        text = {"lif": "LIF", "cubalif": "CubaLIF", "if": "IF", "li": "LI"}[kind]
        parts = [f"beta {_span(values['mem_decay'])}"]
        if kind == "cubalif":
            parts.insert(0, f"alpha {_span(values['syn_decay'])}")
            parts.append(f"syn gain {_span(values['syn_gain'])}")
        parts.append(f"gain {_span(values['mem_gain'])}")
        if kind != "li":
            parts.append(f"theta {_span(values['threshold'])}, reset {choices.reset}, "
                         f"spike {'>' if choices.spike_when == 'gt' else '>='}")
        return f"{text} neuron: " + ", ".join(parts)
    return {"input": "network input", "output": "network output (time-mean = logits)",
            "identity": "pass-through", "affine": "synapse W·x + b",
            "linear": "synapse W·x", "scale": "per-channel scale",
            "threshold": f"threshold ({'>' if choices.spike_when == 'gt' else '>='})",
            "delay": "delay (steps = delay/dt)"}.get(kind, kind)


# -- building and storing ----------------------------------------------------------------------

def build_model(plan: ImportPlan, choices: Choices) -> NIRNetwork:
    return NIRNetwork(plan.spec, choices)


def _spec_to_data(spec: dict) -> dict:
    data = dict(spec)
    data["nodes"] = [{**node, "params": {k: torch.as_tensor(np.asarray(v, dtype=np.float64))
                                         for k, v in node["params"].items()}}
                     for node in spec["nodes"]]
    return data


def _spec_from_data(data: dict) -> dict:
    spec = dict(data)
    spec["nodes"] = [{**node, "params": {k: v.double().cpu().numpy()
                                         for k, v in node["params"].items()}}
                     for node in data["nodes"]]
    return spec


def nir_checkpoint(plan: ImportPlan, choices: Choices, model: NIRNetwork, data_config: dict,
                   model_inputs: dict, info: dict, result: dict) -> dict:
    """The checkpoint of an imported graph (sw/checkpoint.py's layout plus ``nir``)."""
    best = {"epoch": 0, "test_acc": result["acc"], "test_loss": result["loss"]}
    return {"config": {"data": data_config,
                       "model": {"arch": "nir", "source": info["source"],
                                 "choices": choices.to_dict()}},
            "model_inputs": model_inputs, "state_dict": model.state_dict(), "optimizer": {},
            "epoch": 0, "epochs": 0, "seed": 0, "rng": {}, "metrics": [], "best": best,
            "nir": {"spec": _spec_to_data(plan.spec), "choices": choices.to_dict(),
                    **info}}


def write_run(out_dir, checkpoint: dict, source_file, summary: dict) -> None:
    """Write the run directory (called only once everything has been checked)."""
    from .checkpoint import save_checkpoint

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(checkpoint["config"], sort_keys=False))
    shutil.copyfile(source_file, out_dir / "graph.nir")
    save_checkpoint(out_dir / "best.pt", checkpoint)
    save_checkpoint(out_dir / "last.pt", checkpoint)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def load_imported(checkpoint: dict, path, device: str = "cpu"):
    """``(model, config, checkpoint)`` of an imported run, as ``load_trained`` returns a
    trained one: ``config.data`` is the run's DataConfig, ``config.model`` a
    :class:`~spikeforge.golden.nir_model.ModelInfo`."""
    from ..golden.data import DataConfig
    from .checkpoint import CheckpointError
    from .train import RunConfig, _parse_section

    try:
        data = _parse_section(DataConfig, checkpoint["config"]["data"], "data")
        choices = Choices(**checkpoint["nir"]["choices"])
        model = NIRNetwork(_spec_from_data(checkpoint["nir"]["spec"]), choices)
        model.load_state_dict(checkpoint["state_dict"])
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: the imported graph cannot be rebuilt ({exc})") from None
    config = RunConfig(data=data, model=model.config)
    return model.to(device).eval(), config, checkpoint


def sha256_file(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- toward hardware: the integer network of an imported graph ----------------------------------

def _drives(model, x: np.ndarray, layers: list) -> dict:
    """Each layer's core input in float (synapse plus recurrent synapses of the previous step,
    their rest value at the first step), from the float model on ``x`` ``[T, N, F]``."""
    with torch.no_grad():
        sequences = model.simulate(torch.as_tensor(x, dtype=torch.float64))
    drives = {}
    for layer in layers:
        if layer.get("readout"):
            continue
        a = sequences[layer["source"]].numpy()
        drive = a @ layer["weight"].T + layer["bias"]
        s = sequences[layer["name"]].numpy()
        for weight, bias in layer["recurrent"]:
            previous = np.concatenate([np.zeros_like(s[:1]), s[:-1]])
            drive = drive + previous @ weight.T + bias
        drives[layer["name"]] = drive
    return drives


def quantise_imported(model, calibration_x: np.ndarray, formats=None):
    """The integer network (``golden.network_int.IntegerNetwork``) of an imported graph, by
    the rules ``sw/quantise.py`` applies to trained networks (docs/network_fixed_point.md):
    per layer one weight scale, the core input's scale from the calibration activations
    (``formats.percentile``), the LIF core from :meth:`NIRNetwork.hardware_layers` (per-channel
    β and α rounded by ``LIFConfig.quantise_decay``, reset and spike as imported, the membrane
    ``lif_extra_frac_bits`` finer than the input). Recurrent weights are stored on the
    accumulator grid (``A = W·a + V·s + b`` adds them unshifted). A spiking output layer is
    read out by an identity readout (the logits are its spike counts, as the float model's
    time-mean). Raises ``ValueError`` naming the layer."""
    import math

    from ..golden.fixed import signed_range
    from ..golden.lif_config import LIFConfig
    from ..golden.network_int import IntegerLayer, IntegerNetwork, IntegerSynapse
    from .quantise import Formats, frac_bits_for

    formats = formats or Formats()
    layers = model.hardware_layers()
    x = np.asarray(calibration_x, dtype=np.float64)
    drives = _drives(model, x, layers)
    lo, hi = signed_range(formats.weight_width)

    def scale(values):
        return float(np.percentile(np.abs(values), formats.percentile)) if values.size else 0.0

    def ident(name):  # a Verilog/Python identifier: nn.Sequential's nodes are '0', '1', …
        name = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
        return name if name.isidentifier() else f"layer_{name}"

    input_frac = frac_bits_for(scale(x), formats.input_width)
    activity = {model.spec["input"]: (input_frac, -signed_range(formats.input_width)[0])}
    hidden, readout = [], None
    for layer in layers:
        name, weight = layer["name"], layer["weight"]
        fa, bound = activity[layer["source"]]
        if layer.get("readout"):
            wf = frac_bits_for(float(np.abs(weight).max(initial=0.0)), formats.weight_width)
            readout = IntegerSynapse(
                weight=np.clip(np.round(np.ldexp(weight, wf)), lo, hi).astype(np.int64),
                bias=np.round(np.ldexp(layer["bias"], wf + fa)).astype(np.int64),
                weight_width=formats.weight_width, weight_frac_bits=wf, shift=0,
                out_width=None, input_bound=bound)
            continue
        view = layer["lif"]
        recurrent = [w for w, _ in layer["recurrent"]]
        bias = layer["bias"] + sum((b for _, b in layer["recurrent"]), np.zeros(len(weight)))
        wf = frac_bits_for(float(np.abs(weight).max(initial=0.0)), formats.weight_width)
        if recurrent:
            wf = min(wf, frac_bits_for(float(np.abs(sum(recurrent)).max(initial=0.0)),
                                       formats.weight_width) - fa)
        accumulator = wf + fa
        core_frac = frac_bits_for(scale(drives[name]), formats.core_input_width)
        state_frac = core_frac + formats.lif_extra_frac_bits
        frac = formats.lif_decay_frac_bits

        def decays(values):
            return [LIFConfig.quantise_decay(float(v), frac, formats.lif_decay_mode,
                                             formats.lif_decay_digits) for v in values]

        beta = decays(view["beta"])
        alpha = decays(view["alpha"]) if view["alpha"] is not None else None
        theta = None if view["threshold"] is None else \
            np.round(np.ldexp(view["threshold"], state_frac)).astype(np.int64)
        slowest = max(beta + (alpha or [0]))
        leak = max(1.0, 1.0 / max(1.0 - slowest / (1 << frac), 2.0 ** -frac))
        if alpha:
            leak *= leak
        top = int(theta.max()) if theta is not None else 0
        needed = math.ldexp(1.0, formats.core_input_width - 1 + formats.lif_extra_frac_bits)
        width = max(int(math.ceil(math.log2((needed + top) * leak + 1))) + 1,
                    (top + 2).bit_length() + 1)
        width = min(width, 40, 62 - 3 - frac)
        try:
            synapse = IntegerSynapse(
                weight=np.clip(np.round(np.ldexp(weight, wf)), lo, hi).astype(np.int64),
                bias=np.round(np.ldexp(bias, accumulator)).astype(np.int64),
                weight_width=formats.weight_width, weight_frac_bits=wf,
                shift=accumulator - core_frac, out_width=formats.core_input_width,
                input_bound=bound,
                recurrent=None if not recurrent else np.clip(
                    np.round(np.ldexp(sum(recurrent), accumulator)), lo, hi).astype(np.int64))
            channels = synapse.outputs
            lanes = max(d for d in range(1, min(formats.lanes, channels) + 1)
                        if channels % d == 0)
            core = LIFConfig(channels=channels, lanes=lanes, variant=view["variant"],
                             beta=beta, alpha=alpha, threshold=theta,
                             decay_frac_bits=frac, decay_mode=formats.lif_decay_mode,
                             decay_digits=formats.lif_decay_digits, reset=view["reset"],
                             spike=view["spike"], input_width=formats.core_input_width,
                             input_frac_bits=core_frac, state_width=width,
                             state_frac_bits=state_frac,
                             membrane_out=view["variant"] == "li")
            hidden.append(IntegerLayer(ident(name), synapse, core))
        except ValueError as exc:
            raise ValueError(f"layer {name}: {exc}") from None
        activity[name] = (0, 1)  # spikes
    if readout is None:  # a spiking output layer: its spike counts are the logits
        channels = hidden[-1].core.channels
        readout = IntegerSynapse(weight=np.eye(channels, dtype=np.int64),
                                 bias=np.zeros(channels, dtype=np.int64),
                                 weight_width=formats.weight_width, weight_frac_bits=0,
                                 shift=0, out_width=None, input_bound=1)
    return IntegerNetwork(input_width=formats.input_width, input_frac_bits=input_frac,
                          layers=tuple(hidden), readout=readout,
                          readout_kind="mean_membrane")


def export_imported(run, out_dir, formats=None, *, calibration_samples: int = 512,
                    checkpoint: str = "best", log=print) -> dict:
    """``spikeforge export`` for an imported run: :func:`quantise_imported` calibrated on the
    run's training data, written by ``sw/export.export_network`` with the same ``source`` and
    a report of the same keys as ``sw/network.export_run`` writes, so that ``generate --from``
    and ``cosim`` take the directory like a trained run's export. Returns the manifest."""
    import dataclasses as _dataclasses

    from ..golden.data import load_data
    from .export import export_network
    from .export import sha256_file as file_hash
    from .quantise import Formats, stack_dataset
    from .train import load_trained

    formats = formats or Formats()
    run = Path(run)
    path = run / f"{checkpoint}.pt" if run.is_dir() else run
    model, config, saved = load_trained(path)
    if "nir" not in saved:
        raise ValueError(f"{path}: not an imported run (spikeforge import)")
    data = load_data(config.data)
    if data.lengths is not None:
        raise ValueError(f"{path}: an imported NIR run takes samples of one length; "
                         f"{config.data.label} keeps each sample's own ({data.lengths[0]}.."
                         f"{data.lengths[1]} steps): set data.pad: end")
    calibration_x, _, _ = stack_dataset(data.train, calibration_samples)
    test_x, test_y, _ = stack_dataset(data.test)
    log(f"calibrating on {calibration_x.shape[1]} training samples")
    network = quantise_imported(model, calibration_x, formats)
    trace = network.run(test_x)
    with torch.no_grad():
        sequences = model.simulate(torch.as_tensor(test_x))
        logits = sequences[model.spec["output"]].mean(0).numpy()
    layers = {}
    for layer, spec_layer in zip(network.layers, model.hardware_layers()):
        spikes = trace.spikes[layer.name]
        floats = sequences[spec_layer["name"]].numpy()
        layers[layer.name] = {
            "neuron": "lif", "channels": layer.core.channels,
            "spike_agreement": float(np.mean(spikes == (floats > 0.5))),
            "firing_rate_integer": float(spikes.mean()),
            "firing_rate_float": float(floats.mean()),
            "saturated": trace.saturated[layer.name],
            "saturated_fraction": trace.saturated[layer.name] / trace.inputs[layer.name].size}
    report = {"samples": len(test_y),
              "float_accuracy": float(np.mean(logits.argmax(axis=1) == test_y)),
              "integer_accuracy": float(np.mean(trace.predictions == test_y)),
              "prediction_agreement": float(np.mean(logits.argmax(axis=1) ==
                                                    trace.predictions)),
              "input_saturated": trace.saturated["input"], "layers": layers}
    # generate/cosim read the data through parse_config, which needs a model section: a
    # stand-in of the same widths (the network itself is the imported graph, source.nir)
    stand_in = {"neuron": {"name": "lif"}, "arch": "mlp", "norm": "none",
                "hidden": [layer.core.channels for layer in network.layers]}
    source = {"checkpoint": str(path), "sha256": file_hash(path), "epoch": saved["epoch"],
              "selection": None,
              "config": {"data": saved["config"]["data"], "model": stand_in},
              "model_inputs": saved["model_inputs"], "nir": saved["nir"]["file"]}
    extra = {"formats": _dataclasses.asdict(formats), "report": report}
    return export_network(network, out_dir, source=source, extra=extra)
