"""The spikeforge command line: generate and cosim."""

import json
from pathlib import Path

from click.testing import CliRunner

from spikeforge.golden.cpsn_config import CPSNConfig
from spikeforge.sw.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cpsn.json"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_example_configuration_is_valid():
    config = CPSNConfig.load(EXAMPLE)
    assert config.channels > config.lanes > 1  # the example exercises channel folding


def test_generate_is_reproducible_and_free_of_local_paths(tmp_path):
    for storage in ("baked", "file"):
        outputs = []
        for run in ("a", "b"):
            out = tmp_path / storage / run
            result = invoke("generate", "--config", EXAMPLE, "--out", out, "--weights", storage)
            assert result.exit_code == 0, result.output
            outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
        assert outputs[0] == outputs[1]
        for name, content in outputs[0].items():
            text = content.decode()
            assert str(tmp_path) not in text and str(EXAMPLE.parent.parent) not in text, name
            assert "/home/" not in text and "/work/" not in text, name
        description = json.loads(outputs[0]["cpsn_core.json"])
        assert description["latency_cycles"] >= 3
        assert description["ports"]["s_axis__tdata"]["width"] == 8 * 8
        if storage == "file":
            assert "spikeforge_rom.v" in outputs[0]
            assert b'"cpsn_core_signs.hex"' in outputs[0]["cpsn_core.v"]


def test_generate_rejects_bad_configuration_naming_the_field(tmp_path):
    data = json.loads(EXAMPLE.read_text())
    data["exponents"][3][1] = 5  # outside [exp_min, exp_max]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = invoke("generate", "--config", bad, "--out", tmp_path / "out")
    assert result.exit_code != 0
    assert "CPSNConfig.exponents[3, 1] = 5 is above the maximum 0" in result.output
    assert not (tmp_path / "out").exists()
    (tmp_path / "broken.json").write_text("{ not json")
    result = invoke("generate", "--config", tmp_path / "broken.json", "--out", tmp_path / "o")
    assert result.exit_code != 0 and "not valid JSON" in result.output


def test_cosim_prints_summary_and_json(tmp_path, rng):
    config = CPSNConfig.random(rng, channels=4, lanes=2, order=3, membrane_out=True)
    config.save(tmp_path / "small.json")
    result = invoke("cosim", "--config", tmp_path / "small.json", "--samples", 3,
                    "--build-dir", tmp_path / "build", "--json", tmp_path / "summary.json")
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "cycles/s" in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mismatches"] == 0 and summary["checked"] == summary["beats"] > 0


def test_generate_accepts_prf_configurations(tmp_path):
    """The shipped PRF example cut to 4 channels, 2 lanes and 2 time steps per beat (the
    whole example takes half a minute to elaborate; P = 4 is generated and co-simulated in
    tests/test_prf_cosim.py)."""
    data = json.loads((EXAMPLE.parent / "prf.json").read_text())
    small = {**data, "channels": 4, "lanes": 2, "time_parallelism": 2,
             **{key: value[:4] for key, value in data.items() if isinstance(value, list)}}
    example = tmp_path / "prf.json"
    example.write_text(json.dumps(small))
    out = tmp_path / "core"
    result = invoke("generate", "--config", example, "--out", out, "--weights", "file")
    assert result.exit_code == 0, result.output
    description = json.loads((out / "prf_core.json").read_text())
    assert description["neuron"] == "prf" and description["coef_mode"] == "shift_add"
    assert description["elements_per_beat"] == 4  # 2 lanes x 2 time steps
    assert b'"prf_core_powers.hex"' in (out / "prf_core.v").read_bytes()
    result = invoke("generate", "--config", example, "--out", tmp_path / "x", "--arith",
                    "multiply")
    assert result.exit_code != 0 and "CPSN cores only" in result.output


def test_unwritable_outputs_are_refused_before_any_work(tmp_path):
    """Every output directory or file under a file (works as root too, unlike permissions)
    is one line, exit 1, and nothing was started."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    under = blocker / "out"
    commands = [
        ["generate", "--config", EXAMPLE, "--out", under],
        ["generate", "--from", tmp_path, "--out", under],
        ["export", tmp_path, "--out", under],
        ["train", "--config", "configs/demo_cpsn_prf.yaml", "--epochs", "1", "--out", under],
        ["synth", "--config", EXAMPLE, "--target", "xc7", "--out", under],
        ["synth", tmp_path, "--target", "xc7", "--out", under],
        ["cosim", "--config", EXAMPLE, "--build-dir", under],
        ["cosim", "--config", EXAMPLE, "--json", under / "report.json"],
    ]
    for command in commands:
        result = CliRunner().invoke(main, [str(a) for a in command])
        assert result.exit_code == 1, (command, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: cannot write"), \
            (command, result.output)
        assert not under.exists()
