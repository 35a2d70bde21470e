"""Absorbing fabric flip-flops into ECP5 block-RAM and multiplier registers: only where the
behaviour stays the same cycle for cycle."""

import copy

from spikeforge.hw.ecp5_registers import absorb_registers

CLK = 2


def ff(d, q, *, clock=CLK, ce=None, lsr=None, regset="RESET"):
    connections = {"CLK": [clock], "DI": [d], "Q": [q], "LSR": [lsr if lsr else "0"]}
    params = {"CEMUX": "CE" if ce else "1 ", "CLKMUX": "CLK", "GSR": "DISABLED",
              "LSRMUX": "LSR", "REGSET": regset}
    if ce:
        connections["CE"] = [ce]
    return {"type": "TRELLIS_FF", "parameters": params, "connections": connections,
            "port_directions": {"CLK": "input", "DI": "input", "LSR": "input", "CE": "input",
                                "Q": "output"}}


def lut(inputs, z):
    return {"type": "LUT4", "parameters": {"INIT": "0"},
            "connections": {"A": [inputs[0]], "Z": [z]},
            "port_directions": {"A": "input", "Z": "output"}}


def bram(outputs: dict, *, pdp=True, oce="0", rst="0"):
    """A DP16KD read on port B (pseudo dual port when ``pdp``); ``outputs`` maps DO pins to
    nets."""
    connections = {"CLKA": ["0"], "CLKB": [CLK], "OCEB": [oce], "RSTB": [rst],
                   "ADB5": [90], **{pin: [net] for pin, net in outputs.items()}}
    directions = {pin: "output" if pin.startswith("DO") else "input" for pin in connections}
    return {"type": "DP16KD",
            "parameters": {"DATA_WIDTH_A": "00000000000000000000000000100100" if pdp else
                           "00000000000000000000000000010010", "REGMODE_A": "NOREG",
                           "REGMODE_B": "NOREG", "CLKBMUX": "CLKB"},
            "connections": connections, "port_directions": directions}


def mult(a: list, b: list, p: list):
    connections = {**{f"A{n}": [bit] for n, bit in enumerate(a)},
                   **{f"B{n}": [bit] for n, bit in enumerate(b)},
                   **{f"P{n}": [bit] for n, bit in enumerate(p)}}
    directions = {pin: "output" if pin.startswith("P") else "input" for pin in connections}
    return {"type": "MULT18X18D", "parameters": {}, "connections": connections,
            "port_directions": directions}


def netlist(cells: dict, outputs=()):
    return {"modules": {"top": {"cells": cells, "ports": {
        "out": {"direction": "output", "bits": list(outputs)}}}}}


def test_block_ram_output_register_replaces_its_flip_flops():
    cells = {"ram": bram({"DOA0": 10, "DOA1": 11, "DOB3": 12}),
             "r0": ff(10, 20), "r1": ff(11, 21), "r2": ff(12, 22), "use": lut([20], 30)}
    design = netlist(cells, outputs=[21, 22])
    assert absorb_registers(design, "top") == {"bram_output": 3, "dsp_input": 0,
                                               "dsp_output": 0}
    ram = design["modules"]["top"]["cells"]["ram"]
    assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["connections"]["OCEB"] == ["1"]
    assert [ram["connections"][p] for p in ("DOA0", "DOA1", "DOB3")] == [[20], [21], [22]]
    assert set(design["modules"]["top"]["cells"]) == {"ram", "use"}


def test_block_ram_keeps_its_flip_flops_when_any_output_cannot_be_absorbed():
    cases = {
        "second user": {"ram": bram({"DOA0": 10, "DOA1": 11}), "r0": ff(10, 20),
                        "r1": ff(11, 21), "peek": lut([11], 31)},
        "clock enable": {"ram": bram({"DOA0": 10, "DOA1": 11}), "r0": ff(10, 20),
                         "r1": ff(11, 21, ce=40)},
        "reset": {"ram": bram({"DOA0": 10, "DOA1": 11}), "r0": ff(10, 20),
                  "r1": ff(11, 21, lsr=41)},
        "other clock": {"ram": bram({"DOA0": 10, "DOA1": 11}), "r0": ff(10, 20),
                        "r1": ff(11, 21, clock=3)},
        "set value": {"ram": bram({"DOA0": 10, "DOA1": 11}), "r0": ff(10, 20),
                      "r1": ff(11, 21, regset="SET")},
        "logic between": {"ram": bram({"DOA0": 10}), "l": lut([10], 15), "r0": ff(15, 20)},
        "port reset": {"ram": bram({"DOA0": 10}, rst=42), "r0": ff(10, 20)},
    }
    for case, cells in cases.items():
        design = netlist(cells, outputs=[20])
        before = copy.deepcopy(design)
        assert absorb_registers(design, "top")["bram_output"] == 0, case
        assert design == before, case


def test_true_dual_port_ram_absorbs_per_port():
    cells = {"ram": bram({"DOB0": 10, "DOB1": 11}, pdp=False), "r0": ff(10, 20),
             "r1": ff(11, 21)}
    design = netlist(cells, outputs=[20, 21])
    assert absorb_registers(design, "top")["bram_output"] == 2
    params = design["modules"]["top"]["cells"]["ram"]["parameters"]
    assert (params["REGMODE_A"], params["REGMODE_B"]) == ("NOREG", "OUTREG")


def test_multiplier_takes_its_operand_and_product_registers():
    # operand a: bits 50, 51 (51 sign-extended over two pins); operand b: 60, shared with a
    # second multiplier; product: 70, 71
    cells = {
        "a0": ff(1050, 50), "a1": ff(1051, 51), "b0": ff(1060, 60),
        "m": mult([50, 51, 51], [60, "0"], [70, 71]),
        "other": mult([80], [60], [81]),
        "p0": ff(70, 90), "p1": ff(71, 91), "x": ff(1080, 80), "q": ff(81, 92),
    }
    design = netlist(cells, outputs=[90, 91, 92])
    counts = absorb_registers(design, "top")
    cells = design["modules"]["top"]["cells"]
    m = cells["m"]
    assert m["parameters"]["REG_INPUTA_CLK"] == m["parameters"]["REG_INPUTB_CLK"] == "CLK0"
    assert m["parameters"]["REG_OUTPUT_CLK"] == "CLK0"
    assert m["connections"]["CLK0"] == [CLK] and m["connections"]["CE0"] == ["1"]
    assert [m["connections"][f"A{n}"] for n in range(3)] == [[1050], [1051], [1051]]
    assert m["connections"]["B0"] == [1060] and m["connections"]["B1"] == ["0"]
    assert [m["connections"][f"P{n}"] for n in range(2)] == [[90], [91]]
    # the shared operand register went only when both multipliers had taken it over
    assert "b0" not in cells and cells["other"]["connections"]["B0"] == [1060]
    assert counts == {"bram_output": 0, "dsp_input": 4, "dsp_output": 3}
    assert set(cells) == {"m", "other"}


def test_multiplier_inputs_stay_when_one_operand_is_not_a_plain_register():
    cells = {"a0": ff(1050, 50), "l": lut([7], 60), "m": mult([50], [60], [70]),
             "p0": ff(70, 90)}
    design = netlist(cells, outputs=[90])
    counts = absorb_registers(design, "top")
    m = design["modules"]["top"]["cells"]["m"]
    assert "REG_INPUTA_CLK" not in m["parameters"] and counts["dsp_input"] == 0
    assert m["parameters"]["REG_OUTPUT_CLK"] == "CLK0" and counts["dsp_output"] == 1
    assert "a0" in design["modules"]["top"]["cells"]


def test_constant_one_on_an_operand_keeps_the_inputs_combinational():
    cells = {"a0": ff(1050, 50), "b0": ff(1060, 60), "m": mult([50, "1"], [60], [70])}
    design = netlist(cells, outputs=[70])
    assert absorb_registers(design, "top") == {"bram_output": 0, "dsp_input": 0,
                                               "dsp_output": 0}


def test_multi_bit_synapse_engine_gets_ram_and_multiplier_registers(tmp_path, rng):
    """Through Yosys: the first layer's engine reads its weights from block RAM into
    multipliers; every RAM output and both operands and the product of every multiplier end
    in hardware registers, and no RAM is left without its output register."""
    import json
    import subprocess

    from spikeforge.hw.emit import verilog_text
    from spikeforge.hw.synapse import SynapseEngine
    from spikeforge.hw.yosys import yosys_executable

    weight = rng.integers(-128, 128, size=(32, 64))
    engine = SynapseEngine(weight, rng.integers(-50, 50, size=32), weight_width=8, shift=6,
                           out_width=8, input_kind="values", input_width=8, in_lanes=64,
                           input_bound=128, out_lanes=8, parallel=4)
    (tmp_path / "engine.v").write_text(verilog_text(engine, "engine"))
    run = subprocess.run([yosys_executable(), "-q", "-p", "read_verilog engine.v; "
                          "synth_ecp5 -top engine; write_json netlist.json"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    netlist = json.loads((tmp_path / "netlist.json").read_text())
    cells = netlist["modules"]["engine"]["cells"].values()
    assert sum(c["type"] == "DP16KD" for c in cells) >= 1
    assert sum(c["type"] == "MULT18X18D" for c in cells) == 4
    counts = absorb_registers(netlist, "engine")
    assert counts["bram_output"] >= 4 * 8 - 4 and counts["dsp_output"] >= 4 * 16 - 4, counts
    for cell in netlist["modules"]["engine"]["cells"].values():
        if cell["type"] == "DP16KD":
            assert "OUTREG" in (cell["parameters"]["REGMODE_A"],
                                cell["parameters"]["REGMODE_B"])
        if cell["type"] == "MULT18X18D":
            params = cell["parameters"]
            assert params["REG_INPUTA_CLK"] == params["REG_INPUTB_CLK"] == "CLK0"
            assert params["REG_OUTPUT_CLK"] == "CLK0"


def test_prf_dsp_state_loop_multipliers_get_every_register(tmp_path):
    """Through Yosys: in a ``dsp`` PRF core every multiplier (the drive's and the state
    loop's, whose operands are the state read register, or its copy, and a coefficient
    register, and whose product is registered at its own width) ends with both operand
    registers and its product register in the DSP block, at a full loop depth (G = 8) and
    at a short one (G = 4: the read register is the operand register)."""
    import json
    import subprocess

    from spikeforge.hw.cores import core_verilog
    from spikeforge.hw.prf import prf_loop_depth
    from spikeforge.hw.yosys import yosys_executable
    from spikeforge.sw.bench_hw import prf_bench_config

    for channels in (8, 4):
        config = prf_bench_config({"channels": channels, "lanes": 1, "time_parallelism": 1},
                                  "dsp")
        assert prf_loop_depth(config) == {8: 6, 4: 4}[channels]
        (tmp_path / "prf.v").write_text(core_verilog(config, "prf", "baked"))
        run = subprocess.run([yosys_executable(), "-q", "-p", "read_verilog prf.v; "
                              "synth_ecp5 -top prf; write_json netlist.json"], cwd=tmp_path,
                             capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        netlist = json.loads((tmp_path / "netlist.json").read_text())
        multipliers = [c for c in netlist["modules"]["prf"]["cells"].values()
                       if c["type"] == "MULT18X18D"]
        assert len(multipliers) == 5  # Δ·x, and a·u0, b·r0, b·u0, a·r0
        absorb_registers(netlist, "prf")
        for cell in multipliers:
            params = cell["parameters"]
            assert params.get("REG_INPUTA_CLK") == params.get("REG_INPUTB_CLK") == "CLK0"
            assert params.get("REG_OUTPUT_CLK") == "CLK0", channels
