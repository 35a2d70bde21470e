"""Fast co-simulation of a whole network: a Verilog testbench that runs at simulator speed.

The cocotb testbench (:mod:`spikeforge.sim.cocotb_network`) runs Python at every clock edge,
which caps it at tens of thousands of cycles per second. This harness moves everything that
happens per cycle into Verilog, so the simulator runs on its own:

- **stimulus from a file**: ``stimulus.hex``, one input beat per line, ``{tlast, tdata}`` in
  hexadecimal, read with ``$fscanf`` as the stream accepts them;
- **seeded random handshakes inside the testbench**: a 32-bit xorshift generator, seeded by
  ``+seed``, draws two numbers per cycle; the source offers its next beat when the first is
  below ``+valid`` (the valid probability × 65536) and the sink is ready when the second is
  below ``+ready``. An offered beat stays on the bus until it is taken (AXI4-Stream rules);
- **results to files**: every output transfer as ``cycle tlast class logits`` (hexadecimal
  fields) in ``output.txt``; in a build with probe ports every core's output transfers as
  ``layer spikes`` in ``probes.txt``; ``status.txt`` says ``done CYCLES FIRST_OUTPUT`` or
  ``stalled CYCLES SENT RECEIVED`` (no transfer for ``+idle`` cycles).

Python writes the stimulus, runs the simulator once and compares the files with the integer
model afterwards (:func:`compare_outputs`, :func:`locate_probe_mismatch`).

The testbench is plain Verilog-2005 with a ``clk`` input. Under Verilator a small C++ main
(``sim/harness/main.cpp``) toggles the clock; under Icarus a wrapper module
(``spikeforge_harness_clock``) does, so one testbench runs in both. Builds are cached under
the build root by a hash of the harness version, the testbench, the design's Verilog, the
ROM module, the C++ main and every flag; tables are ``$readmemh`` files in the run directory,
so one build serves every weight set of one shape.

**Compile or run?** The model's C++ is built at ``-O0`` when the run is short and at ``-O1``
or ``-O2`` when the expected number of cycles makes the faster model pay for its longer
compile (:func:`choose_optimisation`, measured in ``docs/verification.md``); an existing
build of the same design at a higher level is always preferred. The level is forced on the
build whatever ``MAKEFLAGS`` says, so the report names the code that ran.
"""

import dataclasses
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import time
from importlib import resources
from pathlib import Path

import numpy as np

from ..hw.memfile import ROM_MODULE
from .network_beats import readout_beat, step_beats, unpack_logits
from .verilator import MissingToolError, build_settings, verilator_bin_dir, verilator_env

__all__ = ["HARNESS_VERSION", "HARNESS_TOP", "IDLE_LIMIT", "OPTIMISATIONS", "HarnessBuild",
           "Port", "SimulationError", "top_ports", "harness_verilog", "choose_optimisation",
           "build_harness", "run_harness", "write_stimulus", "read_outputs", "output_progress",
           "compare_outputs", "locate_probe_mismatch", "log_tail"]

#: Bumped whenever the testbench, the C++ main or the file formats change (part of the build
#: key), or cached builds cannot be trusted (3: a cocotb build's ``OPT_FAST=-O0`` leaked into
#: the process, so a build keyed ``-O1`` may hold ``-O0`` code).
HARNESS_VERSION = 3
HARNESS_TOP = "spikeforge_harness"
_CLOCK_TOP = "spikeforge_harness_clock"
#: C++ optimisation of the model's code (Verilator's ``OPT_FAST``), least to most.
OPTIMISATIONS = ("-O0", "-O1", "-O2")
#: :func:`choose_optimisation`'s thresholds in expected simulated cycles (docs/benchmarks.md,
#: "fast harness", has the measurements behind them).
O1_FROM_CYCLES = 100_000
O2_FROM_CYCLES = 200_000_000
#: Verilator build arguments (random initial state, as the cocotb builds).
_VERILATOR_ARGS = ("-Wno-fatal", "-O3", "--x-assign", "unique", "--x-initial", "unique")
_RUN_ARGS = ("+verilator+rand+reset+2",)
_ICARUS = {"icarus-2012": "-g2012", "icarus-2005": "-g2005"}
_STIMULUS, _OUTPUT, _PROBES, _STATUS = "stimulus.hex", "output.txt", "probes.txt", "status.txt"
#: Cycles without any transfer after which the harness calls a run stalled.
IDLE_LIMIT = 2000


class SimulationError(RuntimeError):
    """The simulator did not finish the run (it crashed, or its files were removed while it
    ran); the message is one line and names the log to read."""


@dataclasses.dataclass(frozen=True)
class Port:
    direction: str  # "input" or "output"
    width: int


def top_ports(verilog: str, module: str) -> dict[str, Port]:
    """The ports of ``module`` in ``verilog`` (the Amaranth/Yosys style of declaration:
    ``input [W-1:0] name;`` in the module body)."""
    start = re.search(rf"^module\s+{re.escape(module)}\s*\(", verilog, re.MULTILINE)
    if start is None:
        raise ValueError(f"the Verilog has no module {module!r}")
    end = verilog.find("endmodule", start.end())
    body = verilog[start.end():end if end >= 0 else None]
    ports = {}
    for direction, msb, name in re.findall(
            r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):0\]\s*)?(\w+)\s*;", body,
            re.MULTILINE):
        ports[name] = Port(direction, int(msb) + 1 if msb else 1)
    return ports


def _probe_layers(ports: dict[str, Port]) -> list[str]:
    return [name[len("probe_"):-len("__tdata")] for name in ports
            if name.startswith("probe_") and name.endswith("__tdata")]


def _check_ports(ports: dict[str, Port], module: str) -> None:
    needed = {"clk": "input", "rst": "input", "s_axis__tdata": "input", "s_axis__tvalid": "input",
              "s_axis__tlast": "input", "s_axis__tready": "output", "m_axis__tdata": "output",
              "m_axis__tuser": "output", "m_axis__tvalid": "output", "m_axis__tlast": "output",
              "m_axis__tready": "input"}
    for name, direction in needed.items():
        if name not in ports or ports[name].direction != direction:
            raise ValueError(f"module {module!r} has no {direction} port {name!r}: not a "
                             f"network accelerator")


def harness_verilog(ports: dict[str, Port], module: str) -> str:
    """The testbench around ``module`` (a network accelerator with ``ports``; probe ports
    ``probe_<layer>__tdata/__tvalid`` are logged when present)."""
    _check_ports(ports, module)
    width = ports["s_axis__tdata"].width
    class_width, user_width = ports["m_axis__tdata"].width, ports["m_axis__tuser"].width
    probes = _probe_layers(ports)
    declarations = "".join(
        f"    wire [{ports[f'probe_{layer}__tdata'].width - 1}:0] probe_{index}_data;\n"
        f"    wire probe_{index}_valid;\n" for index, layer in enumerate(probes))
    connections = "".join(
        f",\n        .probe_{layer}__tdata(probe_{index}_data), "
        f".probe_{layer}__tvalid(probe_{index}_valid)" for index, layer in enumerate(probes))
    logging = "".join(
        f"            if (probe_{index}_valid) $fwrite(probe_file, \"{layer} %h\\n\", "
        f"probe_{index}_data);\n" for index, layer in enumerate(probes))
    return f"""// spikeforge fast co-simulation harness, version {HARNESS_VERSION} (sim/harness.py).
// Drives {module} from stimulus.hex with seeded random valid/ready, logs every output
// transfer to output.txt (and probe transfers to probes.txt), ends with status.txt.
// Plusargs: +seed=S +valid=V +ready=R (probability x 65536) +beats=B +samples=N +idle=I.
module {HARNESS_TOP} (
    input wire clk
);
    localparam integer WIDTH = {width};
    reg rst = 1'b1;
    reg [1:0] reset_cycles = 2'd0;
    reg s_tvalid = 1'b0;
    reg s_tlast = 1'b0;
    reg [WIDTH-1:0] s_tdata = {{WIDTH{{1'b0}}}};
    reg [WIDTH:0] beat = {{(WIDTH + 1){{1'b0}}}};
    reg m_tready = 1'b0;
    wire s_tready, m_tvalid, m_tlast;
    wire [{class_width - 1}:0] m_tdata;
    wire [{user_width - 1}:0] m_tuser;
{declarations}
    {module} dut (
        .clk(clk), .rst(rst),
        .s_axis__tdata(s_tdata), .s_axis__tvalid(s_tvalid), .s_axis__tlast(s_tlast),
        .s_axis__tready(s_tready),
        .m_axis__tdata(m_tdata), .m_axis__tuser(m_tuser), .m_axis__tvalid(m_tvalid),
        .m_axis__tlast(m_tlast), .m_axis__tready(m_tready){connections}
    );

    integer stimulus, output_file, probe_file, status_file, scanned;
    integer seed, valid_threshold, ready_threshold, beats, samples, idle_limit;
    integer loaded, sent, received, idle;
    reg [63:0] cycle, first_output;
    reg [31:0] state;

    function [31:0] xorshift(input [31:0] x);
        reg [31:0] y;
        begin
            y = x ^ (x << 13);
            y = y ^ (y >> 17);
            xorshift = y ^ (y << 5);
        end
    endfunction

    wire [31:0] draw_valid = xorshift(state);
    wire [31:0] draw_ready = xorshift(draw_valid);

    initial begin
        if (!$value$plusargs("seed=%d", seed)) seed = 0;
        if (!$value$plusargs("valid=%d", valid_threshold)) valid_threshold = 65536;
        if (!$value$plusargs("ready=%d", ready_threshold)) ready_threshold = 65536;
        if (!$value$plusargs("beats=%d", beats)) beats = 0;
        if (!$value$plusargs("samples=%d", samples)) samples = 0;
        if (!$value$plusargs("idle=%d", idle_limit)) idle_limit = 2000;
        state = 32'h9e3779b9 ^ seed;
        if (state == 32'd0) state = 32'd1;
        loaded = 0; sent = 0; received = 0; idle = 0;
        cycle = 64'd0; first_output = 64'd0;
        stimulus = $fopen("{_STIMULUS}", "r");
        output_file = $fopen("{_OUTPUT}", "w");
        probe_file = $fopen("{_PROBES}", "w");
        status_file = $fopen("{_STATUS}", "w");
        if (stimulus == 0) begin
            $fwrite(status_file, "error cannot open {_STIMULUS}\\n");
            $fclose(status_file);
            $finish;
        end
    end

    always @(posedge clk) begin
        state <= draw_ready;
        if (rst) begin
            reset_cycles <= reset_cycles + 2'd1;
            if (reset_cycles == 2'd1) rst <= 1'b0;
        end else begin
            cycle = cycle + 64'd1;
{logging}            if (s_tvalid && s_tready) sent = sent + 1;
            if (m_tvalid && m_tready) begin
                $fwrite(output_file, "%0d %h %h %h\\n", cycle, m_tlast, m_tdata, m_tuser);
                $fflush(output_file);  // progress can be read while it runs
                if (received == 0) first_output = cycle;
                received = received + 1;
            end
            if ((s_tvalid && s_tready) || (m_tvalid && m_tready)) idle = 0;
            else idle = idle + 1;
            if (!s_tvalid || s_tready) begin
                if (loaded < beats && draw_valid[15:0] < valid_threshold) begin
                    scanned = $fscanf(stimulus, "%h\\n", beat);
                    loaded = loaded + 1;
                    s_tdata <= beat[WIDTH-1:0];
                    s_tlast <= beat[WIDTH];
                    s_tvalid <= 1'b1;
                end else begin
                    s_tvalid <= 1'b0;
                end
            end
            m_tready <= draw_ready[15:0] < ready_threshold;
            if (received >= samples || idle > idle_limit) begin
                if (received >= samples)
                    $fwrite(status_file, "done %0d %0d\\n", cycle, first_output);
                else
                    $fwrite(status_file, "stalled %0d %0d %0d\\n", cycle, sent, received);
                $fclose(output_file);
                $fclose(probe_file);
                $fclose(status_file);
                $finish;
            end
        end
    end
endmodule
"""


_CLOCK_WRAPPER = f"""// Clock for simulators without a C++ main (Icarus): 100 MHz, the harness does the rest.
`timescale 1ns/1ps
module {_CLOCK_TOP};
    reg clk = 1'b0;
    always #5 clk = ~clk;
    {HARNESS_TOP} harness (.clk(clk));
endmodule
"""


def choose_optimisation(expected_cycles: float) -> str:
    """The C++ optimisation for a run of about ``expected_cycles``: ``-O0`` for short runs
    (unit tests of small designs), ``-O1`` from :data:`O1_FROM_CYCLES`, ``-O2`` from
    :data:`O2_FROM_CYCLES`. On the demo network ``-O1`` runs 3.8x as many cycles per second
    as ``-O0`` for about 3.5 s more compile CPU, which one run repays from about a million
    cycles; a build is cached and serves every seed and export of its shape, so ``-O1``
    starts at a tenth of that. ``-O2`` is a few per cent faster than ``-O1`` for about
    twice its compile time."""
    if expected_cycles >= O2_FROM_CYCLES:
        return "-O2"
    return "-O1" if expected_cycles >= O1_FROM_CYCLES else "-O0"


def _main_cpp() -> str:
    return (resources.files("spikeforge.sim") / "harness" / "main.cpp").read_text()


def _rom() -> str:
    return (resources.files("spikeforge.hw") / "verilog" / ROM_MODULE).read_text()


def _key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def _lock(path: Path):
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text[-lines:] if line.strip()) or "(empty log)"


@dataclasses.dataclass(frozen=True)
class HarnessBuild:
    """A built harness: the program to run, the seconds the build took (about 0 when it was
    cached) and the C++ optimisation it was built with."""

    executable: Path
    seconds: float
    optimisation: str


def build_harness(verilog: str, module: str, build_root, *, simulator: str = "verilator",
                  optimisation: str = "-O1", threads: int = 1, log=None) -> HarnessBuild:
    """Build the harness around ``module`` of ``verilog`` once per text and flags. A cached
    build of the same design at a higher optimisation is used instead when it exists."""
    if optimisation not in OPTIMISATIONS:
        raise ValueError(f"optimisation must be one of {OPTIMISATIONS}, got {optimisation!r}")
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if simulator != "verilator" and simulator not in _ICARUS:
        raise ValueError(f"simulator must be 'verilator' or one of {sorted(_ICARUS)}, "
                         f"got {simulator!r}")
    build_root = Path(build_root).resolve()
    bench = harness_verilog(top_ports(verilog, module), module)
    rom = _rom()
    start = time.perf_counter()
    if simulator != "verilator":
        executable = _build_icarus(bench, verilog, module, rom, build_root, simulator, log)
        return HarnessBuild(executable, time.perf_counter() - start, simulator)
    version = importlib.metadata.version("verilator")
    wanted = OPTIMISATIONS.index(optimisation)
    for level in reversed(OPTIMISATIONS[wanted:]):  # the most optimised cached build first
        key = _key(str(HARNESS_VERSION), bench, verilog, rom, _main_cpp(), level, str(threads),
                   version, *_VERILATOR_ARGS, *build_settings(level))
        build_dir = build_root / f"harness-{key}"
        executable = build_dir / "obj" / "Vharness"
        if executable.is_file() or level == optimisation:
            break
    handle = _lock(build_dir.with_suffix(".lock"))
    try:
        if not executable.is_file():
            _verilator_build(build_dir, bench, verilog, module, rom, level, threads, log)
    finally:
        handle.close()
    return HarnessBuild(executable, time.perf_counter() - start, level)


def _verilator_build(build_dir: Path, bench: str, verilog: str, module: str, rom: str,
                     optimisation: str, threads: int, log) -> None:
    sources = build_dir / "src"
    sources.mkdir(parents=True, exist_ok=True)
    files = {"harness.v": bench, f"{module}.v": verilog, ROM_MODULE: rom,
             "main.cpp": _main_cpp()}
    for name, text in files.items():
        (sources / name).write_text(text)
    (sources / "clock.v").write_text(_CLOCK_WRAPPER)  # for other simulators; not built here
    env = verilator_env(build_dir.parent / "verilator-runtime", opt_fast=optimisation)
    command = [str(verilator_bin_dir() / "verilator"), "--cc", "--exe", "--build", "-j",
               str(max(1, min(2, os.cpu_count() or 1))), "--prefix", "Vharness",
               "--top-module", HARNESS_TOP, *_VERILATOR_ARGS, "-Mdir", str(build_dir / "obj"),
               "-o", "Vharness"]
    if threads > 1:
        command += ["--threads", str(threads)]
    command += [str(sources / name) for name in files]
    log_file = build_dir / "build.log"
    if log:
        log(f"  building the fast harness ({optimisation}, log: {log_file})…")
    start = time.perf_counter()
    with open(log_file, "w") as output:
        status = subprocess.call(command, stdout=output, stderr=subprocess.STDOUT, env=env,
                                 cwd=build_dir)
    if status != 0 or not (build_dir / "obj" / "Vharness").is_file():
        raise SimulationError(f"the Verilator build failed (exit {status}): "
                              f"{log_tail(log_file)}; log: {log_file}")
    if log:
        log(f"  built in {time.perf_counter() - start:.0f} s")


def _build_icarus(bench: str, verilog: str, module: str, rom: str, build_root: Path,
                  simulator: str, log) -> Path:
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        raise MissingToolError("Icarus Verilog ('iverilog', 'vvp') is not on PATH; on Debian "
                               "or Ubuntu: apt-get install iverilog")
    key = _key(str(HARNESS_VERSION), bench, _CLOCK_WRAPPER, verilog, rom, simulator)
    build_dir = build_root / f"harness-{simulator}-{key}"
    executable = build_dir / "sim.vvp"
    handle = _lock(build_dir.with_suffix(".lock"))
    try:
        if not executable.is_file():
            sources = build_dir / "src"
            sources.mkdir(parents=True, exist_ok=True)
            files = {"clock.v": _CLOCK_WRAPPER, "harness.v": bench, f"{module}.v": verilog,
                     ROM_MODULE: rom}
            for name, text in files.items():
                (sources / name).write_text(text)
            log_file = build_dir / "build.log"
            with open(log_file, "w") as output:
                status = subprocess.call(
                    ["iverilog", _ICARUS[simulator], "-s", _CLOCK_TOP, "-o", str(executable),
                     *[str(sources / name) for name in files]],
                    stdout=output, stderr=subprocess.STDOUT)
            if status != 0:
                raise SimulationError(f"the Icarus build failed (exit {status}): "
                                      f"{log_tail(log_file)}; log: {log_file}")
    finally:
        handle.close()
    return executable


def write_stimulus(path: Path, beats, width: int) -> None:
    """``{tlast, tdata}`` of every beat, one hexadecimal word per line."""
    with open(path, "w") as handle:
        handle.writelines(f"{(int(b.last) << width) | b.data:x}\n" for b in beats)


def _threshold(probability: float) -> int:
    if not 0 < probability <= 1:
        raise ValueError(f"a handshake probability must be in (0, 1], got {probability}")
    return 65536 if probability >= 1 else max(1, round(probability * 65536))


def run_harness(executable: Path, run_dir: Path, *, beats: int, samples: int, seed: int,
                valid_probability: float, ready_probability: float,
                idle_limit: int = IDLE_LIMIT) -> dict:
    """Run a built harness in ``run_dir`` (which holds ``stimulus.hex`` and the tables);
    returns ``{"status", "cycles", "first_output_cycle", "sent", "received", "wall_s"}``
    and leaves ``output.txt`` and ``probes.txt`` there."""
    run_dir = Path(run_dir)
    arguments = [f"+seed={seed & 0x7fffffff}", f"+valid={_threshold(valid_probability)}",
                 f"+ready={_threshold(ready_probability)}", f"+beats={beats}",
                 f"+samples={samples}", f"+idle={idle_limit}"]
    if executable.suffix == ".vvp":
        command = ["vvp", "-n", str(executable), *arguments]
    else:
        command = [str(executable), *arguments, *_RUN_ARGS]
    log_file = run_dir / "sim.log"
    (run_dir / _STATUS).unlink(missing_ok=True)
    start = time.perf_counter()
    with open(log_file, "w") as output:
        status = subprocess.call(command, stdout=output, stderr=subprocess.STDOUT, cwd=run_dir)
    wall = time.perf_counter() - start
    try:
        words = (run_dir / _STATUS).read_text().split()
    except OSError:
        words = []
    if status != 0 or not words or words[0] not in ("done", "stalled"):
        raise SimulationError(f"the simulation ended without a result (exit {status}): "
                              f"{log_tail(log_file)}; log: {log_file}")
    log = log_file.read_text(errors="replace")
    if "Unable to open" in log or "could not be opened" in log:
        raise SimulationError(f"the simulator could not read a table file: "
                              f"{log_tail(log_file)}; log: {log_file}")
    result = {"status": words[0], "cycles": int(words[1]), "wall_s": wall}
    if words[0] == "done":
        result.update(first_output_cycle=int(words[2]) or None, sent=beats, received=samples)
    else:
        result.update(first_output_cycle=None, sent=int(words[2]), received=int(words[3]))
    return result


def read_outputs(run_dir: Path) -> list[tuple[int, int, int, int]]:
    """``(cycle, tlast, class, logits)`` of every output transfer the harness logged."""
    rows = []
    for line in (Path(run_dir) / _OUTPUT).read_text().splitlines():
        cycle, last, data, user = line.split()
        rows.append((int(cycle), int(last, 16), int(data, 16), int(user, 16)))
    return rows


def output_progress(run_dir: Path) -> tuple[int, int]:
    """``(outputs, cycle of the last)`` logged so far by a running harness (complete lines of
    ``output.txt``, which it flushes after every output beat)."""
    try:
        text = (Path(run_dir) / _OUTPUT).read_text()
    except OSError:
        return 0, 0
    lines = text[:text.rfind("\n") + 1].splitlines()
    return len(lines), int(lines[-1].split()[0]) if lines else 0


def compare_outputs(rows, logits: np.ndarray, classes: int, width: int,
                    targets=None) -> dict:
    """Compare logged output transfers with the integer model's ``logits`` ``[N, classes]``
    (logit ``width`` bits): agreement, correct classes and the first mismatch."""
    expected = [readout_beat(row, width) for row in logits]
    count = len(expected)
    same_class = same_logits = correct = 0
    mismatch = first = None
    for n, (_, last, got_class, got_user) in enumerate(rows[:count]):
        want = expected[n]
        same_class += got_class == want.data
        same_logits += got_user == want.user
        if targets is not None:
            correct += got_class == int(targets[n])
        if mismatch is None and (got_class != want.data or got_user != want.user or not last):
            first = n
            mismatch = (f"sample {n}: class expected {want.data}, got {got_class}; logits "
                        f"expected {list(unpack_logits(want.user, classes, width))}, got "
                        f"{list(unpack_logits(got_user, classes, width))}"
                        + ("" if last else "; tlast low"))
    if mismatch is None and len(rows) > count:
        mismatch = f"{len(rows) - count} output beats more than the {count} samples"
    return {"checked": min(len(rows), count), "same_class": same_class,
            "same_logits": same_logits, "class_agreement": same_class / count,
            "logit_agreement": same_logits / count, "hardware_correct": correct,
            "mismatch": mismatch, "first_mismatch_sample": first}


def locate_probe_mismatch(run_dir: Path, layers: list[tuple[str, int]],
                          spikes: dict[str, list[np.ndarray]]) -> dict | None:
    """The first core output (in layer order) that differs from the integer model's spikes:
    ``{"layer", "sample", "time_step", "channels"}``, from ``probes.txt`` of a probed run.
    ``layers`` are ``(name, lanes)``; ``spikes[name]`` the expected ``[T, C]`` per sample."""
    logged: dict[str, list[int]] = {}
    for line in (Path(run_dir) / _PROBES).read_text().splitlines():
        layer, data = line.split()
        logged.setdefault(layer, []).append(int(data, 16))
    for name, lanes in layers:
        expected = step_beats(spikes[name], lanes, 1)
        positions = [(n, t, g) for n, s in enumerate(spikes[name]) for t in range(s.shape[0])
                     for g in range(s.shape[1] // lanes)]
        for seen, got in enumerate(logged.get(name, [])[:len(expected)]):
            want = expected[seen].data
            if got != want:
                sample, step, group = positions[seen]
                return {"layer": name, "sample": sample, "time_step": step,
                        "channels": [group * lanes + lane for lane in range(lanes)
                                     if (got ^ want) >> lane & 1]}
    return None
