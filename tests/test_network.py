"""A trained network to hardware: integer network model, quantisation, export round trip,
refusal of bad exports, and the export → generate → cosim flow under Verilator."""

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from spikeforge.golden.data import load_data
from spikeforge.golden.network_int import IntegerLayer, IntegerNetwork, IntegerSynapse
from spikeforge.golden.prf_int import round_shift
from spikeforge.golden.cpsn_config import CPSNConfig
from spikeforge.sw.cli import main
from spikeforge.sw.export import MANIFEST, ExportError, load_network, sha256_file
from spikeforge.sw.network import cosim_from, export_run, generate_from
from spikeforge.sw.quantise import (Formats, QuantisationError, frac_bits_for,
                                    quantisation_report, quantise_network, smallest_widths,
                                    stack_dataset)
from spikeforge.sw.train import load_trained, parse_config, train_run

RUN = {"data": {"name": "digits", "batch_size": 32, "limit": 256},
       "model": {"arch": "mlp", "hidden": [16, 8], "neuron": {"name": "cpsn_bn"},
                 "neurons": [{"name": "cpsn_bn", "exp_max": 2},
                             {"name": "prf", "delta_min": 0.1, "delta_max": 1.0}]},
       "train": {"epochs": 3, "lr": 0.02, "seed": 0}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    torch.set_num_threads(1)
    train_run(parse_config(RUN), out, progress=False, log=lambda *_: None)
    return out


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    # 4 lanes: both cores fold channels (G = 4 and 2). An unfolded PRF core (G = 1) has its
    # whole state update in one cycle, and Amaranth takes minutes to elaborate that cone.
    out = tmp_path_factory.mktemp("export")
    export_run(trained, out, Formats(lanes=4), log=lambda *_: None)
    return out


def test_frac_bits_fit_the_largest_value():
    assert frac_bits_for(1.0, 8) == 6  # 64 <= 127 < 128
    assert frac_bits_for(127.0, 8) == 0 and frac_bits_for(127.5, 8) == -1
    assert frac_bits_for(0.0, 8) == 7
    for magnitude in np.random.default_rng(0).uniform(1e-3, 1e3, 100):
        bits = frac_bits_for(float(magnitude), 10)
        assert magnitude * 2.0 ** bits <= 511 < magnitude * 2.0 ** (bits + 1)


def test_synapse_rounds_half_up_and_saturates_with_a_count():
    synapse = IntegerSynapse(weight=[[3, -2], [100, 100]], bias=[1, 0], weight_width=8,
                             weight_frac_bits=2, shift=2, out_width=4, input_bound=1)
    out, clipped = synapse(np.array([[1, 1], [0, 1]]))
    # [3 - 2 + 1, 200] / 4 → [0.5 → 1, 50 → 7 (saturated)];  [-2 + 1, 100] → [-0.25 → 0, 7]
    assert out.tolist() == [[1, 7], [0, 7]] and clipped == 2
    assert round_shift(np.array([-2, 2, -6]), 2).tolist() == [0, 1, -1]  # ties toward +inf


def test_integer_network_checks_that_layers_fit_together(rng):
    core = CPSNConfig.random(rng, channels=4, order=2)
    synapse = IntegerSynapse(weight=np.ones((4, 3)), bias=np.zeros(4), weight_width=4,
                             weight_frac_bits=0, shift=0, out_width=8, input_bound=1)
    readout = IntegerSynapse(weight=np.ones((2, 5)), bias=np.zeros(2), weight_width=4,
                             weight_frac_bits=0, shift=0, out_width=None, input_bound=1)
    with pytest.raises(ValueError, match="the readout takes 5 inputs but receives 4"):
        IntegerNetwork(8, 0, (IntegerLayer("sn0", synapse, core),), readout, "mean_membrane")
    with pytest.raises(ValueError, match="saturates to 6 bits but the core takes 8-bit"):
        IntegerLayer("sn0", IntegerSynapse(weight=np.ones((4, 3)), bias=np.zeros(4),
                                           weight_width=4, weight_frac_bits=0, shift=0,
                                           out_width=6, input_bound=1), core)


def test_integer_model_tracks_the_float_network(trained):
    model, config, _ = load_trained(trained)
    data = load_data(config.data)
    calibration, _, _ = stack_dataset(data.train)
    x, targets, _ = stack_dataset(data.test)
    narrow = quantisation_report(model, quantise_network(model, calibration,
                                                         Formats(core_input_width=3,
                                                                 weight_width=3)), x, targets)
    wide = quantisation_report(model, quantise_network(
        model, calibration, Formats(input_width=16, core_input_width=16, weight_width=16,
                                    prf_coef_mode="dsp", percentile=100)), x, targets)
    # 16-bit everything: the integer network agrees with the float one almost everywhere
    assert wide["prediction_agreement"] >= 0.97
    assert all(layer["spike_agreement"] >= 0.97 for layer in wide["layers"].values())
    assert wide["input_saturated"] == 0
    assert narrow["prediction_agreement"] < wide["prediction_agreement"]
    assert set(wide["layers"]) == {"sn0", "sn1"}
    assert wide["layers"]["sn1"]["neuron"] == "prf"


def test_width_search_meets_the_tolerance(trained):
    model, config, _ = load_trained(trained)
    data = load_data(config.data)
    calibration, _, _ = stack_dataset(data.train)
    x, targets, _ = stack_dataset(data.val)
    formats, trials = smallest_widths(model, calibration, x, targets, Formats(), 0.02)
    float_accuracy = quantisation_report(model, quantise_network(model, calibration), x,
                                         targets)["float_accuracy"]
    accuracy = np.mean(quantise_network(model, calibration, formats).run(x).predictions ==
                       targets)
    assert float_accuracy - accuracy <= 0.02
    assert formats.core_input_width <= 8 and trials


def test_unsupported_networks_are_refused(tmp_path):
    raw = json.loads(json.dumps(RUN))
    raw["model"] = {"arch": "mlp", "hidden": [8], "neuron": {"name": "psu"}}
    raw["train"]["epochs"] = 1
    train_run(parse_config(raw), tmp_path, progress=False, log=lambda *_: None)
    with pytest.raises(QuantisationError, match="layer sn0: PSU has no hardware core"):
        export_run(tmp_path, tmp_path / "export", log=lambda *_: None)


def test_export_round_trip_gives_the_identical_integer_model(trained, exported):
    model, config, _ = load_trained(trained)
    data = load_data(config.data)
    manifest, loaded = load_network(exported)
    calibration, _, _ = stack_dataset(data.train, 512)
    original = quantise_network(model, calibration, Formats(lanes=4))
    x, _, _ = stack_dataset(data.test)
    want, got = original.run(x), loaded.run(x)
    assert np.array_equal(want.logits, got.logits)
    for name in ("sn0", "sn1"):
        assert np.array_equal(want.inputs[name], got.inputs[name])
        assert np.array_equal(want.spikes[name], got.spikes[name])
    for a, b in zip(original.layers, loaded.layers):
        assert a.core.to_json() == b.core.to_json()
    assert manifest["source"]["sha256"] == sha256_file(trained / "best.pt")
    assert {"float_accuracy", "integer_accuracy", "layers"} <= set(manifest["report"])


@pytest.mark.parametrize("damage, match", [
    ("network.npz", "network.npz does not match its sha256"),
    ("sn1_powers.hex", "layer 'sn1': sn1_powers.hex does not match its sha256"),
    ("missing sn0_signs.coe", "sn0_signs.coe is missing"),
    ("synapse width", r"the synapse saturates to 9 bits but the core takes 8-bit inputs"),
    ("core width", r"layer 'sn0', table 'bias': element_width"),
])
def test_bad_exports_are_refused_before_any_simulation(exported, tmp_path, damage, match,
                                                       monkeypatch):
    directory = tmp_path / "export"
    shutil.copytree(exported, directory)
    manifest = json.loads((directory / MANIFEST).read_text())
    if damage.startswith("missing"):
        (directory / damage.split()[1]).unlink()
    elif damage == "synapse width":
        manifest["network"]["synapses"]["sn0"]["out_width"] = 9
    elif damage == "core width":
        manifest["layers"][0]["config"]["bias_width"] += 2
    else:
        with open(directory / damage, "ab") as handle:
            handle.write(b"0")
    (directory / MANIFEST).write_text(json.dumps(manifest))

    def no_simulation(*_args, **_kwargs):
        raise AssertionError("simulation started on a bad export")

    monkeypatch.setattr("spikeforge.sim.runner.run_cosim", no_simulation)
    with pytest.raises(ExportError, match=match):
        cosim_from(directory, samples=2)
    result = CliRunner().invoke(main, ["export", "--check", str(directory)])
    assert result.exit_code == 1 and "Error" in result.output


def test_generated_cores_read_the_exported_tables(exported, tmp_path):
    descriptions = generate_from(exported, tmp_path, log=lambda *_: None)
    assert [d["name"] for d in descriptions] == ["sn0", "sn1"]
    for description in descriptions:
        for info in description["tables"].values():
            exported_hex = (exported / info["file"]).read_bytes()
            assert (tmp_path / description["name"] / info["file"]).read_bytes() == exported_hex
        assert description["weight_storage"] == "file"


def test_cli_export_generate_cosim_round_trip(trained, tmp_path):
    """The per-core round trip: every output spike of both cores matches under Verilator."""
    runner = CliRunner()
    export_dir, cores = tmp_path / "export", tmp_path / "cores"
    # the demo's PRF format (DEMO_FORMATS), at P = 2
    result = runner.invoke(main, ["export", str(trained), "--out", str(export_dir),
                                  "--lanes", "4", "--prf-parallelism", "2",
                                  "--prf-coef-width", "10", "--prf-csd-terms", "3",
                                  "--prf-state-frac-bits", "8"])
    assert result.exit_code == 0, result.output
    assert "integer accuracy" in result.output and "sn1 (prf)" in result.output
    formats = json.loads((export_dir / "manifest.json").read_text())["formats"]
    assert (formats["prf_coef_width"], formats["prf_csd_terms"],
            formats["prf_state_frac_bits"], formats["prf_time_parallelism"]) == (10, 3, 8, 2)
    result = runner.invoke(main, ["export", "--check", str(export_dir)])
    assert result.exit_code == 0 and "OK: 2 layer(s)" in result.output
    result = runner.invoke(main, ["generate", "--from", str(export_dir), "--out", str(cores),
                                  "--cores"])
    assert result.exit_code == 0, result.output
    assert (cores / "sn0" / "sn0.v").is_file() and (cores / "sn1" / "sn1.v").is_file()
    assert json.loads((cores / "sn1" / "sn1.json").read_text())["weight_storage"] == "file"
    # --weights baked is honoured per core too (the ROM contents in the Verilog)
    baked = tmp_path / "baked"
    result = runner.invoke(main, ["generate", "--from", str(export_dir), "--out", str(baked),
                                  "--cores", "--weights", "baked"])
    assert result.exit_code == 0 and "baked into the Verilog" in result.output, result.output
    for layer in ("sn0", "sn1"):
        assert json.loads((baked / layer / f"{layer}.json").read_text())["weight_storage"] == \
            "baked"
        assert "$readmemh" not in (baked / layer / f"{layer}.v").read_text()
    # the whole-network accelerator streams one step per beat: PRF tiles are refused, with
    # the layer named, before any Verilog is written
    result = runner.invoke(main, ["generate", "--from", str(export_dir), "--out",
                                  str(tmp_path / "network")])
    assert result.exit_code == 1 and "layer 'sn1'" in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "network" / "network.v").exists()
    report_path = tmp_path / "cosim.json"
    result = runner.invoke(main, ["cosim", "--from", str(export_dir), "--cores", "--samples",
                                  "6", "--seed", "3", "--json", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["passed"] and report["samples"] == 6
    for layer in report["layers"].values():
        assert layer["agreement"] == 1.0 and layer["beats"] > 0
    assert report["float_accuracy"] is not None


def test_demo_runs_end_to_end(tmp_path):
    """`make demo` in small: one epoch, the whole network on 12 test samples, no synthesis."""
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--epochs", "1",
                                       "--samples", "12", "--no-synth"])
    assert result.exit_code == 0, result.output
    assert "spikeforge demo summary" in result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    for run in summary["cosim"].values():
        assert run["passed"] and run["samples"] == 12
        assert run["class_agreement"] == run["logit_agreement"] == 1.0
    assert [s["name"] for s in summary["network"]["stages"]] == [
        "synapse_sn0", "sn0", "synapse_sn1", "sn1", "readout"]
    assert (tmp_path / "network" / "network.v").is_file()


@pytest.mark.parametrize("tensor", ["layers.sn1.log_theta", "layers.sn0.running_var",
                                    "layers.fc1.weight"])
def test_non_finite_weights_are_refused_by_layer(trained, tensor):
    model, config, _ = load_trained(trained)
    with torch.no_grad():
        model.state_dict()[tensor].view(-1)[0] = float("nan")
    calibration, _, _ = stack_dataset(load_data(config.data).train, 64)
    with pytest.raises(QuantisationError, match=r"layer sn[01]: the trained \w+ contains? NaN"):
        quantise_network(model, calibration)


def test_cli_whole_network_generate_cosim_and_refusals(exported, tmp_path):
    """generate --from writes the accelerator; cosim DIR and cosim --from verify its class
    and logits on test samples; a tampered directory and an unwritable --json are refused in
    one line before any simulation."""
    runner = CliRunner()
    network = tmp_path / "network"
    result = runner.invoke(main, ["generate", "--from", str(exported), "--out", str(network)])
    assert result.exit_code == 0, result.output
    description = json.loads((network / "network.json").read_text())
    assert [s["name"] for s in description["stages"]] == ["synapse_sn0", "sn0", "synapse_sn1",
                                                          "sn1", "readout"]
    assert description["cycles_per_sample"]["typical"] > 0
    report_path = tmp_path / "cosim.json"
    result = runner.invoke(main, ["cosim", str(network), "--samples", "24", "--seed", "2",
                                  "--json", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    for key in ("samples", "class_agreement", "logit_agreement", "hardware_accuracy",
                "cycles_per_sample"):
        assert key in report
    assert report["samples"] == 24 and report["class_agreement"] == 1.0
    assert report["logit_agreement"] == 1.0 and report["cycles_per_sample"] > 0
    # the fast harness by default: no Python per cycle, its speed and build reported
    assert report["harness"] == "fast" and report["cycles_per_s"] > 0
    assert report["optimisation"] in ("-O0", "-O1", "-O2")
    assert report["cycles_per_sample_max"] >= report["cycles_per_sample"] * 0.5
    assert "fast harness" in result.output
    # cosim --from verifies the accelerator generate --from writes (its folding too), so the
    # harness built above serves it
    result = runner.invoke(main, ["cosim", "--from", str(exported), "--samples", "4",
                                  "--json", str(report_path)])
    assert result.exit_code == 0, result.output
    from_export = json.loads(report_path.read_text())
    assert from_export["verilog_sha256"] == description["files"]["network.v"]
    assert from_export["build_s"] < 2, from_export["build_s"]  # a build takes 5 s or more
    result = runner.invoke(main, ["cosim", str(network), "--json",
                                  str(network / "network.v" / "report.json")])  # under a file
    assert result.exit_code == 1 and "cannot write" in result.output, result.output
    (network / "network.v").write_text((network / "network.v").read_text() + "// edited\n")
    for command in (["cosim", str(network)], ["synth", str(network), "--target", "xc7"]):
        result = runner.invoke(main, command)
        assert result.exit_code == 1 and "sha256" in result.output, (command, result.output)
        assert "Traceback" not in result.output
