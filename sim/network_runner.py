"""Co-simulate a whole network accelerator under Verilator against the integer network.

:func:`run_network_cosim` verifies the Verilog text it is given (for ``spikeforge cosim`` the
``network.v`` that ``generate`` wrote, with its ``.hex`` tables) on quantised samples: every
output beat's class and logits must equal :class:`~spikeforge.golden.network_int.IntegerNetwork`'s.
With ``probes`` (a build with probe ports, :class:`~spikeforge.hw.network.NetworkAccelerator`)
every core's output spikes are checked too, so a mismatch is located at its first layer and
time step.
"""

import dataclasses

import numpy as np

from ..hw.generate import NETWORK_MODULE
from .network_beats import sample_traces
from .runner import build_verilog, fresh_run_dir, run_job

__all__ = ["NetworkCosimResult", "run_network_cosim"]


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
                      simulator: str = "verilator", log=None) -> NetworkCosimResult:
    """Run ``samples`` (quantised ``[T, features]`` integers) through the accelerator in
    ``verilog`` (module ``spikeforge_network``; ``tables``: ``.hex`` file name → text) with
    seeded random valid gaps and backpressure, and compare every output beat with the
    integer network. ``targets`` (labels) give the hardware's accuracy."""
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
