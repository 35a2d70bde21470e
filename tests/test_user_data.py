"""A user's own data: arrays files, entry points and UEA/UCR sets, checked before training and
rebuilt by every later command from the saved run alone (fresh processes)."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from spikeforge.golden.data import DataConfig, DataError, DatasetNotFoundError, load_data
from spikeforge.sw.train import train

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("spikeforge")
#: Verilator builds shared with the other cosim tests (identical cores are not rebuilt).
BUILD = ROOT / "build" / "cosim"


def toy_arrays(rng, train=48, test=12, steps=6, channels=3, classes=3):
    """A learnable task: the class is the channel with the largest mean (plus noise)."""
    def make(count):
        y = rng.integers(0, classes, count)
        x = rng.normal(0, 0.5, (count, steps, channels))
        x[np.arange(count), :, y % channels] += 1.5
        return x.astype(np.float32), y.astype(np.int64)

    x_train, y_train = make(train)
    x_test, y_test = make(test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def tiny_run(data: dict, epochs=2) -> dict:
    return {"data": {"batch_size": 16, **data},
            "model": {"hidden": [8], "neuron": {"name": "cpsn_bn", "order": 2,
                                                 "exp_max": 2}},
            "train": {"epochs": epochs, "lr": 0.01, "seed": 0}}


def cli(cwd, *args):
    """``spikeforge ARGS`` in a fresh process; returns (exit code, output)."""
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m",
                                                     "spikeforge.sw.cli"]
    env = {**os.environ, "PYTHONPATH": ""}
    result = subprocess.run(command + list(args), cwd=cwd, capture_output=True, text=True,
                            env=env, timeout=600)
    return result.returncode, result.stdout + result.stderr


def run_everything(tmp_path, config: dict):
    """train, evaluate, export --checkpoint last and cosim --from, each a fresh process."""
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    code, out = cli(tmp_path, "train", "--config", "run.yaml", "--out", "run", "--threads",
                    "1", "--no-progress")
    assert code == 0, out
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["data"]["pad"] == config["data"].get("pad", "none")  # recorded, not implied
    code, out = cli(tmp_path, "evaluate", "run", "--checkpoint", "last")
    assert code == 0 and "test accuracy" in out, out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert f"{100 * metrics[-1]['test_acc']:.2f}%" in out  # same data, same model
    code, out = cli(tmp_path, "export", "run", "--out", "export", "--checkpoint", "last",
                    "--lanes", "4")
    assert code == 0, out
    epochs = config["train"]["epochs"]
    assert f"exporting {Path('run', 'last.pt')}: epoch {epochs} of {epochs}, the last epoch " \
           f"trained (last.pt)" in out
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["source"]["checkpoint"].endswith("last.pt")
    code, out = cli(tmp_path, "cosim", "--from", "export", "--samples", "3", "--build-dir",
                    str(BUILD))
    assert code == 0 and "PASS" in out, out
    return out


def test_npz_dataset_trains_evaluates_exports_and_cosims_from_the_cli(tmp_path, rng):
    np.savez(tmp_path / "toy.npz", **toy_arrays(rng))
    out = run_everything(tmp_path, tiny_run({"name": "arrays", "path": "toy.npz"}))
    assert "3 test samples of arrays" in out


def test_entry_point_dataset_is_rebuilt_in_fresh_processes(tmp_path, rng):
    arrays = toy_arrays(rng)
    np.savez(tmp_path / "raw.npz", **arrays)
    (tmp_path / "toydata.py").write_text(textwrap.dedent('''
        import numpy as np

        def load(path, drop=0):
            raw = np.load(path)
            # variable lengths: drop the last `drop` steps of every other training series
            x_train = [s[:len(s) - drop] if i % 2 else s for i, s in enumerate(raw["x_train"])]
            return {"x_train": x_train, "y_train": raw["y_train"],
                    "x_test": raw["x_test"], "y_test": raw["y_test"]}
    '''))
    run_everything(tmp_path, tiny_run({"name": "toydata:load", "standardize": True,
                                       "options": {"path": "raw.npz", "drop": 2}}))


# -- checks before training ----------------------------------------------------------------------

def write_npz(path, arrays):
    np.savez(path, **arrays)
    return DataConfig(name="arrays", path=str(path))


@pytest.mark.parametrize("key,change,match", [
    ("x_train", lambda a: a[:, :, 0], r"x_train must be \[N, T, C\] \(3 dimensions\), got "
                                      r"shape \(48, 6\)"),
    ("x_test", lambda a: a[None], r"x_test must be \[N, T, C\] \(3 dimensions\)"),
    ("x_test", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, np.nan, a),
     r"x_test contains NaN or inf \(sample 0, step 2, channel 1\)"),
    ("x_train", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 20, np.inf, a),
     r"x_train contains NaN or inf \(sample 1, step 0, channel 2\)"),
    ("y_test", lambda a: np.where(np.arange(a.size) == 4, 3, a),
     r"y_test has label 3 \(sample 4\) outside \[0, 3\)"),
    ("y_train", lambda a: np.where(np.arange(a.size) == 2, -1, a),
     r"y_train has label -1 \(sample 2\) outside \[0, 3\)"),
    ("x_test", lambda a: a[:0], r"x_test is empty \(N = 0\)"),
    ("x_train", lambda a: a[:, :0], r"x_train sample 0 has T = 0 time steps"),
    ("y_train", lambda a: a[:-1], r"y_train has 47 labels for the 48 samples of x_train"),
    ("y_train", lambda a: a + 0.5, r"y_train must hold integer class indices"),
    ("x_test", lambda a: a[:, :, :2], r"x_train has 3 channels, x_test 2"),
])
def test_bad_arrays_are_refused_with_the_key_named(tmp_path, rng, key, change, match):
    arrays = toy_arrays(rng)
    arrays["y_train"][:3] = [0, 1, 2]  # every class present: classes = 3
    arrays["y_test"] = np.clip(arrays["y_test"], 0, 2)
    arrays[key] = change(arrays[key])
    config = write_npz(tmp_path / "bad.npz", arrays)
    config = DataConfig(name="arrays", path=config.path, num_classes=3)
    with pytest.raises(DataError, match=f"data.path {tmp_path / 'bad.npz'}: {match}"):
        load_data(config)


def test_missing_keys_and_files_are_named(tmp_path, rng):
    arrays = toy_arrays(rng)
    del arrays["y_test"]
    with pytest.raises(DataError, match="no y_test .found x_test, x_train, y_train"):
        load_data(write_npz(tmp_path / "a.npz", arrays))
    with pytest.raises(DatasetNotFoundError, match="nope.npz: no such file"):
        load_data(DataConfig(name="arrays", path=str(tmp_path / "nope.npz")))
    (tmp_path / "a.csv").write_text("1,2\n")
    with pytest.raises(DataError, match=r"expected a .npz, .h5 or .hdf5 file"):
        load_data(DataConfig(name="arrays", path=str(tmp_path / "a.csv")))


def test_label_beyond_the_training_classes_suggests_num_classes(tmp_path, rng):
    arrays = toy_arrays(rng)
    arrays["y_train"] = np.clip(arrays["y_train"], 0, 1)
    arrays["y_test"][0] = 2
    with pytest.raises(DataError, match=r"y_test has label 2 \(sample 0\) outside \[0, 2\) "
                                        r".*set data.num_classes"):
        load_data(write_npz(tmp_path / "a.npz", arrays))


def test_cli_refuses_bad_data_before_training(tmp_path, rng):
    arrays = toy_arrays(rng)
    arrays["x_train"][5, 1, 0] = np.nan
    np.savez(tmp_path / "bad.npz", **arrays)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(
        tiny_run({"name": "arrays", "path": str(tmp_path / "bad.npz")})))
    result = CliRunner().invoke(train, ["--config", str(tmp_path / "bad.yaml"), "--out",
                                        str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 1 and result.exception is None or \
        isinstance(result.exception, SystemExit), result.output
    assert result.output.strip().splitlines() == [
        f"Error: data.path {tmp_path / 'bad.npz'}: x_train contains NaN or inf (sample 5, "
        f"step 1, channel 0)"]
    assert not (tmp_path / "run").exists()


def test_hdf5_arrays_load_like_npz(tmp_path, rng):
    arrays = toy_arrays(rng)
    with h5py.File(tmp_path / "toy.h5", "w") as file:
        for key, value in arrays.items():
            file[key] = value
    np.savez(tmp_path / "toy.npz", **arrays)
    a = load_data(DataConfig(name="arrays", path=str(tmp_path / "toy.h5"), val_fraction=0.1))
    b = load_data(DataConfig(name="arrays", path=str(tmp_path / "toy.npz"), val_fraction=0.1))
    assert (a.in_features, a.num_outputs, a.steps) == (3, 3, 6)
    assert len(a.train) + len(a.val) == 48 and len(a.test) == 12
    for split in ("train", "val", "test"):
        xa, ya = zip(*getattr(a, split))
        xb, yb = zip(*getattr(b, split))
        assert torch.equal(torch.stack(xa), torch.stack(xb)) and ya == yb
    x, y = a.test[3]
    assert torch.equal(x, torch.from_numpy(arrays["x_test"][3])) and y == arrays["y_test"][3]


# -- standardisation and padding ------------------------------------------------------------------

def entry(tmp_path, monkeypatch, body: str, **data):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "userdata.py").write_text(textwrap.dedent(body))
    return DataConfig(name="userdata.py:load", **data)


def test_standardisation_uses_the_training_samples_alone(tmp_path, monkeypatch, rng):
    from spikeforge.golden.data import validation_split

    arrays = toy_arrays(rng, train=40)
    arrays["x_train"] = arrays["x_train"] * [1, 10, 100] + [5, -3, 0]
    np.savez(tmp_path / "a.npz", **arrays)
    rest, val, _ = validation_split(DataConfig(name="arrays", path="a.npz", val_fraction=0.1),
                                    40, arrays["y_train"])
    assert len(val) == 4
    arrays["x_test"] = arrays["x_test"] * 1000  # the test split must not move the statistics,
    arrays["x_train"][val] = 1e6                # nor must the validation samples
    np.savez(tmp_path / "b.npz", **arrays)
    config = entry(tmp_path, monkeypatch, '''
        import numpy as np
        def load(path):
            return dict(np.load(path))
    ''', standardize=True, val_fraction=0.1)
    a = load_data(dataclasses.replace(config, options={"path": "a.npz"}))
    b = load_data(dataclasses.replace(config, options={"path": "b.npz"}))
    x = torch.stack([s for s, _ in a.train])
    assert torch.allclose(x.mean((0, 1)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(x.std((0, 1), unbiased=False), torch.ones(3), atol=1e-4)
    assert torch.equal(x, torch.stack([s for s, _ in b.train]))
    raw = np.load(tmp_path / "a.npz")
    steps = raw["x_train"][rest].reshape(-1, 3)
    expected = (raw["x_test"] - steps.mean(0)) / steps.std(0)
    assert np.allclose(torch.stack([s for s, _ in a.test]).numpy(), expected, atol=1e-5)
    assert not np.allclose(torch.stack([s for s, _ in b.test]).numpy(), expected)


@pytest.mark.parametrize("pad,length", [("end", None), ("start", None), ("end", 3),
                                        ("start", 3), ("none", None), ("none", 3)])
def test_variable_lengths_are_padded_as_documented(tmp_path, monkeypatch, pad, length):
    config = entry(tmp_path, monkeypatch, '''
        import numpy as np
        def load():
            x = [np.full((n, 2), n, dtype=float) for n in (2, 4, 5, 1)]
            return {"x_train": x, "y_train": [0, 1, 0, 1], "x_test": x[:2], "y_test": [1, 0]}
    ''', pad=pad, length=length, val_fraction=0.0)
    data = load_data(config)
    steps = length or 5
    assert data.steps == steps and data.in_features == 2 and data.num_outputs == 2
    x = {int(s[:, 0].max()): s[:, 0].tolist() for s, _ in data.train}
    for n in (2, 4, 5, 1):
        kept = min(n, steps)
        padding = [] if pad == "none" else [0.0] * (steps - kept)
        values = [float(n)] * kept + padding
        assert x[n] == (values if pad != "start" else values[::-1])
    assert data.lengths == ((1, steps) if pad == "none" else None)


def test_entry_point_errors_are_one_line(tmp_path, monkeypatch):
    config = entry(tmp_path, monkeypatch, '''
        def load():
            raise RuntimeError("no such table")
    ''')
    with pytest.raises(DataError, match="userdata.py:load: the function raised RuntimeError: "
                                        "no such table"):
        load_data(config)
    with pytest.raises(DataError, match="cannot import no_such_module"):
        load_data(DataConfig(name="no_such_module:load"))
    with pytest.raises(DataError, match="has no function nothing"):
        load_data(DataConfig(name="userdata.py:nothing"))
    (tmp_path / "userdata.py").write_text("def load():\n    return [1, 2]\n")
    with pytest.raises(DataError, match="must return a dict with x_train"):
        load_data(DataConfig(name="userdata.py:load"))


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="uea"), "data.dataset is required for dataset 'uea'"),
    (dict(name="arrays"), "data.path is required for dataset 'arrays'"),
    (dict(name="arrays", path="a.npz", dataset="X"), "data.dataset is not an option"),
    (dict(name="uea", dataset="X", pad="middle"), r"data.pad: expected one of \['none', 'end', 'start'\]"),
    (dict(name="uea", dataset="X", length=0), "data.length must be >= 1"),
    (dict(name="mymodule"), "unknown dataset 'mymodule'.*'module:function'"),
    (dict(name="m:load", path="a.npz"), "data.path is not an option of dataset "
                                        "'entry point m:load'"),
    (dict(name="digits", options={"a": 1}), "data.options is not an option"),
])
def test_user_data_options_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataConfig(**kwargs)


# -- UEA / UCR through aeon ----------------------------------------------------------------------

def test_uea_japanese_vowels_keeps_the_official_split():
    pytest.importorskip("aeon")
    data = load_data(DataConfig(name="uea", dataset="JapaneseVowels"))
    # 10 % would be 27 validation samples, too few to choose a checkpoint on: all 270 train
    assert (len(data.train), data.val, len(data.test)) == (270, None, 370)
    assert data.val_note.startswith("no validation split: 10% of the 270 training samples is "
                                    "27, fewer than the 50")
    assert (data.in_features, data.num_outputs, data.steps) == (12, 9, 29)
    labels = torch.stack([y for _, y in data.test])
    assert sorted(labels.unique().tolist()) == list(range(9))
    # training series have 7-26 steps, test series up to 29: each keeps its own (no padding)
    assert data.lengths == (7, 29)
    train = [len(s) for s, _ in data.train]
    assert (min(train), max(train)) == (7, 26) and max(len(s) for s, _ in data.test) == 29
    assert all(s.abs().max() < 10 and s.all() for s, _ in data.train)  # standardised, unpadded
    padded = load_data(DataConfig(name="uea", dataset="JapaneseVowels", pad="end"))
    x = torch.stack([s for s, _ in padded.train])
    assert padded.lengths is None and x.shape[1] == 29  # zeros pad every series's end
    assert x[:, 26:].abs().sum() == 0 and x[:, :7].all()
    assert all(torch.equal(s, x[n, :len(s)]) for n, (s, _) in enumerate(data.train))


def test_uea_reads_downloaded_files_from_extract_path(tmp_path):
    pytest.importorskip("aeon")
    (tmp_path / "Toy").mkdir()
    header = ("@problemName Toy\n@timeStamps false\n@missing false\n@univariate false\n"
              "@dimensions 2\n@equalLength false\n@classLabel true 10 2 1\n@data\n")
    rows = "1,2,3:4,5,6:10\n1,2:3,4:2\n2,2,2,2:1,1,1,1:1\n5,1:0,0:2\n"
    for split in ("TRAIN", "TEST"):
        (tmp_path / "Toy" / f"Toy_{split}.ts").write_text(header + rows)
    data = load_data(DataConfig(name="uea", dataset="Toy", extract_path=str(tmp_path),
                                val_fraction=0.0, standardize=False))
    assert (data.in_features, data.num_outputs, data.steps) == (2, 3, 4)
    x, y = data.test[0]
    assert y == 2  # labels 1, 2, 10 in numeric order
    assert x.tolist() == [[1, 4], [2, 5], [3, 6]]  # its own 3 steps of the longest 4


def test_uea_missing_set_names_extract_path(tmp_path):
    pytest.importorskip("aeon")
    (tmp_path / "Nothing").mkdir()
    (tmp_path / "Nothing" / "Nothing_TRAIN.ts").write_text("@problemName Nothing\n@data\nx\n")
    with pytest.raises((DatasetNotFoundError, DataError), match="data.dataset Nothing"):
        load_data(DataConfig(name="uea", dataset="Nothing", extract_path=str(tmp_path)))


def test_entry_point_options_are_saved_as_given():
    from spikeforge.sw.train import config_to_dict, parse_config

    raw = {"data": {"name": "mydata:load", "options": {"path": "a.npz", "cut": None}},
           "model": {"neuron": {"name": "psn"}}}
    config = parse_config(raw)
    assert config_to_dict(config)["data"]["options"] == {"path": "a.npz", "cut": None}
    assert parse_config(config_to_dict(config)) == config
    with pytest.raises(ValueError, match="data.options: expected dict, got 3"):
        parse_config({**raw, "data": {"name": "mydata:load", "options": 3}})


def test_uea_without_aeon_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "aeon", None)  # import aeon now fails
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    with pytest.raises(DataError, match=r"data.dataset JapaneseVowels: UEA/UCR sets need the "
                                        r"aeon package.*pip install 'spikeforge\[data\]' \(in a "
                                        r"checkout: pip install -e '.\[data\]'\)"):
        load_data(DataConfig(name="uea", dataset="JapaneseVowels"))
