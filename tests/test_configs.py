"""Every shipped configuration: found by name, and either mapped by the exporter or listed here
as software-only with the reason the exporter gives. Static: the network is built untrained
and quantised on a few training samples (the exporter's mapping, its core configurations
and the integer model), nothing is trained."""

from pathlib import Path

import numpy as np
import pytest

from spikeforge.golden.data import load_data
from spikeforge.golden.networks import build_model
from spikeforge.sw.configs import CONFIG_DIR, bundled_configs, resolve_run_config
from spikeforge.sw.quantise import QuantisationError, quantise_network, stack_dataset
from spikeforge.sw.train import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))

NO_CORE = r"has no hardware core; export supports "
SDTCM = r"export maps 'mlp' networks .* this run is 'sdtcm'"
#: Configurations that train in software only, and the exporter's reason. A configuration
#: whose neuron gains a hardware core fails test_every_config_maps_or_says_why until it
#: leaves this list.
SOFTWARE_ONLY = {
    **{f"digits_{n}": NO_CORE for n in ("psn", "masked_psn", "sliding_psn", "psu", "ipsu",
                                        "rpsu")},
    **{f"digits_pixels_{n}": NO_CORE for n in ("psn", "masked_psn", "sliding_psn", "psu",
                                               "ipsu", "rpsu")},
    "digits_prf": SDTCM,          # the paper's SD-TCM blocks (docs/neurons.md)
    "digits_pixels_prf": SDTCM,
}


def test_config_directory_is_the_checkouts():
    assert CONFIG_DIR == ROOT / "configs"
    assert bundled_configs() == [p.stem for p in CONFIGS]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_maps_or_says_why(path):
    config = load_config(path)
    if config.data.name == "uea":
        pytest.importorskip("aeon")  # the `data` extra
    data = load_data(config.data)
    model = build_model(config.model, data.in_features, data.num_outputs, data.steps).eval()
    x, _, _ = stack_dataset(data.train, 4)
    if path.stem in SOFTWARE_ONLY:
        with pytest.raises(QuantisationError, match=SOFTWARE_ONLY[path.stem]):
            quantise_network(model, x)
        return
    network = quantise_network(model, x)
    assert len(network.layers) == len(config.model.hidden)
    trace = network.run(x[:, :2])
    assert trace.predictions.shape == (2,)
    assert np.all((trace.predictions >= 0) & (trace.predictions < data.num_outputs))


def test_real_data_and_demo_configs_reach_hardware():
    """The configurations for a user's data (UEA sets) and the demo are never software-only,
    PRF ones included (issue 28: the SD-TCM ones could not be exported)."""
    real = {p.stem for p in CONFIGS if load_config(p).data.name not in ("digits",
                                                                        "digits-pixels")}
    assert {"japanese_vowels_prf", "japanese_vowels_cpsn", "basic_motions_prf",
            "italy_power_demand_prf"} <= real
    assert not (real | {"demo_cpsn_prf"}) & set(SOFTWARE_ONLY)
    assert set(SOFTWARE_ONLY) <= {p.stem for p in CONFIGS}


@pytest.mark.parametrize("name", ["digits_cpsn", "digits_cpsn.yaml", "configs/digits_cpsn.yaml"])
def test_bundled_configs_resolve_by_name_from_anywhere(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    assert resolve_run_config(name) == CONFIG_DIR / "digits_cpsn.yaml"
    own = tmp_path / "digits_cpsn.yaml"  # a file of that name where spikeforge runs wins
    own.write_text("data: {name: digits}\n")
    assert resolve_run_config("digits_cpsn.yaml") == Path("digits_cpsn.yaml")


def test_an_unknown_config_name_lists_the_bundled_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"configuration digits_cpsm does not exist, "
                                                r"and no bundled configuration has that name "
                                                r"\(bundled: basic_motions_cpsn, .*digits_cpsn,"):
        resolve_run_config("digits_cpsm")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_run_config("elsewhere/digits_cpsn.yaml")  # a path is not a name
