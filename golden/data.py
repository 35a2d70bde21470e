"""Datasets as time-first sequences: every sample is ``x [T, C]`` (float32) and a target.

Nothing is downloaded. ``digits`` and ``digits-pixels`` are scikit-learn's bundled 8×8 digits
(1797 images, in the wheel); ``shd`` reads the Spiking Heidelberg Digits HDF5 files from a
local directory; ``adding`` and ``delayed-recall`` are generated on the fly, sample by sample,
from the split seed, so any sequence length costs no memory up front.

Splits are fixed by ``split_seed``: the same seed gives the same train/val/test samples on
every machine, whatever the training seed.
"""

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

__all__ = ["DataConfig", "SequenceData", "DatasetNotFoundError", "DATASETS", "load_data",
           "SHD_FILES", "ADDING_TOLERANCE"]

#: An adding-problem prediction counts as correct within this distance of the target.
ADDING_TOLERANCE = 0.04
SHD_FILES = ("shd_train.h5", "shd_test.h5")
SHD_CLASSES = 20


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's local files are missing; the message says which files go where."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its loader and the options it takes, with their defaults."""

    loader: object
    options: dict


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The ``data`` section of a run configuration.

    Dataset-specific options are ``None`` unless set; setting one the dataset does not take
    is an error naming ``data.<key>`` (see :data:`DATASETS` for each dataset's defaults).
    """

    name: str
    batch_size: int = 64
    split_seed: int = 0
    val_fraction: float = 0.1
    #: At most this many samples per split (short runs, tests).
    limit: int | None = None
    test_fraction: float | None = None   # digits, digits-pixels
    root: str | None = None              # shd: directory holding SHD_FILES
    steps: int | None = None             # shd: time bins
    duration: float | None = None        # shd: seconds binned into `steps`
    unit_pool: int | None = None         # shd: sum this many neighbouring units
    length: int | None = None            # adding, delayed-recall: T
    train_samples: int | None = None     # adding, delayed-recall
    test_samples: int | None = None      # adding, delayed-recall
    num_classes: int | None = None       # delayed-recall: tokens to remember

    def __post_init__(self):
        if self.name not in DATASETS:
            raise ValueError(f"data.name: unknown dataset {self.name!r}; choose one of "
                             f"{sorted(DATASETS)}")
        takes = DATASETS[self.name].options
        for field in dataclasses.fields(self):
            if field.default is None and getattr(self, field.name) is not None \
                    and field.name not in takes and field.name != "limit":
                raise ValueError(f"data.{field.name} is not an option of dataset "
                                 f"{self.name!r} (it takes {sorted(takes) or 'none'})")
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must lie in [0, 1), got {self.val_fraction}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"data.limit must be >= 1, got {self.limit}")
        for key, value in self.resolved().items():
            if key == "test_fraction" and not 0 < value < 1:
                raise ValueError(f"data.test_fraction must lie in (0, 1), got {value}")
            if key in ("steps", "unit_pool", "train_samples", "test_samples") and value < 1:
                raise ValueError(f"data.{key} must be >= 1, got {value}")
            if key == "length" and value < 2:
                raise ValueError(f"data.length must be >= 2, got {value}")
            if key == "num_classes" and value < 2:
                raise ValueError(f"data.num_classes must be >= 2, got {value}")
            if key == "duration" and not value > 0:
                raise ValueError(f"data.duration must be > 0, got {value}")

    def resolved(self) -> dict:
        """This dataset's options: the set ones, the rest at their defaults."""
        return {key: default if getattr(self, key) is None else getattr(self, key)
                for key, default in DATASETS[self.name].options.items()}


@dataclasses.dataclass(frozen=True)
class SequenceData:
    """Train/val/test splits of ``(x [T, C], target)`` samples and what a network needs."""

    train: Dataset
    val: Dataset | None
    test: Dataset
    in_features: int
    num_outputs: int
    steps: int
    #: ``classification`` (int64 labels, cross-entropy) or ``regression`` (float targets, MSE).
    task: str


def _split(count: int, fraction: float, seed: int, stream: int):
    """Seeded permutation of ``range(count)`` cut into ``(rest, part)`` with ``part`` a
    ``fraction`` of it (at least one sample when the fraction is positive)."""
    order = np.random.default_rng([seed, stream]).permutation(count)
    size = 0 if fraction == 0 else max(1, round(count * fraction))
    return order[size:], order[:size]


def _limit(dataset: Dataset, limit: int | None) -> Dataset:
    if limit is None or limit >= len(dataset):
        return dataset
    return Subset(dataset, range(limit))


def _finish(config: DataConfig, train: Dataset, test: Dataset, **info) -> SequenceData:
    """Cut the validation split from ``train`` and apply ``limit``."""
    rest, val = _split(len(train), config.val_fraction, config.split_seed, stream=1)
    val_set = Subset(train, val.tolist()) if len(val) else None
    train_set = Subset(train, rest.tolist())
    return SequenceData(train=_limit(train_set, config.limit),
                        val=None if val_set is None else _limit(val_set, config.limit),
                        test=_limit(test, config.limit), **info)


# -- digits ---------------------------------------------------------------------------------

def _digits(config: DataConfig, pixels: bool) -> SequenceData:
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images / 16.0, dtype=torch.float32)
    x = x.reshape(-1, 64, 1) if pixels else x.reshape(-1, 8, 8)  # rows: T = 8 of 8 features
    y = torch.tensor(labels, dtype=torch.int64)
    train, test = _split(len(y), config.resolved()["test_fraction"], config.split_seed, 0)
    train, test = torch.tensor(train), torch.tensor(test)
    return _finish(config, TensorDataset(x[train], y[train]), TensorDataset(x[test], y[test]),
                   in_features=x.shape[2], num_outputs=10, steps=x.shape[1],
                   task="classification")


# -- Spiking Heidelberg Digits -------------------------------------------------------------

class SHDDataset(Dataset):
    """One SHD HDF5 file, binned on access into ``[steps, 700 / unit_pool]`` spike counts.

    Expects the distributed layout: ``spikes/times`` (seconds) and ``spikes/units`` as one
    variable-length array per sample, and ``labels``. Spikes at or after ``duration`` are
    dropped.
    """

    UNITS = 700

    def __init__(self, path: Path, steps: int, duration: float, unit_pool: int):
        import h5py

        try:
            with h5py.File(path, "r") as file:
                self.times = [np.asarray(t, dtype=np.float64) for t in file["spikes/times"]]
                self.units = [np.asarray(u, dtype=np.int64) for u in file["spikes/units"]]
                self.labels = np.asarray(file["labels"], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"{path}: not an SHD file (missing {exc}); expected spikes/times, "
                             f"spikes/units and labels") from None
        except OSError as exc:
            raise ValueError(f"{path}: cannot read as HDF5 ({exc})") from None
        if not len(self.times) == len(self.units) == len(self.labels):
            raise ValueError(f"{path}: spikes/times, spikes/units and labels differ in length")
        for index, units in enumerate(self.units):
            if units.size and (units.min() < 0 or units.max() >= self.UNITS):
                raise ValueError(f"{path}: sample {index} has units outside [0, {self.UNITS})")
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= SHD_CLASSES):
            raise ValueError(f"{path}: labels must lie in [0, {SHD_CLASSES})")
        self.steps, self.duration, self.unit_pool = steps, duration, unit_pool
        self.features = -(-self.UNITS // unit_pool)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        times, units = self.times[index], self.units[index]
        keep = times < self.duration
        bins = np.floor(times[keep] * (self.steps / self.duration)).astype(np.int64)
        x = np.zeros((self.steps, self.features), dtype=np.float32)
        np.add.at(x, (bins, units[keep] // self.unit_pool), 1.0)
        return torch.from_numpy(x), torch.tensor(self.labels[index])


def _shd(config: DataConfig) -> SequenceData:
    options = config.resolved()
    root = Path(options["root"])
    missing = [name for name in SHD_FILES if not (root / name).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"SHD: {', '.join(missing)} not found in {root}/. Put the Spiking Heidelberg Digits "
            f"files {SHD_FILES[0]} and {SHD_FILES[1]} (gunzipped, from "
            f"https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/) into {root}/, "
            f"or set data.root to the directory that holds them.")
    train, test = (SHDDataset(root / name, options["steps"], options["duration"],
                              options["unit_pool"]) for name in SHD_FILES)
    return _finish(config, train, test, in_features=train.features, num_outputs=SHD_CLASSES,
                   steps=options["steps"], task="classification")


# -- synthetic long-range tasks --------------------------------------------------------------

class SyntheticTask(Dataset):
    """Samples generated from ``(seed, stream, index)`` on access: no storage, any length.

    ``adding``: ``x[t] = (value, marker)`` with values ~ U(0, 1) and one marker in each half
    of the sequence; the target is the sum of the two marked values (regression).
    ``delayed-recall``: a one-hot token among ``num_classes`` at ``t = 0``, silence, and a cue
    channel at the last step; the target is the token (classification over ``T − 1`` steps).
    """

    def __init__(self, kind: str, length: int, samples: int, seed: int, stream: int,
                 num_classes: int = 0):
        self.kind, self.length, self.samples = kind, length, samples
        self.seed, self.stream, self.num_classes = seed, stream, num_classes

    def __len__(self):
        return self.samples

    def __getitem__(self, index):
        if not 0 <= index < self.samples:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.stream, index])
        if self.kind == "adding":
            x = np.zeros((self.length, 2), dtype=np.float32)
            x[:, 0] = rng.random(self.length)
            half = self.length // 2
            marks = (rng.integers(0, half), rng.integers(half, self.length))
            x[marks, 1] = 1.0
            return torch.from_numpy(x), torch.tensor(x[marks, 0].sum(), dtype=torch.float32)
        token = int(rng.integers(0, self.num_classes))
        x = np.zeros((self.length, self.num_classes + 1), dtype=np.float32)
        x[0, token] = 1.0
        x[-1, -1] = 1.0
        return torch.from_numpy(x), torch.tensor(token)


def _synthetic(config: DataConfig, kind: str) -> SequenceData:
    options = config.resolved()
    classes = options.get("num_classes", 0)

    def make(samples, stream):
        return SyntheticTask(kind, options["length"], samples, config.split_seed, stream,
                             classes)

    val_samples = round(options["train_samples"] * config.val_fraction)
    return SequenceData(
        train=_limit(make(options["train_samples"], 0), config.limit),
        val=_limit(make(val_samples, 1), config.limit) if val_samples else None,
        test=_limit(make(options["test_samples"], 2), config.limit),
        in_features=2 if kind == "adding" else classes + 1,
        num_outputs=1 if kind == "adding" else classes, steps=options["length"],
        task="regression" if kind == "adding" else "classification")


_SYNTHETIC = {"length": 256, "train_samples": 2000, "test_samples": 500}

DATASETS = {
    "digits": DatasetSpec(lambda c: _digits(c, pixels=False), {"test_fraction": 0.25}),
    "digits-pixels": DatasetSpec(lambda c: _digits(c, pixels=True), {"test_fraction": 0.25}),
    "shd": DatasetSpec(_shd, {"root": "data/shd", "steps": 100, "duration": 1.4,
                              "unit_pool": 1}),
    "adding": DatasetSpec(lambda c: _synthetic(c, "adding"), dict(_SYNTHETIC)),
    "delayed-recall": DatasetSpec(lambda c: _synthetic(c, "delayed-recall"),
                                  {**_SYNTHETIC, "num_classes": 8}),
}


def load_data(config: DataConfig) -> SequenceData:
    """Build the splits of ``config.name``; a missing local dataset raises
    :class:`DatasetNotFoundError` saying which files to put where."""
    return DATASETS[config.name].loader(config)
