"""``spikeforge demo``: the main job end to end on the embedded digits data, in minutes.

Trains the small CPSN + PRF network of ``configs/demo_cpsn_prf.yaml``, exports it to integer
tables, generates the whole network as one accelerator (synapse engines, the two cores and
the readout), co-simulates it under Verilator on the entire test set (every class and logit
checked against the integer model, with random handshakes and at full rate) and synthesises
it for an FPGA, then prints one summary table (and writes it as ``summary.json``). Any stage
that fails, or a design that does not fit, makes the command exit non-zero.

``--nir GRAPH.nir --data CONFIG.yaml`` replaces training by ``spikeforge import`` of a NIR
graph (docs/nir.md); the rest of the chain is the same.
"""

import json
import sys
import time
from pathlib import Path

import click

from .configs import CONFIG_DIR
from .text import table

__all__ = ["DEMO_CONFIG", "DEMO_FORMATS", "demo"]

#: The demo network, a bundled configuration (package data: found in a checkout and in an
#: installed wheel alike).
DEMO_CONFIG = CONFIG_DIR / "demo_cpsn_prf.yaml"
#: Export formats of the demo. Measured on the demo network (seed 0): PRF coefficients of 10
#: bits with 3 CSD digits and an 8-bit state fraction give the same test accuracy as 16 / 4 /
#: 16 (95.99 % vs 95.32 %) while the L = 8 PRF core shrinks from 38,553 LUTs (does not fit an
#: ECP5-25k) to 15,052; L = 4 halves it again (8,213 LUTs) and keeps synthesis quick.
DEMO_FORMATS = dict(lanes=4, prf_coef_width=10, prf_csd_terms=3, prf_state_frac_bits=8)
STAGES = 5


def _stage(number: int, title: str) -> float:
    click.secho(f"\n[{number}/{STAGES}] {title}", bold=sys.stdout.isatty())
    return time.perf_counter()


def design_size(report: dict | None) -> str:
    """One line of a synthesis report: resources, Fmax, fit."""
    if report is None:
        return "not synthesised"
    if report.get("error"):
        return f"synthesis failed: {report['error']}"
    cells = report.get("resources", {})
    text = ", ".join(f"{cells[key]} {label}" for key, label in
                     (("logic_luts", "LUTs"), ("ffs", "FFs"), ("bram", "BRAM"), ("dsp", "DSP"))
                     if key in cells)
    if report.get("fmax_mhz"):
        text += f", {report['fmax_mhz']:.1f} MHz"
    if report.get("place_and_route") and not report.get("fits", True):
        text += " (does not fit)"
    return text


def summary_rows(report: dict, cosim: dict, synth: dict | None, target: str) -> list:
    """The demo summary: every accuracy with the number of test samples it was measured on
    (the export's report covers the whole test set, the co-simulation ``--samples`` of it)."""
    random_run = cosim["random handshakes"]
    total, simulated = report["samples"], random_run["samples"]
    integer = f"{100 * report['integer_accuracy']:.2f}% ({total} test samples)"
    if simulated != total:
        integer += (f"; {100 * random_run['integer_accuracy']:.2f}% on the {simulated} "
                    f"co-simulated")
    rows = [("float accuracy", f"{100 * report['float_accuracy']:.2f}% ({total} test samples)"),
            ("integer accuracy", integer),
            ("hardware accuracy", f"{100 * random_run['hardware_accuracy']:.2f}% "
                                  f"({simulated} test samples under Verilator)")]
    for label, run in cosim.items():
        rows.append((f"agreement, {label}", f"class {100 * run['class_agreement']:.2f}%, "
                                            f"logits {100 * run['logit_agreement']:.2f}% "
                                            f"({run['samples']} test samples)"))
    full = cosim["full rate"]
    rows.append(("cycles per sample", f"{full['cycles_per_sample']:.1f} measured at full rate "
                                      f"(estimated typical "
                                      f"{full['cycles_per_sample_typical']}, worst "
                                      f"{full['cycles_per_sample_worst']})"))
    if synth is not None:
        rows.append((f"network on {target}", design_size(synth)))
        network = synth.get("network") or {}
        if network.get("us_per_sample"):
            us = full["cycles_per_sample"] / synth["fmax_mhz"]
            rows.append(("speed at Fmax", f"{us:.2f} µs per sample, {1e6 / us:,.0f} samples/s "
                                          f"(measured cycles per sample)"))
    return rows


@click.command()
@click.option("--out", "out_dir", default="build/demo", show_default=True,
              type=click.Path(file_okay=False), help="Where the run, export and network go.")
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Override the demo configuration's epochs.")
@click.option("--samples", default=None, type=click.IntRange(min=1),
              help="Test samples co-simulated under Verilator [default: all].")
@click.option("--target", default="ecp5-25k", show_default=True,
              help="FPGA the network is synthesised for.")
@click.option("--synth/--no-synth", "run_synth", default=True, show_default=True,
              help="Synthesise and place-and-route the network (yowasp).")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(min=1),
              help="nextpnr placement seeds (the fastest is reported).")
@click.option("--nir", "nir_graph", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Import this NIR graph (`spikeforge import`) instead of training.")
@click.option("--data", "data_path", default=None,
              type=click.Path(exists=True, dir_okay=False),
              help="With --nir: the configuration whose data: block the graph runs on, e.g. "
                   "configs/digits_lif.yaml.")
@click.option("--weight-width", default=None, type=click.IntRange(2, 24),
              help="Bits of the synapse and readout weights [default: 8].")
def demo(out_dir, epochs, samples, target, run_synth, seeds, nir_graph, data_path,
         weight_width):
    """Train a CPSN + PRF network on digits (or import a NIR graph: --nir, --data), export
    it, generate it as one accelerator, co-simulate it on the test set under Verilator and
    synthesise it: one summary table."""
    import torch

    from ..hw.synth import TARGETS, misfit
    from .accelerator import cosim_network, generate_network_from, network_rows
    from .network import core_rows, export_run, report_rows
    from .export import ExportError
    from .quantise import Formats, QuantisationError
    from .train import _run_files, replace_train, load_config, train_run

    if target not in TARGETS:
        raise click.BadParameter(f"unknown target {target!r}; choose one of {sorted(TARGETS)}",
                                 param_hint="--target")
    if (nir_graph is None) != (data_path is None):
        raise click.UsageError("--nir GRAPH.nir and --data CONFIG.yaml go together (the graph "
                               "and the data it runs on)")
    if nir_graph is not None and epochs is not None:
        raise click.UsageError("--epochs sets the training of the demo network; an imported "
                               "NIR graph (--nir) is not trained")
    formats = Formats(**DEMO_FORMATS)
    if weight_width is not None:
        formats = formats.replace(weight_width=weight_width)
    out_dir = Path(out_dir)
    started = time.perf_counter()
    times = {}

    torch.set_num_threads(1)  # fastest for these small networks, even on an idle machine
    if nir_graph is not None:
        from .nir_cli import run_import
        from .nir_import import ImportRefused

        begin = _stage(1, f"import {nir_graph} (NIR) on the data of {data_path}")
        try:  # the demo's own run: always a fresh one
            run_import(nir_graph, data_path, out_dir / "run", force=True, log=click.echo)
        except ImportRefused as exc:
            raise click.ClickException(str(exc)) from None
        times["import"] = time.perf_counter() - begin
    else:
        begin = _stage(1, f"train {DEMO_CONFIG.name} (CPSN layer + PRF layer on 8x8 digits)")
        config = replace_train(load_config(DEMO_CONFIG), epochs=epochs, seed=None)
        for path in _run_files(out_dir / "run"):  # the demo's own run: always a fresh one
            path.unlink()
        train_run(config, out_dir / "run", progress=sys.stderr.isatty(), log=click.echo)
        times["train"] = time.perf_counter() - begin

    begin = _stage(2, "export: " + ("" if nir_graph else "fold BatchNorm, ")
                   + "calibrate, quantise, write tables")
    try:
        manifest = export_run(out_dir / "run", out_dir / "export", formats, log=click.echo)
    except (ExportError, QuantisationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(table(report_rows(manifest["report"]) + core_rows(manifest)))
    times["export"] = time.perf_counter() - begin

    begin = _stage(3, "generate the network as one accelerator (synapses, cores, readout)")
    network_dir = out_dir / "network"
    description = generate_network_from(out_dir / "export", network_dir)
    click.echo(table(network_rows(description)))
    times["generate"] = time.perf_counter() - begin

    begin = _stage(4, f"co-simulate the whole network under Verilator on "
                      f"{'all' if samples is None else samples} test samples")
    cosim = {}
    for label, probability in (("random handshakes", 0.8), ("full rate", 1.0)):
        report = cosim_network(network_dir, samples=samples, valid_probability=probability,
                               ready_probability=probability, log=click.echo)
        click.echo(f"  {label}: class agreement {100 * report['class_agreement']:.2f}%, "
                   f"logit agreement {100 * report['logit_agreement']:.2f}%, "
                   f"{report['cycles_per_sample']:.1f} cycles per sample, "
                   f"{report['sim_wall_s']:.1f} s")
        cosim[label] = report
    times["cosim"] = time.perf_counter() - begin

    synth = None
    if run_synth:
        from ..hw.synth import synth_core_dir

        begin = _stage(5, f"synthesise and place-and-route the network for {target} (yowasp)")
        try:
            synth = synth_core_dir(network_dir, target, out_dir / "synth",
                                   seeds=range(1, seeds + 1), log=click.echo)
        except (OSError, ValueError, RuntimeError) as exc:
            synth = {"error": str(exc)}
        click.echo(f"  network: {design_size(synth)}")
        times["synth"] = time.perf_counter() - begin
    times["total"] = time.perf_counter() - started

    report = manifest["report"]
    rows = summary_rows(report, cosim, synth, target)
    rows.append(("time", ", ".join(f"{k} {v:.0f} s" for k, v in times.items())))
    click.secho("\nspikeforge demo summary", bold=sys.stdout.isatty())
    click.echo(table(rows))
    summary = {"source": {"nir": str(nir_graph), "data": str(data_path)} if nir_graph
               else {"config": str(DEMO_CONFIG)},
               "report": report, "cosim": cosim, "network": description, "times_s": times,
               "synth": None if synth is None else
               {k: synth.get(k) for k in ("resources", "fmax_mhz", "fmax_by_seed", "fits",
                                          "device", "network", "error")}}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    click.echo(table([
        ("Verilog", f"{network_dir / 'network.v'} (module spikeforge_network, tables "
                    f"beside it, description network.json)"),
        ("reports", f"{out_dir / 'summary.json'}"
                    + (f", {out_dir / 'synth' / 'synth_report.json'}" if synth else "")),
        ("run", f"{out_dir / 'run'} (imported from {nir_graph}: summary.json, graph.nir)")
        if nir_graph else ("training", f"{out_dir / 'run'} (metrics and plots)"),
        ("next", f"spikeforge cosim {network_dir} --samples all --seed 1 ; "
                 f"spikeforge synth {network_dir} --target ecp5-85k"),
    ]))
    failures = [f"{label}: {run['first_mismatch']}" for label, run in cosim.items()
                if not run["passed"]]
    if synth is not None and synth.get("error"):
        failures.append(f"synthesis failed: {synth['error']}")
    elif synth is not None and synth.get("place_and_route") and not synth.get("fits", True):
        failures.append(f"the network does not fit {synth['device']}: {misfit(synth)}")
    if failures:
        raise click.ClickException("; ".join(failures))
