"""``spikeforge bench cosim``: how fast each simulator verifies a core against the golden model.

The same regression — the same configurations, the same input samples and the same stream
gaps (valid and ready probabilities) — runs under Verilator (cocotb testbench, the
``spikeforge cosim`` flow) and under the Amaranth simulator (``run_stream``), both checked
beat by beat by the same :class:`~spikeforge.sim.scoreboard.Scoreboard`. Reported per
simulator: beats per second and neuron-timesteps verified per second, for the simulation loop
alone and end to end (a Verilator run's process start included; builds are cached and
timed apart), on one core and with one regression job per core.
"""

import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from ..hw.cpsn import CPSNCore
from ..golden.cpsn_config import CPSNConfig
from ..sim.amaranth_sim import run_stream
from ..sim.beats import expected_beats, input_beats, random_samples
from ..sim.runner import build_core, run_cosim
from ..sim.scoreboard import Scoreboard

__all__ = ["REGRESSION", "regression_cases", "run_verilator", "run_amaranth", "run_bench"]

#: (channels, lanes, order, dilation, membrane_out) of the regression, all at L = 16.
REGRESSION = ((64, 16, 8, 1, False), (256, 16, 4, 2, True), (16, 16, 2, 1, False))
VALID_PROBABILITY = READY_PROBABILITY = 0.9


def regression_cases(samples: int, steps: int) -> list[tuple[CPSNConfig, list[np.ndarray]]]:
    """The configurations and input samples (seeded) of the regression."""
    cases = []
    for n, (channels, lanes, order, dilation, membrane_out) in enumerate(REGRESSION):
        rng = np.random.default_rng([7, n])
        config = CPSNConfig.random(rng, channels=channels, lanes=lanes, order=order,
                                   dilation=dilation, membrane_out=membrane_out)
        cases.append((config, random_samples(config, rng, samples, min_steps=steps,
                                              max_steps=steps)))
    return cases


def _measure(simulator: str, config: CPSNConfig, samples, seed: int, build_root) -> dict:
    start = time.perf_counter()
    if simulator == "verilator":
        result = run_cosim(config, seed=seed, sample_arrays=samples, build_root=build_root,
                           valid_probability=VALID_PROBABILITY,
                           ready_probability=READY_PROBABILITY)
        passed, beats, cycles, loop_s = (result.passed, result.beats, result.cycles,
                                         result.wall_s)
    else:
        expected = expected_beats(config, samples)
        beats = input_beats(config, samples)
        loop_start = time.perf_counter()
        outputs, cycles = run_stream(CPSNCore(config), beats, np.random.default_rng([seed, 1]),
                                     valid_probability=VALID_PROBABILITY,
                                     ready_probability=READY_PROBABILITY,
                                     max_cycles=10 * len(beats) + 1000)
        board = Scoreboard(config, expected)
        for beat in outputs:
            board.check(beat)
        loop_s = time.perf_counter() - loop_start
        passed, beats = board.done, len(expected)
    total_s = time.perf_counter() - start
    steps = sum(s.shape[0] for s in samples)
    return {"simulator": simulator, "channels": config.channels, "lanes": config.lanes,
            "order": config.order, "passed": bool(passed), "beats": beats, "cycles": cycles,
            "neuron_steps": config.channels * steps, "loop_s": loop_s, "total_s": total_s}


def run_verilator(cases, build_root=None, seed: int = 0) -> list[dict]:
    return [_measure("verilator", c, s, seed, build_root) for c, s in cases]


def run_amaranth(cases, seed: int = 0) -> list[dict]:
    return [_measure("amaranth", c, s, seed, None) for c, s in cases]


def _rates(jobs: list[list[dict]], wall_s: float) -> dict:
    """Throughput of regression jobs that ran side by side in ``wall_s``: end to end, all
    work over the wall time; in the loop, the jobs' own loop rates added up."""
    runs = [run for job in jobs for run in job]
    beats = sum(r["beats"] for r in runs)
    steps = sum(r["neuron_steps"] for r in runs)

    def loop_rate(key):
        return sum(sum(r[key] for r in job) / sum(r["loop_s"] for r in job) for job in jobs)

    return {"beats": beats, "neuron_steps": steps, "passed": all(r["passed"] for r in runs),
            "loop_beats_per_s": loop_rate("beats"),
            "loop_neuron_steps_per_s": loop_rate("neuron_steps"),
            "beats_per_s": beats / wall_s, "neuron_steps_per_s": steps / wall_s,
            "wall_s": wall_s}


def _parallel(simulator: str, cases, jobs: int, build_root) -> dict:
    """``jobs`` copies of the regression at once (seeds 0 … jobs−1), one per core."""
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        if simulator == "verilator":
            futures = [pool.submit(run_verilator, cases, build_root, seed=seed)
                       for seed in range(jobs)]
        else:
            futures = [pool.submit(run_amaranth, cases, seed=seed) for seed in range(jobs)]
        jobs_runs = [future.result() for future in futures]
    return _rates(jobs_runs, time.perf_counter() - start)


def run_bench(*, samples: int = 64, steps: int = 128, jobs: int = 2,
              build_root=None) -> dict:
    """Both simulators on the regression: one job, then ``jobs`` jobs in parallel."""
    cases = regression_cases(samples, steps)
    build = [build_core(config, build_root)[1] for config, _ in cases]  # cached, timed apart
    load = os.getloadavg()[0]  # other work on the host slows every simulator alike
    verilator = run_verilator(cases, build_root)
    amaranth = run_amaranth(cases)
    return {
        "regression": [dict(zip(("channels", "lanes", "order", "dilation", "membrane_out"),
                                case)) for case in REGRESSION],
        "samples": samples, "steps": steps,
        "valid_probability": VALID_PROBABILITY, "ready_probability": READY_PROBABILITY,
        "host_cpus": os.cpu_count(), "load_average": round(load, 2), "jobs": jobs,
        "verilator_build_s": build,
        "runs": verilator + amaranth,
        "single": {"verilator": _rates([verilator], sum(r["total_s"] for r in verilator)),
                   "amaranth": _rates([amaranth], sum(r["total_s"] for r in amaranth))},
        "parallel": {"verilator": _parallel("verilator", cases, jobs, build_root),
                     "amaranth": _parallel("amaranth", cases, jobs, None)},
    }
