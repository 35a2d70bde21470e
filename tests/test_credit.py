"""The credit-counted output buffer of the non-stalling pipelines (Amaranth simulator)."""

import gc

import pytest
from amaranth.sim import Simulator

from spikeforge.hw.credit import BUFFER_STORAGES, CreditBuffer


def run_pipeline(depth, offers, readies, storage):
    """Beats 0, 1, … offered per ``offers``, written ``depth − 2`` cycles after they are
    taken (a pipeline that never stalls, as long as a bubble-free stream allows), read per
    ``readies``. Returns the beats read, the cycle of each read, and the most beats ever
    taken and not yet read."""
    buffer = CreditBuffer(16, depth, copies=3, storage=storage)
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


storages = pytest.mark.parametrize("storage", BUFFER_STORAGES)


@storages
@pytest.mark.parametrize("depth", [1, 2, 5, 11, 17, 18])
@pytest.mark.parametrize("offer_p,ready_p", [(1.0, 0.3), (0.6, 0.6), (0.9, 0.95)])
def test_every_beat_comes_out_once_in_order(depth, offer_p, ready_p, storage, rng):
    cycles = 600
    offers = rng.random(cycles) < offer_p
    readies = rng.random(cycles) < ready_p
    read, _, outstanding = run_pipeline(depth, offers, readies, storage)
    assert read == list(range(len(read))), "a beat was dropped, duplicated or reordered"
    assert len(read) > cycles // 10
    assert outstanding <= depth


@storages
@pytest.mark.parametrize("depth", [1, 3, 11, 17])
def test_credits_fill_the_buffer_when_the_sink_stalls(depth, storage):
    cycles = 4 * depth + 10
    read, _, outstanding = run_pipeline(depth, [True] * cycles, [False] * cycles, storage)
    assert read == [] and outstanding == depth


@storages
@pytest.mark.parametrize("depth", [2, 5, 11, 18])
def test_streams_one_beat_per_clock(depth, storage):
    cycles = 100
    read, read_at, _ = run_pipeline(depth, [True] * cycles, [True] * cycles, storage)
    # Beat n is taken in cycle n, written in cycle n + depth − 2, readable one cycle later.
    assert read_at == [n + depth - 1 for n in range(len(read))]
    assert len(read) == cycles - depth + 1


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("width,depth,copies", [(0, 4, 1), (8, 0, 1), (8, 4, 0)])
def test_bad_parameters_are_refused(width, depth, copies):
    with pytest.raises(ValueError, match="must be >= 1"):
        CreditBuffer(width, depth, copies=copies)
    gc.collect()  # the unused half-built component warns now, under the filter above


@pytest.mark.parametrize("depth", [1, 2, 13, 19])
def test_ram_storage_drains_a_full_buffer_in_order(depth):
    """The sink stalls until every place is promised and written (the ring full), then
    reads with gaps: every beat comes out once, in order, and the input resumes."""
    cycles = 6 * depth + 40
    readies = [False] * (3 * depth) + [n % 3 != 1 for n in range(cycles - 3 * depth)]
    read, read_at, outstanding = run_pipeline(depth, [True] * cycles, readies, "ram")
    assert outstanding == depth
    assert read == list(range(len(read))) and len(read) > 2 * depth
    assert read_at[0] == 3 * depth


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_unknown_storage_is_refused():
    with pytest.raises(ValueError, match="storage must be one of registers, ram"):
        CreditBuffer(8, 4, storage="bram")
    gc.collect()
