"""Export directories: formats, manifest hashes, round trip and refusal of bad exports."""

import json

import numpy as np
import pytest

from spikeforge.golden.cpsn_config import CPSNConfig
from spikeforge.sw.export import MANIFEST, ExportError, export_layers, load_export


@pytest.fixture
def exported(tmp_path, rng):
    layers = [("layer0", CPSNConfig.random(rng, channels=16, lanes=4, order=3, dilation=1)),
              ("layer1", CPSNConfig.random(rng, channels=8, lanes=8, order=2, dilation=2,
                                           exp_min=-6, exp_max=1))]
    export_layers(layers, tmp_path, source={"checkpoint": "runs/x/best.pt", "sha256": "0" * 64})
    return tmp_path, layers


def test_round_trip_gives_identical_configurations(exported):
    directory, layers = exported
    manifest, loaded = load_export(directory)
    assert [name for name, _ in loaded] == ["layer0", "layer1"]
    for (_, want), (_, got) in zip(layers, loaded):
        assert got.to_json() == want.to_json()
    entry = manifest["layers"][0]["tables"]["signs"]
    assert entry["shape"] == [16, 3] and entry["element_width"] == 2 and entry["signed"]
    text = (directory / entry["files"]["coe"]).read_text()
    assert "memory_initialization_radix=16;" in text
    assert (directory / entry["files"]["mif"]).read_text().startswith("WIDTH=24;\nDEPTH=4;")


def test_edited_table_is_refused_before_use(exported):
    directory, _ = exported
    path = directory / "layer1_bias.hex"
    path.write_text(path.read_text().replace("0", "1", 1))
    with pytest.raises(ExportError, match=r"layer 'layer1': layer1_bias.hex does not match"):
        load_export(directory)


def test_missing_file_and_table_are_refused(exported):
    directory, _ = exported
    (directory / "layer0_shifts.mif").unlink()
    with pytest.raises(ExportError, match="layer0_shifts.mif is missing"):
        load_export(directory)
    manifest = json.loads((directory / MANIFEST).read_text())
    del manifest["layers"][0]["tables"]["shifts"]
    (directory / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match=r"table\(s\) \['shifts'\] missing"):
        load_export(directory)


def test_widths_that_disagree_with_the_core_are_refused(exported):
    directory, _ = exported
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["layers"][1]["config"]["bias_width"] += 1  # the core would need wider words
    (directory / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match=r"layer 'layer1', table 'bias': element_width"):
        load_export(directory)


def test_not_a_manifest(tmp_path):
    with pytest.raises(ExportError, match="has no manifest.json"):
        load_export(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "other"}))
    with pytest.raises(ExportError, match="not a spikeforge-export v2 manifest"):
        load_export(tmp_path)


def test_hex_and_npz_must_agree(exported):
    directory, layers = exported
    _, config = layers[0]
    np.savez(directory / "layer0_weights.npz", signs=-config.signs,
             exponents=config.exponents, bias=config.bias)
    manifest = json.loads((directory / MANIFEST).read_text())
    from spikeforge.sw.export import sha256_file
    manifest["layers"][0]["npz"]["sha256"] = sha256_file(directory / "layer0_weights.npz")
    (directory / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match=r"layer0_signs.hex and layer0_weights.npz disagree \(table .signs.\)"):
        load_export(directory)


def test_prf_layers_round_trip_and_are_checked(tmp_path, rng):
    from spikeforge.sim.regression import random_prf_config

    config = random_prf_config(rng)
    export_layers([("prf0", config)], tmp_path)
    _, [(name, loaded)] = load_export(tmp_path)
    assert name == "prf0" and loaded.to_json() == config.to_json()
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    powers = manifest["layers"][0]["tables"]["powers"]
    assert powers["shape"] == [config.time_parallelism, config.channels, 2]
    manifest["layers"][0]["config"]["state_width"] += 3  # v_th words would be wider
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match=r"layer 'prf0', table 'v_th': element_width"):
        load_export(tmp_path)


def test_interrupted_export_leaves_the_previous_export(exported, monkeypatch):
    """An export is written into a temporary sibling that replaces the directory only when
    complete: a failure half way leaves the previous export whole and valid."""
    import spikeforge.sw.export as export

    directory, layers = exported
    before = {p.name: p.read_bytes() for p in directory.iterdir()}

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export, "write_mif", fail)
    with pytest.raises(OSError, match="disk full"):
        export_layers(layers[:1], directory)
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    assert not list(directory.parent.glob(f".{directory.name}.*")), "a temporary sibling stayed"
    load_export(directory)
