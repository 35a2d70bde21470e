"""The ``spikeforge`` command line: generate Verilog and co-simulate it against the golden model."""

import json
import sys
import time
from pathlib import Path

import click

from .. import __version__
from .configs import load_core_config


def _fail(message: str):
    raise click.ClickException(message)


def _load(path):
    try:
        return load_core_config(path)
    except (OSError, ValueError) as exc:
        _fail(str(exc))


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)


@click.group()
@click.version_option(__version__, prog_name="spikeforge")
def main():
    """Parallel spiking neurons from PyTorch training to verified FPGA hardware."""


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Core configuration (JSON), e.g. examples/cpsn.json.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the Verilog, .hex tables and the core description.")
@click.option("--name", default="cpsn_core", show_default=True, help="Verilog module name.")
@click.option("--weights", "weight_storage", type=click.Choice(["baked", "file"]),
              default="baked", show_default=True,
              help="Tables as ROM contents in the Verilog, or read with $readmemh from the "
                   ".hex files (INIT_FILE parameters) so they change without regenerating.")
def generate(config_path, out_dir, name, weight_storage):
    """Write a core's Verilog, weight tables and JSON description."""
    from ..hw.generate import generate_cpsn

    config = _load(config_path)
    try:
        description = generate_cpsn(config, out_dir, name=name, weight_storage=weight_storage)
    except ValueError as exc:
        _fail(str(exc))
    click.echo(f"wrote {len(description['files'])} files to {out_dir}:")
    for file_name in description["files"]:
        click.echo(f"  {file_name}")
    click.echo(f"  {name}.json")
    widths = description["widths"]
    click.echo(_table([
        ("channels x lanes", f"{config.channels} x {config.lanes} "
                             f"({config.groups} beats per time step)"),
        ("order, dilation", f"k = {config.order}, d = {config.dilation}"),
        ("widths", f"input {widths['input']}, bias {widths['bias']}, "
                   f"membrane {widths['membrane']}"),
        ("latency", f"{description['latency_cycles']} cycles, one beat per clock"),
    ]))


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Core configuration (JSON).")
@click.option("--seed", default=0, show_default=True, type=int, help="Stimulus and timing seed.")
@click.option("--samples", default=16, show_default=True, type=click.IntRange(min=1),
              help="Random input samples.")
@click.option("--min-steps", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--max-steps", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--valid-probability", default=0.8, show_default=True,
              type=click.FloatRange(0.01, 1.0), help="Chance the driver offers a beat.")
@click.option("--ready-probability", default=0.8, show_default=True,
              type=click.FloatRange(0.01, 1.0), help="Chance the monitor accepts a beat.")
@click.option("--weights", "weight_storage", type=click.Choice(["baked", "file"]),
              default="file", show_default=True, help="Which Verilog form to verify.")
@click.option("--waves", is_flag=True, help="Dump a VCD of the run.")
@click.option("--build-dir", default=None, type=click.Path(file_okay=False),
              help="Verilator build cache (default: build/cosim).")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the summary as JSON.")
def cosim(config_path, seed, samples, min_steps, max_steps, valid_probability,
          ready_probability, weight_storage, waves, build_dir, json_path):
    """Co-simulate a core under Verilator against the bit-exact golden model."""
    from ..sim.runner import run_cosim
    from ..sim.verilator import MissingToolError

    if min_steps > max_steps:
        _fail(f"--min-steps ({min_steps}) is larger than --max-steps ({max_steps})")
    config = _load(config_path)
    click.echo(f"co-simulating {config_path} under Verilator (seed {seed}, {samples} samples)…")
    start = time.perf_counter()
    try:
        result = run_cosim(config, seed=seed, samples=samples, min_steps=min_steps,
                           max_steps=max_steps, valid_probability=valid_probability,
                           ready_probability=ready_probability, build_root=build_dir,
                           weight_storage=weight_storage, waves=waves)
    except MissingToolError as exc:
        _fail(str(exc))
    total = time.perf_counter() - start
    summary = {
        "config": str(config_path), "seed": seed, "samples": result.samples,
        "time_steps": result.time_steps, "beats": result.beats, "checked": result.checked,
        "mismatches": 0 if result.passed else 1, "first_mismatch": result.mismatch,
        "cycles": result.cycles, "sim_wall_s": round(result.wall_s, 4),
        "cycles_per_s": round(result.cycles_per_s), "neuron_steps_per_s":
        round(result.neuron_steps_per_s), "build_s": round(result.build_s, 2),
        "total_s": round(total, 2), "waves": result.waves,
    }
    click.echo(_table([
        ("beats checked", f"{result.checked} / {result.beats} "
                          f"({result.time_steps} time steps x {config.groups} groups)"),
        ("mismatches", "0" if result.passed else f"1 (stopped) — {result.mismatch}"),
        ("simulated cycles", str(result.cycles)),
        ("simulation wall time", f"{result.wall_s:.3f} s"),
        ("cycles/s", f"{result.cycles_per_s:,.0f}"),
        ("neuron-timesteps/s", f"{result.neuron_steps_per_s:,.0f}"),
        ("Verilator build", f"{result.build_s:.1f} s (cached per design)"),
    ] + ([("waves", result.waves)] if result.waves else [])))
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=1) + "\n")
    if not result.passed:
        click.echo("FAIL: the hardware differs from the golden model", err=True)
        sys.exit(1)
    click.echo("PASS: every output beat matches the golden model")


if __name__ == "__main__":
    main()
