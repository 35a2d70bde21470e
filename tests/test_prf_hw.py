"""Amaranth-simulator tests of the PRF scan unit against the integer golden model."""

import re

import numpy as np
import pytest

from spikeforge.hw.cores import core_verilog
from spikeforge.hw.prf_tables import (coefficient_field, digit_layout, indexed_words, pack_tables,
                                      slot_codes, slot_positions, table_layout)
from spikeforge.hw.prf import LOOP_STAGES, PRFCore, prf_latency, prf_loop_depth
from spikeforge.hw.yosys import WORD_LEVEL, cell_counts
from spikeforge.sim.beats import random_samples
from spikeforge.sim.regression import PRF_REGIMES, random_prf_config


@pytest.mark.parametrize("mode", ["dsp", "shift_add"])
@pytest.mark.parametrize("parallelism", [1, 2, 4, 8])
def test_every_time_parallelism_is_bit_exact(mode, parallelism, rng, simulate_core):
    spikes = 0
    for regime in ("fast", "resonant_pi", "slow"):
        config = random_prf_config(rng, regime=regime, coef_mode=mode,
                                   time_parallelism=parallelism, membrane_out=True)
        samples = random_samples(config, rng, 3, max_steps=3 * parallelism + 5)
        _, _, expected = simulate_core(config, samples, rng, valid_probability=0.7,
                                       ready_probability=0.6)
        spikes += sum(bin(beat.data).count("1") for _, beat in expected)
    assert spikes, "no spikes at all: the comparison would miss threshold errors"


@pytest.mark.parametrize("regime", sorted(PRF_REGIMES))
def test_pole_regimes_with_channel_folding(regime, rng, simulate_core):
    config = random_prf_config(rng, regime=regime, lanes=2, membrane_out=True)
    samples = random_samples(config, rng, 2, max_steps=40)
    simulate_core(config, samples, rng, valid_probability=0.8, ready_probability=0.7)


def folded(config, groups):
    """``config`` with its channels repeated to ``groups`` beats per tile."""
    channels = config.lanes * groups
    return config.replace(channels=channels, **{
        name: np.resize(getattr(config, name), channels)
        for name in ("phi_re", "phi_im", "delta", "v_th")})


def test_state_memory_and_register_paths(rng, simulate_core):
    for lanes, groups in ((4, 1), (1, 2), (2, 8)):  # register, memory
        config = folded(random_prf_config(rng, regime="mixed", lanes=lanes,
                                          membrane_out=True), groups)
        simulate_core(config, random_samples(config, rng, 3, max_steps=20), rng,
                      valid_probability=0.5, ready_probability=0.5)


@pytest.mark.parametrize("mode", ["shift_add", "dsp"])
@pytest.mark.parametrize("groups", [1, 2, 3, 4, 5, 6, 8])
def test_state_update_pipeline_at_every_group_count(mode, groups, rng, simulate_core):
    """The C-slow state loop at every group count: G = 1 updates a register in one cycle;
    G >= 2 pipelines the update over min(S, G + 1) registers (dsp: min(S, max(G, 3))), so G
    runs below (with G + 1 registers the read is transparent to the write of the same cycle),
    equal to and above the loop depth.
    At full rate a group's beats are exactly G stages apart (the closest they get); gaps and
    backpressure move them apart and stall an update mid-loop. Short samples restart the
    groups with zero state at every phase."""
    config = folded(random_prf_config(rng, regime="resonant_pi", coef_mode=mode, lanes=2,
                                      time_parallelism=2, membrane_out=True), groups)
    depth = prf_loop_depth(config)
    forwarded = groups + 1 if mode == "shift_add" else max(groups, 3)
    assert depth == (1 if groups == 1 else min(LOOP_STAGES(config), forwarded))
    assert prf_latency(config) == core_latency(config)
    samples = random_samples(config, rng, 6, max_steps=9)
    for valid, ready in ((1.0, 1.0), (0.7, 0.6), (0.4, 0.9), (1.0, 0.3)):
        simulate_core(config, samples, rng, valid_probability=valid, ready_probability=ready)


def core_latency(config):
    return PRFCore(config).latency


@pytest.mark.parametrize("groups", [1, 3, 7])
def test_streams_one_tile_per_clock(groups, rng, simulate_core):
    config = folded(random_prf_config(rng, regime="fast", lanes=2, time_parallelism=4), groups)
    samples = random_samples(config, rng, 3, min_steps=16, max_steps=16)
    core, cycles, expected = simulate_core(config, samples, rng)
    assert cycles == len(expected) + core.latency


@pytest.mark.parametrize("mode", ["dsp", "shift_add"])
def test_shift_add_has_no_multiplier(mode, rng):
    config = random_prf_config(rng, regime="mixed", coef_mode=mode, time_parallelism=2,
                               lanes=2)
    cells = cell_counts({"prf.v": core_verilog(config, "prf", "baked")}, "prf", WORD_LEVEL)
    if mode == "shift_add":
        assert "$mul" not in cells, cells
    else:
        assert cells.get("$mul", 0) > 0, cells


@pytest.mark.parametrize("terms", [2, 3, 4])
def test_shift_add_words_store_every_digit_slot(terms, rng, simulate_core):
    """Every stored coefficient fills all ``csd_terms`` slots with digits of its own value
    (a short canonical form is split), so a baked core's digits need no enable; and such a
    core is bit-exact with no enable register in its Verilog."""
    config = random_prf_config(rng, regime="mixed", coef_mode="shift_add", csd_terms=terms,
                               lanes=2, time_parallelism=2, max_channels=8)
    config = folded(config, 4)
    for table in ("delta", "powers"):
        integer_width, _ = coefficient_field(config, table)
        field_width, per_word = table_layout(config, table)
        position_width = max(1, (integer_width - 1).bit_length())
        power_re, power_im = config.powers
        values = [int(d) for d in config.delta] if table == "delta" else [
            int(part[n, c]) for c in range(config.channels)
            for n in range(1, config.time_parallelism + 1) for part in (power_re, power_im)]
        stored = [(word >> (k * field_width)) & ((1 << field_width) - 1)
                  for word in pack_tables(config)[table] for k in range(per_word)]
        for value, code in zip(values, stored, strict=True):
            digits = [(code >> (n * (2 + position_width))) & ((1 << (2 + position_width)) - 1)
                      for n in range(terms)]
            signs = [{1: 1, 3: -1}.get(d >> position_width, 0) for d in digits]
            assert all(signs), (table, value, digits)
            total = sum(s << (d & ((1 << position_width) - 1)) for s, d in zip(signs, digits))
            assert total == value, (table, value, digits)
    verilog = core_verilog(config, "prf", "baked")
    assert not re.search(r"_n\d+_en", verilog), re.search(r"\S*_n\d+_en\S*", verilog)[0]
    simulate_core(config, random_samples(config, rng, 2, min_steps=8, max_steps=24), rng)


def test_baked_rom_holds_each_digits_index_among_its_slots_positions(rng, simulate_core):
    """A baked ``shift_add`` core's ROM holds, for each digit, its index among the positions
    its slot multiplexes between (no decoder between ROM and multiplexer); signs unchanged,
    the exported words keep positions; and such a core is bit-exact."""
    config = folded(random_prf_config(rng, regime="mixed", coef_mode="shift_add", csd_terms=3,
                                      lanes=2, time_parallelism=2, max_channels=8), 4)
    moved = 0
    for table in ("delta", "powers"):
        width, per_word = table_layout(config, table)
        position_width, digit_width = digit_layout(config, table)
        codes = slot_codes(config, table)
        positions = slot_positions(codes)
        words = indexed_words(config, table)
        assert len(words) == config.groups == len(pack_tables(config)[table])
        for (element, n), per_group in codes.items():
            shift = element * width + n * digit_width
            for word, (sign, position) in zip(words, per_group, strict=True):
                index = (word >> shift) & ((1 << position_width) - 1)
                assert (word >> (shift + position_width)) & 0b11 == sign
                if sign:
                    assert positions[(element, n)][index] == position, (table, element, n)
                    moved += index != position
    assert moved, "every index equals its position: the test shows nothing"
    simulate_core(config, random_samples(config, rng, 2, min_steps=8, max_steps=24), rng)


@pytest.mark.parametrize("mode", ["shift_add", "dsp"])
def test_input_products_at_the_ends_of_their_ranges(mode, rng, simulate_core):
    """With P > 1 each ``R(Λ^lag·drive)`` is summed in only the bits its operands' formats
    need (``hw/prf.py``). Poles at ``−(1 − 2^−f)`` (the most negative stable real part), Δ
    at the top of its format and inputs held at either end of their range put those
    products, the drive and the state at their extremes."""
    base = random_prf_config(rng, regime="resonant_pi", coef_mode=mode, lanes=2,
                             time_parallelism=4, csd_terms=3, coef_width=10,
                             input_width=6, state_frac_bits=8, membrane_out=True)
    channels = base.channels
    config = base.replace(phi_re=np.full(channels, 1 - (1 << base.coef_frac_bits)),
                          phi_im=np.zeros(channels, dtype=np.int64),
                          delta=np.full(channels, (1 << (base.delta_width - 1)) - 1),
                          state_width=None)
    lo, hi = config.input_range
    steps = np.arange(13)[:, None]
    samples = [np.full((13, channels), lo), np.full((13, channels), hi),
               np.where(steps % 2 == 0, lo, hi) * np.ones((1, channels), dtype=np.int64)]
    simulate_core(config, samples, rng, valid_probability=0.8, ready_probability=0.8)
