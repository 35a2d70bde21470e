"""The ``spikeforge`` command line: generate Verilog, co-simulate it against the golden model,
synthesise it for FPGAs and benchmark both."""

import json
import re
import sys
import time
from pathlib import Path

import click

from .. import __version__
from ..hw.synth import TARGETS, misfit
from .outputs import writable_dir, writable_file
from .demo import demo
from .text import table


class _ChoiceLater(click.Choice):
    """A ``click.Choice`` whose choices come from a module imported only when they are
    needed (parsing or help of that option), not when the command line starts: Amaranth
    and numpy take a good part of a second to import."""

    def __init__(self, load, case_sensitive: bool = True):
        self._load, self._choices, self.case_sensitive = load, None, case_sensitive

    @property
    def choices(self):
        if self._choices is None:
            self._choices = tuple(self._load())
        return self._choices


def _ariths():
    from ..hw.cpsn_tables import ARITHS

    return ARITHS


def _plans():
    from .bench_hw import PLANS

    return sorted(PLANS)


def _core_kinds():
    from .bench_hw import CORE_KINDS

    return sorted(CORE_KINDS)


def _fail(message: str):
    raise click.ClickException(message)


def _staging_writable(out_dir) -> None:
    """An output written whole is staged beside ``out_dir``: its parent must take files too."""
    import os

    parent = Path(os.path.abspath(out_dir)).parent
    writable_dir(parent, f"directory that holds {out_dir} (the output is written beside it "
                         f"first)")


#: seconds between progress lines of a co-simulation when standard error is a terminal
PROGRESS_SECONDS = 3.0

_NUMPY_REPR = re.compile(r"\bnp\.(?:u?int\d*|float\d*|bool_?)\(([^()]*)\)")


def _plain_numbers(message: str) -> str:
    """A message with numpy scalars as the numbers they are: ``np.int64(5)`` → ``5`` (numpy 2
    writes its scalars so inside lists, tuples and ``!r``)."""
    return _NUMPY_REPR.sub(r"\1", message)


def _load(path):
    try:
        from .configs import load_core_config

        return load_core_config(path)
    except (OSError, ValueError) as exc:
        _fail(str(exc))


def _generator_options(config, arith: str) -> dict:
    """Generator options for the configuration's core type (``arith`` is CPSN's alone)."""
    from ..golden.cpsn_config import CPSNConfig

    if isinstance(config, CPSNConfig):
        return {"arith": arith}
    if arith != "shift_add":
        _fail(f"--arith {arith} applies to CPSN cores only; PRF cores choose multipliers "
              f"or shift-add with coef_mode in their configuration")
    return {}


def _click_command_name(node) -> str | None:
    """The command name of a function decorated with ``@click.command(...)``, else None."""
    import ast

    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "click.command":
            if decorator.args and isinstance(decorator.args[0], ast.Constant):
                return decorator.args[0].value
            return node.name.replace("_", "-")
    return None


def _usage_guards(node, source_name: str):
    """The leading ``if ...: raise click.UsageError(...)`` statements of a command's body
    as a function of its parameters (they need nothing but the parameters and click)."""
    import ast

    guards = []
    for statement in node.body[1:] if ast.get_docstring(node) else node.body:
        if not (isinstance(statement, ast.If) and not statement.orelse
                and len(statement.body) == 1 and isinstance(statement.body[0], ast.Raise)
                and ast.unparse(statement.body[0].exc).startswith("click.UsageError(")):
            break
        guards.append(statement)
    if not guards:
        return None
    arguments = ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[],
                              kw_defaults=[], kwarg=ast.arg("parameters"), defaults=[])
    body = [ast.Assign(targets=[ast.Name(n, ast.Store())],
                       value=ast.parse(f"parameters.get({n!r})", mode="eval").body)
            for n in sorted({a.arg for a in node.args.args})] + guards
    function = ast.FunctionDef(name="guard", args=arguments, body=body, decorator_list=[],
                               returns=None, type_params=[])
    module = ast.fix_missing_locations(ast.Module(body=[function], type_ignores=[]))
    namespace = {"click": click}
    exec(compile(module, source_name, "exec"), namespace)
    return namespace["guard"]


def _light_command(module: str, name: str):
    """Command ``name`` of ``module`` built from the module's source without importing it
    (``train`` and ``evaluate`` live beside torch, which takes seconds to import): the
    decorators of its ``@click.command`` function are evaluated on their own (they use
    nothing but click), and so are the usage checks at the top of its body; the module is
    imported only when the command runs. ``None`` where a decorator needs more than click
    (the caller then imports the module)."""
    import ast
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
        source = Path(spec.origin).read_text()
        tree = ast.parse(source, spec.origin)
        node = next(n for n in tree.body if isinstance(n, ast.FunctionDef)
                    and _click_command_name(n) == name)
        guard = _usage_guards(node, spec.origin)

        def run(*_args, **parameters):
            if guard is not None:
                guard(**parameters)
            import importlib

            real = getattr(importlib.import_module(module), node.name)
            return real.invoke(click.get_current_context())

        run.__name__, run.__doc__ = node.name, ast.get_docstring(node)
        namespace = {"click": click}
        command = run
        for decorator in reversed(node.decorator_list):
            command = eval(compile(ast.Expression(decorator), spec.origin, "eval"),
                           namespace)(command)
        return command
    except Exception:  # anything unexpected: the real command, imported
        return None


class _LazyGroup(click.Group):
    """A group whose torch-based commands are imported only when they run, so that
    ``--help`` and usage errors answer at once (torch takes seconds to import)."""

    LAZY = {"train": ("spikeforge.sw.train", "Train a spiking network; checkpoints, metrics "
                                             "and plots go to the run directory."),
            "evaluate": ("spikeforge.sw.train", "Print a trained run's test accuracy and "
                                                "per-layer firing rates."),
            "import": ("spikeforge.sw.nir_cli", "Import a NIR graph as a run directory.")}

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx, name):
        if name in self.LAZY:
            module = self.LAZY[name][0]
            if module not in sys.modules:  # its options and usage checks without the import
                light = _light_command(module, name)
                if light is not None:
                    return light
            import importlib

            return getattr(importlib.import_module(module), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:  # every refusal: one line, in plain numbers
            exc.message = _plain_numbers(exc.message)
            raise
        except OSError as exc:  # an output that cannot be written, a file that vanished
            where = f" {exc.filename}" if exc.filename else ""
            click.echo(f"Error: cannot access{where}: {exc.strerror or exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo(f"\ninterrupted. {self._after_interrupt(ctx)}", err=True)
            ctx.exit(130)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta["spikeforge.command"] = (name, command, list(rest))
        return name, command, rest

    @staticmethod
    def _after_interrupt(ctx) -> str:
        """What an interrupted command leaves, with its own paths."""
        name, command, args = ctx.meta.get("spikeforge.command", (None, None, []))
        try:
            params = command.make_context(name, list(args), parent=ctx,
                                          resilient_parsing=True).params
        except Exception:  # nothing more to say than that it was interrupted
            params = {}
        if name == "train" and (params.get("out_dir") or params.get("config_path")):
            run = params.get("out_dir") or Path("runs", Path(params["config_path"]).stem)
            return (f"The run continues from its last completed epoch with `spikeforge train "
                    f"--resume --out {run}`.")
        if name in ("generate", "export") and params.get("out_dir"):
            return (f"Nothing was replaced: {params['out_dir']} holds what it held before "
                    f"(outputs are written whole or not at all).")
        if name == "synth" and (params.get("out_dir") or params.get("core_dir")):
            where = params.get("out_dir") or Path(params["core_dir"],
                                                  f"synth-{params.get('target')}")
            return f"The tools' logs so far are in {where} (yosys.log, nextpnr*.log)."
        return "Outputs are written whole or not at all: nothing half-written was left."

    def format_commands(self, ctx, formatter):
        rows = []
        for name in self.list_commands(ctx):
            if name in self.LAZY:
                rows.append((name, self.LAZY[name][1]))
                continue
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="spikeforge")
def main():
    """Parallel spiking neurons from PyTorch training to verified FPGA hardware."""


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Core configuration (JSON), e.g. examples/cpsn.json.")
@click.option("--from", "export_dir", type=click.Path(file_okay=False),
              help="An export directory (`spikeforge export`): one core per neuron layer in "
                   "<out>/<layer>, reading the exported tables.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the Verilog, .hex tables and the core description.")
@click.option("--name", default=None, help="Verilog module name (default: <neuron>_core).")
@click.option("--weights", "weight_storage", type=click.Choice(["baked", "file"]),
              default=None,
              help="Tables as ROM contents in the Verilog, or read with $readmemh from the "
                   ".hex files (INIT_FILE parameters) so they change without regenerating "
                   "[default: baked for --config, file for --from].")
@click.option("--arith", type=_ChoiceLater(_ariths), default="shift_add",
              show_default=True,
              help="shift_add: the multiplication-free datapath; multiply: the baseline with a "
                   "real multiplier per tap (same results), for comparison.")
@click.option("--cores", "per_core", is_flag=True,
              help="With --from: one core per neuron layer in OUT/<layer> instead of the "
                   "whole-network accelerator.")
@click.option("--macs", default=16, show_default=True, type=click.IntRange(min=1),
              help="With --from: multipliers of the first synapse engine.")
@click.option("--spike-parallel", default=64, show_default=True, type=click.IntRange(min=1),
              help="With --from: accumulators of each spike-input synapse engine.")
@click.option("--fifo-depth", default=4, show_default=True, type=click.IntRange(min=0),
              help="With --from: places of each FIFO between two stages.")
@click.option("--balance/--no-balance", "balanced", default=True, show_default=True,
              help="With --from: give each stage the least parallelism (lanes, MACs, spike "
                   "accumulators, at most the export's lanes, --macs, --spike-parallel) that "
                   "keeps the slowest stage's throughput.")
@click.option("--max-steps", default=None, type=click.IntRange(min=1),
              help="With --from: the longest sample (time steps) the readout's logits are "
                   "sized for [default: the training data's T]; longer samples saturate.")
@click.option("--fit", "fit_target", default=None, type=click.Choice(["ecp5-25k", "ecp5-85k"]),
              help="With --from: choose lanes, MACs and spike parallelism for the highest "
                   "throughput whose estimated resources fit this device (Yosys-calibrated "
                   "per-stage model); overrides --macs and --spike-parallel.")
@click.option("--fit-margin", default=0.1, show_default=True,
              type=click.FloatRange(0, 1, max_open=True),
              help="With --fit: fraction of the device's logic, flip-flops and block RAMs "
                   "left free by the estimate.")
def generate(config_path, export_dir, out_dir, name, weight_storage, arith, per_core, macs,
             spike_parallel, fifo_depth, balanced, max_steps, fit_target, fit_margin):
    """Write a core's Verilog, weight tables and JSON description (CPSN or PRF), or with
    --from the whole network as one accelerator (OUT/network.v, module spikeforge_network)."""
    from ..hw.generate import generate_core

    if (config_path is None) == (export_dir is None):
        _fail("give either --config (one core) or --from (an export directory)")
    if (export_dir is None or per_core) and (fit_target or max_steps or not balanced):
        _fail("--fit, --max-steps and --no-balance shape a whole-network accelerator: use "
              "them with --from (without --cores)")
    writable_dir(out_dir, "--out directory")
    _staging_writable(out_dir)
    if not per_core:  # a previous generation of the same kind is replaced, nothing else
        from ..hw.generate import replaceable

        try:
            replaceable(out_dir, "core" if export_dir is None else "network")
        except ValueError as exc:
            _fail(str(exc))
    if export_dir is not None:
        from .export import ExportError

        if per_core:
            from .network import generate_from

            click.echo(f"generating the cores of {export_dir}:")
            weight_storage = weight_storage or "file"
            try:
                descriptions = generate_from(export_dir, out_dir, arith=arith,
                                             weight_storage=weight_storage, log=click.echo)
            except (ExportError, ValueError) as exc:
                _fail(str(exc))
            tables = "read through $readmemh from the exported .hex files" \
                if weight_storage == "file" else "baked into the Verilog as ROMs"
            click.echo(f"wrote {len(descriptions)} cores to {out_dir} (tables {tables})")
            return
        from .accelerator import generate_network_from, network_rows

        click.echo(f"generating the accelerator of {export_dir}:")
        if fit_target is not None:
            click.echo(f"choosing the folding for {fit_target} (margin "
                       f"{100 * fit_margin:.0f} %):")
        try:
            description = generate_network_from(
                export_dir, out_dir, weight_storage=weight_storage or "file", arith=arith,
                macs=macs, spike_parallel=spike_parallel, fifo_depth=fifo_depth,
                balanced=balanced, max_steps=max_steps, fit=fit_target,
                fit_margin=fit_margin, log=click.echo)
        except (ExportError, ValueError) as exc:
            _fail(str(exc))
        click.echo(table(network_rows(description)))
        click.echo(f"wrote {len(description['files']) + 1} files to {out_dir}: network.v "
                   f"(module {description['name']}), network.json and the tables")
        return
    weight_storage = weight_storage or "baked"
    config = _load(config_path)
    try:
        description = generate_core(config, out_dir, name=name, weight_storage=weight_storage,
                                    **_generator_options(config, arith))
    except ValueError as exc:
        _fail(str(exc))
    click.echo(f"wrote {len(description['files']) + 1} files to {out_dir}:")
    for file_name in description["files"]:
        click.echo(f"  {file_name}")
    click.echo(f"  {description['name']}.json")
    widths = ", ".join(f"{key} {value}" for key, value in description["widths"].items())
    click.echo(table([
        ("neuron", description["neuron"]),
        ("channels x lanes", f"{config.channels} x {config.lanes} "
                             f"({config.groups} beats per tile)"),
        ("elements per beat", str(description["elements_per_beat"])),
        ("widths", widths),
        ("latency", f"{description['latency_cycles']} cycles, one beat per clock"),
    ]))


class _Samples(click.ParamType):
    name = "N|all"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value is None or value == "all":
            return value
        try:
            number = int(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor 'all'", param, ctx)
        if number < 1:
            self.fail(f"{number} is below 1", param, ctx)
        return number


@main.command()
@click.argument("network_dir", metavar="DIRECTORY", required=False,
                type=click.Path(file_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Core configuration (JSON).")
@click.option("--from", "export_dir", type=click.Path(file_okay=False),
              help="An export directory (`spikeforge export`): the whole network as one "
                   "accelerator on --samples test samples (with --cores: every core on the "
                   "integer inputs the integer model records).")
@click.option("--cores", "per_core", is_flag=True,
              help="With --from: verify each core on its own instead of the whole network.")
@click.option("--seed", default=0, show_default=True, type=int, help="Stimulus and timing seed.")
@click.option("--samples", default=None, type=_Samples(),
              help="Samples: random ones with --config (default 16); test samples with --from "
                   "or NETWORK_DIR, a number or 'all' (default: all; --cores: 32).")
@click.option("--min-steps", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--max-steps", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--valid-probability", default=0.8, show_default=True,
              type=click.FloatRange(0.01, 1.0), help="Chance the driver offers a beat.")
@click.option("--ready-probability", default=0.8, show_default=True,
              type=click.FloatRange(0.01, 1.0), help="Chance the monitor accepts a beat.")
@click.option("--weights", "weight_storage", type=click.Choice(["baked", "file"]),
              default="file", show_default=True, help="Which Verilog form to verify.")
@click.option("--waves", is_flag=True, help="Dump a VCD of the run (whole networks: with the "
              "cocotb harness).")
@click.option("--harness", type=click.Choice(["fast", "cocotb"]), default="fast",
              show_default=True,
              help="Whole networks: the Verilog harness (no Python per cycle) or the cocotb "
                   "testbench (Python at every edge; for handshake debugging).")
@click.option("--jobs", default=None, type=click.IntRange(min=1),
              help="Whole networks, fast harness: simulator processes sharing the samples "
                   "(default: one per CPU from 64 samples).")
@click.option("--opt", "optimisation", type=click.Choice(["auto", "O0", "O1", "O2"]),
              default="auto", show_default=True,
              help="Fast harness: C++ optimisation of the model (auto: from the expected "
                   "cycles; docs/benchmarks.md).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="Fast harness: Verilator threads per simulation.")
@click.option("--simulator", type=click.Choice(["verilator", "icarus-2012", "icarus-2005"]),
              default="verilator", show_default=True,
              help="Whole networks, fast harness: the simulator (Icarus from PATH).")
@click.option("--build-dir", default=None, type=click.Path(file_okay=False),
              help="Verilator build cache (default: build/cosim).")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the summary as JSON.")
def cosim(network_dir, config_path, export_dir, per_core, seed, samples, min_steps, max_steps,
          valid_probability, ready_probability, weight_storage, waves, harness, jobs,
          optimisation, threads, simulator, build_dir, json_path):
    """Co-simulate under Verilator against the bit-exact integer model: a core (--config, or
    DIRECTORY written by `generate --config`, random stimulus), a whole exported network as
    one accelerator (--from EXPORT, or DIRECTORY written by `generate --from`) on its test
    set, or with --from --cores every core on its own. A DIRECTORY is verified as it is:
    its Verilog and tables, after checking their sha256s."""
    from ..sim.harness import SimulationError
    from ..sim.runner import run_cosim
    from ..sim.verilator import MissingToolError

    if sum(x is not None for x in (network_dir, config_path, export_dir)) != 1:
        _fail("give one of DIRECTORY (from `spikeforge generate`), --config (one core, random "
              "stimulus) or --from (an export directory, real test data)")
    if json_path:
        writable_file(json_path, "--json file")
    if build_dir:
        writable_dir(build_dir, "--build-dir")
    if export_dir is not None and per_core:
        _cosim_export(export_dir, seed, 32 if samples in (None, "all") else samples,
                      valid_probability, ready_probability, build_dir, json_path)
        return
    if network_dir is not None and not (Path(network_dir) / "network.json").is_file():
        config_path = _core_directory(network_dir)  # a core directory, verified as it is
    elif export_dir is not None or network_dir is not None:
        _cosim_network(export_dir or network_dir, seed, None if samples in (None, "all")
                       else samples, valid_probability, ready_probability, build_dir,
                       json_path, harness="cocotb" if waves else harness, jobs=jobs,
                       optimisation=None if optimisation == "auto" else f"-{optimisation}",
                       threads=threads, simulator=simulator)
        return
    if samples == "all":
        _fail("--samples all applies to test data (--from or NETWORK_DIR), not to --config")
    samples = samples or 16
    if min_steps > max_steps:
        _fail(f"--min-steps ({min_steps}) is larger than --max-steps ({max_steps})")
    directory = None
    if isinstance(config_path, tuple):  # a generated core directory
        directory, description, config = config_path
        config_path = directory
    else:
        config = _load(config_path)
    click.echo(f"co-simulating {config_path} under Verilator (seed {seed}, {samples} samples)…")
    start = time.perf_counter()
    try:
        if directory is None:
            result = run_cosim(config, seed=seed, samples=samples, min_steps=min_steps,
                               max_steps=max_steps, valid_probability=valid_probability,
                               ready_probability=ready_probability, build_root=build_dir,
                               weight_storage=weight_storage, waves=waves, log=click.echo)
        else:
            result = run_cosim(
                config, seed=seed, samples=samples, min_steps=min_steps, max_steps=max_steps,
                valid_probability=valid_probability, ready_probability=ready_probability,
                build_root=build_dir, weight_storage=description["weight_storage"],
                waves=waves, log=click.echo, verilog=(description["name"],
                                      (Path(directory) / f"{description['name']}.v").read_text()),
                table_files={t: Path(directory) / info["file"]
                             for t, info in description["tables"].items()}
                if description["weight_storage"] == "file" else None,
                **({"arith": description["arith"]} if "arith" in description else {}))
    except (MissingToolError, SimulationError) as exc:
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
    _end_cosim([
        ("beats checked", f"{result.checked} / {result.beats} "
                          f"({result.time_steps} time steps x {config.groups} groups)"),
        ("mismatches", "0" if result.passed else f"1 (stopped) — {result.mismatch}"),
        ("simulated cycles", str(result.cycles)),
        ("simulation wall time", f"{result.wall_s:.3f} s"),
        ("cycles/s", f"{result.cycles_per_s:,.0f}"),
        ("neuron-timesteps/s", f"{result.neuron_steps_per_s:,.0f}"),
        ("Verilator build", f"{result.build_s:.1f} s (cached per design)"),
    ] + ([("waves", result.waves)] if result.waves else []), summary, json_path, result.passed,
        "the hardware differs from the golden model",
        "every output beat matches the golden model")


@main.command("export")
@click.argument("run", required=False, type=click.Path(exists=True))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Export directory [default: build/<run name>].")
@click.option("--check", "check_dir", default=None, type=click.Path(file_okay=False),
              help="Only verify an export directory: hashes, shapes and widths.")
@click.option("--input-width", default=8, show_default=True, type=click.IntRange(2, 24),
              help="Bits of the quantised network input.")
@click.option("--core-input-width", default=8, show_default=True, type=click.IntRange(2, 24),
              help="Bits of every core's input (the synapse outputs).")
@click.option("--weight-width", default=8, show_default=True, type=click.IntRange(2, 24),
              help="Bits of the synapse and readout weights.")
@click.option("--percentile", default=99.99, show_default=True,
              type=click.FloatRange(0, 100, min_open=True),
              help="Calibration: this percentile of |activation| must fit; larger values "
                   "saturate (counted in the report).")
@click.option("--calibration-samples", default=512, show_default=True,
              type=click.IntRange(min=1), help="Training samples used for calibration.")
@click.option("--lanes", default=8, show_default=True, type=click.IntRange(min=1),
              help="Channels per beat of every core (largest divisor of the width).")
@click.option("--prf-coef-mode", type=click.Choice(["shift_add", "dsp"]), default="shift_add",
              show_default=True, help="PRF coefficients as CSD shift-adds or multipliers.")
@click.option("--prf-csd-terms", default=4, show_default=True, type=click.IntRange(1, 8),
              help="shift_add: signed digits per PRF coefficient.")
@click.option("--prf-coef-width", default=16, show_default=True, type=click.IntRange(2, 32),
              help="Bits of each PRF coefficient (the pole's real and imaginary parts).")
@click.option("--prf-state-frac-bits", default=16, show_default=True,
              type=click.IntRange(0, 32), help="Fraction bits of the PRF state grid.")
@click.option("--prf-parallelism", default=1, show_default=True, type=click.IntRange(1, 64),
              help="PRF time steps per beat (a power of two).")
@click.option("--tolerance", default=None, type=click.FloatRange(0, 100, max_open=True),
              help="Search the smallest widths whose integer accuracy (validation split) is "
                   "within this many percentage points of the float network's.")
@click.option("--checkpoint", "which", type=click.Choice(["best", "last"]), default="best",
              show_default=True, help="Which checkpoint of a run directory to export.")
@click.option("--nir", "nir_path", default=None, type=click.Path(dir_okay=False),
              help="Instead of tables, write RUN as this NIR graph, proven exact by a round "
                   "trip (docs/nir.md); refused, writing nothing, where NIR cannot hold it.")
def export(run, out_dir, check_dir, input_width, core_input_width, weight_width, percentile,
           calibration_samples, lanes, prf_coef_mode, prf_csd_terms, prf_coef_width,
           prf_state_frac_bits, prf_parallelism, tolerance, which, nir_path):
    """Quantise a trained run (RUN: its directory or a checkpoint) to integer weight tables:
    .hex/.coe/.mif per core table, weights.npz and a hashed manifest.json."""
    from ..golden.data import DatasetNotFoundError
    from .checkpoint import CheckpointError
    from .export import ExportError, check_export_target, load_export, load_network
    from .network import core_rows, export_run, report_rows

    which_given = click.get_current_context().get_parameter_source("which") == \
        click.core.ParameterSource.COMMANDLINE
    from .quantise import Formats, QuantisationError

    if (run is None) == (check_dir is None):
        _fail("give either RUN (to export) or --check DIR (to verify an export)")
    if nir_path is not None:
        _export_nir(run, nir_path, out_dir, which)
        return
    if check_dir is not None:
        try:
            manifest, layers = load_export(check_dir)
            if "network" in manifest:
                load_network(check_dir)
        except ExportError as exc:
            _fail(str(exc))
        files = sum(len(t["files"]) for e in manifest["layers"] for t in e["tables"].values())
        click.echo(table(core_rows(manifest)))
        network = " and network.npz" if "network" in manifest else ""
        click.echo(f"OK: {len(layers)} layer(s), {files} table files{network}: hashes, shapes "
                   f"and widths agree with the cores")
        return
    if Path(run).is_file() and which_given and Path(run).name != f"{which}.pt":
        _fail(f"--checkpoint {which} picks a checkpoint of a run directory, but {run} is "
              f"already a checkpoint file; give the run directory, or drop --checkpoint")
    out_dir = writable_dir(out_dir or Path("build", Path(run).stem if Path(run).is_file()
                                           else Path(run).name), "export directory")
    _staging_writable(out_dir)
    try:
        check_export_target(out_dir)
    except ExportError as exc:
        _fail(str(exc))
    try:
        formats = Formats(input_width=input_width, core_input_width=core_input_width,
                          weight_width=weight_width, percentile=percentile, lanes=lanes,
                          prf_coef_mode=prf_coef_mode, prf_csd_terms=prf_csd_terms,
                          prf_coef_width=prf_coef_width, prf_state_frac_bits=prf_state_frac_bits,
                          prf_time_parallelism=prf_parallelism)
        manifest = export_run(run, out_dir, formats,
                              tolerance=None if tolerance is None else tolerance / 100,
                              calibration_samples=calibration_samples, checkpoint=which,
                              log=click.echo)
    except (CheckpointError, DatasetNotFoundError, ExportError, QuantisationError,
            ValueError) as exc:
        _fail(str(exc))
    click.echo(table(report_rows(manifest["report"]) + core_rows(manifest)))
    for entry in manifest["layers"]:
        used = entry["config"]["lanes"]
        if used != lanes:  # never silent: the lanes must divide the layer's width
            click.echo(f"warning: layer {entry['name']}: --lanes {lanes} does not divide its "
                       f"{entry['config']['channels']} channels; it uses {used} lanes (the "
                       f"largest divisor not above {lanes})", err=True)
    click.echo(f"wrote {out_dir}/{'manifest.json'} and the tables of "
               f"{len(manifest['layers'])} core(s)")


def _export_nir(run, nir_path, out_dir, which):
    """``export RUN --nir FILE``: the run as a NIR graph (sw/nir_export.py)."""
    from ..golden.data import DataError, DatasetNotFoundError
    from .checkpoint import CheckpointError
    from .nir_export import NIRExportError, export_nir
    from .nir_import import ImportRefused
    from .outputs import writable_file

    if run is None:
        _fail("--nir writes RUN as a NIR file, --check verifies an export: give one of them")
    if out_dir is not None:
        _fail("--nir writes a NIR file, --out an export directory: give one of them")
    writable_file(nir_path, "NIR file")
    try:
        export_nir(run, nir_path, checkpoint=which, log=click.echo)
    except (NIRExportError, ImportRefused, CheckpointError, DataError,
            DatasetNotFoundError) as exc:
        _fail(f"cannot export {run} as NIR: {exc}")


def _core_directory(directory):
    """``(directory, description, config)`` of a core directory from `generate`, after
    checking that its files still have the recorded sha256s."""
    from ..hw.cores import config_from_json
    from ..hw.synth import load_core_dir

    try:
        description, _ = load_core_dir(directory)
        return directory, description, config_from_json(description["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _fail(f"{directory}: {exc}")


def _cosim_network(source, seed, samples, valid_probability, ready_probability, build_dir,
                   json_path, **harness_options):
    from ..sim.harness import SimulationError
    from ..sim.verilator import MissingToolError
    from .accelerator import cosim_network, cosim_network_rows
    from .export import ExportError

    click.echo(f"co-simulating the whole network of {source} on "
               f"{'all' if samples is None else samples} test samples under "
               f"{harness_options.get('simulator', 'verilator')} (seed {seed})…")
    try:
        report = cosim_network(source, samples=samples, seed=seed, build_root=build_dir,
                               valid_probability=valid_probability,
                               ready_probability=ready_probability, log=click.echo,
                               # a terminal sees the run move; a log file gets a line per stage
                               progress_seconds=PROGRESS_SECONDS if sys.stderr.isatty() else None,
                               **harness_options)
    except (ExportError, MissingToolError, SimulationError, ValueError,
            FileNotFoundError) as exc:
        _fail(str(exc))
    where = report["mismatch_location"] or {}
    _end_cosim(cosim_network_rows(report), report, json_path, report["passed"],
               f"sample {report['first_mismatch_sample']} differs from the integer model; "
               f"first differing layer: {where.get('layer', '?')}"
               + (f", time step {where['time_step']}" if "time_step" in where else "")
               + (f", channels {where['channels']}" if where.get("channels") else ""),
               f"the class and logits of all {report['samples']} samples match the integer "
               f"model")


def _cosim_export(export_dir, seed, samples, valid_probability, ready_probability, build_dir,
                  json_path):
    from ..sim.harness import SimulationError
    from ..sim.verilator import MissingToolError
    from .export import ExportError
    from .network import cosim_from, cosim_rows

    click.echo(f"co-simulating every core of {export_dir} on {samples} test samples under "
               f"Verilator (seed {seed})…")
    try:
        report = cosim_from(export_dir, samples=samples, seed=seed, build_root=build_dir,
                            valid_probability=valid_probability,
                            ready_probability=ready_probability, log=click.echo)
    except (ExportError, MissingToolError, SimulationError) as exc:
        _fail(str(exc))
    _end_cosim(cosim_rows(report), report, json_path, report["passed"],
               "the hardware differs from the integer model",
               "every output spike of every core matches the integer model")


def _end_cosim(rows, report: dict, json_path, passed: bool, failure: str, success: str):
    """A co-simulation's table, its JSON (``--json``, written whole or not at all), then
    ``PASS: success``, or ``FAIL: failure`` on standard error and exit status 1."""
    from ..hw.generate import write_json_atomically

    click.echo(table(rows))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(json_path, report)
    if not passed:
        click.echo(f"FAIL: {failure}", err=True)
        sys.exit(1)
    click.echo(f"PASS: {success}")


def _percent(used, available) -> str:
    return f"{used}/{available} ({100 * used / available:.0f}%)" if available else str(used)


def _absorbed_text(absorbed: dict | None) -> str:
    """The flip-flops moved into block-RAM and DSP registers, in words (ECP5)."""
    if not absorbed or not sum(absorbed.values()):
        return ""
    return (f" (after moving {absorbed['bram_output']} into block-RAM output registers, "
            f"{absorbed['dsp_input'] + absorbed['dsp_output']} into DSP registers)")


def synth_rows(report: dict) -> list[tuple[str, str]]:
    """The lines ``spikeforge synth`` prints for a report."""
    core, res, harness = report["core"], report["resources"], report["harness"]
    shape = core["shape"]
    rows = [
        ("target", f"{report['target']}: {report['device']}"),
        ("core", f"{core['name']} ({core.get('neuron', 'network')}, "
                 f"{core.get('arith', core.get('coef_mode', '-'))}, "
                 + ", ".join(f"{k}={v}" for k, v in shape.items()
                             if k in ("channels", "lanes", "order", "dilation", "input_width"))
                 + ")"),
        # As docs/benchmarks.md counts them: LUTs including those inside carry cells.
        ("LUTs", f"{res['logic_luts']}"
         + (f" ({res['luts']} LUT + {res['logic_luts'] - res['luts']} in {res['carry']} carry "
            "cells)" if res["logic_luts"] != res["luts"] else "")
         + (f" (+{res['muxes']} wide muxes)" if res["muxes"] else "")),
        ("carry cells", str(res["carry"])),
        ("FFs", str(res["ffs"]) + _absorbed_text(report.get("absorbed_registers"))),
        ("block RAM", f"{res['bram']:g}"),
        ("LUT RAM", str(res["lutram"])),
        ("DSP", f"{res['dsp']}" + ("" if report["dsp_mapping"] else " (DSP mapping off)")),
    ]
    if res["other"]:
        rows.append(("other cells", ", ".join(f"{c} {n}" for c, n in res["other"].items())))
    rows.append(("harness", f"{harness['luts']} LUTs, {harness['ffs']} FFs (registered ports; "
                            f"not in the counts above)"))
    if not report["place_and_route"]:
        rows.append(("Fmax", "n/a: " + report["note"]))
        return rows
    if report.get("stopped_after") == "yosys":
        rows.append(("fits", "NO (Yosys counts; place and route skipped): " + misfit(report)))
        return rows
    rows.append(("utilisation", ", ".join(
        f"{kind} {_percent(u['used'], u['available'])}"
        for kind, u in report["utilisation"].items() if u["used"])))
    if not report["fits"]:
        rows.append(("fits", "NO: " + misfit(report)))
        return rows
    path = report["critical_path"]
    rows.append(("Fmax", f"{report['fmax_mhz']:.1f} MHz (constraint {report['constraint_mhz']:g}"
                         f" MHz, clock {report['clock']})"))
    if len(report["fmax_by_seed"]) > 1:
        rows.append(("Fmax by seed", ", ".join(f"seed {seed}: {fmax:.1f} MHz"
                                               for seed, fmax in report["fmax_by_seed"].items())))
    if path:
        rows.append(("critical path", f"{path['from']} -> {path['to']}: {path['delay_ns']:.2f} "
                                      f"ns ({path['logic_ns']:.2f} logic, "
                                      f"{path['routing_ns']:.2f} routing, "
                                      f"{path['logic_levels']} logic cells)"))
    if report.get("neuron_steps_per_s"):
        rows.append(("throughput", f"{report['neuron_steps_per_s'] / 1e6:,.0f} M "
                                   f"neuron-timesteps/s (Fmax x "
                                   f"{core['neuron_steps_per_cycle']:g} per cycle)"))
    if report.get("network"):
        from .accelerator import synth_network_rows

        rows += synth_network_rows(report)
    return rows


@main.command()
@click.argument("core_dir", required=False, type=click.Path(file_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Generate the core from this configuration instead of reading CORE_DIR.")
@click.option("--target", required=True,
              type=click.Choice(list(TARGETS)),
              help="FPGA: iCE40 and ECP5 are placed and routed (Fmax); xc7 is synthesis only.")
@click.option("--arith", type=_ChoiceLater(_ariths), default="shift_add",
              show_default=True, help="With --config: the datapath to generate.")
@click.option("--weights", "weight_storage", type=click.Choice(["baked", "file"]),
              default="baked", show_default=True, help="With --config: table storage.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Directory for synth_report.json and the tools' files (default: "
                   "CORE_DIR/synth-TARGET, or build/synth/CONFIG-ARITH-TARGET).")
@click.option("--freq", "constraint_mhz", default=None, type=click.FloatRange(min=1),
              help="Clock constraint for nextpnr's timing-driven placement, MHz (default: "
                   + ", ".join(f"{t.name} {t.constraint_mhz:g}" for t in TARGETS.values()
                               if t.constraint_mhz) + ").")
@click.option("--seed", "seeds", multiple=True, type=int, default=(1,), show_default=True,
              help="nextpnr placement seed; repeat it to place once per seed and keep the "
                   "fastest.")
@click.option("--no-dsp", "no_dsp", is_flag=True, help="Build multipliers from logic, not DSPs.")
def synth(core_dir, config_path, target, arith, weight_storage, out_dir, constraint_mhz, seeds,
          no_dsp):
    """Synthesise a core or a whole network for an FPGA: resources, and Fmax after
    place-and-route (networks: also cycles and µs per sample, samples/s at Fmax).

    CORE_DIR is a directory written by `spikeforge generate` (a core, or a network with
    --from); or give --config. Its files must still have the sha256s `generate` recorded. The
    design sits in a harness that registers every port (Fmax describes the design, not the
    pads) and needs three pins. Writes synth_report.json.
    """
    from ..hw.generate import generate_core
    from ..hw.synth import REPORT_NAME, ToolError, stale_reports, synth_core_dir
    from ..sim.verilator import MissingToolError

    if (core_dir is None) == (config_path is None):
        _fail("give exactly one of CORE_DIR (a core or network directory from `spikeforge "
              "generate`) or --config")
    if config_path is not None:
        config = _load(config_path)
        out_dir = writable_dir(out_dir or Path("build", "synth", f"{Path(config_path).stem}-"
                                                                 f"{arith}-{target}"))
        core_dir = out_dir / "core"
        try:
            generate_core(config, core_dir, weight_storage=weight_storage,
                          **_generator_options(config, arith))
        except ValueError as exc:
            _fail(str(exc))
    else:
        out_dir = writable_dir(out_dir or Path(core_dir, f"synth-{target}"))
    click.echo(f"synthesising {core_dir} for {target}…")
    try:
        report = synth_core_dir(core_dir, target, out_dir, dsp=not no_dsp, log=click.echo,
                                constraint_mhz=constraint_mhz, seeds=seeds)
    except (MissingToolError, ToolError, OSError, ValueError) as exc:
        _fail(str(exc))
    click.echo(table(synth_rows(report)))
    click.echo(f"wrote {out_dir / REPORT_NAME}")
    for stale in stale_reports(core_dir):
        click.echo(f"warning: {stale} is stale: it measured other files than {core_dir} "
                   f"holds now", err=True)
    if report["place_and_route"] and not report["fits"]:
        click.echo(f"FAIL: does not fit: {misfit(report)} on {report['device']}", err=True)
        sys.exit(1)


@main.group()
def bench():
    """Benchmarks (not timed tests): FPGA numbers and verification throughput."""


def _command_line() -> str:
    return " ".join(["spikeforge", *sys.argv[1:]])


@bench.command("kernels")
@click.option("--device", default=None, help="cuda or cpu (default: cuda when available).")
@click.option("--out", default="build/bench/kernels.json", show_default=True,
              type=click.Path(dir_okay=False), help="JSON report path.")
@click.option("--kernels", default="cpsn,lif,prf", show_default=True,
              help="Comma-separated subset of cpsn, lif, prf.")
@click.option("--dtype", type=click.Choice(("bfloat16", "float16", "float32")), default=None,
              help="Default: bfloat16 on a GPU, float32 on the CPU.")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), default=0.3,
              show_default=True, help="Seconds of repetitions per row after the warm-up.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (1 gives steadier CPU rows on a busy machine).")
def bench_kernels(device, out, kernels, dtype, budget, threads):
    """Time the fused Triton kernels against the torch paths (and SpikingJelly's PSNs)."""
    unknown = sorted(set(kernels.split(",")) - {"cpsn", "lif", "prf"})
    if unknown:
        raise click.BadParameter(f"unknown kernel(s) {', '.join(unknown)}; choose from "
                                 f"cpsn, lif, prf", param_hint="--kernels")
    writable_file(out, "benchmark report")
    from .bench_kernels import run_and_print

    run_and_print(device=device, out=out, kernels=tuple(kernels.split(",")), dtype=dtype,
                  budget=budget, threads=threads)


@bench.command("hw")
@click.option("--plan", type=_ChoiceLater(_plans), default="standard",
              show_default=True, help="Which sweep (see spikeforge.sw.bench_hw.PLANS).")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(min=1),
              help="Synthesis runs at once.")
@click.option("--docs", "docs_dir", default="docs", show_default=True,
              type=click.Path(file_okay=False),
              help="Where benchmarks.md goes; JSON and plots go to DOCS/benchmarks.")
@click.option("--keep", "keep_dir", default=None, type=click.Path(file_okay=False),
              help="Keep every run's generated core and tool files here.")
@click.option("--seeds", default=3, show_default=True, type=click.IntRange(min=1),
              help="nextpnr placement seeds 1…N per core; Fmax is the fastest placement's.")
@click.option("--kind", "kinds", multiple=True, type=_ChoiceLater(_core_kinds),
              help="Measure only this core kind (repeatable); the other kinds' rows are kept "
                   "from DOCS/benchmarks/hw.json, with the run that measured them.")
@click.option("--keep-before", is_flag=True,
              help="With --kind: a re-measured kind that already has a 'before' run keeps it "
                   "(rather than the run this one replaces), so a change measured over "
                   "several runs stays compared with the run before it.")
def bench_hw(plan, jobs, docs_dir, keep_dir, seeds, kinds, keep_before):
    """Sweep core shapes on FPGA targets: resources, Fmax, throughput; shift-add vs
    multipliers."""
    from .bench_doc import write_document
    from .bench_hw import PLANS, merge_kinds, run_points, summarise, write_json

    json_path = Path(docs_dir, "benchmarks", "hw.json")
    if keep_before and not kinds:
        _fail("--keep-before keeps the 'before' run of the kinds that --kind re-measures; "
              "give --kind")
    previous = None
    if kinds:
        try:
            previous = json.loads(json_path.read_text())
        except (OSError, ValueError) as exc:
            _fail(f"--kind keeps the other kinds' rows from {json_path}, which cannot be "
                  f"read: {exc}")
    points = [p for p in PLANS[plan] if not kinds or p.kind in kinds]
    click.echo(f"{len(points)} synthesis runs, {jobs} at a time…")
    done = []

    def progress(point, row):
        done.append(point)
        if "error" in row:
            outcome = "ERROR " + row["error"].splitlines()[0]
        elif row["fits"] is False:
            outcome = "does not fit: " + misfit(row)
        else:
            outcome = (f"{row['logic_luts']} LUTs, {row['ffs']} FFs, {row['dsp']} DSP"
                       + (f", {row['fmax_mhz']:.1f} MHz" if row["fmax_mhz"] else ""))
        click.echo(f"  [{len(done)}/{len(points)}] {point.name}: {outcome} "
                   f"({row.get('seconds', 0):.0f} s)")

    start = time.perf_counter()
    seeds = range(1, seeds + 1)
    rows = run_points(points, jobs=jobs, keep_dir=keep_dir, seeds=seeds, progress=progress)
    document = summarise(rows, plan, _command_line(), seeds)
    if previous is not None:
        document = merge_kinds(previous, document, keep_before=keep_before)
    document["wall_s"] = round(time.perf_counter() - start)
    write_json(document, json_path)
    path = write_document(docs_dir)
    click.echo(f"wrote {path} and {Path(docs_dir, 'benchmarks')}/hw.json, *.png "
               f"({document['wall_s']} s)")
    if any("error" in r for r in rows):
        sys.exit(1)


@bench.command("cosim")
@click.option("--samples", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--steps", default=128, show_default=True, type=click.IntRange(min=1),
              help="Time steps per sample.")
@click.option("--jobs", default=2, show_default=True, type=click.IntRange(min=1),
              help="Regression jobs at once in the parallel measurement.")
@click.option("--docs", "docs_dir", default="docs", show_default=True,
              type=click.Path(file_okay=False))
@click.option("--build-dir", default=None, type=click.Path(file_okay=False),
              help="Verilator build cache (default: build/cosim).")
@click.option("--networks/--no-networks", default=True, show_default=True,
              help="Also whole networks under the fast harness and cocotb (the demo network "
                   "and T = 1,024 PRF and CPSN networks).")
@click.option("--demo-export", default="build/demo/export", show_default=True,
              type=click.Path(file_okay=False),
              help="The demo network's export (`make demo` writes it); skipped when missing.")
def bench_cosim(samples, steps, jobs, docs_dir, build_dir, networks, demo_export):
    """Verification throughput: cores under Verilator and the Amaranth simulator, whole
    networks under the fast harness and cocotb."""
    from ..sim.harness import SimulationError
    from ..sim.verilator import MissingToolError
    from .bench_cosim import run_bench
    from .bench_doc import write_document
    from .bench_hw import write_json

    try:
        result = run_bench(samples=samples, steps=steps, jobs=jobs, build_root=build_dir)
        if networks:
            from .bench_networks import run_network_bench

            demo = demo_export if (Path(demo_export) / "manifest.json").is_file() else None
            if demo is None:
                click.echo(f"no export at {demo_export} (run `make demo` first): the demo "
                           f"network is left out")
            result["networks"] = run_network_bench(demo_export=demo, jobs=jobs,
                                                   build_root=build_dir, log=click.echo)
    except (MissingToolError, SimulationError) as exc:
        _fail(str(exc))
    result.update(command=_command_line(), date=time.strftime("%Y-%m-%d"))
    rows = []
    for mode in ("single", "parallel"):
        for simulator, r in result[mode].items():
            rows.append((f"{simulator}, {1 if mode == 'single' else jobs} job(s)",
                         f"{r['beats_per_s']:,.0f} beats/s, {r['neuron_steps_per_s']:,.0f} "
                         f"neuron-timesteps/s end to end ({r['loop_neuron_steps_per_s']:,.0f} "
                         f"in the loop){'' if r['passed'] else ' FAILED'}"))
    click.echo(table(rows))
    write_json(result, Path(docs_dir, "benchmarks", "cosim.json"))
    click.echo(f"wrote {write_document(docs_dir)} and {Path(docs_dir, 'benchmarks')}/cosim.json")
    if not all(result[mode][s]["passed"] for mode in ("single", "parallel")
               for s in result[mode]) or not all(
            run["passed"] for entry in result.get("networks", {}).get("workloads", {}).values()
            for key, run in entry.items() if isinstance(run, dict)):
        sys.exit(1)


@main.command()
@click.option("--cache", is_flag=True, required=True,
              help="Remove the build cache: Verilator builds and generated Verilog "
                   "(build/cosim, or $SPIKEFORGE_BUILD/cosim).")
def clean(cache):
    """Remove caches: every Verilator build is kept by design hash and every generated core's
    Verilog by configuration and generator, and reused, so the cache grows with every new
    core; it is rebuilt on demand."""
    import shutil

    from ..sim.runner import default_build_root

    root = default_build_root()
    if not root.is_dir():
        click.echo(f"{root}: no cache")
        return
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    shutil.rmtree(root)
    click.echo(f"removed {root} ({size / 2**20:,.1f} MiB)")


# Commands that live in their own modules (train and evaluate load lazily, see _LazyGroup).
main.add_command(demo)


if __name__ == "__main__":
    main()