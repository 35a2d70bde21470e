"""A run as a NIR graph (``.nir``): every network NIR can hold exactly, and a refusal naming
the layer for the rest (docs/nir.md).

* An **imported** run (``spikeforge import``) goes back with its nodes and parameters as read,
  its choices in the graph's metadata (``source: spikeforge``, ``dt``, ``discretisation``,
  ``reset``, ``spike_when``). NIR's neurons reset to ``v_reset`` and spike on ``>``, so a run
  imported with reset ``subtract`` or spike ``ge`` is refused: a reader would run it
  differently.
* A **trained** ``mlp`` run: every ``Linear`` (with its BatchNorm folded) becomes an
  ``Affine``; a CPSN layer becomes, per tap ``i``,
  ``Delay((k−1−i)·d·dt) → Scale(Q(W)[:, i])`` into one ``Threshold`` (θ = the largest
  float below ``−b``, so NIR's ``Σ > θ`` is CPSN's ``Σ + b ≥ 0``) if and only if that is
  exact: the written file is read back with our own importer under NIR's rules and must give
  the same spikes as the run's float model (float64) on the data's test split, else the layer
  is refused. PRF (complex state), the soft-reset LIF
  (its reset subtracts) and the PSN/PSU family (no NIR node) are refused.
* The readout ``mean_membrane`` is the time-mean of the output ``Affine`` (recorded as
  ``readout: mean`` in the metadata); ``last_membrane`` is refused.
"""

import sys
from pathlib import Path

import click
import numpy as np
import torch

__all__ = ["NIRExportError", "graph_of_run", "export_nir", "round_trip"]

#: The dt written for trained networks (a Delay is steps · dt seconds).
TRAINED_DT = 1e-3


class NIRExportError(ValueError):
    """NIR cannot hold the run exactly; the message names the layer and the reason."""


def _f64(tensor) -> np.ndarray:
    return tensor.detach().double().cpu().numpy()


def _metadata(choices: dict, **extra) -> dict:
    return {"source": "spikeforge", **{k: (str(v) if not isinstance(v, float) else v)
                                       for k, v in choices.items()}, **extra}


# -- imported runs -----------------------------------------------------------------------------

def _imported_graph(model, checkpoint):
    import nir

    choices = checkpoint["nir"]["choices"]
    spec = model.spec
    neurons = [n["name"] for n in spec["nodes"] if n["kind"] in ("lif", "cubalif", "if")]
    if neurons and choices["reset"] != "zero":
        raise NIRExportError(
            f"layer {neurons[0]}: reset {choices['reset']!r} is not in NIR (its LIF resets to "
            f"v_reset): readers would run it as reset-to-zero. Import with --reset zero to "
            f"export it")
    if neurons and choices["spike_when"] != "gt":
        raise NIRExportError(f"layer {neurons[0]}: spike {choices['spike_when']!r} (v >= "
                             f"threshold) is not NIR's v > threshold")
    nodes, edges = {}, []
    size = spec["sizes"]
    for node in spec["nodes"]:
        name, kind, p = node["name"], node["kind"], node["params"]
        # the parameters in the precision they were read in (float32 from snnTorch's files)
        dtype = np.float32 if node.get("precision", spec.get("precision")) == "float32" \
            else np.float64
        f = {k: np.asarray(v, dtype=np.float64).astype(dtype) for k, v in p.items()}
        if kind == "input":
            nodes[name] = nir.Input(input_type=np.array([size[name]]))
        elif kind == "output":
            nodes[name] = nir.Output(output_type=np.array([size[name]]))
        elif kind == "identity":
            nodes[name] = nir.Scale(scale=np.ones(size[name]))
        elif kind == "affine":
            nodes[name] = nir.Affine(weight=f["weight"], bias=f["bias"])
        elif kind == "linear":
            nodes[name] = nir.Linear(weight=f["weight"])
        elif kind == "scale":
            nodes[name] = nir.Scale(scale=f["scale"])
        elif kind == "threshold":
            nodes[name] = nir.Threshold(threshold=f["threshold"])
        elif kind == "delay":
            nodes[name] = nir.Delay(delay=f["delay"])
        elif kind == "lif":
            nodes[name] = nir.LIF(**f)
        elif kind == "cubalif":
            nodes[name] = nir.CubaLIF(**f)
        elif kind == "if":
            nodes[name] = nir.IF(**f)
        elif kind == "li":
            nodes[name] = nir.LI(**f)
        else:
            raise NIRExportError(f"layer {name}: kind {kind!r} has no NIR node")
        edges += [(a, name) for a in node["inputs"]]
        edges += [(a, name) for a in node.get("recurrent", ())]
    return nodes, edges, _metadata(choices, readout="mean")


# -- trained runs --------------------------------------------------------------------------------

def _fold(linear, norm) -> tuple[np.ndarray, np.ndarray]:
    from ..golden.networks import SeqBatchNorm

    weight, bias = _f64(linear.weight), _f64(linear.bias)
    if isinstance(norm, SeqBatchNorm):
        scale = _f64(norm.weight) / np.sqrt(_f64(norm.running_var) + norm.eps)
        shift = _f64(norm.bias) - _f64(norm.running_mean) * scale
        return weight * scale[:, None], bias * scale + shift
    return weight, bias


def _refuse_neuron(name: str, neuron) -> None:
    from ..golden.cpsn import CPSN
    from ..golden.cpsn_bn import CPSNBN
    from ..golden.lif import LIF, DecoupledResetLIF
    from ..golden.prf import PRF

    if isinstance(neuron, PRF):
        raise NIRExportError(f"layer {name}: PRF's state is complex (a resonator, ũ = λ·ũ + "
                             f"Δ·c with complex λ); NIR has no node that holds it")
    if isinstance(neuron, (LIF, DecoupledResetLIF)):
        raise NIRExportError(f"layer {name}: this LIF resets by subtracting the threshold "
                             f"(before the decay) and spikes on >=; NIR's LIF resets to "
                             f"v_reset and spikes on >")
    if isinstance(neuron, (CPSN, CPSNBN)):
        if not neuron.quantize:
            raise NIRExportError(f"layer {name}: a CPSN trained with quantize: false; only "
                                 f"the power-of-two CPSN is exported")
        return
    raise NIRExportError(f"layer {name}: {type(neuron).__name__} has no NIR form (NIR holds "
                         f"Affine, LIF-family neurons and CPSN as Delay + Scale + Threshold)")


def _cpsn_nodes(name: str, neuron, source: str, channels: int, nodes: dict, edges: list,
                dt: float) -> str:
    """Delay → Scale per tap into one Threshold; returns the Threshold's name."""
    import nir
    from ..golden.cpsn_bn import CPSNBN

    cpsn = neuron.to_cpsn() if isinstance(neuron, CPSNBN) else neuron
    weight = _f64(cpsn.effective_weight())          # [C, k]
    bias = _f64(cpsn.bias)
    order, dilation = cpsn.order, cpsn.dilation
    threshold = np.nextafter(-bias, -np.inf)         # Σ > θ  ⇔  Σ ≥ −b  (float64)
    out = f"{name}.threshold"
    for tap in range(order):
        lag = (order - 1 - tap) * dilation
        if not np.any(weight[:, tap]):
            continue
        into = source
        if lag:
            nodes[f"{name}.delay{tap}"] = nir.Delay(delay=np.full(channels, lag * dt))
            edges.append((source, f"{name}.delay{tap}"))
            into = f"{name}.delay{tap}"
        nodes[f"{name}.scale{tap}"] = nir.Scale(scale=weight[:, tap].copy())
        edges.append((into, f"{name}.scale{tap}"))
        edges.append((f"{name}.scale{tap}", out))
    nodes[out] = nir.Threshold(threshold=threshold)
    return out


def _trained_graph(model):
    import nir

    config = model.config
    if config.arch != "mlp":
        raise NIRExportError(f"arch {config.arch!r}: only 'mlp' networks (Linear → BatchNorm "
                             f"→ neuron per layer) export to NIR")
    if config.readout != "mean_membrane" and config.readout != "mean_spikes":
        raise NIRExportError(f"readout {config.readout!r}: NIR's output is per step; "
                             f"mean_membrane and mean_spikes (time-means) export")
    modules = dict(model.layers.named_children())
    nodes = {"input": nir.Input(input_type=np.array([model.in_features]))}
    edges, source, dt = [], "input", TRAINED_DT
    layers = [(f"sn{i}", modules[f"fc{i}"], modules[f"norm{i}"], modules[f"sn{i}"])
              for i in range(len(config.hidden or (128,)))]
    readout = model.readout
    if config.readout == "mean_spikes":
        layers.append(("readout.neuron", readout.linear, readout.norm, readout.neuron))
    for name, _, _, neuron in layers:
        _refuse_neuron(name, neuron)
    for name, linear, norm, neuron in layers:
        weight, bias = _fold(linear, norm)
        fc = name.replace("sn", "fc") if name.startswith("sn") else "readout.linear"
        nodes[fc] = nir.Affine(weight=weight, bias=bias)
        edges.append((source, fc))
        source = _cpsn_nodes(name, neuron, fc, weight.shape[0], nodes, edges, dt)
    if config.readout == "mean_membrane":
        nodes["readout"] = nir.Affine(weight=_f64(readout.linear.weight),
                                      bias=_f64(readout.linear.bias))
        edges.append((source, "readout"))
        source = "readout"
    nodes["output"] = nir.Output(output_type=np.array([model.outputs]))
    edges.append((source, "output"))
    choices = {"dt": dt, "discretisation": "euler", "reset": "zero", "spike_when": "gt"}
    return nodes, edges, _metadata(choices, readout="mean"), [l[0] for l in layers]


# -- round trip and the command ------------------------------------------------------------------

def round_trip(path, model, data, layers: list, *, trained: bool) -> dict:
    """Read ``path`` back with our importer (its metadata's choices) and compare spikes of
    every layer and the classes with ``model`` on the test split, in float64. Returns
    ``{layer: differing spikes, "classes": differing classes, "spikes": {layer: total}}``."""
    from ..golden.nir_model import Choices, NIRNetwork
    from .nir_import import flatten_graph, default_choices, detect_source, plan_import, read_graph

    graph = read_graph(path)
    nodes, _, _ = flatten_graph(graph)
    metadata = dict(graph.metadata or {})
    values, _ = default_choices(detect_source(nodes, metadata), metadata, {})
    choices = Choices(**values)
    plan = plan_import(graph, choices, in_features=data.in_features, outputs=data.num_outputs)
    if not plan.accepted:
        raise NIRExportError(f"the written graph does not read back: {plan.refusals[0]}")
    back = NIRNetwork(plan.spec, choices)
    from ..golden.data import collate_samples, step_mask

    x, _, lengths = collate_samples([data.test[i] for i in range(len(data.test))])
    x = x.transpose(0, 1).double()  # padded at the end: compare each sample's own steps
    valid = step_mask(lengths, x.shape[0])
    model = model.double().eval()
    ours = {}
    with torch.no_grad():
        if trained:
            store, handles = {}, []
            modules = dict(model.named_modules())
            for layer in layers:
                key = f"layers.{layer}" if layer.startswith("sn") else layer
                handles.append(modules[key].register_forward_hook(
                    lambda _m, _i, out, layer=layer: store.__setitem__(layer, out)))
            try:
                logits = model(x, lengths)
            finally:
                for handle in handles:
                    handle.remove()
            ours = store
        else:
            sequences = model.simulate(x)
            ours = {layer: sequences[layer] for layer in layers}
            logits = model.output_mean(sequences, lengths)
        theirs = back.simulate(x)
        back_logits = back.output_mean(theirs, lengths)
    result = {"spikes": {}}
    for layer in layers:
        node = f"{layer}.threshold" if trained else layer
        result[layer] = int((ours[layer][valid] != theirs[node][valid]).sum())
        result["spikes"][layer] = int(ours[layer][valid].sum())
    result["classes"] = int((logits.argmax(1) != back_logits.argmax(1)).sum())
    result["max_logit_difference"] = float((logits - back_logits).abs().max())
    return result


def graph_of_run(model, checkpoint):
    """``(nodes, edges, metadata, spiking layers, trained?)``."""
    if "nir" in checkpoint:
        nodes, edges, metadata = _imported_graph(model, checkpoint)
        layers = [n["name"] for n in model.spec["nodes"]
                  if n["kind"] in ("lif", "cubalif", "if", "threshold")]
        return nodes, edges, metadata, layers, False
    nodes, edges, metadata, layers = _trained_graph(model)
    return nodes, edges, metadata, layers, True


def export_nir(run, path, *, checkpoint: str = "best", log=print) -> dict:
    """Write ``run`` as the NIR file ``path`` after proving it exact by a round trip; raises
    :class:`NIRExportError` (nothing written) where NIR cannot hold it."""
    import nir

    from ..golden.data import load_data
    from .train import load_trained

    run = Path(run)
    source = run / f"{checkpoint}.pt" if run.is_dir() else run
    model, config, saved = load_trained(source)
    nodes, edges, metadata, layers, trained = graph_of_run(model, saved)
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False)
    data = load_data(config.data)
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    nir.write(temporary, graph)
    try:
        result = round_trip(temporary, model, data, layers, trained=trained)
        wrong = {k: v for k, v in result.items() if k in layers and v}
        if wrong or result["classes"]:
            layer = next(iter(wrong), "output")
            raise NIRExportError(
                f"layer {layer}: NIR does not hold it exactly here: the round trip changes "
                f"{wrong.get(layer, result['classes'])} spike(s)/class(es) on the test split")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    log(f"wrote {path}: {len(nodes)} nodes, {len(edges)} edges; round trip on "
        f"{len(data.test)} test samples: every spike and class equal "
        f"({', '.join(f'{k} {v}' for k, v in result['spikes'].items())} spikes)")
    return result


@click.command()
@click.argument("run", type=click.Path(exists=True))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="The .nir file to write.")
@click.option("--checkpoint", "which", type=click.Choice(["best", "last"]), default="best",
              show_default=True)
def main(run, out_path, which):
    """Write RUN (trained or imported) as a NIR graph, proven exact by a round trip."""
    from ..golden.data import DataError, DatasetNotFoundError
    from .checkpoint import CheckpointError
    from .nir_import import ImportRefused
    from .outputs import writable_file

    writable_file(out_path, "NIR file")
    try:
        export_nir(run, out_path, checkpoint=which, log=click.echo)
    except (NIRExportError, ImportRefused, CheckpointError, DataError,
            DatasetNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None


if __name__ == "__main__":
    main(sys.argv[1:])
