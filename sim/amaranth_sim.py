"""Drive a stream core in the Amaranth simulator: fast unit tests without Verilator."""

import numpy as np
from amaranth.sim import Simulator

from .beats import Beat

__all__ = ["run_stream"]


def run_stream(core, beats: list[Beat], rng: np.random.Generator, *,
               valid_probability: float = 1.0, ready_probability: float = 1.0,
               expected_outputs: int | None = None, max_cycles: int = 100_000):
    """Feed ``beats`` to ``core.s_axis`` and collect ``core.m_axis`` transfers.

    Each cycle the source offers its next beat with ``valid_probability`` and the sink is ready
    with ``ready_probability`` (seeded through ``rng``). Returns ``(outputs, cycles)``.
    """
    expected_outputs = len(beats) if expected_outputs is None else expected_outputs
    s, o = core.s_axis, core.m_axis
    has_user = hasattr(o, "tuser")
    outputs: list[Beat] = []
    cycles = 0

    async def testbench(ctx):
        nonlocal cycles
        sent = 0
        while len(outputs) < expected_outputs:
            if cycles >= max_cycles:
                raise TimeoutError(f"no progress after {max_cycles} cycles: {sent} beats sent, "
                                   f"{len(outputs)} received")
            offer = sent < len(beats) and rng.random() < valid_probability
            if offer:
                ctx.set(s.tdata, beats[sent].data)
                ctx.set(s.tlast, beats[sent].last)
            ctx.set(s.tvalid, offer)
            ready = rng.random() < ready_probability
            ctx.set(o.tready, ready)
            sampled = await ctx.tick().sample(s.tready, o.tvalid, o.tdata, o.tlast,
                                              *((o.tuser,) if has_user else ()))
            in_ready, out_valid, data, last = sampled[2:6]
            cycles += 1
            if offer and in_ready:
                sent += 1
            if ready and out_valid:
                outputs.append(Beat(data, bool(last), sampled[6] if has_user else 0))

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return outputs, cycles
