"""Build a core under Verilator once per design and run the cocotb testbench against it.

Cores are built with ``weight_storage='file'`` by default: the Verilog then depends only on
the core's shape, so every weight set of one shape reuses one Verilator build (tables are
``$readmemh`` files in the run directory). Builds are cached under ``build_root`` by a hash of the Verilog
and the flags, and guarded by a file lock so parallel test workers share them.
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import time
from importlib import resources
from pathlib import Path

import numpy as np

from ..hw.cores import core_type, core_verilog, table_file
from ..hw.memfile import ROM_MODULE, read_hex, write_hex
from .beats import random_samples
from .verilator import MissingToolError, build_settings, verilator_env

__all__ = ["CORE_NAME", "SIMULATORS", "CosimResult", "build_core", "build_verilog", "run_test",
           "run_job", "fresh_run_dir", "run_cosim", "job_samples", "default_build_root"]

CORE_NAME = "dut"
#: Verilator builds start every register from a random value (``--x-initial unique``, with
#: ``+verilator+rand+reset+2`` at run time), so nothing may rely on power-up values.
_BUILD_ARGS = ("-Wno-fatal", "--no-public-flat-rw", "-O3", "--x-assign", "unique",
               "--x-initial", "unique")
_RUN_ARGS = ("+verilator+rand+reset+2",)
#: Simulators a design can be verified in, with their build arguments: Verilator, and Icarus
#: Verilog with IEEE 1364-2005 or IEEE 1800-2012 (SystemVerilog) time-0 semantics.
SIMULATORS = {"verilator": _BUILD_ARGS, "icarus-2012": ("-g2012",),
              "icarus-2005": ("-g2005",)}


def default_build_root() -> Path:
    return Path(os.environ.get("SPIKEFORGE_BUILD", "build")) / "cosim"


@dataclasses.dataclass
class CosimResult:
    seed: int
    samples: int
    beats: int
    time_steps: int
    cycles: int
    checked: int
    wall_s: float
    build_s: float
    neurons: int
    mismatch: str | None
    build_dir: str
    waves: str | None = None

    @property
    def passed(self) -> bool:
        return self.mismatch is None and self.checked == self.beats

    @property
    def cycles_per_s(self) -> float:
        return self.cycles / self.wall_s if self.wall_s else 0.0

    @property
    def neuron_steps_per_s(self) -> float:
        return self.neurons * self.time_steps / self.wall_s if self.wall_s else 0.0


def job_samples(config, job: dict) -> list[np.ndarray]:
    """The integer input samples a job describes (from a file, or seeded random)."""
    if job.get("samples_file"):
        with np.load(job["samples_file"]) as data:
            return [data[f"sample_{n}"] for n in range(len(data.files))]
    rng = np.random.default_rng([job["seed"], 0])
    return random_samples(config, rng, job["samples"], min_steps=job["min_steps"],
                          max_steps=job["max_steps"])


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _control_file(name: str, public: tuple = ()) -> str:
    # Only the ports are visible to cocotb; --public-flat-rw on everything is ~7x slower.
    return "`verilator_config\n" + "".join(
        f'public_flat_rw -module "{name}" -var "{pattern}"\n'
        for pattern in ("clk", "rst", "s_axis__*", "m_axis__*", *public))


def _runner(simulator: str):
    from cocotb_tools.runner import get_runner

    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {sorted(SIMULATORS)}, got {simulator!r}")
    if simulator == "verilator":
        return get_runner("verilator")
    if shutil.which("iverilog") is None:
        raise MissingToolError("Icarus Verilog ('iverilog') is not on PATH; on Debian or "
                               "Ubuntu: apt-get install iverilog")
    return get_runner("icarus")


@contextlib.contextmanager
def _runner_environment(simulator: str, object_cache: Path | None = None):
    """:func:`~spikeforge.sim.verilator.verilator_env` in ``os.environ`` while a cocotb runner
    builds or runs (it reads nothing else), and the caller's environment back afterwards:
    left in place, its ``OPT_FAST=-O0`` would read as the user's own ``MAKEFLAGS`` to every
    later fast-harness build of the process, which would then compile at ``-O0`` whatever
    level it reports."""
    if simulator != "verilator":
        yield
        return
    saved = dict(os.environ)
    os.environ.update(verilator_env(object_cache))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def build_verilog(top: str, verilog: str, label: str, build_root=None, *,
                  waves: bool = False, public: tuple = (), simulator: str = "verilator",
                  log=None):
    """Build ``verilog`` (module ``top``, with the ROM module) for ``simulator`` once per text
    and flags, cached under ``build_root/<label>-<hash>``; under Verilator only ports matching
    ``s_axis__*``, ``m_axis__*`` and ``public`` are visible to cocotb; ``log`` hears when a
    build starts (with its log file) and how long it took. Verilator builds share one
    compiled run-time library under ``build_root/verilator-runtime``. Returns
    ``(build_dir, seconds)``."""
    build_root = Path(build_root or default_build_root()).resolve()
    runner = _runner(simulator)
    rom = (resources.files("spikeforge.hw") / "verilog" / ROM_MODULE).read_text()
    control = _control_file(top, public)
    key = hashlib.sha256("\0".join([verilog, rom, control, *SIMULATORS[simulator],
                                     *build_settings(), str(waves)]).encode())
    suffix = "" if simulator == "verilator" else f"-{simulator}"
    build_dir = build_root / f"{label}{suffix}-{key.hexdigest()[:16]}"
    start = time.perf_counter()
    with _locked(build_dir.with_suffix(".lock")):
        sources = build_dir / "src"
        sources.mkdir(parents=True, exist_ok=True)
        for file_name, text in ((f"{top}.v", verilog), (ROM_MODULE, rom),
                                ("ports.vlt", control)):
            if not (sources / file_name).exists() or (sources / file_name).read_text() != text:
                (sources / file_name).write_text(text)
        marker = build_dir / (top if simulator == "verilator" else "sim.vvp")
        if not marker.exists():
            if log:
                log(f"  building {label} for {simulator} (a minute or two; log: "
                    f"{build_dir / 'build.log'})…")
            files = [sources / f"{top}.v", sources / ROM_MODULE]
            if simulator == "verilator":
                files.append(sources / "ports.vlt")
            with _runner_environment(simulator, build_root / "verilator-runtime"):
                runner.build(sources=files, hdl_toplevel=top, build_dir=build_dir,
                             build_args=list(SIMULATORS[simulator]), waves=waves,
                             timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
            if log:
                log(f"  built {label} in {time.perf_counter() - start:.0f} s")
    return build_dir, time.perf_counter() - start


def run_test(simulator: str, **arguments) -> None:
    """``runner.test`` for a build of :func:`build_verilog` (random initial state under
    Verilator)."""
    runner = _runner(simulator)
    if simulator == "verilator":
        arguments["plusargs"] = list(_RUN_ARGS)
    with _runner_environment(simulator):
        runner.test(**arguments)


def fresh_run_dir(build_dir: Path, seed: int, run_dir=None) -> Path:
    """An empty directory for one run: ``run_dir``, or one per seed and process under the
    build (parallel test workers share builds, never runs). The runs of processes that have
    ended are removed first, so a cached build keeps the latest run of each live process
    and does not grow with every co-simulation."""
    if run_dir is None:
        runs = build_dir / "runs"
        for old in runs.glob("seed-*-*"):
            if not _alive(old.name.rsplit("-", 1)[1]):
                shutil.rmtree(old, ignore_errors=True)
        run_dir = runs / f"seed-{seed}-{os.getpid()}"
    run_dir = Path(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    return run_dir


def _alive(pid: str) -> bool:
    """Whether process ``pid`` (a run directory's suffix) still runs on this machine."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError, OverflowError):
        return True  # not ours to judge: keep it
    return True


def run_job(simulator: str, test_module: str, top: str, build_dir: Path, run_dir: Path,
            job: dict, *, waves: bool = False) -> dict:
    """Run the cocotb ``test_module`` on a build with ``job`` (``run_dir/job.json``; the
    testbench writes ``run_dir/result.json``) and return that result. A failing comparison
    is in the result, not an exception; a simulation that wrote no result raises."""
    result_file = run_dir / "result.json"
    (run_dir / "job.json").write_text(json.dumps({**job, "result": str(result_file)}))
    try:
        run_test(simulator, test_module=test_module, hdl_toplevel=top,
                 hdl_toplevel_lang="verilog", build_dir=build_dir, test_dir=run_dir,
                 waves=waves, extra_env={"SPIKEFORGE_JOB": str(run_dir / "job.json"),
                                         # our testbenches report through result.json, not
                                         # assert: skip pytest's rewriting hook (and the
                                         # plugins its set-up loads) in every simulation
                                         "COCOTB_REWRITE_ASSERTION_FILES": ""},
                 results_xml=str(run_dir / "results.xml"), log_file=run_dir / "sim.log")
    except (Exception, SystemExit):  # the runner exits with status 1 when a test fails
        if not result_file.exists():
            raise
    if not result_file.exists():
        from .harness import SimulationError, log_tail

        raise SimulationError(f"the simulation wrote no result: "
                              f"{log_tail(run_dir / 'sim.log')}; log: {run_dir / 'sim.log'}")
    return json.loads(result_file.read_text())


def build_core(config, build_root=None, *, weight_storage: str = "file",
               waves: bool = False, simulator: str = "verilator", log=None, **options):
    """Build the core for ``config`` (for ``file`` storage: its shape) with the core type's
    generator ``options`` (CPSN: ``arith``); returns ``(build_dir, seconds)``."""
    build_root = Path(build_root or default_build_root())
    verilog = core_verilog(config, CORE_NAME, weight_storage=weight_storage,
                           cache_dir=build_root / "verilog", **options)
    return build_verilog(CORE_NAME, verilog, core_type(config).neuron, build_root,
                         waves=waves, simulator=simulator, log=log)


def run_cosim(config, *, seed: int = 0, samples: int = 8, min_steps: int = 1,
              max_steps: int = 32, valid_probability: float = 0.8,
              ready_probability: float = 0.8, sample_arrays: list[np.ndarray] | None = None,
              build_root=None, run_dir=None, weight_storage: str = "file",
              table_files: dict | None = None, waves: bool = False,
              simulator: str = "verilator", verilog: tuple[str, str] | None = None,
              log=None, **options) -> CosimResult:
    """Co-simulate ``config`` under Verilator against the integer golden model.

    Stimulus is ``sample_arrays`` if given, else ``samples`` random samples of ``min_steps`` to
    ``max_steps`` time steps drawn from ``seed``. ``weight_storage='baked'`` verifies the
    Verilog with tables inside (one build per weight set); ``options`` go to the generator
    (CPSN: ``arith='multiply'`` verifies the multiplier baseline against the same golden
    model); ``verilog = (module, text)`` verifies that Verilog (a generated directory's)
    instead of generating it. ``table_files`` maps each table to a ``.hex`` file (an export's) that the core
    reads instead of tables written from ``config``; they must hold exactly the words the
    configuration packs to. Raises nothing on a mismatch: the result's ``mismatch`` says where
    the first one happened.
    """
    top = CORE_NAME
    if verilog is None:
        build_dir, build_s = build_core(config, build_root, weight_storage=weight_storage,
                                        waves=waves, simulator=simulator, log=log, **options)
    else:  # a generated core as it is: (module name, Verilog text)
        top, text = verilog
        build_dir, build_s = build_verilog(top, text, core_type(config).neuron, build_root,
                                           waves=waves, simulator=simulator, log=log)
    run_dir = fresh_run_dir(build_dir, seed, run_dir)
    if weight_storage == "file":
        for table, (words, width) in core_type(config).table_words(config, **options).items():
            target = run_dir / table_file(top, table)
            if table_files is None:
                write_hex(target, words, width)
            elif read_hex(table_files[table], width, len(words)) == words:
                shutil.copyfile(table_files[table], target)
            else:
                raise ValueError(f"{table_files[table]} does not hold the {table!r} table of "
                                 f"this configuration")
    job = {"config": config.to_json(), "seed": seed, "samples": samples,
           "min_steps": min_steps, "max_steps": max_steps,
           "valid_probability": valid_probability, "ready_probability": ready_probability}
    if sample_arrays is not None:
        np.savez(run_dir / "samples.npz",
                 **{f"sample_{n}": np.asarray(s) for n, s in enumerate(sample_arrays)})
        job["samples_file"] = str(run_dir / "samples.npz")
    result = run_job(simulator, "spikeforge.sim.cocotb_core", top, build_dir, run_dir, job,
                     waves=waves)
    wave_files = sorted(str(p) for p in run_dir.glob("*.vcd")) + \
        sorted(str(p) for p in build_dir.glob("*.vcd"))
    return CosimResult(build_s=build_s, neurons=config.channels, build_dir=str(build_dir),
                       waves=wave_files[0] if wave_files else None, **result)
