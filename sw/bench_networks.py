"""Whole-network verification throughput: the fast harness against cocotb, in the same run.

Workloads (``spikeforge bench cosim`` runs them after the core regression):

- ``demo``: the ``make demo`` network (an export, default ``build/demo/export``), generated
  as ``generate --from`` writes it (balanced folding), on its whole test set (449 digits,
  T = 8);
- ``prf_long`` and ``cpsn_long``: two-layer PRF and CPSN networks with seeded random weights
  whose cores fire (:func:`~spikeforge.sim.regression.random_network`), on samples of
  T = 1,024 steps of seeded random inputs — the long-sequence workload PRF exists for.

Each workload is verified by the fast harness on every sample, cold (a fresh build
directory, so the build is in the wall time), and by the cocotb testbench on a few samples,
since its rate does not depend on how many it gets. Both at the same valid/ready
probabilities (0.8); the ratio of their simulated cycles per second is the speed-up.

A fast run of well under a second (the demo's 449 samples simulate in about 0.15 s) is at
the mercy of the host's scheduling, so the fast harness repeats it on the warm build (up to
:data:`REPEATS` runs, or :data:`REPEAT_SECONDS` of simulation) and reports the median rate
with every run's rate beside it.
"""

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ..hw.cores import core_type
from ..hw.generate import generate_network, load_network_dir
from ..sim.network_runner import run_network_cosim
from ..sim.regression import random_network
from .accelerator import as_generated, expected_cycles, generate_network_from

__all__ = ["LONG_NETWORKS", "run_network_bench"]

#: name: (neurons, hidden widths, lanes, steps, samples for the fast harness, for cocotb)
LONG_NETWORKS = {
    "prf_long": (("prf", "prf"), (32, 32), (4, 4), 1024, 100, 3),
    "cpsn_long": (("cpsn", "cpsn"), (32, 32), (4, 4), 1024, 100, 3),
}
PROBABILITY = 0.8
#: Runs of one fast measurement at most, and the simulation time after which it stops.
REPEATS = 5
REPEAT_SECONDS = 3.0


def _long_workload(name: str, work_dir: Path):
    neurons, hidden, lanes, steps, count, cocotb_count = LONG_NETWORKS[name]
    rng = np.random.default_rng([11, len(name)])
    network = random_network(rng, neurons=neurons, hidden=hidden, lanes=lanes, features=8,
                             classes=10)
    samples = [rng.integers(-128, 128, size=(steps, network.in_features)) for _ in range(count)]
    generate_network(network, work_dir / name, max_steps=steps)
    return network, samples, None, cocotb_count


def _demo_workload(export_dir: Path, work_dir: Path):
    from .accelerator import test_split

    _, network, inputs, targets, _ = test_split(export_dir, None)
    samples = [network.quantise_input(x[:, None])[0][:, 0] for x in inputs]
    # the accelerator `make demo` and `generate --from` write: balanced folding
    description = generate_network_from(export_dir, work_dir / "demo")
    return as_generated(network, description), samples, targets, len(samples)


def _measure(network, samples, targets, directory: Path, *, harness: str, build_root,
             jobs: int = 1) -> dict:
    description, files = load_network_dir(directory)
    tables = {n: t for n, t in files.items() if n.endswith(".hex")}

    def run():
        return run_network_cosim(network, samples, files["network.v"], tables,
                                 targets=targets, seed=1, valid_probability=PROBABILITY,
                                 ready_probability=PROBABILITY, harness=harness,
                                 build_root=build_root, jobs=jobs,
                                 expected_cycles=expected_cycles(description, samples,
                                                                 PROBABILITY))

    start = time.perf_counter()
    result = run()  # cold: the build is in its total
    wall = time.perf_counter() - start
    walls = [result.wall_s]
    while harness == "fast" and len(walls) < REPEATS and sum(walls) < REPEAT_SECONDS:
        again = run()  # the warm build; same seed, so the same cycles
        if again.cycles != result.cycles or not again.passed:
            raise RuntimeError(f"a repeated run of {directory.name} differs from the first")
        walls.append(again.wall_s)
    sim_s = statistics.median(walls)
    row = {"harness": harness, "samples": len(samples), "jobs": result.jobs,
           "optimisation": result.optimisation, "passed": result.passed,
           "class_agreement": result.class_agreement,
           "logit_agreement": result.logit_agreement, "cycles": result.cycles,
           "cycles_per_sample": round(result.cycles_per_sample, 1),
           "sim_s": round(sim_s, 3), "build_s": round(result.build_s, 2),
           "total_s": round(wall, 2),
           "cycles_per_s": round(result.cycles / sim_s),
           "samples_per_s": round(len(samples) / sim_s, 2)}
    if harness == "fast":
        row["cycles_per_s_runs"] = [round(result.cycles / w) for w in walls]
    return row


def run_network_bench(*, demo_export=None, jobs: int = 2, build_root=None,
                      log=print) -> dict:
    """Every workload under both harnesses; ``demo_export`` (an export directory) adds the
    demo network. Returns the results, ratios included."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="spikeforge-bench-") as scratch:
        work_dir = Path(scratch)
        workloads = {}
        if demo_export is not None:
            workloads["demo"] = lambda: _demo_workload(Path(demo_export), work_dir)
        for name in LONG_NETWORKS:
            workloads[name] = lambda name=name: _long_workload(name, work_dir)
        for name, make in workloads.items():
            network, samples, targets, cocotb_count = make()
            log(f"{name}: {len(samples)} samples of T = {len(samples[0])}…")
            entry = {"steps": int(len(samples[0])), "layers": [
                f"{core_type(layer.core).neuron} C={layer.core.channels} L={layer.core.lanes}"
                for layer in network.layers]}
            runs = [("fast", len(samples), 1)] + ([("fast", len(samples), jobs)]
                                                  if jobs > 1 else [])
            for harness, count, shards in runs + [("cocotb", cocotb_count, 1)]:
                cold = Path(tempfile.mkdtemp(dir=scratch, prefix="build-"))  # build included
                key = harness if harness == "cocotb" else f"fast_{shards}"
                entry[key] = _measure(network, samples[:count],
                                      None if targets is None else targets[:count],
                                      work_dir / name, harness=harness, build_root=cold,
                                      jobs=shards)
                log(f"  {key}: {entry[key]['cycles_per_s']:,} cycles/s, "
                    f"{entry[key]['samples_per_s']} samples/s, build "
                    f"{entry[key]['build_s']} s, total {entry[key]['total_s']} s, "
                    f"{'passed' if entry[key]['passed'] else 'FAILED'}")
            for key in sorted({"fast_1", f"fast_{jobs}"}):
                entry[f"{key}_speedup"] = round(entry[key]["cycles_per_s"] /
                                                entry["cocotb"]["cycles_per_s"], 1)
            results[name] = entry
    return {"jobs": jobs, "host_cpus": os.cpu_count(),
            "load_average": round(os.getloadavg()[0], 2), "probability": PROBABILITY,
            "workloads": results}
