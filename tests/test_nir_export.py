"""NIR export of trained runs: CPSN as Delay + Scale + Threshold, proven exact by a round trip
through our importer; what NIR cannot hold (PRF, the soft-reset LIF) refused naming the
layer, nothing written (docs/nir.md)."""

import pytest
import torch
from click.testing import CliRunner

nir = pytest.importorskip("nir")

from spikeforge.golden.networks import build_model  # noqa: E402
from spikeforge.sw.checkpoint import save_checkpoint  # noqa: E402
from spikeforge.sw.nir_cli import run_import  # noqa: E402
from spikeforge.sw.nir_export import NIRExportError, export_nir, main  # noqa: E402
from spikeforge.sw.train import config_to_dict, parse_config  # noqa: E402

SEED = 11


def fake_run(tmp_path, neurons, readout="mean_membrane", hidden=(16, 16), norm="batchnorm"):
    """A run directory holding an untrained (seeded) network, as ``train`` would save it."""
    torch.manual_seed(SEED)
    config = parse_config({
        "data": {"name": "digits", "limit": 120},
        "model": {"arch": "mlp", "hidden": list(hidden), "readout": readout, "norm": norm,
                  "neuron": neurons[0], "neurons": neurons},
        "train": {"epochs": 1}})
    model = build_model(config.model, 8, 10, 8)
    with torch.no_grad():  # make the BatchNorm folding non-trivial
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    run = tmp_path / "run"
    run.mkdir()
    checkpoint = {"config": config_to_dict(config),
                  "model_inputs": {"in_features": 8, "outputs": 10, "steps": 8},
                  "state_dict": model.state_dict(), "optimizer": {}, "epoch": 1, "epochs": 1,
                  "seed": SEED, "rng": {}, "metrics": [], "best": {}}
    save_checkpoint(run / "best.pt", checkpoint)
    return run


CPSN = {"name": "cpsn_bn", "exp_max": 2}


@pytest.mark.parametrize("readout", ["mean_membrane", "mean_spikes"])
def test_cpsn_exports_exactly_and_reads_back(readout, tmp_path):
    run = fake_run(tmp_path, [CPSN, {**CPSN, "order": 3}], readout=readout)
    result = export_nir(run, tmp_path / "cpsn.nir", log=lambda *_: None)
    layers = ["sn0", "sn1"] + (["readout.neuron"] if readout == "mean_spikes" else [])
    assert {k: result[k] for k in layers} == {k: 0 for k in layers}, f"seed {SEED}"
    assert all(result["spikes"][k] > 0 for k in layers), result["spikes"]
    assert result["classes"] == 0
    graph = nir.read(tmp_path / "cpsn.nir")
    kinds = sorted({type(n).__name__ for n in graph.nodes.values()})
    assert kinds == ["Affine", "Delay", "Input", "Output", "Scale", "Threshold"]
    # order 3, dilation 2 (the second layer's sawtooth): delays of 4 and 2 steps
    delays = sorted(float(graph.nodes[k].delay[0]) for k in graph.nodes if
                    k.startswith("sn1.delay"))
    assert delays == pytest.approx([2e-3, 4e-3])
    config = tmp_path / "data.yaml"
    config.write_text("data:\n  name: digits\n  limit: 120\n")
    summary = run_import(tmp_path / "cpsn.nir", config, tmp_path / "back",
                         log=lambda *_: None)
    assert summary["source"] == "spikeforge"
    assert summary["origin"]["dt"] == "file metadata"


def test_threshold_offset_is_what_makes_cpsn_exact(tmp_path, monkeypatch):
    """The Threshold sits one float below −b (NIR fires on >, CPSN on >= 0): writing −b itself
    is caught by the round trip wherever a membrane is exactly 0."""
    import spikeforge.sw.nir_export as export

    run = fake_run(tmp_path, [CPSN, CPSN], norm="none")
    # inputs on a coarse grid make exact zeros likely: a bias on that grid too
    state = torch.load(run / "best.pt", weights_only=True)
    for key in list(state["state_dict"]):
        if key.endswith("fc0.weight"):
            state["state_dict"][key] = torch.round(state["state_dict"][key] * 4) / 4
        if key.endswith("fc0.bias"):
            state["state_dict"][key] = torch.zeros_like(state["state_dict"][key])
        if key.endswith("sn0.running_mean"):  # b_f = β − γ·μ/σ = −1 exactly
            state["state_dict"][key] = torch.zeros_like(state["state_dict"][key])
    save_checkpoint(run / "best.pt", {k: v for k, v in state.items()
                                      if k not in ("format", "version")})
    export_nir(run, tmp_path / "ok.nir", log=lambda *_: None)
    monkeypatch.setattr(export.np, "nextafter", lambda x, _to: x)
    with pytest.raises(NIRExportError, match="layer sn0: NIR does not hold it exactly"):
        export_nir(run, tmp_path / "bad.nir", log=lambda *_: None)
    assert not (tmp_path / "bad.nir").exists()


@pytest.mark.parametrize("neuron, words", [
    ({"name": "prf"}, "layer sn1: PRF's state is complex"),
    ({"name": "lif"}, "layer sn1: this LIF resets by subtracting"),
    ({"name": "psn"}, "layer sn1: PSN has no NIR form"),
])
def test_what_nir_cannot_hold_is_refused_naming_the_layer(neuron, words, tmp_path):
    run = fake_run(tmp_path, [CPSN, neuron])
    out = tmp_path / "x.nir"
    result = CliRunner().invoke(main, [str(run), "--out", str(out)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.output
    assert not out.exists() and not (tmp_path / "x.nir.tmp").exists()
