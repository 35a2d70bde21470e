"""Training and evaluation: ``spikeforge train`` and ``spikeforge evaluate``.

A run is described by a YAML file with three sections (see ``docs/training.md``): ``data``
(:class:`~spikeforge.golden.data.DataConfig`), ``model``
(:class:`~spikeforge.golden.networks.ModelConfig`) and ``train`` (:class:`TrainConfig`).
Keys are checked strictly: an unknown key or a value of the wrong type is an error that
names the key's full path.

A run directory holds ``config.yaml``, ``last.pt`` and ``best.pt`` (see
:mod:`spikeforge.sw.checkpoint`), ``metrics.csv``/``metrics.json`` (one row per epoch),
``summary.json`` and the plots ``curves.png``, ``raster.png`` and ``firing_rates.png``.

On CPU a seed fixes the run: data order (reseeded every epoch from the seed and the epoch),
initialisation and dropout, so ``--resume`` continues exactly where an interrupted run
stopped. Under ``torchrun`` the same command trains with DistributedDataParallel (gloo on
CPU, nccl on CUDA); rank 0 writes the run directory.
"""

import csv
import dataclasses
import json
import math
import os
import random
import sys
import time
import types
import typing
from pathlib import Path

import click
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader, DistributedSampler

from ..golden.data import (ADDING_TOLERANCE, VAL_MIN, DataConfig, DataError,
                           DatasetNotFoundError, collate_samples, load_data, step_mask)
from ..golden.networks import ModelConfig, build_model
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .configs import resolve_run_config
from .outputs import writable_dir
from .plots import plot_curves, plot_firing_rates, plot_raster

__all__ = ["ConfigError", "TrainConfig", "RunConfig", "parse_config", "load_config",
           "config_to_dict", "replace_train", "TrainingDiverged", "training_budget",
           "resolve_budget", "train_run", "evaluate_model", "load_trained", "train", "evaluate",
           "TARGET_STEPS", "MIN_STEPS_PER_EPOCH", "BATCH_RANGE", "EPOCH_RANGE", "SMALL_BUDGET"]


# -- configuration ---------------------------------------------------------------------------

class ConfigError(ValueError):
    """A run configuration is invalid; the message names the key."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """``train``: optimisation. ``neuron_lr`` (default: ``lr``) is the learning rate of the
    neurons' own parameters (thresholds, decays, PRF's Δ and θ), which never decay."""

    #: ``None``: chosen from the training split's size (:func:`training_budget`).
    epochs: int | None = None
    lr: float = 1e-2
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    neuron_lr: float | None = None
    schedule: str = "cosine"
    grad_clip: float | None = None
    seed: int = 0

    def __post_init__(self):
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"train.epochs must be >= 1, got {self.epochs}")
        for key in ("lr", "neuron_lr", "grad_clip"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ValueError(f"train.{key} must be > 0, got {value}")
        if self.weight_decay < 0:
            raise ValueError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"train.optimizer: unknown optimizer {self.optimizer!r}; choose "
                             f"one of {sorted(_OPTIMIZERS)}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"train.schedule: unknown schedule {self.schedule!r}; choose one "
                             f"of ['constant', 'cosine']")


_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig = TrainConfig()


def _type_name(annotation) -> str:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is tuple:
        return f"a list of {_type_name(typing.get_args(annotation)[0])}"
    if annotation is type(None):
        return "null"
    return "a mapping" if dataclasses.is_dataclass(annotation) else annotation.__name__


def _convert(annotation, value, key: str):
    """``value`` as ``annotation`` (int, float, bool, str, tuple[X, ...], X | None or a
    dataclass) or :class:`ConfigError` naming ``key`` (an item as ``key[i]``) and the
    expected type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return None if value is None else _convert(inner, value, key)  # only X | None occurs
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            item = typing.get_args(annotation)[0]
            return tuple(_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    elif dataclasses.is_dataclass(annotation):
        return _parse_section(annotation, value, key)
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, annotation):
        return value
    raise ConfigError(f"{key}: expected {_type_name(annotation)}, got {value!r} "
                      f"({type(value).__name__})")


def _parse_section(cls, data, key: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in data:
        if name not in fields:
            raise ConfigError(f"unknown config key {key}.{name} (known keys in {key}: "
                              f"{', '.join(fields)})")
    missing = [name for name, f in fields.items() if name not in data
               and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"missing config key {key}.{missing[0]}")
    values = {name: _convert(hints[name], value, f"{key}.{name}")
              for name, value in data.items()}
    try:
        return cls(**values)
    except ValueError as exc:
        # A neuron section's checks name it ``model.neuron``; one of ``model.neurons`` is
        # reported at its own key (``model.neurons[1].name``).
        raise ConfigError(str(exc).replace("model.neuron.", f"{key}.", 1)) from None


def parse_config(data: dict) -> RunConfig:
    """Strictly parse a run configuration (the YAML document as Python data)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a run configuration must be a mapping with data, model and train "
                          f"sections, got {type(data).__name__}")
    for name in data:
        if name not in ("data", "model", "train"):
            raise ConfigError(f"unknown config key {name} (known sections: data, model, train)")
    for name in ("data", "model"):
        if name not in data:
            raise ConfigError(f"missing config section {name}")
    return RunConfig(data=_parse_section(DataConfig, data["data"], "data"),
                     model=_parse_section(ModelConfig, data["model"], "model"),
                     train=_parse_section(TrainConfig, data.get("train", {}), "train"))


def load_config(path) -> RunConfig:
    """Read and parse a YAML run configuration (a path, or the name of a bundled one such as
    ``digits_cpsn``); errors start with the file name."""
    try:
        path = resolve_run_config(path)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def config_to_dict(config) -> dict:
    """Plain data for YAML and checkpoints (unset options left out); inverse of
    :func:`parse_config`."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, tuple):
            return [clean(v) for v in value]
        return value

    data = clean(dataclasses.asdict(config))
    options = getattr(getattr(config, "data", None), "options", None)
    if options is not None:  # a function's keyword arguments: kept as given, None included
        data["data"]["options"] = dict(options)
    return data


def replace_train(config: RunConfig, **changes) -> RunConfig:
    """``config`` with the ``train`` fields in ``changes`` replaced (``None`` keeps a field)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **changes))


# -- training budget ---------------------------------------------------------------------------

#: Optimiser steps an unset ``train.epochs`` aims at.
TARGET_STEPS = 1000
#: An unset ``data.batch_size`` is the largest power of two in ``BATCH_RANGE`` that still
#: gives this many optimiser steps (and BatchNorm updates) per epoch.
MIN_STEPS_PER_EPOCH = 8
BATCH_RANGE = (8, 64)
#: An unset ``train.epochs`` is ``ceil(TARGET_STEPS / steps per epoch)`` within this range.
EPOCH_RANGE = (20, 300)
#: ``train`` warns below this many optimiser steps in all (or one step per epoch).
SMALL_BUDGET = 300


def training_budget(samples: int, batch_size: int | None = None, epochs: int | None = None,
                    processes: int = 1) -> dict:
    """Batch size, epochs and optimiser steps for a training split of ``samples`` (each of
    ``processes`` sees ``ceil(samples / processes)``); ``batch_size``/``epochs`` as the
    configuration sets them, ``None`` to choose:

    * batch size: the largest power of two in ``BATCH_RANGE`` (8..64) with at least
      ``MIN_STEPS_PER_EPOCH`` (8) steps per epoch, the smallest (8) when none has;
    * epochs: ``ceil(TARGET_STEPS / steps per epoch)`` (1000 steps) within ``EPOCH_RANGE``
      (20..300).

    Returns ``{"batch_size", "epochs", "steps_per_epoch", "steps", "auto": [keys chosen],
    "small": a warning or None}``.
    """
    per_process = -(-samples // processes)
    auto = []
    if batch_size is None:
        auto.append("batch_size")
        batch_size = BATCH_RANGE[0]
        while batch_size * 2 <= BATCH_RANGE[1] and \
                -(-per_process // (batch_size * 2)) >= MIN_STEPS_PER_EPOCH:
            batch_size *= 2
    steps_per_epoch = max(1, -(-per_process // batch_size))
    if epochs is None:
        auto.append("epochs")
        epochs = min(max(-(-TARGET_STEPS // steps_per_epoch), EPOCH_RANGE[0]), EPOCH_RANGE[1])
    steps = steps_per_epoch * epochs
    small = None
    if steps < SMALL_BUDGET or steps_per_epoch < 2:
        small = (f"a small training budget: {steps} optimiser steps in all ({steps_per_epoch} "
                 f"per epoch of {per_process} samples in batches of {batch_size}, {epochs} "
                 f"epochs); networks here typically need several hundred")
        if len(auto) < 2:
            suggestion = training_budget(samples, None, None, processes)
            small += (f". Unset data.batch_size and train.epochs to get batches of "
                      f"{suggestion['batch_size']} for {suggestion['epochs']} epochs "
                      f"({suggestion['steps']} steps)")
        else:
            small += f", and {per_process} training samples give few steps per epoch"
    return {"batch_size": batch_size, "epochs": epochs, "steps_per_epoch": steps_per_epoch,
            "steps": steps, "auto": auto, "small": small}


def resolve_budget(config: RunConfig, samples: int, processes: int = 1) -> tuple:
    """``(config with data.batch_size and train.epochs set, budget)`` for a training split
    of ``samples`` (:func:`training_budget`)."""
    budget = training_budget(samples, config.data.batch_size, config.train.epochs, processes)
    config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, batch_size=budget["batch_size"]),
        train=dataclasses.replace(config.train, epochs=budget["epochs"]))
    return config, budget


def resolve_padding(config: RunConfig) -> RunConfig:
    """``config`` with ``data.pad`` written out when the dataset takes it, so a run records
    how its samples were shaped and a later change of the default cannot change what its
    checkpoints mean (runs before lengths existed were padded without saying so)."""
    if config.data.pad is None and "pad" in config.data.spec.options:
        config = dataclasses.replace(config, data=dataclasses.replace(
            config.data, pad=config.data.resolved()["pad"]))
    return config


def _budget_line(budget: dict) -> str:
    def source(key):
        return "chosen from the training split" if key in budget["auto"] else "as configured"

    return (f"budget: batches of {budget['batch_size']} ({source('batch_size')}), "
            f"{budget['steps_per_epoch']} optimiser steps per epoch x {budget['epochs']} epochs "
            f"({source('epochs')}) = {budget['steps']} steps")


def _data_lines(config: RunConfig, data) -> list[str]:
    def size(dataset):
        return 0 if dataset is None else len(dataset)

    kind = f"{data.num_outputs} classes" if data.task == "classification" else "regression"
    steps = f"T {data.steps} steps" if data.lengths is None else \
        f"T {data.lengths[0]}..{data.lengths[1]} steps (each sample its own)"
    return [f"data: {config.data.label}: {steps} x C {data.in_features} channels, "
            f"{kind}; train {size(data.train)} / val {size(data.val)} / test "
            f"{size(data.test)} samples"]


def _selection(data) -> dict:
    """How ``best.pt`` is chosen: ``{"rule": "val_acc" | "last", "reason"}``."""
    if data.val is not None and len(data.val) >= VAL_MIN and data.val_note is None:
        return {"rule": "val_acc",
                "reason": f"the best validation accuracy on {len(data.val)} samples (ties go "
                          f"to the later epoch)"}
    return {"rule": "last",
            "reason": f"the last epoch: {data.val_note or 'no validation split'}"}


# -- helpers -----------------------------------------------------------------------------------

class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    legacy = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [legacy[0], legacy[1].tolist(), *legacy[2:]],
            "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _distributed(device: str) -> tuple[int, int]:
    """``(rank, world)``; under torchrun, join the process group (gloo on CPU, nccl on
    CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return dist.get_rank(), world


def _loss_and_correct(output: torch.Tensor, target: torch.Tensor, task: str):
    """``(mean loss, number correct)``: cross-entropy and argmax for classification; MSE and
    ``|error| < ADDING_TOLERANCE`` for regression."""
    if task == "regression":
        prediction = output[:, 0]
        return (F.mse_loss(prediction, target),
                ((prediction - target).abs() < ADDING_TOLERANCE).sum())
    return F.cross_entropy(output, target), (output.argmax(1) == target).sum()


def _time_first(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(0, 1).contiguous()  # loader batches are [N, T, C]


def _record(model, store: dict, reduce):
    """Forward hooks on every spiking layer storing ``reduce(spikes)`` under its name."""
    handles = []
    for name, module in model.neuron_layers():
        def hook(_module, _inputs, output, name=name):
            store[name] = reduce(output[0] if isinstance(output, tuple) else output, name)
        handles.append(module.register_forward_hook(hook))
    return handles


@torch.no_grad()
def evaluate_model(model, dataset, task: str, device, batch_size: int = 256) -> dict:
    """``{"loss", "acc", "rates": {layer: spikes per neuron per valid step}}`` over
    ``dataset``."""
    model.eval()
    sums, counts, total_loss, correct, seen = {}, {}, 0.0, 0, 0
    batch_lengths = None

    def accumulate(spikes, name):
        valid = step_mask(batch_lengths, spikes.shape[0])  # spikes may run past the batch
        spikes = spikes.reshape(*valid.shape, -1)
        sums[name] = sums.get(name, 0.0) + spikes[valid].double().sum().item()
        counts[name] = counts.get(name, 0) + spikes[valid].numel()

    handles = _record(model, {}, accumulate)
    try:
        for x, y, batch_lengths in DataLoader(dataset, batch_size=batch_size,
                                              collate_fn=collate_samples):
            x, y = _time_first(x).to(device), y.to(device)
            batch_lengths = batch_lengths.to(device)
            loss, hits = _loss_and_correct(model(x, batch_lengths), y, task)
            total_loss += loss.item() * len(y)
            correct += hits.item()
            seen += len(y)
    finally:
        for handle in handles:
            handle.remove()
    return {"loss": total_loss / seen, "acc": correct / seen,
            "rates": {name: sums[name] / counts[name] for name in sums}}


@torch.no_grad()
def sample_spikes(model, dataset, device, index: int = 0) -> dict:
    """Spikes ``[T, C]`` of every spiking layer for one sample."""
    model.eval()
    store = {}
    handles = _record(model, store, lambda s, _name: s[:, 0].reshape(s.shape[0], -1).cpu())
    try:
        model(dataset[index][0][:, None].to(device))
    finally:
        for handle in handles:
            handle.remove()
    return {name: spikes.numpy() for name, spikes in store.items()}


def _optimizer(model, config: TrainConfig):
    neuron_ids = {id(p) for _, module in model.neuron_layers() for p in module.parameters()}
    neuron = [p for p in model.parameters() if id(p) in neuron_ids]
    others = [p for p in model.parameters() if id(p) not in neuron_ids]
    groups = [{"params": others, "initial_lr": config.lr}]
    if neuron:
        lr = config.neuron_lr or config.lr
        groups.append({"params": neuron, "lr": lr, "initial_lr": lr, "weight_decay": 0.0})
    extra = {"momentum": 0.9} if config.optimizer == "sgd" else {}
    return _OPTIMIZERS[config.optimizer](groups, lr=config.lr,
                                         weight_decay=config.weight_decay, **extra)


def _set_learning_rates(optimizer, config: TrainConfig, epoch: int) -> float:
    """Closed-form schedule, so a resumed or extended run needs no scheduler state:
    ``lr·(1 + cos(π·epoch/epochs))/2`` (cosine) or ``lr`` (constant). Returns group 0's."""
    factor = 1.0
    if config.schedule == "cosine":
        factor = (1 + math.cos(math.pi * epoch / config.epochs)) / 2
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return optimizer.param_groups[0]["lr"]


def _write_metrics(out_dir: Path, metrics: list[dict]) -> None:
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    columns = list(dict.fromkeys(key for row in metrics for key in row))
    with open(out_dir / "metrics.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(metrics)


def _plots(out_dir: Path, metrics: list[dict], model, data, device) -> None:
    plot_curves(metrics, out_dir / "curves.png")
    spikes = sample_spikes(model, data.test, device)
    label = data.test[0][1]
    title = f"test sample 0 (target {label.item():.3g})"
    plot_raster(spikes, out_dir / "raster.png", title)
    plot_firing_rates({name: float(s.mean()) for name, s in spikes.items()},
                      out_dir / "firing_rates.png", "firing rates, " + title)


# -- training ----------------------------------------------------------------------------------

def train_run(config: RunConfig, out_dir, *, device: str = "cpu", resume: bool = False,
              progress: bool = True, log=print) -> dict:
    """Train ``config`` into ``out_dir``; returns the summary (also ``summary.json``).

    An unset ``data.batch_size`` or ``train.epochs`` is chosen from the training split's
    size (:func:`training_budget`); the run's ``config.yaml`` and checkpoints hold the values
    used. ``best.pt`` is the epoch of best validation accuracy when the validation split
    holds at least ``VAL_MIN`` samples, else the last epoch (the checkpoint's ``selection``
    says which and why). With ``resume`` the run continues from ``out_dir/last.pt``, whose
    configuration must equal ``config`` except for ``train.epochs``. Raises
    :class:`TrainingDiverged` on a non-finite loss, after saving metrics and plots of the
    completed epochs. Nothing is written before the configuration, data and model are built.
    """
    out_dir = Path(out_dir)
    rank, world = _distributed(device)
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: no CUDA device is available")
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    main = rank == 0
    seed = config.train.seed
    _seed_everything(seed)
    data = load_data(config.data)
    config, budget = resolve_budget(resolve_padding(config), len(data.train), world)
    selection = _selection(data)
    model_inputs = {"in_features": data.in_features, "outputs": data.num_outputs,
                    "steps": data.steps}
    model = build_model(config.model, data.in_features, data.num_outputs, data.steps).to(device)
    if data.lengths is not None and not model.causal:
        raise ConfigError(f"model.neuron: {config.model.neuron_label} is not causal, so the "
                          f"padding of {config.data.label}'s shorter samples ({data.lengths[0]}"
                          f"..{data.lengths[1]} steps) would change their outputs; set "
                          f"data.pad: end to train it on samples padded to T = {data.steps}")
    optimizer = _optimizer(model, config.train)
    metrics, best, start = [], None, 0
    if resume:
        checkpoint = load_checkpoint(out_dir / "last.pt", map_location=device)
        saved = parse_config(checkpoint["config"])
        if replace_train(saved, epochs=config.train.epochs) != config:
            raise ConfigError(f"{out_dir / 'last.pt'}: --resume needs the run's own "
                              f"configuration (only train.epochs may change)")
        model.load_state_dict(checkpoint["state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        _set_rng_state(checkpoint["rng"])
        metrics, best, start = checkpoint["metrics"], checkpoint["best"], checkpoint["epoch"]
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    sampler = DistributedSampler(data.train, num_replicas=world, rank=rank, shuffle=True,
                                 seed=seed)
    loader = DataLoader(data.train, batch_size=config.data.batch_size, sampler=sampler,
                        collate_fn=collate_samples)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(config),
                                                            sort_keys=False))
        for line in _data_lines(config, data):
            log(line)
        log(_budget_line(budget))
        if budget["small"]:
            log(f"warning: {budget['small']}")
        log(f"best.pt: {selection['reason']}")
        log(f"training {config.model.neuron_label} ({config.model.arch}) on "
            f"{config.data.label}: {sum(p.numel() for p in model.parameters())} parameters, "
            f"seed {seed}, {world} process(es) on {device} ({torch.get_num_threads()} threads "
            f"each), epochs {start + 1}..{config.train.epochs} -> {out_dir}")
    started = time.perf_counter()
    for epoch in range(start, config.train.epochs):
        epoch_start = time.perf_counter()
        model.set_epoch(epoch, config.train.epochs)
        sampler.set_epoch(epoch)
        lr = _set_learning_rates(optimizer, config.train, epoch)
        net.train()
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, samples
        bar = _progress(loader, f"epoch {epoch + 1}/{config.train.epochs}",
                        progress and main)
        for batch, (x, y, lengths) in enumerate(bar):
            x, y = _time_first(x).to(device), y.to(device)
            loss, hits = _loss_and_correct(net(x, lengths.to(device)), y, data.task)
            finite = torch.isfinite(loss.detach()).float()
            if world > 1:
                dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            if not finite.item():
                raise _diverged(out_dir, epoch, batch, metrics, main, log)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.train.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
            optimizer.step()
            totals += torch.tensor([loss.item() * len(y), hits.item(), len(y)],
                                   dtype=torch.float64)
            if main and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{totals[0] / totals[2]:.4f}",
                                acc=f"{100 * totals[1] / totals[2]:.1f}%")
        if world > 1:
            totals = totals.to(device)
            dist.all_reduce(totals)
            totals = totals.cpu()
        if not main:
            continue  # rank 0 evaluates, reports and checkpoints
        row = {"epoch": epoch + 1, "train_loss": totals[0].item() / totals[2].item(),
               "train_acc": totals[1].item() / totals[2].item()}
        splits = {"val": data.val, "test": data.test} if data.val is not None else \
            {"test": data.test}
        for split, dataset in splits.items():
            result = evaluate_model(model, dataset, data.task, device)
            row[f"{split}_loss"], row[f"{split}_acc"] = result["loss"], result["acc"]
        row.update({f"rate/{name}": rate for name, rate in result["rates"].items()})  # test
        row["lr"] = lr
        row["epoch_s"] = time.perf_counter() - epoch_start
        metrics.append(row)
        # A tie goes to the later epoch: accuracy on a validation split plateaus early, and
        # the later model has trained longer at a smaller learning rate. Without a validation
        # split large enough to choose on, every epoch replaces best.pt (the last one).
        improved = (best is None or selection["rule"] == "last"
                    or row["val_acc"] >= best["val_acc"])
        if improved:
            best = row
        log(f"epoch {epoch + 1}/{config.train.epochs}: loss {row['train_loss']:.4f}, "
            f"train {100 * row['train_acc']:.2f}%"
            + (f", val {100 * row['val_acc']:.2f}%" if "val_acc" in row else "")
            + f", test {100 * row['test_acc']:.2f}% ({row['epoch_s']:.1f} s)")
        checkpoint = {
            "config": config_to_dict(config), "model_inputs": model_inputs,
            "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
            "epoch": epoch + 1, "epochs": config.train.epochs, "seed": seed,
            "rng": _rng_state(), "metrics": metrics, "best": best, "selection": selection,
            "budget": budget}
        save_checkpoint(out_dir / "last.pt", checkpoint)
        if improved:
            save_checkpoint(out_dir / "best.pt", checkpoint)
        _write_metrics(out_dir, metrics)
    if world > 1:
        dist.barrier()
    summary = {"config": config_to_dict(config), "seed": seed, "epochs": len(metrics),
               "processes": world, "threads": torch.get_num_threads(), "device": device,
               "wall_s": time.perf_counter() - started, "budget": budget,
               "selection": selection, "data": {
                   "label": config.data.label, "steps": data.steps,
                   "channels": data.in_features, "outputs": data.num_outputs,
                   "train": len(data.train), "val": 0 if data.val is None else len(data.val),
                   "test": len(data.test)},
               "last": metrics[-1] if metrics else None, "best": best}
    if main:
        _plots(out_dir, metrics, model, data, device)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        last = metrics[-1]
        log(f"done in {summary['wall_s']:.1f} s: test {100 * last['test_acc']:.2f}% (last), "
            f"{100 * best['test_acc']:.2f}% (best.pt, epoch {best['epoch']}"
            f"{', the last' if selection['rule'] == 'last' else ', best validation accuracy'})")
    return summary


def _progress(loader, description: str, enabled: bool):
    if not enabled:
        return loader
    from tqdm import tqdm

    return tqdm(loader, desc=description, leave=False, dynamic_ncols=True)


def _diverged(out_dir: Path, epoch: int, batch: int, metrics: list, main: bool, log):
    """Report a non-finite loss (message, curves of the completed epochs); returns the
    exception to raise. ``last.pt`` is left as the last completed epoch wrote it."""
    message = (f"the loss is not finite at epoch {epoch + 1}, batch {batch + 1}: stopping; the "
               f"last good checkpoint is "
               + (f"{out_dir / 'last.pt'} (epoch {metrics[-1]['epoch']})" if metrics
                  else "none (no epoch completed)"))
    if main:
        log(message)
        if metrics:
            plot_curves(metrics, out_dir / "curves.png")
    return TrainingDiverged(message)


def load_trained(path, device: str = "cpu"):
    """``(model, config, checkpoint)`` from a checkpoint file or a run directory (its
    ``best.pt``): the network rebuilt from the saved configuration, in eval mode."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    checkpoint = load_checkpoint(path, map_location=device)
    if "nir" in checkpoint:  # an imported NIR graph (spikeforge import, sw/nir_import.py)
        from .nir_import import load_imported
        return load_imported(checkpoint, path, device)
    try:
        config = parse_config(checkpoint["config"])
        sizes = checkpoint["model_inputs"]
        model = build_model(config.model, sizes["in_features"], sizes["outputs"],
                            sizes["steps"])
        model.load_state_dict(checkpoint["state_dict"])
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        from .checkpoint import state_dict_error  # torch's many lines as one

        raise CheckpointError(f"{path}: the saved model cannot be rebuilt "
                              f"({state_dict_error(exc)})") from None
    return model.to(device).eval(), config, checkpoint


# -- command line --------------------------------------------------------------------------------

#: What ``train`` writes into a run directory (``--force`` removes these and nothing else).
RUN_FILES = ("config.yaml", "last.pt", "best.pt", "last.pt.tmp", "best.pt.tmp",
             "metrics.csv", "metrics.json", "summary.json", "curves.png", "raster.png",
             "firing_rates.png")


def _run_files(out_dir: Path) -> list[Path]:
    """The run files present in ``out_dir``."""
    return [out_dir / name for name in RUN_FILES if (out_dir / name).is_file()]


def _incoming(out_dir: Path) -> Path:
    """The temporary sibling a ``--force`` run trains into before it replaces ``out_dir``'s."""
    return out_dir.with_name(f".{out_dir.name}.incoming")


def _replace_run(source: Path, out_dir: Path) -> None:
    """Move the run files of ``source`` into ``out_dir`` (whose own run files go first;
    other files stay) and remove ``source``."""
    for path in _run_files(out_dir):
        path.unlink()
    for path in _run_files(source):
        os.replace(path, out_dir / path.name)
    source.rmdir()


def _clear_incoming(path: Path) -> None:
    """Remove a ``--force`` run's temporary directory (one left by an interrupted run too),
    refusing one that holds anything but run files."""
    if not path.exists():
        return
    others = sorted(p.name for p in path.iterdir() if p.name not in RUN_FILES)
    if not path.is_dir() or others:
        raise click.ClickException(f"{path} is in the way of --force (it trains there first) "
                                   f"and holds other files ({', '.join(others[:3])}): move it")
    for item in _run_files(path):
        item.unlink()
    path.rmdir()


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Run configuration: a YAML file, or a bundled one's name (digits_cpsn, "
                   "japanese_vowels_prf, ...). With --resume the run's own configuration is "
                   "the default.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Override train.epochs.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run directory [default: runs/<config name>].")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--seed", type=int, default=None, help="Override train.seed.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--force", is_flag=True,
              help="Replace the run in an existing run directory (its run files, once the new "
                   "run has finished; a failure leaves the old run as it was).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads per process [default: torch's]; 1 is fastest for small "
                   "networks on a busy machine. Results depend on the thread count.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train(config_path, epochs, out_dir, device, seed, resume, force, threads, no_progress):
    """Train a spiking network; checkpoints, metrics and plots go to the run directory."""
    if config_path is None and not (resume and out_dir):
        raise click.UsageError("--config is required (or --resume with --out)")
    if resume and force:
        raise click.UsageError("--resume continues a run and --force replaces it: give one")
    if threads is not None:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir or Path("runs") / Path(config_path).stem)
    writable_dir(out_dir, "run directory")
    main = int(os.environ.get("RANK", "0")) == 0
    existing = [p.name for p in _run_files(out_dir)] if out_dir.is_dir() else []
    target = out_dir
    try:
        # Everything that can be checked is checked before any file is touched: the
        # configuration here, the data and the model in train_run before it writes.
        if config_path is not None:
            config = load_config(config_path)
        else:
            config = parse_config(load_checkpoint(out_dir / "last.pt")["config"])
        config = replace_train(config, epochs=epochs, seed=seed)
        if existing and not resume:
            if not force:
                raise click.ClickException(
                    f"{out_dir} already holds a run ({', '.join(existing[:3])}"
                    f"{', ...' if len(existing) > 3 else ''}): give --resume to continue it, "
                    f"--force to replace it, or another --out")
            target = _incoming(out_dir)  # the old run stays until the new one is complete
            writable_dir(target, "temporary run directory")
            if main:
                _clear_incoming(target)
        # no progress bar into a log: tqdm's \r updates would flood it
        train_run(config, target, device=device, resume=resume,
                  progress=not no_progress and sys.stderr.isatty(),
                  log=click.echo)
        if target != out_dir and main:
            _replace_run(target, out_dir)
            click.echo(f"replaced the previous run in {out_dir}")
    except TrainingDiverged as exc:
        kept = f"; {out_dir} still holds the previous run" if target != out_dir else ""
        raise click.ClickException(f"{exc}{kept}") from None
    except (ConfigError, CheckpointError, DatasetNotFoundError, DataError) as exc:
        if target != out_dir and main and target.exists():
            _clear_incoming(target)
        kept = f" ({out_dir} still holds the previous run)" if target != out_dir else ""
        raise click.ClickException(f"{exc}{kept}") from None
    except BaseException:
        if target != out_dir and main and target.exists():
            _clear_incoming(target)
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@click.command()
@click.argument("run", type=click.Path(exists=True))
@click.option("--checkpoint", "which", type=click.Choice(["best", "last"]), default="best",
              show_default=True, help="Which checkpoint of the run directory.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
def evaluate(run, which, device):
    """Print a trained run's test accuracy and per-layer firing rates."""
    path = Path(run) / f"{which}.pt" if Path(run).is_dir() else Path(run)
    try:
        model, config, checkpoint = load_trained(path, device)
        data = load_data(config.data)
    except (CheckpointError, DatasetNotFoundError, DataError) as exc:
        raise click.ClickException(str(exc)) from None
    result = evaluate_model(model, data.test, data.task, device)
    click.echo(f"{path}: {config.model.neuron_label} ({config.model.arch}) on "
               f"{config.data.label}, epoch {checkpoint['epoch']}/{checkpoint['epochs']}, "
               f"seed {checkpoint['seed']}")
    click.echo(f"test accuracy  {100 * result['acc']:.2f}% ({len(data.test)} samples, "
               f"loss {result['loss']:.4f})")
    click.echo("firing rates (spikes per neuron per step):")
    width = max(len(name) for name in result["rates"])
    for name, rate in result["rates"].items():
        click.echo(f"  {name:<{width}}  {rate:.4f}")


if __name__ == "__main__":
    train()
