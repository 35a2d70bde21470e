"""Reports that cannot lie (issue 27): every field a later stage reads is covered by a hash,
outputs are written whole into clean directories, failures of tools and of the file system
are one line, and logs can be followed while a tool runs. Fast: no real place and route (the
tools are stand-ins where a test needs them to fail), tiny designs."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from spikeforge.golden.cpsn_config import CPSNConfig
from spikeforge.hw import generate as gen
from spikeforge.hw import synth
from spikeforge.hw.generate import generate_core, generate_network, load_network_dir
from spikeforge.sim.regression import random_network
from spikeforge.sw import export as export_module
from spikeforge.sw.cli import main
from spikeforge.sw.export import MANIFEST, export_network

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "cpsn.json"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result) -> str:
    """The single line a refusal prints (exit 1, no traceback)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def small_config(rng):
    return CPSNConfig.random(rng, channels=4, lanes=2, order=2)


@pytest.fixture
def core_dir(tmp_path, small_config):
    generate_core(small_config, tmp_path / "core")
    return tmp_path / "core"


def tiny_network(rng, hidden=(8,), neurons=("cpsn",), lanes=(4,)):
    return random_network(rng, neurons=neurons, hidden=hidden, lanes=lanes)


@pytest.fixture
def network_dir(tmp_path, rng):
    generate_network(tiny_network(rng), tmp_path / "net", max_steps=4)
    return tmp_path / "net"


@pytest.fixture
def exported(tmp_path, rng):
    network = tiny_network(rng)
    export_network(network, tmp_path / "export")
    return tmp_path / "export"


def edit_json(path, change):
    data = json.loads(Path(path).read_text())
    change(data)
    Path(path).write_text(json.dumps(data, indent=1))


def no_synthesis(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("synthesis started on a directory that should be refused")

    monkeypatch.setattr(synth, "synthesize", refuse)


# -- descriptions are sealed: an edited field is refused, not trusted --------------------------

def test_edited_cycles_per_sample_is_refused_before_synthesis(network_dir, monkeypatch):
    edit_json(network_dir / "network.json",
              lambda d: d["cycles_per_sample"].update(typical=d["cycles_per_sample"]["typical"]
                                                      // 10))
    no_synthesis(monkeypatch)
    line = one_error_line(invoke("synth", network_dir, "--target", "ecp5-25k"))
    assert "network.json was edited" in line
    with pytest.raises(ValueError, match="network.json was edited"):
        load_network_dir(network_dir)


def test_edited_config_in_a_core_description_is_refused(core_dir, monkeypatch):
    edit_json(core_dir / "cpsn_core.json", lambda d: d["config"].update(channels=3))
    no_synthesis(monkeypatch)
    for command in (["synth", core_dir, "--target", "xc7"], ["cosim", core_dir]):
        assert "cpsn_core.json was edited" in one_error_line(invoke(*command)), command


def test_a_description_without_a_seal_is_refused(core_dir, monkeypatch):
    edit_json(core_dir / "cpsn_core.json", lambda d: d.pop(gen.SEAL))
    no_synthesis(monkeypatch)
    line = one_error_line(invoke("synth", core_dir, "--target", "xc7"))
    assert f"has no {gen.SEAL}" in line


def test_a_network_directory_without_its_description_is_called_incomplete(network_dir,
                                                                           monkeypatch):
    (network_dir / "network.json").unlink()
    no_synthesis(monkeypatch)
    for command in (["synth", network_dir, "--target", "xc7"], ["cosim", network_dir]):
        line = one_error_line(invoke(*command))
        assert "incomplete network directory" in line and "core description" not in line


# -- generation into clean directories, written whole ------------------------------------------

def test_regeneration_removes_what_the_previous_generation_wrote(tmp_path, rng):
    out = tmp_path / "net"
    generate_network(tiny_network(rng, hidden=(8, 8), neurons=("cpsn", "cpsn"), lanes=(4, 4)),
                     out, max_steps=4)
    assert (out / "sn1_signs.hex").is_file()
    (out / "synth-ecp5-25k").mkdir()  # the default synth output: it measured the old design
    (out / "synth-ecp5-25k" / "synth_report.json").write_text("{}")
    (out / "notes.txt").write_text("mine\n")  # not written by a generation: kept
    description = generate_network(tiny_network(rng), out, max_steps=4)
    names = {p.name for p in out.iterdir()}
    assert names == {*description["files"], "network.json", "notes.txt"}, names
    assert not list(tmp_path.glob(".net.*")), "a temporary sibling was left behind"


def test_a_directory_that_is_not_a_generation_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete\n")
    line = one_error_line(invoke("generate", "--config", EXAMPLE, "--out", out))
    assert "holds no previous generation" in line
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
    generate_core(CPSNConfig.load(EXAMPLE), tmp_path / "core")
    line = one_error_line(invoke("generate", "--from", tmp_path, "--out", tmp_path / "core"))
    assert "holds a core" in line or "export" in line


def test_a_network_is_not_generated_over_a_core(core_dir, rng):
    with pytest.raises(gen.GenerationError, match="holds a core .*not a network"):
        generate_network(tiny_network(rng), core_dir, max_steps=4)
    gen.generate_core(CPSNConfig.load(EXAMPLE), core_dir)  # a core over a core: replaced


def test_an_interrupted_generation_leaves_the_previous_one(core_dir, monkeypatch, rng):
    before = {p.name: p.read_bytes() for p in core_dir.iterdir()}

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gen, "write_hex", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_core(CPSNConfig.random(rng, channels=8, lanes=2, order=3), core_dir)
    assert {p.name: p.read_bytes() for p in core_dir.iterdir()} == before
    assert [p.name for p in core_dir.parent.iterdir()] == ["core"]
    synth.load_core_dir(core_dir)  # still whole and sealed


# -- synthesis reports name what they measured ----------------------------------------------

def fake_yosys_stat(cells: dict[str, int], core="cpsn_core"):
    """A stand-in for the tools: Yosys 'maps' the design to ``cells`` (iCE40 names) and
    nextpnr must not run."""

    def run(args, cwd, log_name):
        if log_name != "yosys.log":
            raise AssertionError(f"{log_name}: place and route ran on a design that cannot fit")
        stat_json = {"modules": {
            f"\\{synth.HARNESS}": {"num_cells_by_type": {"SB_DFF": 40, "SB_LUT4": 2, core: 1}},
            f"\\{core}": {"num_cells_by_type": cells}}}
        (cwd / "stat.json").write_text(json.dumps(stat_json))
        (cwd / "netlist.json").write_text("{}")
        (cwd / log_name).write_text("Yosys (stand-in)\n")
        return subprocess.CompletedProcess(args, 0, "", "")

    return run


def test_synth_stops_after_yosys_when_a_resource_exceeds_the_device(core_dir, monkeypatch):
    """Issue 28: 6,000 LUT4s cannot fit 5,280 logic cells: one line, exit 1, no nextpnr."""
    monkeypatch.setattr(synth, "_run", fake_yosys_stat({"SB_LUT4": 6000, "SB_DFF": 100}))
    monkeypatch.setattr(synth, "tool_versions", lambda _target: {})
    start = time.perf_counter()
    result = invoke("synth", core_dir, "--target", "ice40-up5k")
    assert time.perf_counter() - start < 20
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "FAIL: does not fit: 114 % of logic cells (SB_LUT4): 6,002 of 5,280" in result.output
    report = json.loads((core_dir / "synth-ice40-up5k" / synth.REPORT_NAME).read_text())
    assert report["fits"] is False and report["stopped_after"] == "yosys"
    assert set(report["overflow"]) == {"logic_luts"} and report["fmax_mhz"] is None


def test_report_records_the_design_and_regeneration_clears_stale_reports(core_dir, monkeypatch,
                                                                          rng):
    monkeypatch.setattr(synth, "_run", fake_yosys_stat({"SB_LUT4": 10, "SB_DFF": 10}))
    monkeypatch.setattr(synth, "tool_versions", lambda _target: {})
    monkeypatch.setitem(synth.TARGETS, "ice40-up5k", synth.dataclasses.replace(
        synth.TARGETS["ice40-up5k"], nextpnr=None))  # counts only: no place and route
    result = invoke("synth", core_dir, "--target", "ice40-up5k")
    assert result.exit_code == 0, result.output
    report_path = core_dir / "synth-ice40-up5k" / synth.REPORT_NAME
    report = json.loads(report_path.read_text())
    description = json.loads((core_dir / "cpsn_core.json").read_text())
    design = report["design"]
    assert design["files"] == description["files"]
    assert design["verilog_sha256"] == description["files"]["cpsn_core.v"]
    assert design[gen.SEAL] == description[gen.SEAL]
    assert synth.stale_reports(core_dir) == []
    assert synth.load_report(report_path, core_dir)["design"] == design
    edit_json(report_path, lambda r: r["resources"].update(luts=1))
    with pytest.raises(ValueError, match="synth_report.json was edited after `spikeforge "
                                         "synth` wrote it"):
        synth.load_report(report_path)
    assert synth.stale_reports(core_dir) == [report_path]
    generate_core(CPSNConfig.random(rng, channels=8, lanes=2, order=3), core_dir)
    assert not report_path.exists(), "a report of the old design survived regeneration"


def test_a_report_of_other_files_is_flagged_stale(core_dir, tmp_path):
    (core_dir / "synth-xc7").mkdir()
    (core_dir / "synth-xc7" / synth.REPORT_NAME).write_text(json.dumps(
        {"design": {"files": {"cpsn_core.v": "0" * 64}}}))
    assert synth.stale_reports(core_dir) == [core_dir / "synth-xc7" / synth.REPORT_NAME]


# -- tools that fail, logs that can be followed ------------------------------------------------

def stand_in_tool(tmp_path, body: str) -> Path:
    script = tmp_path / "tool.sh"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_a_failing_yosys_is_one_line_with_its_log_which_exists_while_it_runs(
        core_dir, tmp_path, monkeypatch):
    tool = stand_in_tool(tmp_path, """\
case "$1" in -V|--version) echo "Yosys 0.0 (stand-in)"; exit 0;; esac
echo "reading the design"
grep -q "reading the design" yosys.log || { echo "log not live" >&2; exit 7; }
echo "ERROR: syntax error, unexpected TOK_ID" >&2
exit 1
""")
    monkeypatch.setattr(synth, "tool_executable", lambda _name: str(tool))
    result = invoke("synth", core_dir, "--target", "ecp5-25k")
    line = one_error_line(result)
    log = core_dir / "synth-ecp5-25k" / "yosys.log"
    assert line == (f"Error: Yosys failed after 0 s (exit 1): ERROR: syntax error, unexpected "
                    f"TOK_ID (log: {log})"), line
    assert "Yosys done" not in result.output
    assert "reading the design" in log.read_text() and "unexpected TOK_ID" in log.read_text()
    assert not (core_dir / "synth-ecp5-25k" / synth.REPORT_NAME).exists()


def test_an_interrupted_synthesis_leaves_its_log(core_dir, tmp_path, monkeypatch):
    import signal

    # pytest-xdist workers ignore SIGINT; Ctrl-C at a terminal raises KeyboardInterrupt
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    tool = stand_in_tool(tmp_path, f"""\
echo "started placing"
kill -INT {os.getpid()}
sleep 20
""")
    monkeypatch.setattr(synth, "tool_executable", lambda _name: str(tool))
    try:
        result = CliRunner().invoke(main, ["synth", str(core_dir), "--target", "xc7"])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.exit_code == 130, result.output
    assert (f"interrupted. The tools' logs so far are in {core_dir / 'synth-xc7'} "
            f"(yosys.log, nextpnr*.log)") in result.output
    assert "started placing" in (core_dir / "synth-xc7" / "yosys.log").read_text()


def test_yosys_cell_count_failure_is_one_line(monkeypatch):
    from spikeforge.hw import yosys

    with pytest.raises(yosys.ToolError, match=r"^yosys failed \(exit 1\): bad.v:1: ERROR: [^\n]*$"):
        yosys.cell_counts({"bad.v": "module bad(; endmodule\n"}, "bad")


# -- manifests: every field covered, every malformed one a line ------------------------------

@pytest.mark.parametrize("edit, match", [
    (lambda m: m["layers"][0]["config"].update(dilation=m["layers"][0]["config"]["dilation"]
                                               + 1), "manifest.json was edited"),
    (lambda m: m["network"]["input"].update(width=m["network"]["input"]["width"] - 1),
     "manifest.json was edited"),
    (lambda m: m.update(layers=3), "'layers' must be a list of layer entries, not 3"),
    (lambda m: m["layers"][0]["tables"]["signs"].pop("files"),
     "layer 'sn0': its manifest entry lacks 'files'"),
    (lambda m: m["layers"][0]["tables"]["signs"].update(sha256=[]),
     "layer 'sn0': its manifest entry is malformed"),
])
def test_edited_or_malformed_manifests_are_one_line(exported, edit, match):
    edit_json(exported / MANIFEST, edit)
    line = one_error_line(invoke("export", "--check", exported))
    assert match in line, line
    assert "OK" not in line


def test_other_directories_are_named_for_what_they_are(exported, network_dir, tmp_path):
    run = tmp_path / "runs" / "p"
    run.mkdir(parents=True)
    for name in ("best.pt", "last.pt", "metrics.json"):
        (run / name).write_bytes(b"")
    for command in (["export", "--check"], ["generate", "--out", tmp_path / "g", "--from"]):
        line = one_error_line(invoke(*command, run))
        assert "is a training run directory, not an export; export it with `spikeforge " \
               f"export {run}" in line, line
        line = one_error_line(invoke(*command, network_dir))
        assert "is a network directory written by `spikeforge generate --from`, not an " \
               "export" in line, line
        assert "incomplete" not in line


def test_export_refuses_a_directory_that_is_not_an_export_before_any_work(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.csv").write_text("1,2\n")
    (tmp_path / "best.pt").write_bytes(b"not read: the refusal comes first")
    line = one_error_line(invoke("export", tmp_path / "best.pt", "--out", out))
    assert "holds no previous export (data.csv); export into an empty or new directory" in line


def test_export_of_a_checkpoint_file_refuses_another_checkpoint(tmp_path):
    (tmp_path / "best.pt").write_bytes(b"")
    line = one_error_line(invoke("export", tmp_path / "best.pt", "--checkpoint", "last",
                                 "--out", tmp_path / "out"))
    assert "--checkpoint last picks a checkpoint of a run directory" in line


def test_reexport_replaces_only_what_the_previous_export_wrote(tmp_path, rng):
    out = tmp_path / "export"
    export_network(tiny_network(rng, hidden=(8, 8), neurons=("cpsn", "cpsn"), lanes=(4, 4)),
                   out)
    (out / "network").mkdir()  # generate --from OUT --out OUT/network, as the README does
    manifest = export_network(tiny_network(rng), out)
    names = {p.name for p in out.iterdir()}
    assert "sn1_signs.hex" not in names and "network" in names
    assert names == export_module._manifest_files(manifest) | {MANIFEST, "network"}


# -- outputs that cannot be written are refused before any work ---------------------------

@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc and /sys")
def test_unwritable_devices_are_refused_before_any_work(tmp_path):
    """/proc and /sys look writable to root by their permission bits; a probe file shows they
    are not. Every command refuses them in one line before it starts."""
    for command in (["generate", "--config", EXAMPLE, "--out", "/proc/spikeforge-x"],
                    ["generate", "--config", EXAMPLE, "--out", "/sys/spikeforge-x"],
                    ["synth", "--config", EXAMPLE, "--target", "xc7", "--out",
                     "/proc/spikeforge-x"],
                    ["cosim", "--config", EXAMPLE, "--json", "/proc/spikeforge.json"],
                    ["cosim", "--config", EXAMPLE, "--json", "/proc/version"]):
        result = invoke(*command)
        line = one_error_line(result)
        assert line.startswith("Error: cannot write"), (command, line)
        assert "co-simulating" not in result.output and "synthesising" not in result.output
    assert not list(Path("/proc").glob(".spikeforge-probe-*"))


def test_the_interrupt_message_names_the_run(monkeypatch, tmp_path):
    import spikeforge.sw.cli as cli

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    command = cli._light_command("spikeforge.sw.train", "train")
    monkeypatch.setattr(command, "callback", interrupted)
    real = cli._LazyGroup.get_command
    monkeypatch.setattr(cli._LazyGroup, "get_command", lambda self, ctx, name:
                        command if name == "train" else real(self, ctx, name))
    result = CliRunner().invoke(main, ["train", "--config", "configs/digits_cpsn.yaml",
                                       "--out", str(tmp_path / "runs" / "r7")])
    assert result.exit_code == 130, result.output
    assert f"spikeforge train --resume --out {tmp_path / 'runs' / 'r7'}`" in result.output
    assert "--out RUN" not in result.output


# -- the command line answers at once ------------------------------------------------------

def _best_seconds(args, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, capture_output=True, cwd=ROOT, stdin=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def test_help_and_usage_errors_answer_at_once():
    """`--help` and usage errors of every command in under a second: nothing heavy (torch,
    Amaranth) is imported before the arguments are parsed. Measured against `python -c pass`
    in the same run, so a busy machine scales both: a command passes at under 1 s or under
    40 times Python's own start."""
    from spikeforge.sw.cli import bench

    script = Path(sys.executable).parent / "spikeforge"
    cli = [str(script)] if script.is_file() else [sys.executable, "-m", "spikeforge.sw.cli"]
    python = _best_seconds([sys.executable, "-c", "pass"], 5)
    commands = [[name] for name in main.list_commands(None)] + \
        [["bench", name] for name in bench.list_commands(None)]
    runs = [[*command, "--help"] for command in [[]] + commands] + \
        [[*command, "--no-such-option"] for command in commands] + [["train"], ["evaluate"]]
    slow = {}
    for args in runs:
        seconds = _best_seconds(cli + args, 1)
        if seconds > max(1.0, 40 * python):  # measured again before it counts
            seconds = min(seconds, _best_seconds(cli + args, 2))
        if seconds > max(1.0, 40 * python):
            slow[" ".join(args)] = f"{seconds:.2f} s = {seconds / python:.0f} x python"
    assert not slow, f"python -c pass: {python:.3f} s; slow: {slow}"


@pytest.mark.parametrize("module, name", [("spikeforge.sw.train", "train"),
                                          ("spikeforge.sw.train", "evaluate")])
def test_commands_read_from_source_are_the_real_ones(module, name):
    """`train` and `evaluate` answer --help from their module's source, unimported: the same
    options, arguments and help as the imported commands."""
    import importlib

    import spikeforge.sw.cli as cli

    light = cli._light_command(module, name)
    real = getattr(importlib.import_module(module), name)
    assert light is not None and light.help == real.help
    assert [p.to_info_dict() for p in light.params] == [p.to_info_dict() for p in real.params]


def test_messages_print_numbers_not_numpy_reprs(monkeypatch, tmp_path):
    import spikeforge.sw.configs as configs

    def bad(_path):
        raise ValueError(f"CPSNConfig.order must be <= {np.int64(8)}, got "
                         f"{[np.int64(9), np.float64(0.5)]} ({np.int64(-3)!r})")

    monkeypatch.setattr(configs, "load_core_config", bad)
    line = one_error_line(invoke("generate", "--config", EXAMPLE, "--out", tmp_path / "o"))
    assert line == "Error: CPSNConfig.order must be <= 8, got [9, 0.5] (-3)", line


# -- checkpoints ------------------------------------------------------------------------------

def test_a_checkpoint_of_another_shape_is_one_line(tmp_path):
    torch = pytest.importorskip("torch")
    from spikeforge.golden.networks import build_model
    from spikeforge.sw.checkpoint import save_checkpoint, state_dict_error
    from spikeforge.sw.train import config_to_dict, parse_config

    with pytest.raises(RuntimeError) as caught:
        torch.nn.Linear(4, 2).load_state_dict(torch.nn.Linear(3, 2).state_dict())
    assert state_dict_error(caught.value) == (
        "the saved weights do not fit the network: weight is [2, 3] in the checkpoint but "
        "[2, 4] in the network its configuration builds")
    run = {"data": {"name": "digits"}, "train": {"epochs": 1},
           "model": {"arch": "mlp", "hidden": [16], "neuron": {"name": "cpsn_bn"}}}
    model = build_model(parse_config(run).model, 8, 10, 8)
    run["model"]["hidden"] = [12]  # the saved configuration builds another shape
    save_checkpoint(tmp_path / "best.pt", {
        "config": config_to_dict(parse_config(run)), "state_dict": model.state_dict(),
        "model_inputs": {"in_features": 8, "outputs": 10, "steps": 8}, "optimizer": {},
        "epoch": 1, "epochs": 1, "seed": 0, "rng": {}, "metrics": [], "best": {}})
    line = one_error_line(invoke("evaluate", tmp_path))
    assert "the saved weights do not fit the network: " in line and "more difference" in line


def test_a_damaged_checkpoint_hint_names_the_commands_that_take_checkpoint(tmp_path):
    from spikeforge.sw.checkpoint import CheckpointError, load_checkpoint

    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(tmp_path / "last.pt")
    message = str(caught.value)
    assert "the run's best.pt may be intact (`spikeforge export` and `evaluate` read it with " \
           "--checkpoint best)" in message, message


def test_demo_summary_labels_every_accuracy_with_its_sample_count():
    from spikeforge.sw.demo import summary_rows

    run = {"samples": 10, "integer_accuracy": 0.9, "hardware_accuracy": 0.9,
           "class_agreement": 1.0, "logit_agreement": 1.0, "cycles_per_sample": 300.0,
           "cycles_per_sample_typical": 288, "cycles_per_sample_worst": 400}
    rows = dict(summary_rows({"samples": 449, "float_accuracy": 0.9599,
                              "integer_accuracy": 0.9532},
                             {"random handshakes": run, "full rate": run}, None, "ecp5-25k"))
    assert rows["float accuracy"] == "95.99% (449 test samples)"
    assert rows["integer accuracy"] == "95.32% (449 test samples); 90.00% on the 10 co-simulated"
    assert rows["hardware accuracy"] == "90.00% (10 test samples under Verilator)"
    assert rows["agreement, full rate"].endswith("(10 test samples)")


# -- $readmemh paths that do not depend on the working directory -------------------------------

def test_rom_tables_can_be_read_from_any_working_directory(tmp_path):
    """SPIKEFORGE_MEM_DIR puts a directory in front of every INIT_FILE (Verilator here, run
    from another directory; the ROM's comment gives the flags of Icarus, Questa and Vivado).
    Without it the path stays relative to the working directory, as the existing flows (every
    co-simulation with file tables) expect."""
    from spikeforge.sim.verilator import MissingToolError, verilator_env

    try:
        env = verilator_env()
    except MissingToolError as exc:
        pytest.skip(str(exc))
    tables, run = tmp_path / "tables", tmp_path / "elsewhere"
    tables.mkdir()
    run.mkdir()
    (tables / "t.hex").write_text("0a\n0b\n0c\n0d\n")
    (tmp_path / "tb.v").write_text("""\
module tb;
  wire [7:0] data;
  spikeforge_rom #(.WIDTH(8), .DEPTH(4), .ADDR_WIDTH(2), .INIT_FILE("t.hex"))
    rom (.clk(1'b0), .en(1'b0), .addr(2'd0), .data(data));
  initial $finish;
  final $display("DATA=%h", rom.mem[2]);
endmodule
""")
    rom = ROOT / "hw" / "verilog" / "spikeforge_rom.v"
    subprocess.run(["verilator", "--binary", "-Wno-fatal",
                    f'+define+SPIKEFORGE_MEM_DIR="{tables}/"', str(tmp_path / "tb.v"),
                    str(rom), "--top-module", "tb", "-Mdir", str(tmp_path / "obj")],
                   env=env, check=True, capture_output=True)
    result = subprocess.run([str(tmp_path / "obj" / "Vtb")], cwd=run, capture_output=True,
                            text=True)
    assert "DATA=0c" in result.stdout, result.stdout + result.stderr


# -- the datasheet: what docs/ says is what the hardware does ----------------------------------

DOCS = ROOT / "docs"


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_datasheet_logit_width_follows_the_readout_kind(rng):
    """docs: Wz = signed_width(B_z + 1) (mean_membrane) or signed_width(B_z)
    (last_membrane), B_z = T_z · (max row sum of |R| + max |r|), T_z = max_steps for
    mean_membrane and 1 for last_membrane (no T_max for last_membrane)."""
    from spikeforge.golden.fixed import signed_width
    from spikeforge.hw.synapse import Readout

    weight = rng.integers(-31, 32, size=(5, 12))
    bias = rng.integers(-31, 32, size=5)
    bound = int(np.abs(weight).sum(axis=1).max() + np.abs(bias).max())
    for kind, steps in (("mean_membrane", 8), ("last_membrane", 1)):
        readout = Readout(weight, bias, weight_width=6, kind=kind, in_lanes=4, in_groups=3,
                          max_steps=8)
        largest = steps * bound + (kind == "mean_membrane")  # mean: range ends unreachable
        assert readout.logit_width == signed_width(-largest, largest), kind
    text = (DOCS / "network_fixed_point.md").read_text()
    assert "T_max · (Σ|Rq| + |rq|)" not in text
    assert "`T_z = 1` for `last_membrane`" in text
    assert "`signed_width(lo, hi)` is the smallest `W`" in text
    assert "`signed_width(b) = signed_width(−b, b)`" in text
    assert "`T_z = 1` for `last_membrane`" in (DOCS / "accelerator.md").read_text()


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_datasheet_bias_fields(rng):
    """docs/accelerator.md: bias words hold P fields of Wb = signed_width(min(0, min b'),
    max(0, max b')) bits, output b·P + p at [p·Wb, (p+1)·Wb), two's complement."""
    from spikeforge.golden.fixed import signed_width
    from spikeforge.hw.synapse import SynapseEngine, stored_bias

    weight, bias = rng.integers(-31, 32, size=(8, 6)), rng.integers(-300, 42, size=8)
    engine = SynapseEngine(weight, bias, weight_width=6, shift=3, out_width=8,
                           input_kind="values", input_width=8, in_lanes=6, input_bound=128,
                           out_lanes=4, parallel=4)
    stored = stored_bias(bias, 3)
    width = signed_width(min(0, int(stored.min())), max(0, int(stored.max())))
    assert engine.bias_width == width
    words, word_width = engine.tables["bias"]
    assert word_width == 4 * width
    for block, word in enumerate(words):
        for p in range(4):
            field = (word >> (p * width)) & ((1 << width) - 1)
            assert field - ((field >> (width - 1)) << width) == stored[block * 4 + p]
    assert "`Wb = signed_width(min(0, min b'),\nmax(0, max b'))`" in \
        (DOCS / "accelerator.md").read_text()


def test_datasheet_prf_coefficient_digits(rng):
    """docs/prf_fixed_point.md §9: shift_add digit fields (position in the low w_p bits, sign
    code 01/11/00 above it, digit 0 lowest) decode to the integer coefficients."""
    from spikeforge.hw import prf_tables
    from spikeforge.sim.regression import random_prf_config

    config = random_prf_config(rng, coef_mode="shift_add")
    for table in ("delta", "powers"):
        width, per_word = prf_tables.table_layout(config, table)
        integer_width, _ = prf_tables.coefficient_field(config, table)
        position_width = max(1, int(np.ceil(np.log2(integer_width))))
        digit = 2 + position_width
        assert width == config.csd_terms * digit
        values = prf_tables._elements(config, table)
        for group, word in enumerate(prf_tables.pack_tables(config)[table]):
            for element in range(per_word):
                lane, index = divmod(element, per_word // config.lanes)
                code = word >> (element * width)
                total = 0
                for j in range(config.csd_terms):
                    field = (code >> (j * digit)) & ((1 << digit) - 1)
                    sign = {0b01: 1, 0b11: -1, 0b00: 0}[field >> position_width]
                    total += sign << (field & ((1 << position_width) - 1))
                assert total == values[group * config.lanes + lane][index], (table, group)
    text = (DOCS / "prf_fixed_point.md").read_text()
    assert "## 9. Table words" in text and "`p = f − shift`" in text
    assert "`01` = +1" in text and "`11` = −1" in text and "max(1, ⌈log2 W⌉)" in text


def test_datasheet_reset(rng):
    """docs/accelerator.md: one clock of rst suffices; during it m_axis tvalid is 0 and
    s_axis tready reads 1 (no beat taken)."""
    from amaranth import ClockDomain, Module
    from amaranth.sim import Simulator

    from spikeforge.hw.cpsn import CPSNCore

    text = (DOCS / "accelerator.md").read_text()
    assert "### Reset" in text and "one rising\nedge of `clk` with `rst = 1`" in text
    assert "`m_axis__tvalid` is 0 and `s_axis__tready` reads 1" in text
    dut = CPSNCore(CPSNConfig.random(rng, channels=4, lanes=2, order=2))
    top = Module()
    top.domains.sync = domain = ClockDomain("sync")
    top.submodules.dut = dut
    simulator = Simulator(top)
    simulator.add_clock(1e-6)
    seen = []

    async def bench(ctx):
        ctx.set(domain.rst, 1)
        ctx.set(dut.s_axis.tvalid, 1)
        ctx.set(dut.m_axis.tready, 1)
        for _ in range(3):
            seen.append((ctx.get(dut.s_axis.tready), ctx.get(dut.m_axis.tvalid)))
            await ctx.tick()

    simulator.add_testbench(bench)
    simulator.run()
    assert seen == [(1, 0)] * 3


def test_results_say_which_prf_networks_have_no_hardware():
    text = (DOCS / "results.md").read_text()
    assert "SD-TCM networks, which `spikeforge export` refuses" in text


def test_generating_into_the_working_directory_keeps_it(core_dir, monkeypatch):
    monkeypatch.chdir(core_dir)
    (core_dir / "notes.txt").write_text("mine\n")
    description = generate_core(CPSNConfig.load(EXAMPLE), ".")
    assert Path.cwd() == core_dir and core_dir.is_dir()
    assert {p.name for p in core_dir.iterdir()} == {*description["files"], "cpsn_core.json",
                                                     "notes.txt"}
    synth.load_core_dir(".")
