"""Folding a network accelerator: how many lanes, MACs and spike accumulators each stage gets.

The accelerator is a dataflow pipeline, so its throughput is that of its slowest stage
(:func:`~spikeforge.hw.network.describe_network`); parallelism beyond what the slowest stage
can use costs logic and buys nothing. Two tools here:

* :func:`balance` (``generate``'s default folding): given the most parallelism allowed
  (``--macs``, ``--spike-parallel`` and the export's lanes), find the slowest stage at those
  settings, then give every stage the *least* parallelism that keeps it no slower than that
  stage (cores: lanes per layer; spike engines: one ``spike_parallel`` for all; the first
  engine: ``macs``). Throughput is unchanged, logic shrinks.
* :func:`fit` (``generate --fit TARGET``): search lanes × MACs × spike parallelism for the
  highest throughput (fewest typical cycles per time step) whose *estimated* resources fit
  the target with a margin, balanced as above. Resources are estimated per stage from a
  model calibrated on Yosys: each stage is synthesised (``synth_ecp5``, no place and route)
  at the smallest and the largest parallelism searched, and its logic, flip-flops and block
  RAMs are interpolated linearly in between (multipliers: exactly ``macs``). The calibration
  runs are cached by their Verilog's sha256 under ``build/fit-cache``, so a second ``--fit``
  of the same network costs no synthesis.

Cycle figures follow ``describe_network`` exactly (:func:`stage_cycles`; tested), at the
export's mean firing rates (``typical``) or with every input active (``worst``).
"""

import dataclasses
import hashlib
import json
import math
from pathlib import Path

from ..golden.network_int import IntegerNetwork

__all__ = ["relane", "divisors", "stage_cycles", "balance", "Folding", "fit", "FitError",
           "FIT_TARGETS", "calibrate", "estimate"]

#: Targets ``--fit`` knows: the synthesis target and the capacities compared with the estimate.
FIT_TARGETS = ("ecp5-25k", "ecp5-85k")
#: Most lanes a core is given by the search (a core's logic grows with its lanes).
MAX_LANES = 32
#: nextpnr's TRELLIS_COMB over the per-stage Yosys logic estimate (LUT4 + carry + 2 per
#: LUT-RAM cell), measured on two whole designs (docs/results.md, "Fitted to a device":
#: 16,240 / 14,091 = 1.15 and 22,825 / 19,196 = 1.19): the FIFOs, the synthesis harness's
#: registered ports, LUT-RAM and nextpnr's packing. The larger one is used.
NEXTPNR_LOGIC_FACTOR = 1.19
#: Spike engines' pipeline drain, MAC engine's (``_AccumulatorEngine.step_overhead``).
_DRAIN = {"spikes": 6, "values": 9}


class FitError(ValueError):
    """No folding fits the target, or the network cannot be folded; one line says why."""


def divisors(value: int, limit: int | None = None) -> list[int]:
    limit = value if limit is None else min(value, limit)
    return [d for d in range(1, limit + 1) if value % d == 0]


def relane(network: IntegerNetwork, lanes) -> IntegerNetwork:
    """``network`` with its cores' lanes replaced (``lanes``: layer name → lanes, or one
    number for every layer, the largest divisor of its channels not above it). Lanes only
    fold the stream: the integer results are the same."""
    if lanes is None:
        return network
    layers = []
    for layer in network.layers:
        wanted = lanes if isinstance(lanes, int) else lanes.get(layer.name)
        core = layer.core
        if wanted is not None:
            chosen = max(divisors(core.channels, wanted))
            if chosen != core.lanes:
                core = core.replace(lanes=chosen)
        layers.append(dataclasses.replace(layer, core=core) if core is not layer.core
                      else layer)
    return dataclasses.replace(network, layers=tuple(layers))


def _rate(activity, name):
    return (activity or {}).get(name, 0.5)


def stage_cycles(network: IntegerNetwork, *, lanes: dict, macs: int, spike_parallel: int,
                 activity: dict | None = None, worst: bool = False) -> dict[str, int]:
    """Cycles per time step of every stage (as ``describe_network``): ``lanes`` per layer,
    ``macs`` and ``spike_parallel`` as given to the accelerator (largest divisors used),
    ``activity`` layer → firing rate (missing: 0.5), ``worst``: every input active."""
    cycles = {}
    in_groups, previous = 1, None
    for index, layer in enumerate(network.layers):
        channels = layer.core.channels
        out_groups = channels // lanes[layer.name]
        synapse = layer.synapse
        inputs = synapse.inputs + (channels if layer.recurrent else 0)
        if index == 0:
            blocks = channels // max(divisors(channels, macs))
            per_step = blocks * (1 + inputs) + _DRAIN["values"]
            cycles[f"synapse_{layer.name}"] = max(2, per_step, out_groups)
        else:
            blocks = channels // max(divisors(channels, spike_parallel))
            active = inputs if worst else round(_rate(activity, previous) * inputs)
            per_step = blocks * (1 + active) + _DRAIN["spikes"]
            cycles[f"synapse_{layer.name}"] = max(in_groups + 1, per_step, out_groups)
        cycles[layer.name] = out_groups
        in_groups, previous = out_groups, layer.name
    inputs = network.readout.inputs
    active = inputs if worst else round(_rate(activity, previous) * inputs)
    cycles["readout"] = max(in_groups + 1, 1 + active + _DRAIN["spikes"])
    return cycles


@dataclasses.dataclass(frozen=True)
class Folding:
    """A folding: ``lanes`` per layer, ``macs``, ``spike_parallel`` (as used: divisors)."""

    lanes: dict
    macs: int
    spike_parallel: int

    def options(self) -> dict:
        return {"macs": self.macs, "spike_parallel": self.spike_parallel}


def _used(network, macs, spike_parallel):
    first = network.layers[0].core.channels
    later = [layer.core.channels for layer in network.layers[1:]]
    macs = max(divisors(first, macs))
    if later:
        spike_parallel = max(d for d in range(1, spike_parallel + 1)
                             if all(c % d == 0 for c in later))
    return macs, spike_parallel


def balance(network: IntegerNetwork, *, macs: int, spike_parallel: int, lanes=None,
            activity: dict | None = None) -> Folding:
    """The least parallelism per stage that keeps the throughput of the most parallel
    folding (``macs``, ``spike_parallel``, ``lanes``: per layer, one number, or None for
    the cores' own lanes) at the typical firing rates (see the module docstring)."""
    most = {layer.name: (layer.core.lanes if lanes is None else
                         max(divisors(layer.core.channels,
                                      lanes if isinstance(lanes, int) else
                                      lanes.get(layer.name, layer.core.lanes))))
            for layer in network.layers}
    macs, spike_parallel = _used(network, macs, spike_parallel)
    target = max(stage_cycles(network, lanes=most, macs=macs, spike_parallel=spike_parallel,
                              activity=activity).values())

    def slowest(lanes_, macs_, spike_):
        return max(stage_cycles(network, lanes=lanes_, macs=macs_, spike_parallel=spike_,
                                activity=activity).values())

    # the fewest MACs, then spike accumulators, then lanes per layer, that keep the target
    macs = min(d for d in divisors(network.layers[0].core.channels, macs)
               if slowest(most, d, spike_parallel) <= target)
    if len(network.layers) > 1:
        later = [layer.core.channels for layer in network.layers[1:]]
        spike_parallel = min(d for d in range(1, spike_parallel + 1)
                             if all(c % d == 0 for c in later)
                             and slowest(most, macs, d) <= target)
    chosen = dict(most)
    for layer in network.layers:
        for d in divisors(layer.core.channels, most[layer.name]):
            if slowest({**chosen, layer.name: d}, macs, spike_parallel) <= target:
                chosen[layer.name] = d
                break
    return Folding(chosen, macs, spike_parallel)


# --- resources -------------------------------------------------------------------------

def _cache_dir() -> Path:
    return Path("build") / "fit-cache"


def _stage_resources(stage, name: str, log=None) -> dict:
    """Yosys ``synth_ecp5`` cell classes of one stage component (cached by its Verilog)."""
    from .emit import verilog_text
    from .synth import _classify
    from .yosys import ECP5, cell_counts

    verilog = verilog_text(stage, name)
    key = hashlib.sha256(verilog.encode()).hexdigest()[:24]
    path = _cache_dir() / f"{name}-{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    if log:
        log(f"  calibrating {name} with Yosys (synth_ecp5)…")
    cells = cell_counts({f"{name}.v": verilog}, name, ECP5)
    counts = _classify("ecp5", cells)
    result = {k: counts[k] for k in ("logic_luts", "ffs", "bram", "dsp", "lutram")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return result


def _parallel_of(name: str, folding: Folding, network) -> int:
    """The parameter a stage's size grows with: lanes (cores), MACs, spike accumulators."""
    if name == "readout":
        return 1
    if name.startswith("synapse_"):
        first = network.layers[0].name
        return folding.macs if name == f"synapse_{first}" else folding.spike_parallel
    return folding.lanes[name]


def calibrate(network: IntegerNetwork, low: Folding, high: Folding, *, max_steps: int,
              log=None) -> dict:
    """``{stage: [(parallel, resources), (parallel, resources)]}``: every stage synthesised
    (Yosys ``synth_ecp5``) in the ``low`` and ``high`` foldings (the readout sized for
    ``max_steps``)."""
    from .network import NetworkAccelerator

    points = {}
    for folding in (low, high):
        accelerator = NetworkAccelerator(relane(network, folding.lanes), max_steps=max_steps,
                                         weight_storage="baked", **folding.options())
        accelerator._MustUse__silence = True  # only its stages are synthesised
        for name, stage in accelerator.stages.items():
            stage._MustUse__silence = True  # a cached stage is not elaborated again
            points.setdefault(name, []).append(
                (_parallel_of(name, folding, network), _stage_resources(stage, name, log)))
    return points


#: ECP5 DP16KD shapes (words, bits per word).
DP16KD_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def block_rams(words: int, width: int) -> int:
    """DP16KD blocks of a ``words`` × ``width`` ROM in its cheapest shape."""
    return min(-(-words // depth) * -(-width // bits) for depth, bits in DP16KD_SHAPES)


def _weight_rams(name: str, network, parallel: int) -> int | None:
    """Block RAMs of a synapse engine's weight table at ``parallel`` accumulators (its word
    holds ``parallel`` weights, its depth is blocks × inputs rounded up to a power of two)."""
    from .synapse import index_bits

    if not name.startswith("synapse_"):
        return None
    layer = next(l for l in network.layers if f"synapse_{l.name}" == name)
    outputs = layer.core.channels
    inputs = layer.synapse.inputs + (outputs if layer.recurrent else 0)
    parallel = max(divisors(outputs, parallel))
    return block_rams(outputs // parallel << index_bits(inputs),
                      parallel * layer.synapse.weight_width)


def estimate(points: dict, network, folding: Folding) -> dict:
    """Estimated resources of the accelerator in ``folding``: per stage, linear in its
    parallelism between the two calibration points; summed (FIFOs are not counted: the
    margin covers them). A synapse engine's block RAMs, which are not linear in its
    parallelism (the weight word's width and depth change together), follow the DP16KD
    count of its weight table (:func:`block_rams`) where that count is what Yosys mapped at
    both calibration points, else the line between them."""
    total = {"logic_luts": 0.0, "ffs": 0.0, "bram": 0.0, "dsp": 0.0, "lutram": 0.0}
    for name, ((p0, r0), (p1, r1)) in points.items():
        p = _parallel_of(name, folding, network)
        for key in total:
            if p1 == p0:
                value = r1[key]
            else:
                value = r0[key] + (r1[key] - r0[key]) * (p - p0) / (p1 - p0)
            if key == "bram" and _weight_rams(name, network, p0) == r0[key] and \
                    _weight_rams(name, network, p1) == r1[key]:
                value = _weight_rams(name, network, p)
            total[key] += max(0.0, value)
    total["dsp"] = float(folding.macs)
    return {k: math.ceil(v) for k, v in total.items()}


def _capacity(target: str) -> dict:
    from .synth import TARGETS

    if target not in FIT_TARGETS:
        raise FitError(f"--fit knows the targets {', '.join(FIT_TARGETS)}, not {target!r}")
    return {name: available for name, available, _ in TARGETS[target].capacity}


def fit(network: IntegerNetwork, target: str, *, max_steps: int, margin: float = 0.1,
        activity: dict | None = None, max_lanes: int = MAX_LANES, log=None) -> dict:
    """The highest-throughput balanced folding whose estimated logic (LUT4 + carry, and
    LUT-RAM counted as 2 LUT4 each, times :data:`NEXTPNR_LOGIC_FACTOR`), flip-flops and block
    RAMs stay within ``1 − margin`` of ``target``'s and whose multipliers fit. Returns
    ``{"folding", "estimate", "capacity", "cycles_per_step", "candidates"}``; raises
    :class:`FitError` when nothing fits."""
    if not 0 <= margin < 1:
        raise FitError(f"the fit margin must be in [0, 1), got {margin}")
    capacity = _capacity(target)
    first = network.layers[0].core.channels
    later = [layer.core.channels for layer in network.layers[1:]]
    lane_options = sorted({d for layer in network.layers
                           for d in divisors(layer.core.channels, max_lanes)})
    mac_options = divisors(first, capacity["dsp"])
    spike_options = [d for d in range(1, (min(later) if later else 1) + 1)
                     if all(c % d == 0 for c in later)]
    low = Folding({layer.name: 1 for layer in network.layers}, 1, 1)
    high = Folding({layer.name: max(divisors(layer.core.channels, max_lanes))
                    for layer in network.layers}, mac_options[-1], spike_options[-1])
    points = calibrate(network, low, high, max_steps=max_steps, log=log)
    best, candidates = None, 0
    seen = set()
    for lanes in lane_options:
        for macs in mac_options:
            for spike in spike_options:
                folding = balance(network, macs=macs, spike_parallel=spike, lanes=lanes,
                                  activity=activity)
                key = (tuple(sorted(folding.lanes.items())), folding.macs,
                       folding.spike_parallel)
                if key in seen:
                    continue
                seen.add(key)
                candidates += 1
                used = estimate(points, network, folding)
                logic = math.ceil((used["logic_luts"] + 2 * used["lutram"]) *
                                  NEXTPNR_LOGIC_FACTOR)
                if logic > (1 - margin) * capacity["logic_luts"] or \
                        used["ffs"] > (1 - margin) * capacity["ffs"] or \
                        used["bram"] > (1 - margin) * capacity["bram"] or \
                        used["dsp"] > capacity["dsp"]:
                    continue
                cycles = max(stage_cycles(network, lanes=folding.lanes, macs=folding.macs,
                                          spike_parallel=folding.spike_parallel,
                                          activity=activity).values())
                rank = (cycles, logic)
                if best is None or rank < best[0]:
                    best = (rank, folding, used)
    if best is None:
        raise FitError(f"no folding of this network fits {target} with a {100 * margin:.0f} % "
                       f"margin, even with 1 lane, 1 MAC and 1 spike accumulator per stage")
    (cycles, logic), folding, used = best
    return {"folding": folding, "estimate": {**used, "logic": logic}, "capacity": capacity,
            "margin": margin, "cycles_per_step": cycles, "candidates": candidates,
            "calibration": {name: [p for p, _ in pts] for name, pts in points.items()}}
