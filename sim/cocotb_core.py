"""cocotb testbench of a generated core (any neuron): driver, monitor and golden scoreboard.

The pytest wrappers and ``spikeforge cosim`` reach this module through
:func:`spikeforge.sim.runner.run_cosim`, which passes a job file in ``SPIKEFORGE_JOB``: the
configuration, the seed and the stimulus settings. Stimulus and expected beats are made here
from the same seeded code as the unit tests, so nothing large crosses the process boundary.
"""

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from ..hw.cores import config_from_json
from .beats import Beat, expected_beats, input_beats
from .runner import job_samples
from .scoreboard import Mismatch, Scoreboard


class StreamDriver:
    """Offers beats on an AXI4-Stream sink port, with seeded random gaps in ``tvalid``."""

    def __init__(self, dut, prefix: str, beats: list[Beat], rng, valid_probability: float):
        self.tdata = getattr(dut, f"{prefix}__tdata")
        self.tvalid = getattr(dut, f"{prefix}__tvalid")
        self.tready = getattr(dut, f"{prefix}__tready")
        self.tlast = getattr(dut, f"{prefix}__tlast")
        self.beats, self.rng, self.valid_probability = beats, rng, valid_probability
        self.sent = 0
        self.offering = False

    def drive(self):
        self.offering = self.sent < len(self.beats) and (
            self.valid_probability >= 1 or self.rng.random() < self.valid_probability)
        if self.offering:
            beat = self.beats[self.sent]
            self.tdata.value = beat.data
            self.tlast.value = beat.last
        self.tvalid.value = self.offering

    def observe(self):
        if self.offering and self.tready.value:
            self.sent += 1


class StreamMonitor:
    """Accepts beats from an AXI4-Stream source port, with seeded random ``tready`` backpressure."""

    def __init__(self, dut, prefix: str, rng, ready_probability: float, on_beat):
        self.tdata = getattr(dut, f"{prefix}__tdata")
        self.tvalid = getattr(dut, f"{prefix}__tvalid")
        self.tready = getattr(dut, f"{prefix}__tready")
        self.tlast = getattr(dut, f"{prefix}__tlast")
        self.tuser = getattr(dut, f"{prefix}__tuser", None)
        self.rng, self.ready_probability, self.on_beat = rng, ready_probability, on_beat
        self.ready = False

    def drive(self):
        self.ready = self.ready_probability >= 1 or self.rng.random() < self.ready_probability
        self.tready.value = self.ready

    def observe(self):
        if self.ready and self.tvalid.value:
            user = int(self.tuser.value) if self.tuser is not None else 0
            self.on_beat(Beat(int(self.tdata.value), bool(self.tlast.value), user))


async def start_and_reset(dut):
    """Start the 100 MHz clock and hold reset for two cycles with both streams idle."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.s_axis__tvalid.value = 0
    dut.m_axis__tready.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


@cocotb.test()
async def core_matches_golden_model(dut):
    job = json.loads(Path(os.environ["SPIKEFORGE_JOB"]).read_text())
    config = config_from_json(job["config"])
    seed = job["seed"]
    samples = job_samples(config, job)
    expected = expected_beats(config, samples)
    rng = np.random.default_rng([seed, 1])  # stream timing, independent of the stimulus
    board = Scoreboard(config, expected)
    driver = StreamDriver(dut, "s_axis", input_beats(config, samples), rng,
                          job["valid_probability"])
    monitor = StreamMonitor(dut, "m_axis", rng, job["ready_probability"], board.check)

    await start_and_reset(dut)

    result = {"seed": seed, "samples": len(samples), "beats": len(expected),
              "time_steps": int(sum(s.shape[0] for s in samples)), "mismatch": None}
    cycles = 0
    idle_limit = 100 + 10 * config.groups
    idle = 0
    start = time.perf_counter()
    try:
        while not board.done:
            await FallingEdge(dut.clk)
            driver.drive()
            monitor.drive()
            await ReadOnly()
            before = (driver.sent, board.checked)
            driver.observe()
            monitor.observe()
            cycles += 1
            idle = 0 if (driver.sent, board.checked) != before else idle + 1
            if idle > idle_limit:
                raise Mismatch(f"no transfer for {idle_limit} cycles: {driver.sent} of "
                               f"{len(driver.beats)} beats sent, {board.checked} of "
                               f"{len(expected)} received")
    except Mismatch as exc:
        result["mismatch"] = f"{exc} [seed {seed}]"
        raise Mismatch(result["mismatch"]) from None
    except Exception as exc:  # a broken testbench must not read as a pass
        result["mismatch"] = f"testbench error {type(exc).__name__}: {exc} [seed {seed}]"
        raise
    finally:
        result.update(cycles=cycles, checked=board.checked,
                      wall_s=time.perf_counter() - start)
        Path(job["result"]).write_text(json.dumps(result, indent=1))
