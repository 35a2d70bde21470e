"""A trained network on its way to hardware: export, generate every core, co-simulate on data.

These are the ``spikeforge export RUN``, ``generate --from`` and ``cosim --from`` commands as
functions (``spikeforge demo`` chains them). Each returns plain data for tables and JSON and
reports progress through ``log``.
"""

import dataclasses
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..golden.data import load_data
from ..hw.cores import core_type
from .checkpoint import CheckpointError, describe_checkpoint, with_recorded_padding
from .export import ExportError, export_network, load_network, sha256_file
from .quantise import (Formats, quantisation_report, quantise_network, smallest_widths,
                       stack_dataset)
from .train import config_to_dict, load_trained, parse_config

__all__ = ["export_run", "generate_from", "cosim_from", "core_rows", "report_rows",
           "cosim_rows"]


def _checkpoint_path(run, checkpoint: str = "best") -> Path:
    """A run directory's ``best.pt`` or ``last.pt`` (``checkpoint``), or a checkpoint file."""
    run = Path(run)
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    return run / f"{checkpoint}.pt" if run.is_dir() else run


def export_run(run, out_dir, formats: Formats = Formats(), *, tolerance: float | None = None,
               calibration_samples: int = 512, checkpoint: str = "best", log=print) -> dict:
    """Quantise a training run (directory or checkpoint) and write its export; returns the
    manifest. Of a run directory, ``checkpoint`` picks ``best.pt`` or ``last.pt``.
    With ``tolerance`` the widths are first narrowed by
    :func:`~spikeforge.sw.quantise.smallest_widths` on the validation split (the training
    split when there is none), so the test set stays unseen."""
    path = _checkpoint_path(run, checkpoint)
    model, config, saved = load_trained(path)
    if "nir" in saved:  # an imported NIR run (`spikeforge import`): its own quantiser
        from .nir_import import export_imported

        log(f"exporting {path}: imported from the NIR file {saved['nir'].get('file')} "
            f"(spikeforge import), no training epochs")
        if tolerance is not None:
            raise ValueError(f"{path}: --tolerance (the width search) is for trained 'mlp' "
                             f"runs; an imported NIR run takes explicit --weight-width, "
                             f"--core-input-width and --input-width")
        return export_imported(path, out_dir, formats,
                               calibration_samples=calibration_samples, log=log)
    checkpoint = saved
    log(f"exporting {describe_checkpoint(path, checkpoint)}")
    data = load_data(config.data)
    calibration_x, _, calibration_lengths = stack_dataset(data.train, calibration_samples)
    test_x, test_y, test_lengths = stack_dataset(data.test)
    log(f"calibrating on {calibration_x.shape[1]} training samples of {config.data.label}")
    trials = None
    if tolerance is not None:
        tune_x, tune_y, tune_lengths = stack_dataset(data.val if data.val is not None
                                                     else data.train)
        formats, trials = smallest_widths(model, calibration_x, tune_x, tune_y, formats,
                                          tolerance, calibration_lengths=calibration_lengths,
                                          lengths=tune_lengths)
        log(f"smallest widths within {100 * tolerance:.2f} points: core input "
            f"{formats.core_input_width}, weights {formats.weight_width}, input "
            f"{formats.input_width} ({len(trials)} trials)")
    network = quantise_network(model, calibration_x, formats, calibration_lengths)
    report = quantisation_report(model, network, test_x, test_y, test_lengths)
    source = {"checkpoint": str(path), "sha256": sha256_file(path),
              "epoch": checkpoint["epoch"], "selection": checkpoint.get("selection"),
              "config": config_to_dict(config),
              "model_inputs": checkpoint["model_inputs"]}
    extra = {"formats": dataclasses.asdict(formats), "report": report}
    if trials is not None:
        extra["width_search"] = {"tolerance": tolerance, "trials": trials}
    return export_network(network, out_dir, source=source, extra=extra)


def generate_from(export_dir, out_dir, *, arith: str = "shift_add",
                  weight_storage: str = "file", log=print) -> list[dict]:
    """Generate one core per neuron layer of an export, reading the export's tables.

    Cores use ``weight_storage`` (``file``: the Verilog reads the ``.hex`` files; ``baked``:
    their contents are ROMs in the Verilog); each core's ``.hex`` files must come out identical
    to the export's (checked), so the core holds exactly what the export holds. ``arith``
    applies to CPSN cores (``multiply``: the multiplier baseline).
    """
    from ..hw.generate import generate_core

    export_dir, out_dir = Path(export_dir), Path(out_dir)
    manifest, network = load_network(export_dir)
    descriptions = []
    for entry, layer in zip(manifest["layers"], network.layers):
        options = {"arith": arith} if core_type(layer.core).neuron == "cpsn" else {}
        description = generate_core(layer.core, out_dir / layer.name, name=layer.name,
                                    weight_storage=weight_storage, **options)
        for table, info in description["tables"].items():
            exported = entry["tables"].get(table)
            if exported and (out_dir / layer.name / info["file"]).read_bytes() != \
                    (export_dir / exported["files"]["hex"]).read_bytes():
                raise ExportError(f"layer {layer.name!r}: the generated {info['file']} differs "
                                  f"from the export's {exported['files']['hex']}")
        log(f"  {layer.name}: {description['neuron']} core, {layer.core.channels} channels, "
            f"{layer.core.lanes} per beat, latency {description['latency_cycles']} cycles "
            f"-> {out_dir / layer.name}")
        descriptions.append(description)
    return descriptions


def _float_predictions(manifest: dict, x: np.ndarray, lengths: np.ndarray
                       ) -> np.ndarray | None:
    """The source network's predictions on ``x`` (each sample ``lengths`` steps) if its
    checkpoint is still there, unchanged."""
    import torch

    source = manifest.get("source", {})
    path = Path(source.get("checkpoint", ""))
    if not path.is_file() or sha256_file(path) != source.get("sha256"):
        return None
    try:
        model, _, _ = load_trained(path)
    except CheckpointError:
        return None
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32),
                     torch.as_tensor(lengths)).argmax(1).numpy()


def _cosim_layer(config, arrays, table_files, seed, build_root, valid_probability,
                 ready_probability, log):
    from ..sim.runner import run_cosim

    # ``log`` hears this worker's Verilator build start (with its log file) and end
    return run_cosim(config, seed=seed, sample_arrays=arrays, table_files=table_files,
                     build_root=build_root, valid_probability=valid_probability,
                     ready_probability=ready_probability, log=log)


def cosim_from(export_dir, *, samples: int = 32, seed: int = 0, jobs: int = 2,
               build_root=None, valid_probability: float = 0.8,
               ready_probability: float = 0.8, log=print) -> dict:
    """Feed every core the integer inputs the integer model records on ``samples`` test
    samples and check every output spike under Verilator (random valid gaps and backpressure
    from ``seed``). Cores run ``jobs`` at a time. Returns the report."""
    export_dir = Path(export_dir)
    manifest, network = load_network(export_dir)
    try:
        config = parse_config(with_recorded_padding(manifest["source"]["config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{export_dir}: the manifest does not say which data the network "
                          f"was trained on ({exc})") from None
    data = load_data(config.data)
    x, targets, lengths = stack_dataset(data.test, samples)
    trace = network.run(x, lengths)
    float_predictions = _float_predictions(manifest, x, lengths)
    count = x.shape[1]
    log(f"integer model on {count} test samples of {config.data.label}: accuracy "
        f"{100 * np.mean(trace.predictions == targets):.2f}%")
    jobs_args = []
    for entry, layer in zip(manifest["layers"], network.layers):
        tables = {t: export_dir / info["files"]["hex"] for t, info in entry["tables"].items()}
        arrays = [trace.inputs[layer.name][:lengths[n], n, :] for n in range(count)]
        jobs_args.append((layer.core, arrays, tables, seed, build_root, valid_probability,
                          ready_probability, log))
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(jobs_args)))) as pool:
        futures = [pool.submit(_cosim_layer, *args) for args in jobs_args]
        results = []
        for layer, future in zip(network.layers, futures):
            result = future.result()
            log(f"  {layer.name}: {result.checked}/{result.beats} beats, "
                f"{'all spikes match' if result.passed else 'MISMATCH: ' + str(result.mismatch)}"
                f" ({result.cycles} cycles, {result.wall_s:.2f} s simulated, build "
                f"{result.build_s:.1f} s)")
            results.append(result)
    layers = {}
    for layer, result in zip(network.layers, results):
        spikes = trace.spikes[layer.name]
        layers[layer.name] = {
            "neuron": core_type(layer.core).neuron, "passed": result.passed,
            # the scoreboard stops at the first mismatch: beats matched before it
            "agreement": (result.checked - (not result.passed)) / result.beats,
            "first_mismatch": result.mismatch, "beats": result.beats, "cycles": result.cycles,
            "spikes_checked": int(lengths.sum()) * spikes.shape[2],
            "sim_wall_s": round(result.wall_s, 3),
            "build_s": round(result.build_s, 2),
            "neuron_steps_per_s": round(result.neuron_steps_per_s),
        }
    return {
        "export": str(export_dir), "samples": count, "seed": seed,
        "integer_accuracy": float(np.mean(trace.predictions == targets)),
        "float_accuracy": None if float_predictions is None else
        float(np.mean(float_predictions == targets)),
        "passed": all(r.passed for r in results), "layers": layers,
        "wall_s": round(time.perf_counter() - start, 2),
    }


def core_rows(manifest: dict) -> list[tuple[str, str]]:
    """One line per core of an export: neuron, shape and number formats."""
    rows = []
    for entry in manifest["layers"]:
        c = entry["config"]
        if entry["neuron"] == "cpsn":
            detail = (f"k={c['order']} d={c['dilation']}, input {c['input_width']} bits "
                      f"(2^-{c['input_frac_bits']}), weights ±2^[{c['exp_min']},{c['exp_max']}]")
        elif entry["neuron"] == "lif":
            detail = (f"{c['variant']} {c['decay_mode']} decay, reset {c['reset']}, spike "
                      f"{c['spike']}, input {c['input_width']} bits, state {c['state_width']} "
                      f"bits (2^-{c['state_frac_bits']})")
        else:
            detail = (f"P={c['time_parallelism']} {c['coef_mode']}, input {c['input_width']} "
                      f"bits, coefficients {c['coef_width']}, state {c['state_width']} bits")
        rows.append((entry["name"], f"{entry['neuron']} C={c['channels']} L={c['lanes']}: "
                                    f"{detail}"))
    return rows


def report_rows(report: dict) -> list[tuple[str, str]]:
    """Table rows of a quantisation report."""
    rows = [("float accuracy", f"{100 * report['float_accuracy']:.2f}% "
                               f"({report['samples']} test samples)"),
            ("integer accuracy", f"{100 * report['integer_accuracy']:.2f}% (same samples, "
                                 f"{100 * report['prediction_agreement']:.2f}% same "
                                 f"predictions)"),
            ("input saturated", str(report["input_saturated"]))]
    for name, layer in report["layers"].items():
        rows.append((f"{name} ({layer['neuron']})",
                     f"spike agreement float/integer {100 * layer['spike_agreement']:.2f}%, "
                     f"firing rate {layer['firing_rate_integer']:.3f}, saturated inputs "
                     f"{layer['saturated']} ({100 * layer['saturated_fraction']:.3f}%)"))
    return rows


def cosim_rows(report: dict) -> list[tuple[str, str]]:
    """Table rows of a :func:`~spikeforge.sw.network.cosim_from` report."""
    rows = [("test samples", str(report["samples"])),
            ("integer-model accuracy", f"{100 * report['integer_accuracy']:.2f}%")]
    if report["float_accuracy"] is not None:
        rows.append(("float-network accuracy", f"{100 * report['float_accuracy']:.2f}%"))
    for name, layer in report["layers"].items():
        rows.append((f"{name} ({layer['neuron']})",
                     f"agreement {100 * layer['agreement']:.2f}% of {layer['beats']} beats "
                     f"({layer['spikes_checked']} spikes), {layer['cycles']} cycles, "
                     f"{layer['sim_wall_s']:.2f} s"))
    rows.append(("wall time", f"{report['wall_s']:.1f} s (Verilator builds included)"))
    return rows
