"""``spikeforge demo``: the main job end to end on the embedded digits data, in minutes.

Trains the small CPSN + PRF network of ``configs/demo_cpsn_prf.yaml``, exports it to integer
tables, generates one core per neuron layer, co-simulates every core under Verilator on real
test samples and synthesises the cores for an FPGA, then prints one summary table (and writes
it as ``summary.json``).
"""

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import click

from .text import table

__all__ = ["DEMO_CONFIG", "DEMO_FORMATS", "demo"]

#: The demo network; the package root is the repository root (setuptools package-dir).
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo_cpsn_prf.yaml"
#: Export formats of the demo. Measured on the demo network (seed 0): PRF coefficients of 10
#: bits with 3 CSD digits and an 8-bit state fraction give the same test accuracy as 16 / 4 /
#: 16 (95.99 % vs 95.32 %) while the L = 8 PRF core shrinks from 38,553 LUTs (does not fit an
#: ECP5-25k) to 15,052; L = 4 halves it again (8,213 LUTs) and keeps synthesis quick.
DEMO_FORMATS = dict(lanes=4, prf_coef_width=10, prf_csd_terms=3, prf_state_frac_bits=8)


def _stage(number: int, title: str) -> float:
    click.secho(f"\n[{number}/5] {title}", bold=True)
    return time.perf_counter()


def _synth(core_dir: Path, target: str, out_dir: Path) -> dict:
    from ..hw.synth import synth_core_dir

    return synth_core_dir(core_dir, target, out_dir)


def _core_size(report: dict | None) -> str:
    if report is None:
        return "not synthesised"
    if report.get("error"):
        return f"synthesis failed: {report['error']}"
    cells = report.get("resources", {})
    text = ", ".join(f"{cells[key]} {label}" for key, label in
                     (("luts", "LUTs"), ("ffs", "FFs"), ("dsp", "DSP"), ("bram", "BRAM"))
                     if key in cells)
    if report.get("fmax_mhz"):
        text += f", {report['fmax_mhz']:.1f} MHz"
    if report.get("place_and_route") and not report.get("fits", True):
        text += " (does not fit)"
    return text


@click.command()
@click.option("--out", "out_dir", default="build/demo", show_default=True,
              type=click.Path(file_okay=False), help="Where the run, export and cores go.")
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Override the demo configuration's epochs.")
@click.option("--samples", default=100, show_default=True, type=click.IntRange(min=1),
              help="Test samples co-simulated under Verilator.")
@click.option("--target", default="ecp5-25k", show_default=True,
              help="FPGA the cores are synthesised for.")
@click.option("--synth/--no-synth", "run_synth", default=True, show_default=True,
              help="Synthesise and place-and-route the cores (yowasp).")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(min=1),
              help="Cores co-simulated / synthesised at once.")
def demo(out_dir, epochs, samples, target, run_synth, jobs):
    """Train a CPSN + PRF network on digits, export it, generate its cores, co-simulate them
    on test data under Verilator and synthesise them: one summary table."""
    import torch

    from ..hw.synth import TARGETS
    from .network import core_rows, cosim_from, export_run, generate_from, report_rows
    from .quantise import Formats
    from .train import replace_train, load_config, train_run

    if target not in TARGETS:
        raise click.BadParameter(f"unknown target {target!r}; choose one of {sorted(TARGETS)}",
                                 param_hint="--target")
    out_dir = Path(out_dir)
    started = time.perf_counter()
    times = {}

    begin = _stage(1, f"train {DEMO_CONFIG.name} (CPSN layer + PRF layer on 8x8 digits)")
    torch.set_num_threads(1)  # fastest for this small network, even on an idle machine
    config = replace_train(load_config(DEMO_CONFIG), epochs=epochs, seed=None)
    train_run(config, out_dir / "run", progress=sys.stderr.isatty(), log=click.echo)
    times["train"] = time.perf_counter() - begin

    begin = _stage(2, "export: fold BatchNorm, calibrate, quantise, write tables")
    manifest = export_run(out_dir / "run", out_dir / "export", Formats(**DEMO_FORMATS),
                          log=click.echo)
    click.echo(table(report_rows(manifest["report"]) + core_rows(manifest)))
    times["export"] = time.perf_counter() - begin

    begin = _stage(3, "generate one core per neuron layer")
    descriptions = generate_from(out_dir / "export", out_dir / "cores", log=click.echo)
    times["generate"] = time.perf_counter() - begin

    begin = _stage(4, f"co-simulate every core under Verilator on {samples} test samples")
    cosim = cosim_from(out_dir / "export", samples=samples, jobs=jobs, log=click.echo)
    times["cosim"] = time.perf_counter() - begin

    synth = {}
    if run_synth:
        begin = _stage(5, f"synthesise and place-and-route for {target} (yowasp)")
        click.echo(f"  {len(descriptions)} cores, {jobs} at a time: Yosys synthesis, then "
                   f"nextpnr place-and-route (a few minutes)…")
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {d["name"]: pool.submit(_synth, out_dir / "cores" / d["name"], target,
                                              out_dir / "synth" / d["name"])
                       for d in descriptions}
            for name, future in futures.items():
                try:
                    synth[name] = future.result()
                except (OSError, ValueError, RuntimeError) as exc:
                    synth[name] = {"error": str(exc)}
                click.echo(f"  {name}: {_core_size(synth[name])}")
        times["synth"] = time.perf_counter() - begin
    times["total"] = time.perf_counter() - started

    report = manifest["report"]
    rows = [("float accuracy", f"{100 * report['float_accuracy']:.2f}% "
                               f"({report['samples']} test samples)"),
            ("integer accuracy", f"{100 * report['integer_accuracy']:.2f}% (same samples)"),
            ("hardware agreement", f"{'100%' if cosim['passed'] else 'MISMATCH'} of output "
                                   f"spikes on {cosim['samples']} test samples "
                                   f"(integer model {100 * cosim['integer_accuracy']:.2f}% on "
                                   f"them)")]
    for description in descriptions:
        name, layer = description["name"], cosim["layers"][description["name"]]
        config = description["config"]
        rows.append((f"{name}: {description['neuron']} core",
                     f"C={config['channels']} L={config['lanes']}, latency "
                     f"{description['latency_cycles']} cycles, {layer['beats']} beats verified"))
        if run_synth:
            rows.append((f"{name} on {target}", _core_size(synth.get(name))))
    rows.append(("time", ", ".join(f"{k} {v:.0f} s" for k, v in times.items())))
    click.secho("\nspikeforge demo summary", bold=True)
    click.echo(table(rows))
    summary = {"report": report, "cosim": cosim, "times_s": times,
               "synth": {name: {k: r.get(k) for k in ("resources", "fmax_mhz", "fits", "device",
                                                       "error")}
                         for name, r in synth.items()}}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    click.echo(f"wrote {out_dir / 'summary.json'}")
    if not cosim["passed"]:
        raise click.ClickException("the hardware differs from the integer model")
