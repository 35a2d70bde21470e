"""Write ``docs/benchmarks.md`` and its plots from the benchmark JSON files.

``spikeforge bench hw`` writes ``docs/benchmarks/hw.json`` and ``spikeforge bench cosim``
writes ``docs/benchmarks/cosim.json``; either command then calls :func:`write_document`, which
renders whatever results exist, so the page always shows the latest run of each.
"""

import json
import re
from pathlib import Path

from ..hw.synth import misfit
from .bench_hw import CORE_KINDS

__all__ = ["TARGET_CHECKS", "target_checks", "write_plots", "render", "write_document"]

_DEMO_PRF = {"channels": 64, "lanes": 4, "time_parallelism": 1}
_PRF_C16 = {"channels": 16, "lanes": 4, "time_parallelism": 1}

#: Issues #7 (CPSN) and #13 (PRF): (description, kind, target, shape, variant, metric, test).
#: Every row of the kind, target and variant whose shape matches is checked. On the iCE40
#: every k = 8 CPSN core and every PRF core of the sweep is listed, so the largest one that
#: fits is there too.
TARGET_CHECKS = (
    ("zero DSP", "cpsn", "ecp5-25k", {"lanes": 16, "order": 8}, "shift_add", "dsp",
     lambda v: v == 0),
    ("Fmax ≥ 200 MHz", "cpsn", "ecp5-25k", {"lanes": 16, "order": 8}, "shift_add", "fmax_mhz",
     lambda v: v is not None and v >= 200),
    ("Fmax ≥ 60 MHz", "cpsn", "ice40-up5k", {"order": 8}, "shift_add",
     "fmax_mhz", lambda v: v is not None and v >= 60),
    ("zero DSP", "prf", "ecp5-25k", {}, "shift_add", "dsp", lambda v: v == 0),
    ("Fmax ≥ 150 MHz", "prf", "ecp5-25k", _DEMO_PRF, "shift_add_demo", "fmax_mhz",
     lambda v: v is not None and v >= 150),
    ("≤ 4,000 LUTs", "prf", "ecp5-25k", _DEMO_PRF, "shift_add_demo", "logic_luts",
     lambda v: v is not None and v <= 4000),
    ("Fmax ≥ 150 MHz", "prf", "ecp5-25k", _PRF_C16, "shift_add", "fmax_mhz",
     lambda v: v is not None and v >= 150),
    ("≤ 7,270 LUTs (half of 14,539)", "prf", "ecp5-25k", _PRF_C16, "shift_add", "logic_luts",
     lambda v: v is not None and v <= 7270),
    ("Fmax ≥ 200 MHz", "prf", "ecp5-25k", _DEMO_PRF, "dsp", "fmax_mhz",
     lambda v: v is not None and v >= 200),
    ("Fmax ≥ 120 MHz", "prf", "ecp5-25k", {**_PRF_C16, "time_parallelism": 4}, "shift_add",
     "fmax_mhz", lambda v: v is not None and v >= 120),
    ("Fmax ≥ 120 MHz", "prf", "ecp5-25k", {**_PRF_C16, "time_parallelism": 4},
     "shift_add_demo", "fmax_mhz", lambda v: v is not None and v >= 120),
    ("fits, with its Fmax", "prf", "ice40-up5k", {}, "shift_add_demo", "fmax_mhz",
     lambda v: v is not None),
    # Issue 25: the LIF core with a shift decay.
    ("zero DSP", "lif", "ecp5-25k", {"channels": 64, "lanes": 4}, "shift", "dsp",
     lambda v: v == 0),
    ("Fmax ≥ 200 MHz", "lif", "ecp5-25k", {"channels": 64, "lanes": 4}, "shift", "fmax_mhz",
     lambda v: v is not None and v >= 200),
)

#: (metric, title, file). CPSN plots keep these names; another kind's get its name in front
#: (``prf_luts.png``).
PLOTS = (("logic_luts", "LUTs (ECP5: LUT4 incl. the two in each carry cell)", "luts.png"),
         ("ffs", "flip-flops", "ffs.png"),
         ("dsp_per_lane", "DSP blocks per neuron-step computed in parallel", "dsp_per_lane.png"),
         ("fmax_mhz", "Fmax (MHz)", "fmax.png"),
         ("neuron_steps_per_s", "neuron-timesteps per second", "throughput.png"))

#: Section titles of the core kinds.
_KIND_TITLES = {"cpsn": "CPSN (channel-wise PSN, shift-add datapath)",
                "prf": "PRF (parallel resonate-and-fire scan unit)",
                "lif": "LIF family (IF / LIF / CubaLIF / LI core)"}


def _plot_file(kind: str, name: str) -> str:
    return name if kind == "cpsn" else f"{kind}_{name}"


def _label(variant: str, kind: str = "cpsn") -> str:
    for candidate in CORE_KINDS[kind].variants:
        if candidate.name == variant:
            return candidate.label
    return variant


def _shape(row: dict) -> str:
    kind = CORE_KINDS[row.get("kind", "cpsn")]
    return " ".join(f"{s}={row[a]}" for s, a in zip(kind.symbols, kind.axes))


def _parallel(kind) -> str:
    """The neuron-steps per clock of a kind, in its symbols (``L`` or ``L × P``)."""
    return " × ".join(kind.symbols[kind.axes.index(a)] for a in kind.per_lane)


def target_checks(rows: list[dict]) -> list[dict]:
    """Each target of :data:`TARGET_CHECKS` against every matching row."""
    checks = []
    for text, kind, target, shape, variant, metric, test in TARGET_CHECKS:
        for row in rows:
            if (row["kind"], row["target"], row["variant"]) != (kind, target, variant) or any(
                    row.get(k) != v for k, v in shape.items()) or "error" in row:
                continue
            value = row.get(metric) if row.get("fits") is not False else None
            shape_text = _shape(row) if kind == "cpsn" else \
                f"{_shape(row)}, {_label(row['variant'], kind)}"
            checks.append({"target": target, "requirement": text, "shape": shape_text,
                           "value": value, "fits": row.get("fits"), "met": bool(test(value)),
                           "row": row})
    return checks


def _fmt(value, digits=0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _fit_text(row: dict) -> str:
    if not row.get("place_and_route"):
        return "synthesis only"
    if row.get("fits") is False:
        return "**does not fit**: " + misfit(row)
    main = {k: u for k, u in (row.get("utilisation") or {}).items()
            if k in ("TRELLIS_COMB", "ICESTORM_LC")}
    return ", ".join(f"{k} {100 * u['used'] / u['available']:.0f}%" for k, u in main.items())


def _path_text(row: dict) -> str:
    path = row.get("critical_path")
    if not path:
        return ""
    where = "core" if path["inside_core"] else "harness→core"
    return (f"{path['delay_ns']:.1f} ns ({path['routing_ns']:.1f} routing), {where}: "
            f"`{_short(path['from'])}` → `{_short(path['to'])}`")


_MAPPING_SUFFIX = re.compile(r"(_TRELLIS_|_SB_|_DFFLC|_LUT4|_CCU2C|_PFUMX|_L6MUX|\$CCU2).*$")


def _short(cell: str) -> str:
    """A cell name without the suffixes that technology mapping appends."""
    return _MAPPING_SUFFIX.sub("", cell)


def _hw_section(hw: dict) -> list[str]:
    rows = [r for r in hw["rows"] if "error" not in r]
    kinds = [k for k in CORE_KINDS.values() if any(r["kind"] == k.name for r in hw["rows"])]
    lines = ["## FPGA resources, Fmax and throughput (`spikeforge bench hw`)", ""]
    runs = hw.get("runs") or {}
    if len({(run["command"], run["date"]) for run in runs.values()}) > 1:
        lines += [f"Measured on a {hw['host_cpus']}-CPU host, each core kind by its own run "
                  f"(a change to one generator re-measures that core with `--kind`):", ""]
        for kind, run in sorted(runs.items()):
            lines += [f"* {kind.upper()}, {run['date']}: `{run['command']}`"]
        lines.append("")
    else:
        lines += [f"Measured {hw['date']} on a {hw['host_cpus']}-CPU host with:", "",
                  f"```sh\n{hw['command']}\n```", ""]
    tools = sorted({f"{tool}: {version}" for versions in hw["tools"].values()
                    for tool, version in versions.items()})
    lines += ["Tools: " + "; ".join(tools) + ".", ""]
    lines += ["Devices: " + "; ".join(f"`{t}` = {d}" for t, d in hw["devices"].items()) + ".",
              ""]
    lines += [
        "How the numbers are made: each core is generated (" + "; ".join(
            f"{k.name.upper()}: {k.description}" for k in kinds) + "), then synthesised "
        "inside a harness that registers every core port (inputs from a serial shift chain on "
        "one pin, outputs into an XOR compaction chain to one pin; three pins in all). "
        "Resource counts are the core module's alone (Yosys `stat` with the core's hierarchy "
        "kept); device utilisation comes from nextpnr and includes the harness "
        "(one flip-flop per port bit and one LUT per output bit). On ECP5, flip-flops that "
        "register a block RAM's output or a multiplier's operands or product are moved into "
        "the RAM's or multiplier's own registers before place and route, as vendor tools do "
        "(`hw/ecp5_registers.py`; Yosys does not) and the flip-flop counts are after that. "
        "**Fmax** is nextpnr's "
        "achieved frequency for the one clock `clk` (register to register; the pad paths are "
        "unconstrained and not part of it), with the clock constraint given to the "
        "timing-driven placer (" + ", ".join(
            f"{t}: {c:g} MHz" for t, c in hw["constraints_mhz"].items() if c) +
        ") and placement seeds " + _seeds_text(hw.get("seeds", [1])) + ". Throughput is "
        "Fmax × the neuron-timesteps of one beat (" +
        ", ".join(f"{k.name.upper()}: {_parallel(k)}" for k in kinds) + "; one beat per "
        "clock). `C = L` cores have constant tables, which Yosys folds into the logic (no "
        "shifter, no table ROM); `C > L` cores read their tables from ROM every beat, as a "
        "core whose weights are data does.", ""]
    checks = target_checks(rows)
    if checks:
        lines += ["### Targets", "",
                  "| target | requirement | core | measured | met | limited by |",
                  "|---|---|---|---|---|---|"]
        for c in checks:
            value = "does not fit" if c["fits"] is False else _fmt(c["value"], 1)
            by_seed = c["row"].get("fmax_by_seed") or {}
            if c["requirement"].startswith("Fmax") and len(by_seed) > 1:
                value += " (seeds: " + " / ".join(_fmt(f, 1) for f in by_seed.values()) + ")"
            limit = "" if c["met"] else (_fit_text(c["row"]) if c["fits"] is False
                                         else _path_text(c["row"]))
            lines.append(f"| {c['target']} | {c['requirement']} | {c['shape']} | {value} | "
                         f"{'yes' if c['met'] else '**no**'} | {limit} |")
        lines += ["", "The targets: CPSN at k = 8, L = 16 (any C); every PRF shift-add core "
                  "without DSP; the PRF speed and size targets of issue 13 (the demo core "
                  "C=64 L=4 P=1 in the demo's 10-bit, 3-digit format, C=16 L=4 at P = 1 and "
                  "P = 4, at P = 4 also in the demo format, the dsp core C=64 L=4 P=1); the "
                  "LIF core of issue 25 (C=64 L=4, shift decay: no DSP, >= 200 MHz). On the "
                  "iCE40 every k = 8 CPSN core and "
                  "every PRF core of the sweep is listed, so the largest one that fits is "
                  "there too.", ""]
    for kind in kinds:
        lines += _kind_section(hw, kind, [r for r in rows if r["kind"] == kind.name])
    failed = [r for r in hw["rows"] if "error" in r]
    if failed:
        lines += ["### Runs that failed", ""]
        lines += [f"* {r['target']} {r['kind']} {_shape(r)} {r['variant']}: "
                  f"{r['error'][:300]}" for r in failed]
        lines.append("")
    return lines


def _seeds_text(seeds: list[int]) -> str:
    if len(seeds) == 1:
        return f"{seeds[0]}"
    return (f"{seeds[0]} to {seeds[-1]}: Fmax is that of the fastest placement (from seed to "
            f"seed nextpnr's placement moves Fmax by up to about ten percent; the targets "
            f"table lists every seed)")


def _kind_section(hw: dict, kind, rows: list[dict]) -> list[str]:
    """Tables per target, the baseline ratios and the plots of one core kind."""
    title = _KIND_TITLES.get(kind.name, kind.name.upper())
    symbols = " | ".join(kind.symbols)
    lines = [f"### {title}", ""]
    for target in hw["devices"]:
        selected = [r for r in rows if r["target"] == target]
        if not selected:
            continue
        lines += [f"#### {kind.name.upper()} on {target}: {hw['devices'][target]}", "",
                  f"| {symbols} | datapath | LUTs | carry | FFs | BRAM | LUT RAM | DSP | "
                  f"DSP/{_parallel(kind)} | Fmax (MHz) | M neuron-steps/s | utilisation | "
                  "critical path |",
                  "|" + "--:|" * len(kind.axes) + "---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
                  "---|---|"]
        for r in selected:
            lines.append(
                "| " + " | ".join(str(r[a]) for a in kind.axes) +
                f" | {_label(r['variant'], kind.name)} | "
                f"{_fmt(r['logic_luts'])} | {_fmt(r['carry'])} | {_fmt(r['ffs'])} | "
                f"{r['bram']:g} | {_fmt(r['lutram'])} | {_fmt(r['dsp'])} | "
                f"{r['dsp_per_lane']:.3g} | {_fmt(r['fmax_mhz'], 1)} | "
                f"{_fmt(r['neuron_steps_per_s'] and r['neuron_steps_per_s'] / 1e6)} | "
                f"{_fit_text(r)} | {_path_text(r)} |")
        lines.append("")
    ratios = [q for q in hw["ratios"] if q.get("kind", "cpsn") == kind.name]
    if ratios:
        design = _label(kind.variants[0].name, kind.name)
        lines += [f"#### {kind.name.upper()}: baseline ÷ {design} (same run, same target and "
                  "shape)", "",
                  f"| target | {symbols} | baseline | LUTs | FFs | DSP | Fmax | throughput |",
                  "|---|" + "--:|" * len(kind.axes) + "---|--:|--:|--:|--:|--:|"]
        for q in ratios:
            dsp = next(r["dsp"] for r in rows if r["target"] == q["target"]
                       and r["variant"] == q["baseline"] and _shape(r) == _shape(q))
            base = next(r["dsp"] for r in rows if r["target"] == q["target"]
                        and r["variant"] == q["design"] and _shape(r) == _shape(q))
            fits = "" if q["baseline_fits"] is not False else " (does not fit)"
            lines.append(
                f"| {q['target']} | " + " | ".join(str(q[a]) for a in kind.axes) +
                f" | {_label(q['baseline'], kind.name)}{fits} | "
                f"{_ratio(q['logic_luts_ratio'])} | {_ratio(q['ffs_ratio'])} | "
                f"{dsp} vs {base} | {_ratio(q['fmax_mhz_ratio'])} | "
                f"{_ratio(q['neuron_steps_per_s_ratio'])} |")
        lines.append("")
    lines += _before_section(hw, kind, rows)
    lines += [f"#### {kind.name.upper()} plots", ""]
    lines += [f"![{kind.name.upper()}: {title_}](benchmarks/{_plot_file(kind.name, name)})"
              for _, title_, name in PLOTS]
    lines.append("")
    return lines


def _before_section(hw: dict, kind, rows: list[dict]) -> list[str]:
    """The run this kind's rows replaced, row by row beside the new one (matched by target,
    shape and datapath), so that a generator change shows what it changed."""
    before = (hw.get("before") or {}).get(kind.name)
    if not before:
        return []

    def key(row):
        return row["target"], tuple(row.get(a) for a in kind.axes), row["variant"]

    old = {key(r): r for r in before["rows"]}
    new = {key(r): r for r in rows}
    symbols = " | ".join(kind.symbols)
    lines = [f"#### {kind.name.upper()} before and now", "",
             f"Before: the run of {before['date']}, `{before['command']}` (seeds "
             f"{', '.join(map(str, before.get('seeds', [1])))}), the one this kind's runs "
             "replaced (`--keep-before` keeps it over later runs). "
             "Fmax is the best seed's; – where a side has no such core, no place and route, or "
             "the core does not fit.", "",
             f"| target | {symbols} | datapath | LUTs before | LUTs now | FFs before | FFs now "
             "| DSP before | DSP now | Fmax before | Fmax now | latency before | latency now |",
             "|---|" + "--:|" * len(kind.axes) + "---|" + "--:|" * 10]

    def cells(row, metric, digits=0):
        if row is None or "error" in row:
            return "–"
        if metric == "fmax_mhz" and row.get("fits") is False:
            return "does not fit"
        return _fmt(row.get(metric), digits)

    for k in list(new) + [k for k in old if k not in new]:
        a, b = old.get(k), new.get(k)
        target, shape, variant = k
        lines.append(
            f"| {target} | " + " | ".join(str(v) for v in shape) +
            f" | {_label(variant, kind.name)} | " + " | ".join(
                f"{cells(a, m, d)} | {cells(b, m, d)}" for m, d in
                (("logic_luts", 0), ("ffs", 0), ("dsp", 0), ("fmax_mhz", 1),
                 ("latency_cycles", 0))) + " |")
    lines.append("")
    return lines


def _ratio(value) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _cosim_section(cosim: dict) -> list[str]:
    load = (f" (load average {cosim['load_average']:g} before the run: the host was shared)"
            if cosim.get("load_average") else "")
    lines = ["## Verification throughput (`spikeforge bench cosim`)", "",
             f"Measured {cosim['date']} on a {cosim['host_cpus']}-CPU host{load} with:", "",
             f"```sh\n{cosim['command']}\n```", "",
             "The same regression under both simulators: " + ", ".join(
                 f"C={c['channels']} L={c['lanes']} k={c['order']} d={c['dilation']}"
                 + (" with membranes" if c["membrane_out"] else "")
                 for c in cosim["regression"])
             + f"; {cosim['samples']} samples of {cosim['steps']} time steps each, valid and "
             f"ready probability {cosim['valid_probability']:g}, every output beat checked "
             "against the golden integer model by the same scoreboard. *Loop* is the "
             "simulation loop alone; *end to end* adds setup (for Verilator, starting the "
             "simulator process; the cached build is not included, its time is listed "
             "apart).", "",
             "| simulator | jobs | beats | passed | loop beats/s | loop neuron-steps/s | "
             "end-to-end beats/s | end-to-end neuron-steps/s |",
             "|---|--:|--:|---|--:|--:|--:|--:|"]
    for mode, jobs in (("single", 1), ("parallel", cosim["jobs"])):
        for simulator, r in cosim[mode].items():
            lines.append(f"| {simulator} | {jobs} | {r['beats']:,} | "
                         f"{'yes' if r['passed'] else '**no**'} | "
                         f"{r['loop_beats_per_s']:,.0f} | {r['loop_neuron_steps_per_s']:,.0f} | "
                         f"{r['beats_per_s']:,.0f} | {r['neuron_steps_per_s']:,.0f} |")
    best = cosim["parallel"]["verilator"]["neuron_steps_per_s"]
    ratio = best / cosim["parallel"]["amaranth"]["neuron_steps_per_s"]
    lines += ["", f"Target: ≥ 100,000 neuron-timesteps verified per second on "
                  f"{cosim['jobs']} cores at L = 16 — measured {best:,.0f} end to end with "
                  f"Verilator ({'met' if best >= 1e5 else '**not met**'}); Verilator is "
                  f"{ratio:.0f}× the Amaranth simulator. Verilator builds (cached per "
                  f"design): " + ", ".join(f"{s:.1f} s" for s in cosim["verilator_build_s"])
              + ".", ""]
    if cosim.get("networks"):
        lines += _networks_section(cosim["networks"])
    return lines


def _rate_text(row: dict) -> str:
    runs = row.get("cycles_per_s_runs", [])
    if len(runs) < 2:
        return f"{row['cycles_per_s']:,}"
    return f"{row['cycles_per_s']:,} ({min(runs):,}–{max(runs):,}, {len(runs)} runs)"


def _networks_section(networks: dict) -> list[str]:
    jobs = networks["jobs"]
    lines = ["### Whole networks: the fast harness against cocotb", "",
             "`spikeforge cosim DIR` verifies a whole accelerator with the **fast harness** by "
             "default: a Verilog testbench (stimulus from a file, seeded random valid/ready "
             "inside the testbench, outputs logged to a file and compared with the integer "
             "model afterwards) under a C++ Verilator main, with no Python per cycle "
             "(`sim/harness.py`). The cocotb testbench stays for `--waves` and handshake "
             "debugging (`--harness cocotb`). Same samples, same stream probability "
             f"({networks['probability']:g}) in the same run; each fast row is a cold start (a "
             "fresh build directory: *total* includes the Verilator build); cocotb runs a few "
             "samples, its rate does not depend on their number. *cycles/s* is simulated "
             "clock cycles per second of simulation wall time, over all processes; a fast run "
             "shorter than a few seconds is repeated on the warm build and the median is shown, "
             "with the slowest and fastest run in brackets.", "",
             "| network | T | harness | processes | C++ | samples | agreement | cycles/sample "
             "| cycles/s | samples/s | build s | total s | speed-up |",
             "|---|--:|---|--:|---|--:|---|--:|--:|--:|--:|--:|--:|"]
    for name, entry in networks["workloads"].items():
        for key in [k for k in entry if k.startswith("fast_") and not k.endswith("speedup")] \
                + ["cocotb"]:
            r = entry[key]
            agreement = ("100 %" if r["class_agreement"] == r["logit_agreement"] == 1 else
                         f"class {100 * r['class_agreement']:.2f} %, logits "
                         f"{100 * r['logit_agreement']:.2f} %")
            speedup = entry.get(f"{key}_speedup")
            lines.append(f"| {name} ({', '.join(entry['layers'])}) | {entry['steps']:,} | "
                         f"{r['harness']} | {r['jobs']} | {r['optimisation'] or '-O0'} | "
                         f"{r['samples']} | {agreement} | {r['cycles_per_sample']:,.0f} | "
                         f"{_rate_text(r)} | {r['samples_per_s']:,} | {r['build_s']} | "
                         f"{r['total_s']} | {'' if speedup is None else f'{speedup}×'} |")
    lines.append("")
    demo = networks["workloads"].get("demo")
    if demo:
        best = max(demo[k]["cycles_per_s"] for k in demo
                   if k.startswith("fast_") and not k.endswith("speedup"))
        ratio = max(v for k, v in demo.items() if k.endswith("_speedup"))
        lines.append(f"Targets (issue 26): demo network ≥ 1,000,000 cycles/s — measured "
                     f"{best:,}, the median of its runs "
                     f"({'met' if best >= 1e6 else '**not met**'}); ≥ 40× the cocotb path — "
                     f"{ratio}× ({'met' if ratio >= 40 else '**not met**'}).")
    prf = networks["workloads"].get("prf_long")
    if prf:
        fastest = min(prf[k]["total_s"] for k in prf
                      if k.startswith("fast_") and not k.endswith("speedup"))
        lines.append(f"T = {prf['steps']:,} PRF network on {prf['fast_1']['samples']} samples "
                     f"in < 120 s with its build — {fastest} s "
                     f"({'met' if fastest < 120 else '**not met**'}).")
    return lines + [""]


def write_plots(hw: dict, directory) -> list[Path]:
    """One PNG per core kind and metric of :data:`PLOTS`: grouped bars per shape and
    datapath, one panel per target. A core that does not fit its device is marked instead of
    drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in CORE_KINDS.values():
        rows = [r for r in hw["rows"] if "error" not in r and r["kind"] == kind.name]
        colours = {v.name: f"C{n}" for n, v in enumerate(kind.variants)}
        for metric, title, name in PLOTS:
            if metric == "neuron_steps_per_s":
                title = f"{title} (Fmax × {_parallel(kind)})"
            targets = [t for t in hw["devices"]
                       if any(r["target"] == t and r.get(metric) is not None for r in rows)]
            if not targets:
                continue
            figure, axes = plt.subplots(1, len(targets), figsize=(5.5 * len(targets), 4.2),
                                        squeeze=False)
            for axis, target in zip(axes[0], targets):
                _plot_panel(axis, [r for r in rows if r["target"] == target], metric,
                            colours, kind.name)
                axis.set_title(target, fontsize=10)
                axis.set_ylabel(title, fontsize=9)
            figure.suptitle(f"{kind.name.upper()}: {title} (× = does not fit the device)",
                            fontsize=10)
            figure.tight_layout()
            path = directory / _plot_file(kind.name, name)
            figure.savefig(path, dpi=90, metadata={"Software": None})
            plt.close(figure)
            written.append(path)
    return written


def _plot_panel(axis, selected: list[dict], metric: str, colours: dict, kind: str) -> None:
    shapes = list(dict.fromkeys(_shape(r) for r in selected))
    variants = list(dict.fromkeys(r["variant"] for r in selected))
    width = 0.8 / len(variants)
    for n, variant in enumerate(variants):
        for m, shape in enumerate(shapes):
            row = next((r for r in selected
                        if r["variant"] == variant and _shape(r) == shape), None)
            if row is None:
                continue
            x = m + (n - (len(variants) - 1) / 2) * width
            value = row.get(metric) if row.get("fits") is not False else None
            if value is None and row.get("fits") is False:
                axis.text(x, 0, "×", ha="center", va="bottom", color=colours[variant],
                          fontsize=12, fontweight="bold")
            elif value is not None:
                axis.bar(x, value, width, color=colours[variant])
        axis.bar(0, 0, 0, color=colours[variant], label=_label(variant, kind))  # legend entry
    axis.legend(fontsize=8)
    axis.set_xticks(range(len(shapes)), [s.replace(" ", "\n") for s in shapes], fontsize=8)


def render(hw: dict | None, cosim: dict | None) -> str:
    lines = ["# Benchmarks", "",
             "Written by `spikeforge bench hw` and `spikeforge bench cosim` (see each section "
             "for the exact command); rerun them rather than editing this page. Raw results: "
             "[`benchmarks/hw.json`](benchmarks/hw.json), "
             "[`benchmarks/cosim.json`](benchmarks/cosim.json).", ""]
    if hw:
        lines += _hw_section(hw)
    if cosim:
        lines += _cosim_section(cosim)
    return "\n".join(lines).rstrip() + "\n"


def write_document(docs_dir) -> Path:
    """Render ``docs_dir/benchmarks.md`` from the JSON files in ``docs_dir/benchmarks``."""
    docs_dir = Path(docs_dir)
    data = docs_dir / "benchmarks"
    hw = json.loads((data / "hw.json").read_text()) if (data / "hw.json").is_file() else None
    cosim = (json.loads((data / "cosim.json").read_text())
             if (data / "cosim.json").is_file() else None)
    if hw:
        write_plots(hw, data)
    path = docs_dir / "benchmarks.md"
    path.write_text(render(hw, cosim))
    return path
