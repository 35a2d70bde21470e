"""``spikeforge import GRAPH.nir --data CONFIG.yaml --out runs/NAME``: a NIR graph as a run
directory that ``evaluate`` (and the later steps) take like a trained one (docs/nir.md)."""

import sys
from pathlib import Path

import click

from .outputs import writable_dir

__all__ = ["import_graph", "run_import", "node_table"]


def node_table(plan) -> str:
    """The node table: node, NIR type, shape, what it became or why it was refused."""
    head = ("node", "NIR type", "shape", "became / refused because")
    rows = [head] + [(r.node, r.nir_type, r.shape,
                      f"REFUSED: {r.refused}" if r.refused else r.became) for r in plan.rows]
    graph_level = [reason for node, reason in plan.refusals if node == "graph"]
    rows += [("(graph)", "", "", f"REFUSED: {reason}") for reason in graph_level]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"  {a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}"
                     for a, b, c, d in rows)


def run_import(graph_path, data_path, out_dir, *, dt=None, discretisation=None, reset=None,
               spike_when=None, type_check=True, tau_scale=1.0, force=False, log=print):
    """Import ``graph_path`` into ``out_dir``; returns the summary. Raises
    :class:`~spikeforge.sw.nir_import.ImportRefused` (nothing written) on any problem."""
    import yaml

    from ..golden.data import DataConfig, DataError, DatasetNotFoundError, load_data
    from ..golden.nir_model import Choices
    from .nir_import import (RUN_FILES, ImportRefused, build_model, default_choices,
                             detect_source, flatten_graph, nir_checkpoint, plan_import,
                             read_graph, sha256_file, write_run)
    from .train import ConfigError, _parse_section, config_to_dict, evaluate_model

    out_dir = Path(out_dir)
    existing = [name for name in RUN_FILES if (out_dir / name).exists()]
    if existing and not force:
        raise ImportRefused(f"{out_dir} already holds a run ({', '.join(existing[:3])}): give "
                            f"--force to replace it, or another --out")
    writable_dir(out_dir, "run directory")  # before any work: a one-line error at once
    if not (tau_scale > 0 and tau_scale < float("inf")):
        raise ImportRefused(f"--tau-scale must be a finite number > 0, got {tau_scale}")
    # the data first: its sizes check the graph's input and output
    try:
        document = yaml.safe_load(Path(data_path).read_text())
    except OSError as exc:
        raise ImportRefused(f"{data_path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ImportRefused(f"{data_path}: not valid YAML ({exc})") from None
    if not isinstance(document, dict) or "data" not in document:
        raise ImportRefused(f"{data_path}: no data: section (the configuration's data block "
                            f"gives the calibration and evaluation data)")
    try:
        data_config = _parse_section(DataConfig, document["data"], "data")
        data = load_data(data_config)
    except (ConfigError, DataError, DatasetNotFoundError) as exc:
        raise ImportRefused(f"{data_path}: {exc}") from None
    if data.task != "classification":
        raise ImportRefused(f"{data_path}: import evaluates classification data; "
                            f"{data_config.name} is {data.task}")

    graph = read_graph(graph_path, type_check=type_check)
    nodes, _, _ = flatten_graph(graph)
    metadata = dict(getattr(graph, "metadata", None) or {})
    source = detect_source(nodes, metadata)
    given = {"dt": dt, "discretisation": discretisation, "reset": reset,
             "spike_when": spike_when}
    values, origin = default_choices(source, metadata, given)
    try:
        choices = Choices(**values)
    except ValueError as exc:
        raise ImportRefused(str(exc)) from None
    writer = source if source not in ("none", "unknown") else "an unknown writer"
    log(f"{graph_path}: written by {writer}"
        f"{'' if tau_scale == 1 else f', every tau times {tau_scale:g}'}")
    for key in ("dt", "discretisation", "reset", "spike_when"):
        log(f"  {key:<15} {values[key]!s:<10} ({origin[key]})")
    plan = plan_import(graph, choices, in_features=data.in_features,
                       outputs=data.num_outputs, tau_scale=tau_scale, source=source)
    log(node_table(plan))
    type_error = getattr(graph, "type_check_error", None)
    if plan.accepted and type_error:
        raise ImportRefused(f"cannot import {graph_path}: {type_error}")
    if not plan.accepted:
        first_node, first_reason = plan.refusals[0]
        more = len(plan.refusals) - 1
        where = "the graph" if first_node == "graph" else f"node {first_node!r}"
        raise ImportRefused(f"cannot import {graph_path}: {where}: {first_reason}"
                            + (f" (and {more} more refusal(s) in the table)" if more else ""))
    try:
        model = build_model(plan, choices)
    except ValueError as exc:
        raise ImportRefused(f"cannot import {graph_path}: {exc}") from None
    model.eval()
    result = evaluate_model(model, data.test, data.task, "cpu")
    log(f"float model (float64): test accuracy {100 * result['acc']:.2f}% "
        f"({len(data.test)} samples)")
    info = {"source": source, "file": Path(graph_path).name,
            "sha256": sha256_file(graph_path), "origin": origin, "tau_scale": tau_scale,
            "type_check": type_check, "precision": plan.precision}
    model_inputs = {"in_features": data.in_features, "outputs": data.num_outputs,
                    "steps": data.steps}
    checkpoint = nir_checkpoint(plan, choices, model, config_to_dict(data_config),
                                model_inputs, info, result)
    summary = {"kind": "nir-import", **info, "choices": choices.to_dict(),
               "test_acc": result["acc"], "test_loss": result["loss"],
               "rates": result["rates"],
               "nodes": [{"node": r.node, "type": r.nir_type, "shape": r.shape,
                          "became": r.became} for r in plan.rows]}
    write_run(out_dir, checkpoint, graph_path, summary)
    log(f"wrote {out_dir} (evaluate it with `spikeforge evaluate {out_dir}`)")
    return summary


@click.command("import")
@click.argument("graph", type=click.Path(dir_okay=False))
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False),
              help="A run configuration (YAML) whose data: block gives the calibration and "
                   "evaluation data, e.g. configs/digits_lif.yaml.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run directory to write.")
@click.option("--dt", type=float, default=None,
              help="Time step in seconds [default: from the file's writer: snnTorch 1e-4, "
                   "Norse 1e-3, spikeforge its metadata].")
@click.option("--discretisation", type=click.Choice(["euler", "exact"]), default=None,
              help="euler: a = 1 - dt/tau (snnTorch, Norse); exact: a = exp(-dt/tau) "
                   "[default: euler].")
@click.option("--reset", type=click.Choice(["zero", "subtract"]), default=None,
              help="After a spike: v <- v_reset, or subtract the threshold (snnTorch's "
                   "default) [default: the writer's].")
@click.option("--spike-when", type=click.Choice(["gt", "ge"]), default=None,
              help="Spike on v > threshold (NIR, snnTorch, Norse) or v >= threshold "
                   "[default: gt].")
@click.option("--no-type-check", is_flag=True,
              help="Read without the nir package's type check (some older files need it).")
@click.option("--tau-scale", type=float, default=1.0, show_default=True,
              help="Multiply every time constant (Norse 1.1.0 writes tau times dt, "
                   "norse#411: 1000 undoes it for dt = 1e-3).")
@click.option("--force", is_flag=True, help="Replace the run files in --out.")
def import_graph(graph, data_path, out_dir, dt, discretisation, reset, spike_when,
                 no_type_check, tau_scale, force):
    """Import a NIR graph as a run: a float model of the graph under explicit choices,
    evaluated on the data; prints every node and what it became (or why it is refused)."""
    from .nir_import import ImportRefused

    try:
        run_import(graph, data_path, out_dir, dt=dt, discretisation=discretisation,
                   reset=reset, spike_when=spike_when, type_check=not no_type_check,
                   tau_scale=tau_scale, force=force, log=click.echo)
    except ImportRefused as exc:
        raise click.ClickException(str(exc)) from None


#: ``spikeforge import`` (sw/cli.py's lazy group looks the command up by its name).
globals()["import"] = import_graph

if __name__ == "__main__":
    import_graph(sys.argv[1:])
