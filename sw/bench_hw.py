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

from ..hw.cpsn_config import CPSNConfig
from ..hw.generate import generate_core
from ..hw.synth import TARGETS, synth_core_dir, tool_versions

__all__ = ["Variant", "CoreKind", "CORE_KINDS", "Point", "PLANS", "run_points", "summarise"]


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
        per_lane: the shape axis that counts neurons computed in parallel (DSP per lane).
    """

    name: str
    axes: tuple[str, ...]
    variants: tuple[Variant, ...]
    generate: Callable[[dict, Variant, Path], dict]
    per_lane: str

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


CORE_KINDS = {
    "cpsn": CoreKind(
        "cpsn", ("channels", "lanes", "order"),
        (Variant("shift_add", "shift-add (mul-free)", {"arith": "shift_add"}),
         Variant("multiply", "multiplier (DSP)", {"arith": "multiply"}),
         Variant("multiply_lut", "multiplier (LUT)", {"arith": "multiply"}, dsp=False)),
        _generate_cpsn, "lanes"),
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


#: Sweeps. ``standard`` (about 20 minutes on 2 cores): on ECP5-25k, CPSN with 64 channels
#: over lanes L ∈ {4, 16} and order k ∈ {2, 8} in every variant, and the channel count
#: C ∈ {16, 64, 256} at (L = 16, k = 8); the multiplier baseline at (L = 16, k = 8), which
#: needs 128 DSPs, on the ECP5-85k; on the iCE40 UP5K, L ∈ {2, 4, 16}; xc7 synthesis counts
#: at (L = 16, k = 8). ``smoke``: one small core per family.
PLANS = {
    "standard": (
        _grid("cpsn", "ecp5-25k", [(64, 4, 2), (64, 4, 8), (64, 16, 2), (64, 16, 8)])
        + _grid("cpsn", "ecp5-25k", [(16, 16, 8), (256, 16, 8)], ["shift_add"])
        + _grid("cpsn", "ecp5-85k", [(64, 16, 8)], ["multiply"])
        + _grid("cpsn", "ice40-up5k", [(16, 2, 4), (16, 4, 8), (16, 16, 8)])
        + _grid("cpsn", "xc7", [(64, 16, 8)])
    ),
    "smoke": (
        _grid("cpsn", "ice40-up5k", [(4, 2, 2)], ["shift_add"])
        + _grid("cpsn", "ecp5-25k", [(4, 2, 2)], ["shift_add"])
        + _grid("cpsn", "xc7", [(4, 2, 2)], ["shift_add"])
    ),
}


def _run_point(point: Point, keep_dir: str | None) -> dict:
    core = CORE_KINDS[point.kind]
    variant = core.variant(point.variant)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spikeforge-bench-") as scratch:
        work = Path(keep_dir, point.name) if keep_dir else Path(scratch)
        core.generate(dict(point.shape), variant, work / "core")
        report = synth_core_dir(work / "core", point.target, work / "synth", dsp=variant.dsp)
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


def run_points(points: list[Point], *, jobs: int = 2, keep_dir=None,
               progress: Callable[[Point, dict], None] | None = None) -> list[dict]:
    """Synthesise every point (``jobs`` at a time); one row per point, in order.

    A point that fails (a tool error) gives a row with ``error`` set rather than ending the
    sweep; a core too large for its device gives ``fits = False`` and the utilisation.
    """
    rows = [None] * len(points)
    # Largest designs first, so that the slowest runs do not come last.
    order = sorted(range(len(points)), key=lambda n: -_cost(points[n]))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_run_point, points[n], str(keep_dir) if keep_dir else None): n
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
    lanes = dict(point.shape)[core.per_lane]
    row = {**_identity(point),
           "logic_luts": res["logic_luts"], "luts": res["luts"], "carry": res["carry"],
           "ffs": res["ffs"], "bram": res["bram"], "lutram": res["lutram"], "dsp": res["dsp"],
           "dsp_per_lane": res["dsp"] / lanes,
           "place_and_route": report["place_and_route"],
           "fits": report.get("fits"), "overflow": report.get("overflow"),
           "utilisation": report.get("utilisation"),
           "fmax_mhz": report.get("fmax_mhz"),
           "neuron_steps_per_s": report.get("neuron_steps_per_s"),
           "critical_path": report.get("critical_path"),
           "latency_cycles": report["core"].get("latency_cycles"),
           "seconds": report["seconds"]}
    return row


def summarise(rows: list[dict], plan: str, command: str) -> dict:
    """The benchmark document: rows, ratios against the first variant, tools and targets."""
    targets = sorted({r["target"] for r in rows})
    return {
        "plan": plan,
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "host_cpus": os.cpu_count(),
        "tools": {t: tool_versions(t) for t in targets},
        "devices": {t: TARGETS[t].device for t in targets},
        "constraints_mhz": {t: TARGETS[t].constraint_mhz for t in targets},
        "rows": rows,
        "ratios": ratios(rows),
    }


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
