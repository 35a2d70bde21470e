"""Training: strict configuration, short runs, checkpoints, resume, NaN stop, CLI, torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from spikeforge.golden.data import DataConfig, load_data
from spikeforge.golden.networks import NEURONS, ModelConfig, NeuronConfig, build_model
from spikeforge.sw import train as train_module
from spikeforge.sw.checkpoint import FORMAT, CheckpointError, load_checkpoint
from spikeforge.sw.train import (ConfigError, RunConfig, TrainConfig, TrainingDiverged,
                                 _loss_and_correct, _optimizer, config_to_dict, evaluate,
                                 load_config, load_trained, parse_config, train, train_run,
                                 training_budget)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def small(name="cpsn_bn", dataset="digits", epochs=2, seed=0, **model):
    """A run small enough for CI: a subset of the data and one narrow hidden layer."""
    return {"data": {"name": dataset, "batch_size": 32, "limit": 96},
            "model": {"hidden": [16], "neuron": {"name": name}, **model},
            "train": {"epochs": epochs, "lr": 0.01, "seed": seed}}


def run(tmp_path, raw, name="run", **kwargs):
    return train_run(parse_config(raw), tmp_path / name, progress=False, log=lambda _: None,
                     **kwargs)


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def without_timing(metrics):
    return [{k: v for k, v in row.items() if k != "epoch_s"} for row in metrics]


# -- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_configs_parse_and_build(path):
    config = load_config(path)
    if config.data.name == "uea":
        pytest.importorskip("aeon")  # the `data` extra
    data = load_data(config.data)
    model = build_model(config.model, data.in_features, data.num_outputs, data.steps)
    x, _ = data.test[0]
    assert model(x[:, None]).shape == (1, data.num_outputs)
    assert parse_config(config_to_dict(config)) == config


def test_required_configs_exist():
    assert {"digits_cpsn", "digits_sliding_psn", "digits_pixels_prf",
            "digits_pixels_cpsn"} <= {p.stem for p in CONFIGS}


@pytest.mark.parametrize("change,match", [
    (("model", "neuron", "ordr", 3), r"unknown config key model\.neuron\.ordr"),
    (("data", "batchsize", 3), r"unknown config key data\.batchsize"),
    (("train", "epochs", "ten"), r"train\.epochs: expected int, got 'ten'"),
    (("train", "lr", True), r"train\.lr: expected float, got True"),
    (("model", "hidden", [16, 1.5]), r"model\.hidden\[1\]: expected int"),
    (("model", "hidden", 16), r"model\.hidden: expected a list of int, got 16"),
    (("model", "neuron", "quantize", "yes"), r"model\.neuron\.quantize: expected bool"),
    (("model", "neuron", "tau", 2.0), r"model\.neuron\.tau is not an option of neuron"),
    (("data", "length", 100), r"data\.length is not an option of dataset 'digits'"),
    (("model", "neuron", 3), r"model\.neuron: expected a mapping"),
    (("optimizer", "adam"), r"unknown config key optimizer"),
])
def test_bad_config_keys_are_named(change, match):
    raw = small()
    *path, key, value = change
    section = raw
    for part in path:
        section = section[part]
    section[key] = value
    with pytest.raises(ConfigError, match=match):
        parse_config(raw)


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    raw = small()
    del raw["model"]["neuron"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"bad\.yaml: missing config key model\.neuron"):
        load_config(path)
    path.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"missing\.yaml does not exist$"):
        load_config(tmp_path / "missing.yaml")


# -- runs ------------------------------------------------------------------------------------

def test_short_run_writes_checkpoints_metrics_and_plots(tmp_path, seed):
    summary = run(tmp_path, small(seed=seed))
    out = tmp_path / "run"
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.csv", "metrics.json",
                 "summary.json", "curves.png", "raster.png", "firing_rates.png"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics] == [1, 2]
    assert [row["lr"] for row in metrics] == pytest.approx([0.01, 0.005])  # cosine
    assert {"train_loss", "train_acc", "val_acc", "test_acc", "rate/sn0"} <= set(metrics[0])
    assert (out / "metrics.csv").read_text().splitlines()[0].startswith("epoch,train_loss")
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["format"] == FORMAT and checkpoint["version"] == 1
    assert (checkpoint["epoch"], checkpoint["epochs"], checkpoint["seed"]) == (2, 2, seed)
    assert checkpoint["model_inputs"] == {"in_features": 8, "outputs": 10, "steps": 8}
    assert {"torch", "numpy", "python"} <= set(checkpoint["rng"])
    assert checkpoint["optimizer"]["state"] and summary["epochs"] == 2
    assert yaml.safe_load((out / "config.yaml").read_text()) == checkpoint["config"]
    # the export step's entry point rebuilds the same network from the checkpoint alone
    model, config, best = load_trained(out)
    assert config == parse_config(small(seed=seed))
    data = load_data(config.data)
    x = torch.stack([data.test[i][0] for i in range(8)], 1)
    reference = build_model(config.model, 8, 10, 8)
    reference.load_state_dict(best["state_dict"])
    assert torch.equal(model(x), reference.eval()(x))


def test_seed_fixes_the_run(tmp_path, seed):
    run(tmp_path, small(seed=seed), "a")
    run(tmp_path, small(seed=seed), "b")
    run(tmp_path, small(seed=seed + 1), "c")
    a, b, c = (load_checkpoint(tmp_path / n / "last.pt") for n in "abc")
    assert same_state(a["state_dict"], b["state_dict"])
    assert without_timing(a["metrics"]) == without_timing(b["metrics"])
    assert not same_state(a["state_dict"], c["state_dict"])


def test_resume_equals_uninterrupted(tmp_path, monkeypatch, seed):
    raw = small("masked_psn", epochs=3, seed=seed, dropout=0.2)  # λ schedule and dropout RNG
    run(tmp_path, raw, "whole")
    saves = []
    real_save = train_module.save_checkpoint

    def save_then_crash(path, checkpoint):
        real_save(path, checkpoint)
        saves.append(Path(path).name)
        if checkpoint["epoch"] == 1 and Path(path).name == "last.pt":
            raise KeyboardInterrupt  # killed after the first epoch

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, raw, "split")
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    assert load_checkpoint(tmp_path / "split" / "last.pt")["epoch"] == 1
    run(tmp_path, raw, "split", resume=True)
    whole = load_checkpoint(tmp_path / "whole" / "last.pt")
    split = load_checkpoint(tmp_path / "split" / "last.pt")
    assert split["epoch"] == 3
    assert same_state(whole["state_dict"], split["state_dict"])
    assert without_timing(whole["metrics"]) == without_timing(split["metrics"])
    changed = small("masked_psn", epochs=3, seed=seed, dropout=0.3)
    with pytest.raises(ConfigError, match="only train.epochs may change"):
        run(tmp_path, changed, "split", resume=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = []

    def poisoned(output, target, task):
        loss, correct = _loss_and_correct(output, target, task)
        if torch.is_grad_enabled():  # training batches only
            calls.append(1)
            if len(calls) > 4:  # 3 batches per epoch: the 2nd epoch's 2nd batch
                loss = loss * float("nan")
        return loss, correct

    monkeypatch.setattr(train_module, "_loss_and_correct", poisoned)
    with pytest.raises(TrainingDiverged, match=r"not finite at epoch 2, batch 2.*last\.pt "
                                               r"\(epoch 1\)"):
        run(tmp_path, small(epochs=3))
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values()
               if v.is_floating_point())
    assert len(json.loads((tmp_path / "run" / "metrics.json").read_text())) == 1
    result = CliRunner().invoke(evaluate, [str(tmp_path / "run"), "--checkpoint", "last"])
    assert result.exit_code == 0, result.output


def test_validation_ties_keep_the_later_epoch(tmp_path, monkeypatch):
    real = train_module.evaluate_model
    accuracies = iter([0.5, 0.5, 0.8, 0.8, 0.8, 0.8, 0.7, 0.7])  # (val, test) per epoch

    def plateau(*args, **kwargs):
        return {**real(*args, **kwargs), "acc": next(accuracies)}

    monkeypatch.setattr(train_module, "evaluate_model", plateau)
    summary = run(tmp_path, small(epochs=4))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [row["val_acc"] for row in metrics] == [0.5, 0.8, 0.8, 0.7]
    assert summary["best"]["epoch"] == 3  # epochs 2 and 3 tie at 0.8: the later one
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["epoch"] == 3 and best["best"]["epoch"] == 3
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 4


def test_train_refuses_an_existing_run_without_resume_or_force(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(small(epochs=1)))
    out = tmp_path / "run"
    runner = CliRunner()
    args = ["--config", str(config), "--out", str(out), "--threads", "1", "--no-progress"]
    assert runner.invoke(train, args).exit_code == 0
    before = (out / "last.pt").read_bytes()
    result = runner.invoke(train, args)
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: {out} already holds a run (config.yaml, last.pt, best.pt, ...): give --resume "
        f"to continue it, --force to replace it, or another --out"]
    assert (out / "last.pt").read_bytes() == before  # untouched
    (out / "notes.txt").write_text("mine")
    result = runner.invoke(train, args + ["--force", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out / "last.pt")["seed"] == 3
    assert (out / "notes.txt").read_text() == "mine"  # --force removes run files only
    result = runner.invoke(train, args + ["--force", "--resume"])
    assert result.exit_code == 2 and "give one" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()  # an existing directory without a run is fine
    assert runner.invoke(train, ["--config", str(config), "--out", str(empty),
                                 "--no-progress"]).exit_code == 0


def test_corrupted_and_foreign_checkpoints_are_refused(tmp_path):
    run(tmp_path, small(epochs=1))
    good = (tmp_path / "run" / "last.pt").read_bytes()
    cases = {
        "truncated.pt": (good[: len(good) // 2], "not a readable checkpoint"),
        "garbage.pt": (b"\x00garbage" * 100, "not a readable checkpoint"),
    }
    for name, (content, match) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=rf"{name}: {match}"):
            load_checkpoint(tmp_path / name)
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match=r"foreign\.pt: not a spikeforge checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "pickled.pt")  # a pickled module
    with pytest.raises(CheckpointError, match=r"pickled\.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "pickled.pt")
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    torch.save({**checkpoint, "version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match=r"future\.pt: checkpoint version 99"):
        load_checkpoint(tmp_path / "future.pt")
    del checkpoint["state_dict"]
    torch.save(checkpoint, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"partial\.pt: incomplete.*state_dict"):
        load_checkpoint(tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"nothing\.pt: no such checkpoint"):
        load_checkpoint(tmp_path / "nothing.pt")
    result = CliRunner().invoke(evaluate, [str(tmp_path / "garbage.pt")])
    assert result.exit_code == 1 and "garbage.pt: not a readable checkpoint" in result.output


def test_cli_train_resume_and_evaluate(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(small(epochs=3)))
    out = tmp_path / "cli"
    runner = CliRunner()
    result = runner.invoke(train, ["--config", str(config), "--epochs", "1", "--out", str(out),
                                   "--seed", "5", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "seed 5" in result.output and "epoch 1/1" in result.output
    result = runner.invoke(train, ["--out", str(out), "--resume", "--epochs", "2",
                                   "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "epochs 2..2" in result.output
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    result = runner.invoke(evaluate, [str(out)])
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "sn0" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**small(), "model": {"neuron": {"name": "cpsn",
                                                                   "ordr": 2}}}))
    result = runner.invoke(train, ["--config", str(bad), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "unknown config key model.neuron.ordr" in result.output
    result = runner.invoke(train, ["--out", str(tmp_path / "empty"), "--resume"])
    assert result.exit_code == 1 and "no such checkpoint" in result.output


@pytest.mark.parametrize("raw", [
    {"data": {"name": "adding", "length": 32, "train_samples": 64, "test_samples": 16,
              "batch_size": 32},
     "model": {"hidden": [16], "readout": "last_membrane", "neuron": {"name": "cpsn"}},
     "train": {"epochs": 1}},
    {"data": {"name": "delayed-recall", "length": 32, "train_samples": 64,
              "test_samples": 16, "batch_size": 32},
     "model": {"arch": "sdtcm", "width": 16, "blocks": 1, "readout": "last_membrane",
               "neuron": {"name": "prf"}},
     "train": {"epochs": 1}},
], ids=["adding", "delayed-recall"])
def test_synthetic_tasks_train(tmp_path, raw):
    summary = run(tmp_path, raw)
    assert 0 <= summary["last"]["test_acc"] <= 1
    assert torch.isfinite(torch.tensor(summary["last"]["train_loss"]))


def test_shd_trains_from_a_local_file(tmp_path, rng):
    from test_data import random_shd, write_shd

    write_shd(tmp_path / "shd_train.h5", random_shd(rng, 24))
    write_shd(tmp_path / "shd_test.h5", random_shd(rng, 8))
    raw = {"data": {"name": "shd", "root": str(tmp_path), "steps": 20, "unit_pool": 10,
                    "batch_size": 8},
           "model": {"hidden": [16], "neuron": {"name": "cpsn_bn"}}, "train": {"epochs": 1}}
    assert run(tmp_path, raw)["epochs"] == 1
    raw["data"]["root"] = str(tmp_path / "elsewhere")
    (tmp_path / "shd.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(train, ["--config", str(tmp_path / "shd.yaml"), "--out",
                                        str(tmp_path / "x")])
    assert result.exit_code == 1 and "shd_train.h5" in result.output


@pytest.mark.parametrize("dataset", ["digits", "digits-pixels"])
@pytest.mark.parametrize("name", sorted(NEURONS))
def test_every_neuron_trains_one_step(name, dataset, seed):
    torch.manual_seed(seed)
    arch = {"arch": "sdtcm", "width": 16, "blocks": 1} if name == "prf" else {"hidden": [16]}
    config = parse_config({"data": {"name": dataset, "limit": 32},
                           "model": {"neuron": {"name": name}, **arch}})
    data = load_data(config.data)
    model = build_model(config.model, data.in_features, data.num_outputs, data.steps)
    model.set_epoch(0, 10)
    optimizer = _optimizer(model, TrainConfig(lr=0.01))
    x = torch.stack([data.train[i][0] for i in range(32)], 1)
    y = torch.stack([data.train[i][1] for i in range(32)])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss, _ = _loss_and_correct(model(x), y, data.task)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("layers.") for k in moved) and any(k.startswith("readout.")
                                                                 for k in moved)


def test_neuron_parameters_get_their_own_group():
    model = build_model(ModelConfig(neuron=NeuronConfig(name="prf"), hidden=(8,)), 2, 2, 4)
    optimizer = _optimizer(model, TrainConfig(lr=0.01, neuron_lr=1e-3, weight_decay=0.1))
    others, neurons = optimizer.param_groups
    assert (neurons["lr"], neurons["weight_decay"]) == (1e-3, 0.0)
    assert (others["lr"], others["weight_decay"]) == (0.01, 0.1)
    prf = dict(model.neuron_layers())["sn0"]
    assert {id(p) for p in neurons["params"]} == {id(p) for p in prf.parameters()}


def test_run_config_defaults():
    config = RunConfig(data=DataConfig(name="digits"),
                       model=ModelConfig(neuron=NeuronConfig(name="cpsn")))
    assert config.train == TrainConfig()
    # batch size, epochs and the validation split are chosen from the data unless set
    assert "epochs" not in config_to_dict(config)["train"]
    assert not {"batch_size", "val_fraction"} & set(config_to_dict(config)["data"])


def test_torchrun_two_processes_on_cpu(tmp_path):
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(small(epochs=2)))
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "spikeforge.sw.train", "--config", str(config), "--out", str(out),
         "--no-progress"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 process(es) on cpu" in result.stdout
    checkpoint = load_checkpoint(out / "last.pt")
    assert checkpoint["epoch"] == 2 and (out / "raster.png").is_file()
    metrics = checkpoint["metrics"]
    assert metrics[-1]["train_acc"] > 0


def test_a_typo_in_one_of_several_neurons_is_named_at_its_own_key():
    data = {"data": {"name": "digits"},
            "model": {"arch": "mlp", "hidden": [4, 4], "neuron": {"name": "cpsn_bn"},
                      "neurons": [{"name": "cpsn_bn"}, {"name": "prff"}]}}
    with pytest.raises(ConfigError, match=r"^model\.neurons\[1\]\.name: unknown neuron 'prff'"):
        parse_config(data)


def test_a_damaged_checkpoint_points_to_the_other_one(tmp_path):
    (tmp_path / "best.pt").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match=r"the run's last\.pt may be intact \(`spikeforge "
                                              r"export` and `evaluate` read it with "
                                              r"--checkpoint last\)") as info:
        load_checkpoint(tmp_path / "best.pt")
    assert "weights_only" not in str(info.value)


# -- training budget, model selection, --force (issues 27 and 28) --------------------------------

@pytest.mark.parametrize("samples,processes,batch,epochs,per_epoch", [
    (45, 1, 8, 167, 6),       # GunPoint-sized: 45 samples made 1 step per epoch at batch 64
    (50, 1, 8, 143, 7),
    (36, 1, 8, 200, 5),
    (270, 1, 32, 112, 9),     # JapaneseVowels
    (1213, 1, 64, 53, 19),    # digits
    (8156, 1, 64, 20, 128),   # SHD: the epoch floor
    (5, 1, 8, 300, 1),        # the epoch ceiling
    (270, 2, 16, 112, 9),     # each of two processes sees 135
])
def test_the_budget_is_chosen_from_the_training_split(samples, processes, batch, epochs,
                                                      per_epoch):
    budget = training_budget(samples, processes=processes)
    assert (budget["batch_size"], budget["epochs"], budget["steps_per_epoch"]) == \
        (batch, epochs, per_epoch)
    assert budget["steps"] == per_epoch * epochs and budget["auto"] == ["batch_size", "epochs"]
    assert budget["small"] is None or samples < 8  # the rule itself never warns on real sets


def test_a_configured_budget_is_kept_and_a_small_one_warned_about():
    budget = training_budget(45, batch_size=64, epochs=30)
    assert (budget["batch_size"], budget["epochs"], budget["steps"]) == (64, 30, 30)
    assert budget["auto"] == []
    assert budget["small"].startswith("a small training budget: 30 optimiser steps in all (1 "
                                      "per epoch of 45 samples in batches of 64, 30 epochs)")
    assert "batches of 8 for 167 epochs (1002 steps)" in budget["small"]
    assert training_budget(45, batch_size=16, epochs=100)["small"] is None  # 300 steps
    only_epochs = training_budget(1213, epochs=5)
    assert only_epochs["batch_size"] == 64 and only_epochs["auto"] == ["batch_size"]


def arrays_config(tmp_path, rng, train=45, **data):
    """A user's ``.npz`` of ``train`` samples (3 classes, the class is the loudest of 3
    channels) and a run configuration for it."""
    def make(count):
        y = np.arange(count) % 3
        x = rng.normal(0, 0.5, (count, 5, 3))
        x[np.arange(count), :, y] += 1.5
        return x.astype(np.float32), y

    (x_train, y_train), (x_test, y_test) = make(train), make(20)
    np.savez(tmp_path / "toy.npz", x_train=x_train, y_train=y_train, x_test=x_test,
             y_test=y_test)
    return {"data": {"name": "arrays", "path": str(tmp_path / "toy.npz"), **data},
            "model": {"hidden": [8], "neuron": {"name": "cpsn_bn", "order": 2}},
            "train": {"epochs": 2, "lr": 0.01, "seed": 0}}


def test_train_names_the_data_and_the_budget_and_warns(tmp_path, rng):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(arrays_config(tmp_path, rng, batch_size=64)))
    result = CliRunner().invoke(train, ["--config", str(config), "--out", str(tmp_path / "run"),
                                        "--threads", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (f"data: arrays {tmp_path / 'toy.npz'}: T 5 steps x C 3 channels, 3 "
                        f"classes; train 45 / val 0 / test 20 samples")
    assert lines[1] == ("budget: batches of 64 (as configured), 1 optimiser steps per epoch x 2 "
                        "epochs (as configured) = 2 steps")
    assert lines[2].startswith("warning: a small training budget: 2 optimiser steps")
    assert lines[3].startswith("best.pt: the last epoch: no validation split: 10% of the 45 "
                               "training samples is 4, fewer than the 50")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"] == {"label": f"arrays {tmp_path / 'toy.npz'}", "steps": 5,
                               "channels": 3, "outputs": 3, "train": 45, "val": 0, "test": 20}
    assert summary["budget"]["steps"] == 2


def test_an_unset_budget_is_resolved_and_saved(tmp_path, rng):
    raw = arrays_config(tmp_path, rng)
    del raw["train"]["epochs"]
    raw["data"]["limit"] = 16  # 16 samples: batches of 8, 2 steps per epoch, 300 epochs
    summary = run(tmp_path, {**raw, "train": {**raw["train"], "epochs": 1}})
    assert summary["budget"]["batch_size"] == 8 and summary["budget"]["auto"] == ["batch_size"]
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["data"]["batch_size"] == 8 and saved["train"]["epochs"] == 1
    resumed = train_run(parse_config(raw | {"train": {**raw["train"], "epochs": 2}}),
                        tmp_path / "run", resume=True, progress=False, log=lambda _: None)
    assert resumed["epochs"] == 2  # the unset batch size resolves the same way again


def test_a_small_validation_split_keeps_the_last_epoch(tmp_path, rng, monkeypatch):
    real = train_module.evaluate_model
    accuracies = iter([0.8, 0.5, 0.6, 0.5, 0.4, 0.5])  # (val, test) per epoch: val falls

    def falling(*args, **kwargs):
        return {**real(*args, **kwargs), "acc": next(accuracies)}

    monkeypatch.setattr(train_module, "evaluate_model", falling)
    raw = arrays_config(tmp_path, rng, val_fraction=0.1, batch_size=16)
    raw["train"]["epochs"] = 3
    logged = []
    summary = train_run(parse_config(raw), tmp_path / "run", progress=False, log=logged.append)
    assert summary["selection"] == {
        "rule": "last", "reason": "the last epoch: the validation split holds 4 samples, fewer "
                                  "than the 50 a checkpoint can be chosen on"}
    assert f"best.pt: {summary['selection']['reason']}" in logged
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["epoch"] == 3 and best["selection"]["rule"] == "last"  # not epoch 1's 0.8


def test_a_large_validation_split_chooses_on_validation(tmp_path):
    summary = run(tmp_path, small(epochs=1))
    assert summary["selection"]["rule"] == "val_acc"
    assert summary["selection"]["reason"] == ("the best validation accuracy on 96 samples (ties "
                                              "go to the later epoch)")


def forced(tmp_path, rng):
    """A finished run in ``tmp_path/run`` (with a file of the user's) and the CLI arguments
    that made it."""
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(arrays_config(tmp_path, rng, batch_size=16)))
    out = tmp_path / "run"
    args = ["--out", str(out), "--threads", "1", "--no-progress"]
    result = CliRunner().invoke(train, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    return config, out, args, before


def unchanged(out, before):
    return {p.name: p.read_bytes() for p in out.iterdir()} == before and \
        not (out.parent / ".run.incoming").exists()


def test_force_with_a_bad_config_leaves_the_run_as_it_was(tmp_path, rng):
    config, out, args, before = forced(tmp_path, rng)
    runner = CliRunner()
    typo = tmp_path / "typo.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["model"]["neuron"]["ordr"] = 2
    typo.write_text(yaml.safe_dump(raw))
    result = runner.invoke(train, ["--config", str(typo), "--force", *args])
    assert result.exit_code == 1
    assert "unknown config key model.neuron.ordr" in result.output
    assert unchanged(out, before)
    result = runner.invoke(train, ["--config", str(tmp_path / "nowhere.yaml"), "--force", *args])
    assert result.exit_code == 1 and "nowhere.yaml does not exist" in result.output
    assert unchanged(out, before)


def test_force_with_missing_data_leaves_the_run_as_it_was(tmp_path, rng):
    config, out, args, before = forced(tmp_path, rng)
    (tmp_path / "toy.npz").rename(tmp_path / "moved.npz")
    result = CliRunner().invoke(train, ["--config", str(config), "--force", *args])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1].endswith(f"({out} still holds the previous "
                                                           f"run)")
    assert "toy.npz: no such file" in result.output
    assert unchanged(out, before)


def test_force_that_diverges_leaves_the_run_as_it_was(tmp_path, rng, monkeypatch):
    config, out, args, before = forced(tmp_path, rng)

    def poisoned(output, target, task):
        loss, correct = _loss_and_correct(output, target, task)
        return loss * float("nan"), correct

    monkeypatch.setattr(train_module, "_loss_and_correct", poisoned)
    result = CliRunner().invoke(train, ["--config", str(config), "--force", *args])
    assert result.exit_code == 1, result.output
    assert f"{out} still holds the previous run" in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_force_replaces_the_run_only_when_the_new_one_is_complete(tmp_path, rng):
    config, out, args, before = forced(tmp_path, rng)
    (out.parent / ".run.incoming").mkdir()  # left by an interrupted --force: cleared
    (out.parent / ".run.incoming" / "last.pt").write_text("stale")
    result = CliRunner().invoke(train, ["--config", str(config), "--force", "--seed", "3",
                                        "--epochs", "1", *args])
    assert result.exit_code == 0, result.output
    assert f"replaced the previous run in {out}" in result.output
    assert load_checkpoint(out / "last.pt")["seed"] == 3
    assert len(json.loads((out / "metrics.json").read_text())) == 1
    assert (out / "notes.txt").read_text() == "mine"  # --force replaces run files only
    assert not (out.parent / ".run.incoming").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def test_train_takes_a_bundled_config_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(train, ["--config", "digits_cpsm", "--no-progress"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: configuration digits_cpsm does not exist, and no "
                                    "bundled configuration has that name (bundled: ")
    assert not (tmp_path / "runs").exists()
    config = load_config("demo_cpsn_prf")
    assert config.model.neurons[1].name == "prf"


def test_export_says_which_checkpoint_and_why(tmp_path, rng):
    from spikeforge.sw.checkpoint import describe_checkpoint
    from spikeforge.sw.network import export_run

    run(tmp_path, small(epochs=2), "chosen")
    best = tmp_path / "chosen" / "best.pt"
    checkpoint = load_checkpoint(best)
    accuracy = 100 * checkpoint["best"]["val_acc"]
    assert describe_checkpoint(best, checkpoint) == (
        f"{best}: epoch {checkpoint['epoch']} of 2, chosen as the best validation accuracy on "
        f"96 samples (ties go to the later epoch): {accuracy:.2f}%")
    last = tmp_path / "chosen" / "last.pt"
    assert describe_checkpoint(last, load_checkpoint(last)) == \
        f"{last}: epoch 2 of 2, the last epoch trained (last.pt)"
    older = {k: v for k, v in checkpoint.items() if k != "selection"}
    assert "predates the recorded selection rule" in describe_checkpoint(best, older)
    raw = arrays_config(tmp_path, rng, batch_size=16)
    raw["model"]["neuron"]["exp_max"] = 2
    run(tmp_path, raw, "small")
    logged = []
    manifest = export_run(tmp_path / "small", tmp_path / "export", log=logged.append)
    assert logged[0] == (f"exporting {tmp_path / 'small' / 'best.pt'}: epoch 2 of 2, chosen as "
                         f"the last epoch: no validation split: 10% of the 45 training samples "
                         f"is 4, fewer than the 50 a checkpoint can be chosen on, so every "
                         f"training sample trains (set data.val_fraction to cut one anyway)")
    assert manifest["source"]["selection"]["rule"] == "last"
