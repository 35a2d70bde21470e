"""The credit-counted output buffer of the non-stalling pipelines (Amaranth simulator)."""

import gc

import pytest
from amaranth.sim import Simulator

from spikeforge.hw.credit import CreditBuffer


def run_pipeline(depth, offers, readies):
    """Beats 0, 1, … offered per ``offers``, written ``depth − 2`` cycles after they are
    taken (a pipeline that never stalls, as long as a bubble-free stream allows), read per
    ``readies``. Returns the beats read, the cycle of each read, and the most beats ever
    taken and not yet read."""
    buffer = CreditBuffer(16, depth, copies=3)
    latency = max(depth - 2, 0)
    read, read_at, outstanding = [], [], [0]

    async def testbench(ctx):
        in_flight = {}  # write cycle -> beat
        sent = taken = 0
        for cycle, (offer, ready) in enumerate(zip(offers, readies)):
            ctx.set(buffer.in_valid, bool(offer))
            take = bool(offer and ctx.get(buffer.in_ready))
            assert ctx.get(buffer.take) == (0b111 if take else 0), f"cycle {cycle}"
            if take:
                in_flight[cycle + latency] = sent
                sent += 1
            beat = in_flight.pop(cycle, None)
            ctx.set(buffer.w_en, beat is not None)
            ctx.set(buffer.w_data, beat or 0)
            ctx.set(buffer.r_en, bool(ready))
            if ready and ctx.get(buffer.r_rdy):
                read.append(ctx.get(buffer.r_data))
                read_at.append(cycle)
            taken += take
            outstanding[0] = max(outstanding[0], taken - len(read))
            await ctx.tick()

    sim = Simulator(buffer)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return read, read_at, outstanding[0]


@pytest.mark.parametrize("depth", [1, 2, 5, 11])
@pytest.mark.parametrize("offer_p,ready_p", [(1.0, 0.3), (0.6, 0.6), (0.9, 0.95)])
def test_every_beat_comes_out_once_in_order(depth, offer_p, ready_p, rng):
    cycles = 600
    offers = rng.random(cycles) < offer_p
    readies = rng.random(cycles) < ready_p
    read, _, outstanding = run_pipeline(depth, offers, readies)
    assert read == list(range(len(read))), "a beat was dropped, duplicated or reordered"
    assert len(read) > cycles // 10
    assert outstanding <= depth


@pytest.mark.parametrize("depth", [1, 3, 11])
def test_credits_fill_the_buffer_when_the_sink_stalls(depth):
    cycles = 4 * depth + 10
    read, _, outstanding = run_pipeline(depth, [True] * cycles, [False] * cycles)
    assert read == [] and outstanding == depth


@pytest.mark.parametrize("depth", [2, 5, 11])
def test_streams_one_beat_per_clock(depth):
    cycles = 100
    read, read_at, _ = run_pipeline(depth, [True] * cycles, [True] * cycles)
    # Beat n is taken in cycle n, written in cycle n + depth − 2, readable one cycle later.
    assert read_at == [n + depth - 1 for n in range(len(read))]
    assert len(read) == cycles - depth + 1


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("width,depth,copies", [(0, 4, 1), (8, 0, 1), (8, 4, 0)])
def test_bad_parameters_are_refused(width, depth, copies):
    with pytest.raises(ValueError, match="must be >= 1"):
        CreditBuffer(width, depth, copies=copies)
    gc.collect()  # the unused half-built component warns now, under the filter above
