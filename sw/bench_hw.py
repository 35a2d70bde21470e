"""``spikeforge bench hw``: FPGA resources, Fmax and throughput over a sweep of core shapes.

Every point is generated, synthesised and (iCE40, ECP5) placed and routed by
:func:`spikeforge.hw.synth.synth_core_dir`, in the registered-port harness, so the numbers are
those of ``spikeforge synth``. Each shape is built in every variant of its core kind — for
CPSN the multiplication-free datapath and the multiplier baseline (multipliers in DSP blocks,
and built from LUTs) — in the same run, and the report compares them as ratios.

A core kind (:class:`CoreKind`) says how to build a point: its shape axes, its variants and a
generator. A second neuron plugs in by adding a kind to :data:`CORE_KINDS` and its points to a
plan (:data:`PLANS`); tables, plots and ratios are written per kind.
"""

import dataclasses
import json
import math
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

import numpy as np

from ..golden.cpsn_config import CPSNConfig
from ..golden.lif_config import LIFConfig
from ..hw.generate import generate_core
from ..golden.prf_config import PRFConfig
from ..hw.synth import TARGETS, synth_core_dir, tool_versions

__all__ = ["Variant", "CoreKind", "CORE_KINDS", "Point", "PLANS", "run_points", "summarise",
           "merge_kinds"]


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way of building a core kind.

    Members:
        name: short name used in tables and JSON.
        label: legend text.
        options: keyword arguments for the kind's generator.
        dsp: map multipliers to DSP blocks (``False``: build them from logic).
    """

    name: str
    label: str
    options: dict
    dsp: bool = True


@dataclasses.dataclass(frozen=True)
class CoreKind:
    """A core type in the sweep.

    Members:
        name: the neuron, as in configuration files.
        axes: shape parameters, in table column order.
        variants: the design first, then the baselines it is compared with.
        generate: ``generate(shape, variant, directory)`` writes a core as
            ``spikeforge generate`` does.
        per_lane: the shape axes whose product counts the neuron-timesteps computed in
            parallel, one beat per clock (DSP per lane; throughput is Fmax times it).
        symbols: short column names of the axes (tables and plot labels).
        description: how the sweep builds its cores, for the benchmarks page.
    """

    name: str
    axes: tuple[str, ...]
    variants: tuple[Variant, ...]
    generate: Callable[[dict, Variant, Path], dict]
    per_lane: tuple[str, ...]
    symbols: tuple[str, ...]
    description: str = ""

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise ValueError(f"{self.name} has no variant {name!r}; variants are "
                         f"{[v.name for v in self.variants]}")


def _generate_cpsn(shape: dict, variant: Variant, directory: Path) -> dict:
    """A CPSN core with random tables (fixed seed per shape); ``W = 8``, exponents in
    ``[−4, 0]``, ``d = 1``, spikes only (no membrane output)."""
    rng = np.random.default_rng([shape["channels"], shape["lanes"], shape["order"]])
    config = CPSNConfig.random(rng, channels=shape["channels"], lanes=shape["lanes"],
                               order=shape["order"])
    return generate_core(config, directory, **variant.options)


def prf_bench_config(shape: dict, coef_mode: str, *, coef_width: int = 16, csd_terms: int = 4,
                     state_frac_bits: int = 12) -> PRFConfig:
    """The PRF core of a sweep point: the formats of ``examples/prf.json`` (``W = 8`` with 4
    fraction bits, 16-bit coefficients and Δ, state on a 12-bit fraction grid, up to 4
    canonical signed digits per coefficient in ``shift_add``) and random poles like those of
    a trained layer (Δ log-uniform in [0.01, 0.3], Δ·θ uniform in [0, π/2], τ = 2), with a
    threshold per channel log-uniform between 0.1 % and 20 % of its proven state bound.

    The float neuron depends on the shape only (fixed seed), so ``dsp`` and ``shift_add``
    quantise the same poles. ``coef_width``, ``csd_terms``, ``state_frac_bits``: the demo's
    export format (10 bits, 3 digits, 8 fraction bits) in the ``shift_add_demo`` variant."""
    channels = shape["channels"]
    rng = np.random.default_rng([channels, shape["lanes"], shape["time_parallelism"]])
    log_delta = rng.uniform(math.log(1e-2), math.log(0.3), channels)
    angle = rng.uniform(0.0, math.pi / 2, channels)
    with np.errstate(divide="ignore"):
        log_theta = np.log(angle / np.exp(log_delta))  # θ = angle / Δ
    fraction = np.exp(rng.uniform(math.log(1e-3), math.log(0.2), channels))
    config = PRFConfig.from_float(
        log_delta, log_theta, 2.0, 1.0, coef_mode=coef_mode, csd_terms=csd_terms,
        coef_width=coef_width, delta_width=16, input_width=8, input_frac_bits=4,
        state_frac_bits=state_frac_bits,
        lanes=shape["lanes"], time_parallelism=shape["time_parallelism"])
    return config.replace(v_th=np.round(fraction * config.state_bound).astype(np.int64))


def _generate_prf(shape: dict, variant: Variant, directory: Path) -> dict:
    """A PRF core (:func:`prf_bench_config`), spikes only (no membrane output)."""
    return generate_core(prf_bench_config(shape, **variant.options), directory)


def lif_bench_config(shape: dict, decay_mode: str, *, shared: bool = True) -> LIFConfig:
    """The LIF core of a sweep point: LIF with the subtractive reset of snnTorch, spike on
    ``>``, ``W = 8`` inputs, a 16-bit membrane with 4 fraction bits, ``β = 1 − 2^−4`` (every
    decay form represents it exactly: ``shift`` one subtraction, ``csd`` the same two digits,
    ``multiply`` a multiplier) shared by all channels (``shared=False``: per channel, random
    ``k`` in 1 … 6), and a threshold per channel (random, fixed seed per shape)."""
    channels = shape["channels"]
    rng = np.random.default_rng([channels, shape["lanes"]])
    frac = 8
    beta = [(1 << frac) - (1 << (frac - 4))] if shared else \
        (1 << frac) - ((1 << frac) >> rng.integers(1, 7, size=channels))
    return LIFConfig(channels=channels, lanes=shape["lanes"], variant="lif", beta=beta,
                     threshold=rng.integers(200, 4000, size=channels), decay_frac_bits=frac,
                     decay_mode=decay_mode, reset="subtract", spike="gt", input_width=8,
                     state_width=16, state_frac_bits=4)


def _generate_lif(shape: dict, variant: Variant, directory: Path) -> dict:
    """A LIF core (:func:`lif_bench_config`), spikes only (no membrane output)."""
    return generate_core(lif_bench_config(shape, **variant.options), directory)


CORE_KINDS = {
    "cpsn": CoreKind(
        "cpsn", ("channels", "lanes", "order"),
        (Variant("shift_add", "shift-add (mul-free)", {"arith": "shift_add"}),
         Variant("multiply", "multiplier (DSP)", {"arith": "multiply"}),
         Variant("multiply_lut", "multiplier (LUT)", {"arith": "multiply"}, dsp=False)),
        _generate_cpsn, ("lanes",), ("C", "L", "k"),
        "random tables, `W = 8`, exponents in [−4, 0], `d = 1`, spikes only, tables baked "
        "into the Verilog; one beat is one time step of L channels"),
    "prf": CoreKind(
        "prf", ("channels", "lanes", "time_parallelism"),
        (Variant("shift_add", "shift-add (CSD, mul-free)", {"coef_mode": "shift_add"}),
         Variant("dsp", "multiplier (DSP)", {"coef_mode": "dsp"}),
         Variant("dsp_lut", "multiplier (LUT)", {"coef_mode": "dsp"}, dsp=False),
         Variant("shift_add_demo", "shift-add, demo format (10-bit, 3 CSD digits)",
                 {"coef_mode": "shift_add", "coef_width": 10, "csd_terms": 3,
                  "state_frac_bits": 8})),
        _generate_prf, ("lanes", "time_parallelism"), ("C", "L", "P"),
        "random poles of a trained layer's range (see `spikeforge.sw.bench_hw."
        "prf_bench_config`), `W = 8`, 16-bit coefficients, 18-bit state, spikes only, tables "
        "baked into the Verilog; one beat is a tile of P time steps of L channels"),
    "lif": CoreKind(
        "lif", ("channels", "lanes"),
        (Variant("shift", "shift decay (β = 1 − 2^−k, mul-free)", {"decay_mode": "shift"}),
         Variant("multiply", "multiplier decay (DSP)", {"decay_mode": "multiply"}),
         Variant("shift_per_channel", "shift decay, k per channel (ROM, barrel shifter)",
                 {"decay_mode": "shift", "shared": False})),
        _generate_lif, ("lanes",), ("C", "L"),
        "LIF, snnTorch's subtractive reset, spike on `>`, `W = 8`, 16-bit membrane, "
        "β = 1 − 2^−4 shared by all channels (or k per channel), thresholds per channel, "
        "spikes only, tables baked into the Verilog; one beat is one time step of L channels"),
}


@dataclasses.dataclass(frozen=True)
class Point:
    """One synthesis run: a core kind's shape, in one variant, on one target."""

    kind: str
    target: str
    shape: tuple[tuple[str, int], ...]
    variant: str

    @property
    def name(self) -> str:
        shape = "-".join(f"{k[0]}{v}" for k, v in self.shape)
        return f"{self.kind}-{shape}-{self.variant}-{self.target}"


def _grid(kind: str, target: str, shapes, variants=None) -> list[Point]:
    core = CORE_KINDS[kind]
    names = variants or [v.name for v in core.variants]
    return [Point(kind, target, tuple(zip(core.axes, shape)), name)
            for shape in shapes for name in names]


#: Sweeps. ``standard`` (about an hour with one job): on ECP5-25k, CPSN with 64 channels
#: over lanes L ∈ {4, 16} and order k ∈ {2, 8} in every variant, and the channel count
#: C ∈ {16, 64, 256} at (L = 16, k = 8); the multiplier baseline at (L = 16, k = 8), which
#: needs 128 DSPs, on the ECP5-85k; on the iCE40 UP5K, L ∈ {2, 4, 16}; xc7 synthesis counts
#: at (L = 16, k = 8). PRF on ECP5-25k with L = 4 lanes: P ∈ {1, 2, 4} time steps per beat
#: with constant coefficients (C = L), and channels folded over four beats (C = 16,
#: coefficients in ROM) at P = 1; the shift-add design and the multipliers in DSPs at every
#: shape, multipliers from LUTs at P = 1 only (at P = 4 the 92 multipliers, and at C = 16,
#: P = 2 even the shift-add design with its ROM-driven shifters, about 30,000 LUTs, exceed
#: the device); the P = 4 DSP baseline (92 DSPs) again on the ECP5-85k. Since the C-slow
#: PRF loop (issue 13): C = 16, L = 4, P = 4 folded (shift-add and DSP), the demo core
#: (C = 64, L = 4, P = 1, 10-bit coefficients with 3 CSD digits, ``shift_add_demo``) beside
#: the DSP design of the same shape, C = 16, L = 4, P = 4 also in the demo format (in the
#: 16-bit, 4-digit one it exceeds the ECP5-25k), and demo-format shift-add cores on the iCE40
#: UP5K, up to sizes that do not fit, so that the largest one that does is in the table.
#: ``smoke``: one small core per family.
PLANS = {
    "standard": (
        _grid("cpsn", "ecp5-25k", [(64, 4, 2), (64, 4, 8), (64, 16, 2), (64, 16, 8)])
        + _grid("cpsn", "ecp5-25k", [(16, 16, 8), (256, 16, 8)], ["shift_add"])
        + _grid("cpsn", "ecp5-85k", [(64, 16, 8)], ["multiply"])
        + _grid("cpsn", "ice40-up5k", [(16, 2, 4), (16, 4, 8), (16, 16, 8)])
        + _grid("cpsn", "xc7", [(64, 16, 8)])
        + _grid("prf", "ecp5-25k", [(4, 4, 1), (16, 4, 1)], ["shift_add", "dsp", "dsp_lut"])
        + _grid("prf", "ecp5-25k", [(4, 4, 2), (4, 4, 4), (16, 4, 4)], ["shift_add", "dsp"])
        + _grid("prf", "ecp5-25k", [(64, 4, 1)], ["shift_add_demo", "dsp"])
        + _grid("prf", "ecp5-25k", [(16, 4, 4)], ["shift_add_demo"])
        + _grid("prf", "ecp5-85k", [(4, 4, 4)], ["dsp"])
        + _grid("prf", "ice40-up5k", [(8, 2, 1), (16, 2, 1), (32, 2, 1), (64, 2, 1),
                                       (16, 4, 1)], ["shift_add_demo"])
        + _grid("lif", "ecp5-25k", [(64, 4)])
        + _grid("lif", "ecp5-25k", [(64, 16)], ["shift"])
    ),
    "smoke": (
        _grid("cpsn", "ice40-up5k", [(4, 2, 2)], ["shift_add"])
        + _grid("cpsn", "ecp5-25k", [(4, 2, 2)], ["shift_add"])
        + _grid("cpsn", "xc7", [(4, 2, 2)], ["shift_add"])
        + _grid("prf", "ecp5-25k", [(2, 1, 2)], ["shift_add"])
        + _grid("lif", "ecp5-25k", [(4, 2)], ["shift"])
    ),
}


def _run_point(point: Point, keep_dir: str | None, seeds=(1,)) -> dict:
    core = CORE_KINDS[point.kind]
    variant = core.variant(point.variant)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spikeforge-bench-") as scratch:
        work = Path(keep_dir, point.name) if keep_dir else Path(scratch)
        core.generate(dict(point.shape), variant, work / "core")
        report = synth_core_dir(work / "core", point.target, work / "synth", dsp=variant.dsp,
                                seeds=seeds)
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


def run_points(points: list[Point], *, jobs: int = 2, keep_dir=None, seeds=(1,),
               progress: Callable[[Point, dict], None] | None = None) -> list[dict]:
    """Synthesise every point (``jobs`` at a time); one row per point, in order.

    A point that fails (a tool error) gives a row with ``error`` set rather than ending the
    sweep; a core too large for its device gives ``fits = False`` and the utilisation.
    """
    rows = [None] * len(points)
    # Largest designs first, so that the slowest runs do not come last.
    order = sorted(range(len(points)), key=lambda n: -_cost(points[n]))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_run_point, points[n], str(keep_dir) if keep_dir else None,
                               tuple(seeds)): n
                   for n in order}
        for future in as_completed(futures):
            n = futures[future]
            point = points[n]
            try:
                report = future.result()
                row = _row(point, report)
            except Exception as exc:  # a tool failure is reported, the sweep goes on
                row = {**_identity(point), "error": f"{type(exc).__name__}: {exc}"[:2000]}
            rows[n] = row
            if progress:
                progress(point, row)
    return rows


def _cost(point: Point) -> float:
    """A rough size of a point's design: the product of its shape, doubled when
    multipliers are built from logic."""
    variant = CORE_KINDS[point.kind].variant(point.variant)
    return math.prod(v for _, v in point.shape) * (1 if variant.dsp else 2)


def _identity(point: Point) -> dict:
    return {"kind": point.kind, "target": point.target, "variant": point.variant,
            **dict(point.shape)}


def _row(point: Point, report: dict) -> dict:
    core = CORE_KINDS[point.kind]
    res = report["resources"]
    lanes = math.prod(dict(point.shape)[axis] for axis in core.per_lane)
    row = {**_identity(point),
           "logic_luts": res["logic_luts"], "luts": res["luts"], "carry": res["carry"],
           "ffs": res["ffs"], "bram": res["bram"], "lutram": res["lutram"], "dsp": res["dsp"],
           "dsp_per_lane": res["dsp"] / lanes,
           "place_and_route": report["place_and_route"],
           "fits": report.get("fits"), "overflow": report.get("overflow"),
           "unplaceable": report.get("unplaceable", False),
           "utilisation": report.get("utilisation"),
           "fmax_mhz": report.get("fmax_mhz"),
           "fmax_by_seed": report.get("fmax_by_seed"),
           "neuron_steps_per_s": report.get("neuron_steps_per_s"),
           "critical_path": report.get("critical_path"),
           "latency_cycles": report["core"].get("latency_cycles"),
           "seconds": report["seconds"]}
    return row


def summarise(rows: list[dict], plan: str, command: str, seeds=(1,)) -> dict:
    """The benchmark document: rows, ratios against the first variant, tools and targets;
    ``runs`` says, per core kind, which command measured it."""
    targets = sorted({r["target"] for r in rows})
    date = time.strftime("%Y-%m-%d")
    return {
        "plan": plan,
        "command": command,
        "seeds": list(seeds),
        "date": date,
        "runs": {kind: {"command": command, "date": date, "seeds": list(seeds)}
                 for kind in sorted({r["kind"] for r in rows})},
        "host_cpus": os.cpu_count(),
        "tools": {t: tool_versions(t) for t in targets},
        "devices": {t: TARGETS[t].device for t in targets},
        "constraints_mhz": {t: TARGETS[t].constraint_mhz for t in targets},
        "rows": rows,
        "ratios": ratios(rows),
    }


def merge_kinds(previous: dict, document: dict, *, keep_before: bool = False) -> dict:
    """``document``, a run of some core kinds, with ``previous``'s rows of every other kind
    (each kind keeps the run that measured it), so that a change to one core's generator
    re-measures that core only. ``before``: per re-measured kind, the run it replaces (its
    command, date, seeds and rows); with ``keep_before``, a kind that already has a
    ``before`` keeps it (a change measured over several runs stays compared with the run
    before it)."""
    measured = {r["kind"] for r in document["rows"]}
    runs = previous.get("runs") or {
        kind: {"command": previous["command"], "date": previous["date"],
               "seeds": previous.get("seeds", [1])}
        for kind in {r["kind"] for r in previous["rows"]}}
    merged = summarise(document["rows"] + [r for r in previous["rows"]
                                           if r["kind"] not in measured],
                       document["plan"], document["command"], document["seeds"])
    merged["runs"] = {**{k: run for k, run in runs.items() if k not in measured},
                      **document["runs"]}
    # The run each re-measured kind replaces stays beside it, so the change is visible.
    kept = previous.get("before", {})
    merged["before"] = {
        **{k: run for k, run in kept.items() if k not in measured or keep_before},
        **{k: {**runs[k], "rows": [r for r in previous["rows"] if r["kind"] == k]}
           for k in sorted(measured) if k in runs and not (keep_before and k in kept)}}
    return merged


def ratios(rows: list[dict]) -> list[dict]:
    """For each kind, target and shape: every baseline's numbers over the design's (the
    kind's first variant), measured in the same run. ``None`` where either side has no
    number (no place-and-route, does not fit, or zero)."""
    out = []
    for kind in CORE_KINDS.values():
        design = kind.variants[0].name
        index = {(r["target"], tuple(r.get(a) for a in kind.axes), r["variant"]): r
                 for r in rows if r["kind"] == kind.name and "error" not in r}
        for (target, shape, variant), row in index.items():
            base = index.get((target, shape, design))
            if variant == design or base is None:
                continue
            entry = {"kind": kind.name, "target": target, **dict(zip(kind.axes, shape)),
                     "baseline": variant, "design": design}
            for metric in ("logic_luts", "ffs", "dsp", "fmax_mhz", "neuron_steps_per_s"):
                a, b = row.get(metric), base.get(metric)
                usable = a is not None and b not in (None, 0) and row.get("fits") is not False \
                    and base.get("fits") is not False
                entry[f"{metric}_ratio"] = round(a / b, 3) if usable else None
            entry["baseline_fits"] = row.get("fits")
            out.append(entry)
    return out


def write_json(document: dict, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(document, indent=1) + "\n")
