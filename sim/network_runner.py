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
from pathlib import Path

import numpy as np

from ..hw.generate import NETWORK_MODULE
from . import harness as fast
from .network_beats import sample_traces, step_beats
from .runner import build_verilog, default_build_root, fresh_run_dir, run_job

__all__ = ["HARNESSES", "NetworkCosimResult", "run_network_cosim"]

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
                      threads: int = 1, log=None) -> NetworkCosimResult:
    """Run ``samples`` (quantised ``[T, features]`` integers) through the accelerator in
    ``verilog`` (module ``spikeforge_network``; ``tables``: ``.hex`` file name → text) with
    seeded random valid gaps and backpressure, and compare every output beat with the
    integer network. ``targets`` (labels) give the hardware's accuracy. ``harness`` picks the
    testbench (``waves`` needs ``"cocotb"``); for the fast one ``optimisation`` (``-O0`` or
    ``-O2``; by default chosen from ``expected_cycles``, the run's estimated length) and
    ``threads`` (Verilator threads) set the build."""
    if harness not in HARNESSES:
        raise ValueError(f"harness must be one of {HARNESSES}, got {harness!r}")
    if harness == "fast" and not waves:
        return _run_fast(network, samples, verilog, tables, targets=targets, seed=seed,
                         valid_probability=valid_probability,
                         ready_probability=ready_probability, probes=probes,
                         build_root=build_root, run_dir=run_dir, simulator=simulator,
                         optimisation=optimisation, expected_cycles=expected_cycles,
                         threads=threads, log=log)
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


def _run_fast(network, samples, verilog, tables, *, targets, seed, valid_probability,
              ready_probability, probes, build_root, run_dir, simulator, optimisation,
              expected_cycles, threads, log) -> NetworkCosimResult:
    traces = sample_traces(network, samples)
    logits = np.concatenate([t.logits for t in traces])
    beats = step_beats(samples, network.in_features, network.input_width)
    if optimisation is None:
        optimisation = fast.choose_optimisation(expected_cycles or 0)
    build_root = Path(build_root or default_build_root())
    executable, build_s = fast.build_harness(verilog, NETWORK_MODULE, build_root,
                                             simulator=simulator, optimisation=optimisation,
                                             threads=threads, log=log)
    run_dir = fresh_run_dir(executable.parent, seed, run_dir)
    for name, text in tables.items():
        (run_dir / name).write_text(text)
    fast.write_stimulus(run_dir / "stimulus.hex", beats,
                        network.in_features * network.input_width)
    run = fast.run_harness(executable, run_dir, beats=len(beats), samples=len(samples),
                           seed=seed, valid_probability=valid_probability,
                           ready_probability=ready_probability)
    ports = fast.top_ports(verilog, NETWORK_MODULE)
    classes = network.readout.outputs
    width = ports["m_axis__tuser"].width // classes
    compared = fast.compare_outputs(fast.read_outputs(run_dir), logits, classes, width,
                                    targets)
    mismatch = compared["mismatch"]
    if run["status"] == "stalled" and mismatch is None:
        mismatch = (f"no transfer for 2000 cycles: {run['sent']} of {len(beats)} input beats "
                    f"sent, {run['received']} of {len(samples)} samples out")
    located = None
    if probes:
        located = fast.locate_probe_mismatch(
            run_dir, [(layer.name, layer.core.lanes) for layer in network.layers],
            {layer.name: [t.spikes[layer.name][:, 0, :] for t in traces]
             for layer in network.layers})
    if mismatch:
        mismatch += f" [seed {seed}]"
    return NetworkCosimResult(
        samples=len(samples), checked=compared["checked"],
        class_agreement=compared["class_agreement"],
        logit_agreement=compared["logit_agreement"],
        hardware_correct=compared["hardware_correct"], cycles=run["cycles"],
        first_output_cycle=run["first_output_cycle"], wall_s=run["wall_s"], build_s=build_s,
        mismatch=mismatch, first_mismatch_sample=compared["first_mismatch_sample"],
        layer_mismatch=located, build_dir=str(executable.parent))
