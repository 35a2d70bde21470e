"""Training checkpoints: one dict with a format marker, read back with ``weights_only=True``.

Layout (version 1), stable for the export step, which rebuilds the network from ``config``
and ``model_inputs`` with :func:`spikeforge.golden.networks.build_model`:

    format        "spikeforge-checkpoint"
    version       1
    config        the run configuration as plain YAML-able data (data / model / train)
    model_inputs  {"in_features", "outputs", "steps"}: the dataset sizes the network was built for
    state_dict    model weights and buffers (no DistributedDataParallel prefix)
    optimizer     its state dict (the learning-rate schedule is a function of the epoch)
    epoch         completed epochs;  epochs: the run's total
    seed          the training seed
    rng           {"torch", "cuda", "numpy", "python"} generator states after ``epoch``
    metrics       one dict per completed epoch;  best: the best epoch's metrics
    selection     (since issue 28) how best.pt is chosen: {"rule": "val_acc" | "last", "reason"}
    budget        (since issue 28) batch size, epochs and optimiser steps, and which were chosen

Every value is a tensor, a number, a string, a list, a tuple or a dict, so loading never runs
pickled code.
"""

import os
import re
from pathlib import Path

import torch

__all__ = ["FORMAT", "VERSION", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "state_dict_error", "with_recorded_padding"]

FORMAT = "spikeforge-checkpoint"
VERSION = 1
_REQUIRED = ("config", "model_inputs", "state_dict", "optimizer", "epoch", "epochs", "seed",
             "rng", "metrics", "best")


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and the reason."""


def save_checkpoint(path, checkpoint: dict) -> None:
    """Write ``checkpoint`` (without the marker) atomically: a crash leaves the old file."""
    path = Path(path)
    missing = [key for key in _REQUIRED if key not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint for {path} lacks {missing}")
    temporary = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "version": VERSION, **checkpoint}, temporary)
    os.replace(temporary, path)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` or raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        # torch's own advice ("weights_only=False will likely succeed") would mean running
        # code from an untrusted file; say what helps instead.
        other = {"best.pt": "last.pt", "last.pt": "best.pt"}.get(path.name)
        hint = (f"; the run's {other} may be intact (`spikeforge export` and `evaluate` "
                f"read it with --checkpoint {other[:-3]})") if other else ""
        raise CheckpointError(f"{path}: not a readable checkpoint: the file is corrupted, "
                              f"truncated or was not written by spikeforge "
                              f"({type(exc).__name__}){hint}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a spikeforge checkpoint (no {FORMAT!r} marker)")
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {data.get('version')!r} is not "
                              f"supported (this spikeforge reads up to {VERSION})")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {missing}")
    data["config"] = with_recorded_padding(data["config"])
    return data


def with_recorded_padding(config):
    """A run configuration (checkpoint, export manifest) saved before samples kept their own
    lengths names no ``data.pad`` where its dataset takes one; those runs were trained on
    samples padded at the end, so it reads as ``pad: end`` (runs since record their value)."""
    from ..golden.data import DataConfig

    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(data, dict) or "pad" in data:
        return config
    try:
        takes_pad = "pad" in DataConfig(**data).spec.options
    except (TypeError, ValueError):
        return config  # reported by the configuration's own parsing
    return {**config, "data": {**data, "pad": "end"}} if takes_pad else config


_SIZE_MISMATCH = re.compile(r"size mismatch for ([\w.]+): copying a param with shape "
                            r"torch\.Size\(\[([^\]]*)\]\) from checkpoint, the shape in "
                            r"current model is torch\.Size\(\[([^\]]*)\]\)")
_KEYS = re.compile(r"(Missing|Unexpected) key\(s\) in state_dict: (.*?)\.?\s*$")


def state_dict_error(exc: Exception) -> str:
    """torch's ``load_state_dict`` error (one line per tensor, often dozens) as one line: the
    first difference and how many more. Other errors as they are, on one line."""
    text = str(exc)
    differences = [f"{name} is [{saved}] in the checkpoint but [{built}] in the network "
                   f"its configuration builds" for name, saved, built in
                   _SIZE_MISMATCH.findall(text)]
    for line in text.splitlines():
        match = _KEYS.search(line.strip())
        if match:
            keys = [k.strip(' "') for k in match[2].split(",") if k.strip(' "')]
            differences.append(f"{match[1].lower()} tensor(s) {', '.join(keys[:3])}"
                               + (f" and {len(keys) - 3} more" if len(keys) > 3 else ""))
    if not differences:
        return " ".join(text.split())
    more = len(differences) - 1
    return (f"the saved weights do not fit the network: {differences[0]}"
            + (f" (and {more} more difference{'s' if more > 1 else ''})" if more else ""))


def describe_checkpoint(path, checkpoint: dict) -> str:
    """One line saying which checkpoint ``path`` is, its epoch, and why that epoch: for
    ``best.pt`` the run's selection rule (best validation accuracy, or the last epoch and
    why), for ``last.pt`` the end of the run."""
    path = Path(path)
    epoch, epochs = checkpoint.get("epoch"), checkpoint.get("epochs")
    head = f"{path}: epoch {epoch} of {epochs}"
    if path.name == "last.pt":
        return f"{head}, the last epoch trained (last.pt)"
    selection = checkpoint.get("selection")
    if isinstance(selection, dict) and selection.get("reason"):
        why = selection["reason"]
        if selection.get("rule") == "val_acc":
            accuracy = (checkpoint.get("best") or {}).get("val_acc")
            if isinstance(accuracy, float):
                why = f"{why}: {100 * accuracy:.2f}%"
        return f"{head}, chosen as {why}"
    return (f"{head}, chosen by the best validation accuracy (or test accuracy without a "
            f"validation split: this checkpoint predates the recorded selection rule)")
