"""cocotb testbench of a whole network accelerator: input driver, output scoreboard and, in a
build with probe ports, per-layer spike monitors that locate a mismatch.

:func:`spikeforge.sim.network_runner.run_network_cosim` passes a job file in
``SPIKEFORGE_JOB``: the seed, the stream settings and an ``.npz`` with the quantised samples,
the integer network's logits and (with probes) every layer's spikes.
"""

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly

from .cocotb_core import StreamDriver, start_and_reset
from .network_beats import readout_beat, step_beats, unpack_logits


class ProbeMonitor:
    """Checks one core's output transfers (a probe port pair) against the expected spikes and
    keeps the first difference: sample, time step and channels."""

    def __init__(self, dut, layer: str, lanes: int, spikes: list[np.ndarray]):
        self.layer = layer
        self.tdata = getattr(dut, f"probe_{layer}__tdata")
        self.tvalid = getattr(dut, f"probe_{layer}__tvalid")
        self.beats = step_beats(spikes, lanes, 1)
        self.positions = [(n, t, g) for n, s in enumerate(spikes) for t in range(s.shape[0])
                          for g in range(s.shape[1] // lanes)]
        self.lanes, self.seen, self.first = lanes, 0, None

    def observe(self):
        if not self.tvalid.value:
            return
        got = int(self.tdata.value)
        if self.first is None and self.seen < len(self.beats) and \
                got != self.beats[self.seen].data:
            sample, step, group = self.positions[self.seen]
            want = self.beats[self.seen].data
            channels = [group * self.lanes + lane for lane in range(self.lanes)
                        if (got ^ want) >> lane & 1]
            self.first = {"layer": self.layer, "sample": sample, "time_step": step,
                          "channels": channels}
        self.seen += 1


@cocotb.test()
async def network_matches_integer_model(dut):
    job = json.loads(Path(os.environ["SPIKEFORGE_JOB"]).read_text())
    seed, count = job["seed"], job["samples"]
    with np.load(job["expected"]) as data:
        samples = [data[f"x_{n}"] for n in range(count)]
        logits = data["logits"]
        probes = [ProbeMonitor(dut, p["layer"], p["lanes"],
                               [data[f"spikes_{p['layer']}_{n}"] for n in range(count)])
                  for p in job["probes"]]
    classes = job["classes"]
    width = len(dut.m_axis__tuser) // classes
    expected = [readout_beat(row, width) for row in logits]
    rng = np.random.default_rng([seed, 1])
    driver = StreamDriver(dut, "s_axis", step_beats(samples, samples[0].shape[1],
                                                    job["input_width"]),
                          rng, job["valid_probability"])
    targets = job["targets"]

    await start_and_reset(dut)

    result = {"samples": count, "checked": 0, "mismatch": None, "first_mismatch_sample": None,
              "layer_mismatch": None, "first_output_cycle": None}
    same_class = same_logits = correct = 0
    cycles = idle = 0
    idle_limit = 2000
    start = time.perf_counter()
    try:
        while result["checked"] < count:
            await FallingEdge(dut.clk)
            driver.drive()
            ready = job["ready_probability"] >= 1 or rng.random() < job["ready_probability"]
            dut.m_axis__tready.value = ready
            await ReadOnly()
            before = (driver.sent, result["checked"])
            driver.observe()
            for probe in probes:
                probe.observe()
            cycles += 1
            if ready and dut.m_axis__tvalid.value:
                n = result["checked"]
                want = expected[n]
                got_class, got_logits = int(dut.m_axis__tdata.value), int(dut.m_axis__tuser.value)
                same_class += got_class == want.data
                same_logits += got_logits == want.user
                if targets is not None:
                    correct += got_class == targets[n]
                if result["first_output_cycle"] is None:
                    result["first_output_cycle"] = cycles
                if result["mismatch"] is None and (got_class != want.data or
                                                   got_logits != want.user or
                                                   not dut.m_axis__tlast.value):
                    result["first_mismatch_sample"] = n
                    result["mismatch"] = (
                        f"sample {n}: class expected {want.data}, got {got_class}; logits "
                        f"expected {list(unpack_logits(want.user, classes, width))}, got "
                        f"{list(unpack_logits(got_logits, classes, width))}"
                        + ("" if dut.m_axis__tlast.value else "; tlast low"))
                result["checked"] += 1
            idle = 0 if (driver.sent, result["checked"]) != before else idle + 1
            if idle > idle_limit:
                result["mismatch"] = (f"no transfer for {idle_limit} cycles: {driver.sent} of "
                                      f"{len(driver.beats)} input beats sent, "
                                      f"{result['checked']} of {count} samples out")
                break
    except Exception as exc:  # a broken testbench must not read as a pass
        result["mismatch"] = f"testbench error {type(exc).__name__}: {exc}"
        raise
    finally:
        located = [p.first for p in probes if p.first is not None]
        result.update(cycles=cycles, wall_s=time.perf_counter() - start,
                      class_agreement=same_class / count, logit_agreement=same_logits / count,
                      hardware_correct=correct, layer_mismatch=located[0] if located else None)
        if result["mismatch"]:
            result["mismatch"] += f" [seed {seed}]"
        Path(job["result"]).write_text(json.dumps(result, indent=1))
    assert result["mismatch"] is None, result["mismatch"]
