"""An exported network as one accelerator: generate it, co-simulate it on the test set,
synthesise it. The ``spikeforge generate --from``, ``cosim --from`` / ``cosim DIR`` and
``synth DIR`` commands for whole networks, as functions (``spikeforge demo`` chains them).

Test samples keep their own lengths (``data.pad: none``): each is streamed with ``tlast`` on
its own last step, so the cycles follow its length; the readout is sized for the data's
longest sample (``SequenceData.steps``).
"""

import os
import time
from pathlib import Path

import numpy as np

from ..golden.data import load_data
from .export import ExportError, load_network, sha256_file
from .checkpoint import with_recorded_padding
from .network import _float_predictions
from .quantise import stack_dataset
from .train import parse_config

__all__ = ["generate_network_from", "test_split", "cosim_network", "expected_cycles",
           "as_generated", "network_rows", "cosim_network_rows", "synth_network_rows"]


def _data_config(manifest: dict, export_dir: Path):
    try:
        return parse_config(with_recorded_padding(manifest["source"]["config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{export_dir}: the manifest does not say which data the network "
                          f"was trained on ({exc})") from None


def _export_data(export_dir: Path):
    """``(manifest, network, run configuration, SequenceData)`` of an export."""
    manifest, network = load_network(export_dir)
    config = _data_config(manifest, export_dir)
    return manifest, network, config, load_data(config.data)


def test_split(export_dir, samples: int | None):
    """``(manifest, network, samples, targets, data name)``: the first ``samples`` test
    samples (all with ``None``) of the data the export was trained on, as a list of float
    ``[T_i, F]`` arrays of their own lengths."""
    manifest, network, config, data = _export_data(Path(export_dir))
    x, targets, lengths = stack_dataset(data.test, samples)
    return (manifest, network, [x[:length, n] for n, length in enumerate(lengths)], targets,
            config.data.label)


def generate_network_from(export_dir, out_dir, *, weight_storage: str = "file",
                          **options) -> dict:
    """Write the accelerator of an export into ``out_dir`` (``network.v``, tables,
    ``network.json``). Its readout is sized for the training data's sample length, and the
    cycle figures use the export's measured firing rates. ``network.json`` records the
    export (path and manifest sha256) so that ``cosim DIR`` can verify the directory."""
    from ..hw.generate import generate_network
    from ..hw.network import NetworkError

    from ..hw.fit import FitError, balance, fit, relane

    export_dir = Path(export_dir)
    manifest, network, _, data = _export_data(export_dir)
    steps = data.steps
    activity = {name: layer.get("firing_rate_integer")
                for name, layer in manifest.get("report", {}).get("layers", {}).items()}
    activity = {k: v for k, v in activity.items() if v is not None}
    max_steps = options.pop("max_steps", None) or steps
    target = options.pop("fit", None)
    margin = options.pop("fit_margin", 0.1)
    balanced = options.pop("balanced", True)
    log = options.pop("log", None)
    folding_record = None
    try:
        if target is not None:
            chosen = fit(network, target, max_steps=max_steps, margin=margin,
                         activity=activity, log=log)
            folding = chosen["folding"]
            folding_record = {"rule": f"fit {target}", "margin": margin,
                              "estimate": chosen["estimate"], "capacity": chosen["capacity"],
                              "candidates": chosen["candidates"],
                              "calibrated_at": chosen["calibration"]}
        elif balanced:
            folding = balance(network, macs=options.get("macs", 16),
                              spike_parallel=options.get("spike_parallel", 64),
                              activity=activity)
            folding_record = {"rule": "balanced",
                              "requested": {"macs": options.get("macs", 16),
                                            "spike_parallel": options.get("spike_parallel",
                                                                          64),
                                            "lanes": {layer.name: layer.core.lanes
                                                      for layer in network.layers}}}
        if folding_record is not None:
            network = relane(network, folding.lanes)
            options.update(folding.options())
            folding_record.update(lanes=folding.lanes, macs=folding.macs,
                                  spike_parallel=folding.spike_parallel)
        description = generate_network(
            network, out_dir, max_steps=max_steps, steps=steps, activity=activity,
            weight_storage=weight_storage, **options)
    except (NetworkError, FitError) as exc:
        raise ExportError(str(exc)) from None
    if folding_record is not None:
        description["folding"] = folding_record
    _record_export(out_dir, description, export_dir)
    return description


def _record_export(out_dir, description: dict, export_dir: Path) -> None:
    from ..hw.generate import NETWORK_DESCRIPTION, write_json_atomically

    from ..hw.generate import seal

    description["export"] = {"path": str(export_dir.resolve()),
                             "manifest_sha256": sha256_file(export_dir / "manifest.json")}
    if "folding" in description:  # added after generation: sealed again with it
        seal(description)
    write_json_atomically(Path(out_dir, NETWORK_DESCRIPTION), description)


def _export_of(network_dir) -> Path:
    from ..hw.generate import load_network_dir

    description, _ = load_network_dir(network_dir)
    export = description.get("export", {})
    path = Path(export.get("path", ""))
    if not export or not (path / "manifest.json").is_file():
        raise ExportError(f"{network_dir}: its network.json names no export directory that "
                          f"still exists ({export.get('path', 'none')}); use cosim --from")
    if sha256_file(path / "manifest.json") != export.get("manifest_sha256"):
        raise ExportError(f"{network_dir} was generated from another version of {path} "
                          f"(manifest.json changed); generate it again")
    return path


def cosim_network(source, *, samples: int | None = None, seed: int = 0,
                  valid_probability: float = 0.8, ready_probability: float = 0.8,
                  build_root=None, harness: str = "fast", jobs: int | None = None,
                  optimisation: str | None = None, threads: int = 1,
                  simulator: str = "verilator", progress_seconds: float | None = None,
                  log=print) -> dict:
    """Co-simulate a whole accelerator on ``samples`` test samples (all with ``None``):
    ``source`` is an export (generated into the build cache first) or a directory written by
    ``generate --from`` (its ``network.v`` and ``.hex`` files are verified as they are, even
    when the directory is the export's own). Every sample's class and logits are checked
    against the integer network; on a mismatch the failing sample is rerun in a build with
    probe ports, which names the first layer, time step and channels whose spikes differ.

    ``harness``: ``"fast"`` (the Verilog harness, no Python per cycle; ``jobs`` processes
    share the samples, default one per CPU) or ``"cocotb"``. ``optimisation`` and
    ``threads`` set the fast harness's build (default: chosen from the expected cycle
    count); ``simulator`` is Verilator or Icarus; ``progress_seconds``: log the samples done
    and the cycles per second that often during the fast harness's run. Returns the report."""
    from ..hw.generate import load_network_dir
    from ..sim.network_runner import run_network_cosim
    from ..sim.runner import default_build_root

    source = Path(source)
    build_root = Path(build_root or default_build_root())
    if (source / "network.json").is_file():  # a generated directory, verified as it is
        network_dir = source
        export_dir = source if (source / "manifest.json").is_file() else _export_of(source)
    else:
        export_dir, network_dir = source, None
    manifest, network, config, data = _export_data(export_dir)
    x, targets, lengths = stack_dataset(data.test, samples)
    quantised, _ = network.quantise_input(x)
    inputs = [quantised[:length, n, :] for n, length in enumerate(lengths)]
    count, data_name = len(inputs), config.data.label
    if network_dir is None:  # the accelerator `generate --from` writes, folding included
        network_dir = build_root / "networks" / sha256_file(export_dir / "manifest.json")[:16]
        generate_network_from(export_dir, network_dir)
    description, files = load_network_dir(network_dir)
    options = description["options"]
    # the integer model of this hardware: its readout sized for max_steps (longer samples
    # saturate), its cores with the lanes it was generated with
    network = as_generated(network, description)
    tables = {name: text for name, text in files.items() if name.endswith(".hex")}
    trace = network.run(x, lengths)
    float_predictions = _float_predictions(manifest, x, lengths)
    if jobs is None:
        jobs = _cpus() if harness == "fast" and count >= 64 else 1
    expected = expected_cycles(description, inputs, min(valid_probability, ready_probability))
    shortest, longest = int(lengths.min()), int(lengths.max())
    log(f"integer model on {count} test samples of {data_name} ("
        + (f"{shortest}..{longest} steps each" if shortest < longest else f"{longest} steps")
        + f"): accuracy {100 * np.mean(trace.predictions == targets):.2f}%; verifying "
        f"{network_dir / 'network.v'} with the {harness} harness"
        + (f" ({jobs} processes)" if jobs > 1 else "") + "…")
    start = time.perf_counter()
    settings = dict(seed=seed, valid_probability=valid_probability,
                    ready_probability=ready_probability, build_root=build_root, log=log,
                    harness=harness, optimisation=optimisation, threads=threads,
                    expected_cycles=expected, simulator=simulator)
    # progress only for the whole run (the probe rerun is short)
    result = run_network_cosim(network, inputs, files["network.v"], tables, targets=targets,
                               jobs=jobs, progress_seconds=progress_seconds, **settings)
    located = None
    if not result.passed and result.first_mismatch_sample is not None:
        from ..hw.generate import network_accelerator, network_verilog

        log(f"MISMATCH ({result.mismatch}); locating it with per-layer probes…")
        probed = network_verilog(network_accelerator(
            network, weight_storage="file", probes=True, **options))
        rerun = run_network_cosim(network, inputs[:result.first_mismatch_sample + 1], probed,
                                  tables, probes=True, **settings)
        located = rerun.layer_mismatch or {"layer": "readout",
                                           "note": "every core's spikes match: the logits "
                                                   "differ in the readout"}
    wall = time.perf_counter() - start
    return {
        "export": str(export_dir), "network_dir": str(network_dir),
        "verilog_sha256": description["files"]["network.v"], "samples": count, "seed": seed,
        "sample_steps": {"min": shortest, "median": float(np.median(lengths)),
                         "max": longest, "total": int(lengths.sum())},
        "valid_probability": valid_probability, "ready_probability": ready_probability,
        "harness": harness, "jobs": result.jobs, "optimisation": result.optimisation,
        "passed": result.passed, "class_agreement": result.class_agreement,
        "logit_agreement": result.logit_agreement,
        "hardware_accuracy": result.hardware_correct / count,
        "integer_accuracy": float(np.mean(trace.predictions == targets)),
        "float_accuracy": None if float_predictions is None else
        float(np.mean(float_predictions == targets)),
        "cycles": result.cycles, "cycles_per_sample": round(result.cycles_per_sample, 1),
        "cycles_per_sample_max": result.max_output_interval,
        "cycles_between_outputs": None if not result.output_intervals else {
            "min": min(result.output_intervals),
            "median": float(np.median(result.output_intervals)),
            "max": max(result.output_intervals)},
        # estimates from network.json: at the export's mean firing rates, and with every
        # input active (neither bounds a real sample's cycles from above except "worst")
        "cycles_per_sample_typical": description["cycles_per_sample"]["typical"],
        "cycles_per_sample_worst": description["cycles_per_sample"]["worst"],
        "first_output_cycle": result.first_output_cycle,
        "sim_wall_s": round(result.wall_s, 2), "build_s": round(result.build_s, 1),
        "cycles_per_s": round(result.cycles / result.wall_s) if result.wall_s else None,
        "samples_per_s": round(count / result.wall_s, 1) if result.wall_s else None,
        "wall_s": round(wall, 2), "first_mismatch": result.mismatch,
        "first_mismatch_sample": result.first_mismatch_sample, "mismatch_location": located,
    }


def as_generated(network, description: dict):
    """``network`` as the accelerator of ``description`` computes it: ``max_steps`` from its
    options, each core's lanes from its stage entry (a folding chosen at generation)."""
    import dataclasses

    from ..hw.fit import relane

    lanes = {stage["name"]: stage["lanes"] for stage in description["stages"]
             if "lanes" in stage}
    network = relane(network, lanes)
    return dataclasses.replace(network, max_steps=int(description["options"]["max_steps"]))


def expected_cycles(description: dict, inputs, probability: float) -> float:
    """Cycles a run of ``inputs`` (``[T_i, F]`` samples of their own lengths) should take at
    most: the slowest stage's worst cycles per step for every step of every sample, slowed by
    the stream probability."""
    worst = description["cycles_per_sample"]["worst"] / description["steps_per_sample"]
    return worst * sum(len(sample) for sample in inputs) / probability


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def cosim_network_rows(report: dict) -> list[tuple[str, str]]:
    rows = [("test samples", f"{report['samples']} (seed {report['seed']}, valid "
                             f"{report['valid_probability']}, ready "
                             f"{report['ready_probability']})"),
            ("class agreement", f"{100 * report['class_agreement']:.2f}%"),
            ("logit agreement", f"{100 * report['logit_agreement']:.2f}%"),
            ("hardware accuracy", f"{100 * report['hardware_accuracy']:.2f}%"),
            ("integer-model accuracy", f"{100 * report['integer_accuracy']:.2f}%")]
    if report["float_accuracy"] is not None:
        rows.append(("float-network accuracy", f"{100 * report['float_accuracy']:.2f}%"))
    longest = report.get("cycles_per_sample_max")
    rows += [("cycles per sample", f"{report['cycles_per_sample']:.1f} measured mean"
                                   + (f", {longest} the longest between two outputs"
                                      if longest else "")
                                   + f" (estimated: typical "
                                   f"{report['cycles_per_sample_typical']} at the export's "
                                   f"mean firing rates, worst "
                                   f"{report['cycles_per_sample_worst']} with every input "
                                   f"active)"),
             ("simulation", f"{report['harness']} harness"
                            + (f" ({report['jobs']} processes)" if report["jobs"] > 1 else "")
                            + f": {report['sim_wall_s']:.1f} s, {report['cycles_per_s']:,} "
                            f"cycles/s, {report['samples_per_s']} samples verified per second "
                            f"(build {report['build_s']:.1f} s"
                            + (f", {report['optimisation']}" if report["optimisation"] else "")
                            + ")")]
    between, steps = report.get("cycles_between_outputs"), report["sample_steps"]
    if between:  # a steady stream's output gaps: each sample's cycles
        rows.insert(-1, ("sample lengths", f"{steps['min']}..{steps['max']} steps (median "
                                           f"{steps['median']:g}); cycles between outputs "
                                           f"{between['min']}..{between['max']} (median "
                                           f"{between['median']:g})"))
    if report["first_mismatch"]:
        rows.append(("first mismatch", report["first_mismatch"]))
    if report["mismatch_location"]:
        where = report["mismatch_location"]
        rows.append(("first differing layer", ", ".join(f"{k} {v}" for k, v in where.items())))
    return rows


def network_rows(description: dict) -> list[tuple[str, str]]:
    """One line per stage of a network description, then the totals."""
    rows = []
    for stage in description["stages"]:
        cycles = stage["cycles_per_step"]
        memory = sum(m["bits"] for m in stage["memories"].values())
        rows.append((stage["name"], f"{stage['kind']}, {cycles['typical']} cycles/step "
                                    f"(worst {cycles['worst']}), {memory} memory bits"))
    per_sample = description["cycles_per_sample"]
    rows.append(("cycles per sample", f"typical {per_sample['typical']} (the export's mean "
                                      f"firing rates), worst {per_sample['worst']} (every "
                                      f"input active), T = "
                                      f"{description['steps_per_sample']}; slowest stage "
                                      f"{description['slowest_stage']}"))
    readout = next((s for s in description["stages"] if s["name"] == "readout"), None)
    if readout is not None:
        rows.append(("readout", f"{readout['logit_width']}-bit logits for samples of up to "
                                f"{readout['max_steps']} steps"
                                + ("; longer ones saturate (a logit at a range end)"
                                   if readout.get("overflow") == "saturate" else "")))
    folding = description.get("folding")
    if folding is not None:
        lanes = ", ".join(f"{k} {v}" for k, v in folding["lanes"].items())
        rows.append(("folding", f"{folding['rule']}: lanes {lanes}; macs {folding['macs']}; "
                                f"spike_parallel {folding['spike_parallel']}"))
        if "estimate" in folding:
            used, cap = folding["estimate"], folding["capacity"]
            rows.append(("estimate", f"{used['logic']:,} of {cap['logic_luts']:,} LUT4 "
                                     f"({100 * used['logic'] / cap['logic_luts']:.0f} %), "
                                     f"{used['ffs']:,} FFs, {used['bram']} of {cap['bram']} "
                                     f"block RAMs, {used['dsp']} of {cap['dsp']} multipliers "
                                     f"(Yosys-calibrated per-stage model, FIFOs excluded; "
                                     f"check with `spikeforge synth`)"))
    return rows


def synth_network_rows(report: dict) -> list[tuple[str, str]]:
    network = report.get("network", {})
    rows = []
    if network.get("cycles_per_sample"):
        rows.append(("cycles per sample", f"{network['cycles_per_sample']} (typical: the "
                                          f"export's mean firing rates; cosim measures)"))
    if network.get("us_per_sample"):
        rows.append(("µs per sample", f"{network['us_per_sample']:.2f} at Fmax, typical"))
        rows.append(("samples/s", f"{network['samples_per_s']:,.0f} at Fmax, typical"))
    return rows
