"""Co-simulate a whole network accelerator against the integer network.

:func:`run_network_cosim` verifies the Verilog text it is given (for ``spikeforge cosim`` the
``network.v`` that ``generate`` wrote, with its ``.hex`` tables) on quantised samples: every
output beat's class and logits must equal :class:`~spikeforge.golden.network_int.IntegerNetwork`'s.
With ``probes`` (a build with probe ports, :class:`~spikeforge.hw.network.NetworkAccelerator`)
every core's output spikes are checked too, so a mismatch is located at its first layer and
time step.

Two testbenches do this, with the same stimulus rules and the same report:

- ``harness="fast"`` (the default): the Verilog harness of :mod:`spikeforge.sim.harness`,
  no Python per cycle; results are compared after the run;
- ``harness="cocotb"``: the cocotb testbench (:mod:`spikeforge.sim.cocotb_network`), Python
  at every edge; for ``waves`` (a VCD) and handshake debugging.
"""

import dataclasses
import re
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from ..hw.generate import NETWORK_MODULE
from . import harness as fast
from .network_beats import sample_traces, step_beats
from .runner import build_verilog, default_build_root, fresh_run_dir, run_job

__all__ = ["HARNESSES", "NetworkCosimResult", "run_network_cosim", "check_tables"]

HARNESSES = ("fast", "cocotb")


@dataclasses.dataclass
class NetworkCosimResult:
    samples: int
    checked: int
    class_agreement: float
    logit_agreement: float
    hardware_correct: int
    cycles: int
    first_output_cycle: int | None
    wall_s: float
    build_s: float
    mismatch: str | None
    first_mismatch_sample: int | None
    layer_mismatch: dict | None
    build_dir: str
    jobs: int = 1
    harness: str = "cocotb"
    optimisation: str | None = None
    #: the cycles between consecutive output beats (fast harness): in a steady stream, each
    #: is about the next sample's cycles, so they follow the samples' lengths
    output_intervals: list | None = None

    @property
    def max_output_interval(self) -> int | None:
        """The longest gap between two consecutive output beats: the slowest sample's cycles
        in the steady stream (fast harness; ``None`` without two outputs)."""
        return max(self.output_intervals) if self.output_intervals else None

    @property
    def passed(self) -> bool:
        return self.mismatch is None and self.checked == self.samples

    @property
    def cycles_per_sample(self) -> float:
        return self.cycles / self.samples if self.samples else 0.0


def run_network_cosim(network, samples: list[np.ndarray], verilog: str, tables: dict[str, str],
                      *, targets=None, seed: int = 0, valid_probability: float = 0.8,
                      ready_probability: float = 0.8, probes: bool = False, build_root=None,
                      run_dir=None, waves: bool = False,
                      simulator: str = "verilator", harness: str = "fast",
                      optimisation: str | None = None, expected_cycles: float | None = None,
                      threads: int = 1, jobs: int = 1, progress_seconds: float | None = None,
                      log=None) -> NetworkCosimResult:
    """Run ``samples`` (quantised ``[T, features]`` integers) through the accelerator in
    ``verilog`` (module ``spikeforge_network``; ``tables``: ``.hex`` file name → text) with
    seeded random valid gaps and backpressure, and compare every output beat with the
    integer network. ``targets`` (labels) give the hardware's accuracy. ``harness`` picks the
    testbench (``waves`` needs ``"cocotb"``); for the fast one ``optimisation`` (``-O0`` or
    ``-O2``; by default chosen from ``expected_cycles``, the run's estimated length) and
    ``threads`` (Verilator threads) set the build, and ``jobs`` simulator processes share
    the samples (contiguous shards, shard ``k > 0`` with a seed of its own); with
    ``progress_seconds`` (and ``log``) it logs the samples out and the cycles per second that
    often while they run."""
    if harness not in HARNESSES:
        raise ValueError(f"harness must be one of {HARNESSES}, got {harness!r}")
    check_tables(verilog, tables)
    if harness == "fast" and not waves:
        return _run_fast(network, samples, verilog, tables, targets=targets, seed=seed,
                         valid_probability=valid_probability,
                         ready_probability=ready_probability, probes=probes,
                         build_root=build_root, run_dir=run_dir, simulator=simulator,
                         optimisation=optimisation, expected_cycles=expected_cycles,
                         threads=threads, jobs=jobs, progress_seconds=progress_seconds,
                         log=log)
    public = ("probe_*",) if probes else ()
    build_dir, build_s = build_verilog(NETWORK_MODULE, verilog, "network", build_root,
                                       waves=waves, public=public, simulator=simulator,
                                       log=log)
    run_dir = fresh_run_dir(build_dir, seed, run_dir)
    for name, text in tables.items():
        (run_dir / name).write_text(text)
    traces = sample_traces(network, samples)
    arrays = {f"x_{n}": np.asarray(x, dtype=np.int64) for n, x in enumerate(samples)}
    arrays["logits"] = np.concatenate([t.logits for t in traces])
    layers = [layer.name for layer in network.layers]
    if probes:
        for name in layers:
            for n, trace in enumerate(traces):
                arrays[f"spikes_{name}_{n}"] = trace.spikes[name][:, 0, :]
    np.savez(run_dir / "expected.npz", **arrays)
    job = {"seed": seed, "samples": len(samples), "valid_probability": valid_probability,
           "ready_probability": ready_probability, "input_width": network.input_width,
           "classes": network.readout.outputs, "expected": str(run_dir / "expected.npz"),
           "targets": None if targets is None else [int(t) for t in targets],
           "probes": [{"layer": layer.name, "lanes": layer.core.lanes}
                      for layer in network.layers] if probes else []}
    result = run_job(simulator, "spikeforge.sim.cocotb_network", NETWORK_MODULE, build_dir,
                     run_dir, job, waves=waves)
    return NetworkCosimResult(build_s=build_s, build_dir=str(build_dir), **result)


def check_tables(verilog: str, tables: dict[str, str]) -> None:
    """Every ``$readmemh`` file the Verilog reads (its ROMs' ``INIT_FILE``) must be among
    ``tables``: a missing one would leave a ROM undefined and read as a hardware mismatch."""
    needed = set(re.findall(r'\.INIT_FILE\("([^"]+)"\)', verilog))
    missing = sorted(needed - set(tables))
    if missing:
        raise ValueError(f"the Verilog reads {', '.join(missing)}, which "
                         f"{'is' if len(missing) == 1 else 'are'} not among its tables (a "
                         f"description that does not list every .hex file it needs)")


def _shard_seed(seed: int, shard: int) -> int:
    """Shard 0 keeps ``seed`` (one job reproduces a one-job run); the others get their own."""
    return seed if shard == 0 else (seed * 1_000_003 + shard * 0x9E3779B1) & 0x7FFFFFFF


def _report_progress(futures, directories: list[Path], count: int, start: float,
                     seconds: float, log) -> None:
    """Every ``seconds`` until ``futures`` are done, log the samples out so far and the
    cycles per second (from the output files the harness flushes beat by beat)."""
    while wait(futures, timeout=seconds).not_done:
        done = cycles = 0
        for directory in directories:
            outputs, cycle = fast.output_progress(directory)
            done, cycles = done + outputs, cycles + cycle
        elapsed = time.perf_counter() - start
        log(f"  {done}/{count} samples out after {elapsed:.0f} s "
            f"({cycles / elapsed:,.0f} cycles/s)")


def _run_fast(network, samples, verilog, tables, *, targets, seed, valid_probability,
              ready_probability, probes, build_root, run_dir, simulator, optimisation,
              expected_cycles, threads, jobs, progress_seconds, log) -> NetworkCosimResult:
    traces = sample_traces(network, samples)
    logits = np.concatenate([t.logits for t in traces])
    if optimisation is None:
        optimisation = fast.choose_optimisation(expected_cycles or 0)
    build_root = Path(build_root or default_build_root())
    build = fast.build_harness(verilog, NETWORK_MODULE, build_root, simulator=simulator,
                               optimisation=optimisation, threads=threads, log=log)
    executable = build.executable
    ports = fast.top_ports(verilog, NETWORK_MODULE)
    classes = network.readout.outputs
    width = ports["m_axis__tuser"].width // classes
    run_dir = fresh_run_dir(executable.parent, seed, run_dir)
    count = len(samples)
    jobs = max(1, min(int(jobs), count)) if not probes else 1
    bounds = [count * k // jobs for k in range(jobs + 1)]
    shards = []
    for k in range(jobs):
        directory = run_dir if jobs == 1 else run_dir / f"shard-{k}"
        directory.mkdir(exist_ok=True)
        for name, text in tables.items():
            (directory / name).write_text(text)
        beats = step_beats(samples[bounds[k]:bounds[k + 1]], network.in_features,
                           network.input_width)
        fast.write_stimulus(directory / "stimulus.hex", beats,
                            network.in_features * network.input_width)
        shards.append((directory, len(beats), bounds[k + 1] - bounds[k], _shard_seed(seed, k)))

    def run(shard):
        directory, beats, shard_samples, shard_seed = shard
        return fast.run_harness(executable, directory, beats=beats, samples=shard_samples,
                                seed=shard_seed, valid_probability=valid_probability,
                                ready_probability=ready_probability)

    if log:
        log(f"  simulating {count} samples ({sum(s[1] for s in shards)} input beats"
            + (f", {jobs} processes" if jobs > 1 else "") + ")…")
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each run is its own process
        futures = [pool.submit(run, shard) for shard in shards]
        if log and progress_seconds:
            _report_progress(futures, [s[0] for s in shards], count, start, progress_seconds,
                             log)
        runs = [future.result() for future in futures]
    wall = time.perf_counter() - start
    merged = {"checked": 0, "same_class": 0, "same_logits": 0, "hardware_correct": 0}
    mismatch = first = None
    intervals = []
    for k, ((directory, beats, shard_samples, shard_seed), run) in enumerate(zip(shards, runs)):
        lo, hi = bounds[k], bounds[k + 1]
        rows = fast.read_outputs(directory)
        intervals += [b[0] - a[0] for a, b in zip(rows, rows[1:])]
        compared = fast.compare_outputs(rows, logits[lo:hi], classes, width,
                                        None if targets is None else targets[lo:hi])
        merged["checked"] += compared["checked"]
        merged["same_class"] += compared["same_class"]
        merged["same_logits"] += compared["same_logits"]
        merged["hardware_correct"] += compared["hardware_correct"]
        if mismatch is None and compared["mismatch"] is not None:
            first = None if compared["first_mismatch_sample"] is None else \
                lo + compared["first_mismatch_sample"]
            mismatch = compared["mismatch"]
            if first is not None:
                mismatch = f"sample {first}:" + mismatch.split(":", 1)[1]
            mismatch += f" [seed {shard_seed}]"
        if mismatch is None and run["status"] == "stalled":
            mismatch = (f"no transfer for {fast.IDLE_LIMIT} cycles: {run['sent']} of {beats} "
                        f"input beats sent, {run['received']} of {shard_samples} samples out"
                        + (f" (samples {lo}-{hi - 1})" if jobs > 1 else "")
                        + f" [seed {shard_seed}]")
    located = None
    if probes:
        located = fast.locate_probe_mismatch(
            run_dir, [(layer.name, layer.core.lanes) for layer in network.layers],
            {layer.name: [t.spikes[layer.name][:, 0, :] for t in traces]
             for layer in network.layers})
    return NetworkCosimResult(
        samples=count, checked=merged["checked"],
        class_agreement=merged["same_class"] / count,
        logit_agreement=merged["same_logits"] / count,
        hardware_correct=merged["hardware_correct"], cycles=sum(r["cycles"] for r in runs),
        first_output_cycle=runs[0]["first_output_cycle"], wall_s=wall, build_s=build.seconds,
        mismatch=mismatch, first_mismatch_sample=first, layer_mismatch=located,
        build_dir=str(executable.parent), jobs=jobs, harness="fast",
        optimisation=build.optimisation, output_intervals=intervals)
