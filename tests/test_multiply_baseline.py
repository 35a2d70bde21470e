"""The multiplier baseline (``arith='multiply'``): same streams, same results, real multipliers.

It is checked by the same golden scoreboard as the shift-add core, in the Amaranth simulator
and under Verilator, and Yosys must find multipliers in it (``$mul``, then DSP blocks) where
it finds none in the shift-add core.
"""

import gc
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from spikeforge.hw.cpsn import CPSNCore, cpsn_latency
from spikeforge.golden.cpsn_config import CPSNConfig
from spikeforge.hw.cpsn_tables import arith_tables, pack_tables, table_width
from spikeforge.hw.generate import ROM_MODULE, core_verilog, generate_core, table_file
from spikeforge.hw.yosys import ECP5, WORD_LEVEL, cell_counts
from spikeforge.sim import runner
from spikeforge.sim.amaranth_sim import run_stream
from spikeforge.sim.beats import expected_beats, input_beats, random_samples
from spikeforge.sim.scoreboard import Scoreboard

ICE40_DSP = "synth_ice40 -dsp -top {top}"
BUILD_ROOT = Path(__file__).resolve().parent.parent / "build" / "cosim"


def simulate(config, samples, rng, **probabilities):
    core = CPSNCore(config, arith="multiply")
    outputs, cycles = run_stream(core, input_beats(config, samples), rng, **probabilities)
    board = Scoreboard(config, expected_beats(config, samples))
    for beat in outputs:
        board.check(beat)
    assert board.done
    return core, cycles


def test_weight_table_is_the_signed_power_of_two(rng):
    config = CPSNConfig.random(rng, channels=6, lanes=3, order=4, exp_min=-3, exp_max=2)
    assert arith_tables("multiply") == ("weights", "bias")
    width, per_word = table_width(config, "weights")
    assert (width, per_word) == (config.shift_max + 2, 3 * 4)
    words = pack_tables(config, "multiply")
    assert set(words) == {"weights", "bias"} and words["bias"] == pack_tables(config)["bias"]
    for channel in range(config.channels):
        group, lane = divmod(channel, config.lanes)
        for i in range(config.order):
            code = (words["weights"][group] >> ((lane * config.order + i) * width)) & (
                (1 << width) - 1)
            value = code - (1 << width) if code >> (width - 1) else code
            expected = config.signs[channel, i] * 2 ** (config.exponents[channel, i]
                                                        - config.exp_min)
            assert value == expected, (channel, i)


def test_extreme_weights_fit_the_weight_width(rng):
    config = CPSNConfig.random(rng, channels=2, lanes=2, order=2, exp_min=-2, exp_max=3)
    config = config.replace(signs=np.array([[-1, 1], [1, -1]]),
                            exponents=np.full((2, 2), config.exp_max))
    width, _ = table_width(config, "weights")
    word = pack_tables(config, "multiply")["weights"][0]
    fields = [(word >> (n * width)) & ((1 << width) - 1) for n in range(4)]
    assert fields == [(1 << width) - 32, 32, 32, (1 << width) - 32]  # ∓2^5 in 7 bits


@pytest.mark.parametrize("channels,lanes,order,dilation", [
    (4, 4, 3, 1), (8, 2, 4, 2), (6, 3, 1, 1), (4, 1, 5, 3), (16, 4, 2, 7),
])
def test_baseline_matches_integer_model_under_backpressure(channels, lanes, order, dilation,
                                                           rng):
    config = CPSNConfig.random(rng, channels=channels, lanes=lanes, order=order,
                               dilation=dilation, membrane_out=True, input_width=6,
                               exp_min=-3, exp_max=1)
    samples = random_samples(config, rng, 4, max_steps=12)
    simulate(config, samples, rng, valid_probability=0.7, ready_probability=0.6)


def test_baseline_has_the_shift_add_latency_and_throughput(rng):
    config = CPSNConfig.random(rng, channels=8, lanes=2, order=4, dilation=2)
    samples = random_samples(config, rng, 3, min_steps=10, max_steps=10)
    core, cycles = simulate(config, samples, rng)
    assert core.latency == cpsn_latency(config)  # the shift-add core's latency
    assert cycles == 3 * 10 * config.groups + core.latency


def test_baseline_inputs_at_extremes(rng):
    config = CPSNConfig.random(rng, channels=4, lanes=4, order=3, input_width=8, exp_min=-5,
                               exp_max=3, membrane_out=True)
    config = config.replace(signs=rng.choice([-1, 1], size=config.signs.shape),
                            exponents=np.full_like(config.exponents, config.exp_max))
    lo, hi = config.input_range
    samples = [np.full((6, 4), lo), np.full((6, 4), hi)]
    simulate(config, samples, rng)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_arith_is_validated(rng):
    config = CPSNConfig.random(rng, channels=4, lanes=2, order=2)
    with pytest.raises(ValueError, match="arith must be one of"):
        CPSNCore(config, arith="booth")
    with pytest.raises(ValueError, match=r"tables \('weights', 'bias'\)"):
        CPSNCore(config, arith="multiply", weight_storage="file",
                 init_files={t: f"{t}.hex" for t in ("signs", "shifts", "bias")})
    gc.collect()  # the half-built cores warn that they were never elaborated: here, filtered


def test_generate_writes_the_baseline(tmp_path, rng):
    config = CPSNConfig.random(rng, channels=8, lanes=4, order=3)
    description = generate_core(config, tmp_path, weight_storage="file", arith="multiply")
    assert description["arith"] == "multiply"
    assert description["multipliers"] == 4 * 3
    assert set(description["tables"]) == {"weights", "bias"}
    assert sorted(description["files"]) == sorted(
        ["cpsn_core.v", ROM_MODULE, "cpsn_core_weights.hex", "cpsn_core_bias.hex"])
    assert '"cpsn_core_weights.hex"' in (tmp_path / "cpsn_core.v").read_text()
    assert json.loads((tmp_path / "cpsn_core.json").read_text())["arith"] == "multiply"


def _sources(config, arith, storage):
    sources = {"cpsn.v": core_verilog(config, "cpsn", storage, arith=arith)}
    if storage == "file":
        sources[ROM_MODULE] = (resources.files("spikeforge.hw") / "verilog" / ROM_MODULE
                               ).read_text()
        for table, words in pack_tables(config, arith).items():
            width, per_word = table_width(config, table)
            sources[table_file("cpsn", table)] = "".join(
                f"{word:0{-(-width * per_word // 4)}x}\n" for word in words)
    return sources


@pytest.mark.parametrize("storage", ["baked", "file"])
def test_baseline_synthesises_to_multipliers_and_shift_add_does_not(storage, rng):
    config = CPSNConfig.random(rng, channels=8, lanes=2, order=3, dilation=2)
    taps = config.lanes * config.order
    baseline = _sources(config, "multiply", storage)
    shift_add = _sources(config, "shift_add", storage)
    assert cell_counts(baseline, "cpsn", WORD_LEVEL).get("$mul") == taps
    assert cell_counts(baseline, "cpsn", ECP5).get("MULT18X18D") == taps
    assert cell_counts(baseline, "cpsn", ICE40_DSP).get("SB_MAC16") == taps
    assert "$mul" not in cell_counts(shift_add, "cpsn", WORD_LEVEL)
    assert "SB_MAC16" not in cell_counts(shift_add, "cpsn", ICE40_DSP)


def test_baseline_cosimulates_under_verilator(seed):
    """The Verilator run goes through the shared runner and cocotb scoreboard."""
    config = CPSNConfig.random(np.random.default_rng(seed), channels=12, lanes=4, order=5,
                               dilation=2, membrane_out=True)
    result = runner.run_cosim(config, seed=seed, samples=6, max_steps=20,
                              weight_storage="file", build_root=BUILD_ROOT, arith="multiply")
    assert result.mismatch is None, result.mismatch
    assert result.checked == result.beats == result.time_steps * config.groups
    verilated = Path(result.build_dir, "src", f"{runner.CORE_NAME}.v").read_text()
    assert verilated == core_verilog(config, runner.CORE_NAME, "file", arith="multiply")
