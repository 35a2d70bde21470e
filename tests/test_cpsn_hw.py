"""Amaranth-simulator tests of the CPSN datapath and its pieces (fast; no Verilator)."""

import gc

import pytest
from importlib import resources

from amaranth.sim import Simulator

from spikeforge.hw.adder_tree import PipelinedAdderTree, tree_levels
from spikeforge.golden.cpsn_config import CPSNConfig
from spikeforge.hw.delay import TransferDelay
from spikeforge.hw.cpsn_tables import pack_tables, table_width
from spikeforge.hw.generate import ROM_MODULE, core_verilog, table_file
from spikeforge.hw.yosys import ECP5, WORD_LEVEL, cell_counts
from spikeforge.sim.beats import expected_beats, random_samples
from spikeforge.sim.scoreboard import Mismatch, Scoreboard


def run_simulation(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("depth,clearable", [(0, False), (1, False), (2, False), (5, False),
                                             (0, True), (1, True)])
def test_transfer_delay_counts_enabled_cycles(depth, clearable, rng):
    """The output is the input of ``depth`` enabled cycles earlier; ``clear`` empties the
    line (zeros) whether or not the cycle is enabled."""
    line = TransferDelay(8, depth, clearable=clearable)
    steps = [(int(rng.integers(1, 256)), bool(rng.random() < 0.6),
              clearable and bool(rng.random() < 0.15)) for _ in range(60)]
    seen = []

    async def testbench(ctx):
        for value, enable, clear in steps:
            ctx.set(line.i, value)
            ctx.set(line.en, enable)
            if clearable:
                ctx.set(line.clear, clear)
            await ctx.tick()
            seen.append(ctx.get(line.o))

    run_simulation(line, testbench)
    history = [None] * (depth + 1)  # what the line holds, newest first; None: not written
    for cycle, ((value, enable, clear), got) in enumerate(zip(steps, seen)):
        if clear:
            history = [0] * (depth + 1)
        elif enable:
            history = [value] + history[:-1]
        if history[-1] is not None:
            assert got == history[-1], f"cycle {cycle}"


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_transfer_delay_refuses_to_clear_a_memory():
    with pytest.raises(ValueError, match="cannot be cleared"):
        TransferDelay(8, 2, clearable=True)
    gc.collect()  # the unused half-built component warns now, under the filter above


@pytest.mark.parametrize("count", [2, 3, 5, 9])
def test_adder_tree_is_exact_and_pipelined(count, rng):
    widths = [int(w) for w in rng.integers(3, 10, size=count)]
    tree = PipelinedAdderTree(widths, max(widths) + 4)
    assert tree.latency == tree_levels(count)
    vectors = [[int(rng.integers(-(1 << (w - 1)), 1 << (w - 1))) for w in widths]
               for _ in range(20)]
    sums = []

    async def testbench(ctx):
        ctx.set(tree.en, 1)
        for vector in vectors + [[0] * count] * tree.latency:
            for n, value in enumerate(vector):
                ctx.set(getattr(tree.operands, f"x{n}"), value)
            await ctx.tick()
            sums.append(ctx.get(tree.sum))

    run_simulation(tree, testbench)
    assert sums[tree.latency - 1:tree.latency - 1 + len(vectors)] == [sum(v) for v in vectors]


# Tap registers cleared at a sample's start (d·G ≤ 2: (4, 4, 3, 1) with constant tables,
# (4, 4, 4, 2) with a two-register line, (8, 4, 4, 1) with tables in ROM) and taps in memories
# masked by the step count (the others). With 6-bit inputs a delay line holds 6 lanes, so the
# L = 8 cores split each tap into two lines of 6 and 2 lanes.
@pytest.mark.parametrize("channels,lanes,order,dilation", [
    (4, 4, 3, 1), (4, 4, 4, 2), (8, 4, 4, 1), (8, 2, 4, 2), (6, 3, 1, 1), (4, 1, 5, 3),
    (16, 4, 2, 7), (16, 8, 3, 1), (8, 8, 2, 3), (24, 8, 3, 2),
])
def test_core_matches_integer_model_under_backpressure(channels, lanes, order, dilation, rng,
                                                       simulate_core):
    config = CPSNConfig.random(rng, channels=channels, lanes=lanes, order=order,
                               dilation=dilation, membrane_out=True, input_width=6,
                               exp_min=-3, exp_max=1)
    samples = random_samples(config, rng, 4, max_steps=12)
    simulate_core(config, samples, rng, valid_probability=0.7, ready_probability=0.6)


def test_core_streams_one_beat_per_clock(rng, simulate_core):
    config = CPSNConfig.random(rng, channels=8, lanes=2, order=4, dilation=2)
    samples = random_samples(config, rng, 3, min_steps=10, max_steps=10)
    core, cycles, _ = simulate_core(config, samples, rng)
    beats = 3 * 10 * config.groups
    assert cycles == beats + core.latency, "bubbles in the stream or a changed latency"


def test_scoreboard_reports_position_and_values(rng):
    config = CPSNConfig.random(rng, channels=4, lanes=2, order=2, membrane_out=True)
    samples = random_samples(config, rng, 1, min_steps=3, max_steps=3)
    expected = expected_beats(config, samples)
    board = Scoreboard(config, expected)
    board.check(expected[0][1])
    position, want = expected[1]
    wrong = type(want)(want.data ^ 0b10, want.last, want.user)
    with pytest.raises(Mismatch, match=rf"sample 0, group {position.group}\), time step "
                                        rf"{position.step}, channel {position.group * 2 + 1}"):
        board.check(wrong)


@pytest.mark.parametrize("channels,lanes,storage", [(8, 8, "baked"), (32, 4, "baked"),
                                                   (16, 4, "file")])
def test_synthesised_netlist_has_no_multiplier(channels, lanes, storage, rng):
    config = CPSNConfig.random(rng, channels=channels, lanes=lanes, order=8, dilation=2,
                               membrane_out=True)
    sources = {"cpsn.v": core_verilog(config, "cpsn", storage)}
    if storage == "file":
        sources[ROM_MODULE] = (resources.files("spikeforge.hw") / "verilog" / ROM_MODULE
                               ).read_text()
        for table, words in pack_tables(config).items():
            width, per_word = table_width(config, table)
            sources[table_file("cpsn", table)] = "".join(
                f"{word:0{-(-width * per_word // 4)}x}\n" for word in words)
    word_level = cell_counts(sources, "cpsn", WORD_LEVEL)
    assert "$mul" not in word_level, word_level
    constant_tables = storage == "baked" and config.groups == 1  # shifts fold into wiring
    assert constant_tables or word_level.get("$shl", 0) > 0, word_level
    mapped = cell_counts(sources, "cpsn", ECP5)
    assert "MULT18X18D" not in mapped and "ALU54B" not in mapped, mapped
