"""Datasets as time-first sequences: every sample is ``x [T, C]`` (float32) and a target.

Nothing is downloaded. ``digits`` and ``digits-pixels`` are scikit-learn's bundled 8×8 digits
(1797 images, in the wheel); ``shd`` reads the Spiking Heidelberg Digits HDF5 files from a
local directory; ``adding`` and ``delayed-recall`` are generated on the fly, sample by sample,
from the split seed, so any sequence length costs no memory up front.

A user's own data comes in three more ways, all described by the configuration alone so that
every later command rebuilds the same splits: ``uea`` (UEA/UCR time-series sets through
aeon's loaders, the ``data`` extra), ``arrays`` (an ``.npz`` or HDF5 file with ``x_train``,
``y_train``, ``x_test``, ``y_test``) and a Python entry point ``module:function`` (or
``file.py:function``) returning the same four arrays. All three go through
:func:`prepare_arrays`: checks that name the key and the problem, per-channel standardisation
from the training samples alone (validation excluded) and, by default, no padding: every
sample keeps its own length (``data.pad: none``).

Every item is ``(x [T_i, C], target)`` with ``T_i`` the sample's own length (``T`` for the
fixed-length sources). :func:`collate_samples` pads a batch at the end to its longest sample
and returns the lengths alongside, so a network masks the padded steps
(``SpikingNetwork(x, lengths)``) and pays only for its batch's longest sample.

Splits are fixed by ``split_seed``: the same seed gives the same train/val/test samples on
every machine, whatever the training seed.
"""

import dataclasses
import importlib
import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

__all__ = ["DataConfig", "SequenceData", "DatasetNotFoundError", "DataError", "DATASETS",
           "ENTRY_POINT_OPTIONS", "PAD_MODES", "Samples", "collate_samples", "step_mask",
           "valid_mean",
           "load_data", "prepare_arrays", "validation_split",
           "SHD_FILES", "ADDING_TOLERANCE", "ARRAY_KEYS", "LENGTH_KEYS", "VAL_FRACTION",
           "VAL_MIN"]

#: An adding-problem prediction counts as correct within this distance of the target.
ADDING_TOLERANCE = 0.04
SHD_FILES = ("shd_train.h5", "shd_test.h5")
SHD_CLASSES = 20


#: The validation split's share of the training split when ``data.val_fraction`` is unset.
VAL_FRACTION = 0.1
#: The fewest validation samples a checkpoint is chosen on. With ``data.val_fraction`` unset,
#: a validation split is cut only when ``VAL_FRACTION`` of the training split holds this many
#: (500 training samples); below that every training sample trains and ``train`` keeps the
#: last epoch. A set fraction is always cut, but a split smaller than this only reports.
VAL_MIN = 50

#: ``data.pad``: ``none`` keeps every sample's own length (the default); ``end`` and ``start``
#: pad every sample with zeros to ``steps`` in the dataset (fixed-length mode: the padded steps
#: are data, the network and the hardware run them).
PAD_MODES = ("none", "end", "start")
#: The arrays a user's dataset provides (``arrays`` files and entry points).
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")
#: Optional: each sample's own length when ``x_*`` are padded ``[N, T, C]`` arrays (the only
#: way a ``.npz`` or HDF5 file holds series of different lengths).
LENGTH_KEYS = ("lengths_train", "lengths_test")
#: ``module.sub:function`` or ``path/to/file.py:function``.
_ENTRY_POINT = re.compile(r"^(?:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*|[^:]+\.py):[A-Za-z_]\w*$")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's local files are missing; the message says which files go where."""


class DataError(ValueError):
    """A dataset cannot be used as it is; the message names the source, the key and the
    problem (wrong rank, NaN or inf, a label out of range, an empty split, ...)."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its loader, the options it takes with their defaults (``None``: unset
    unless given) and the options a configuration must give."""

    loader: object
    options: dict
    required: tuple = ()


#: ``DataConfig`` fields every dataset takes whose default is ``None`` (unset).
_GENERAL = ("batch_size", "val_fraction", "limit")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The ``data`` section of a run configuration.

    Dataset-specific options are ``None`` unless set; setting one the dataset does not take
    is an error naming ``data.<key>`` (see :data:`DATASETS` for each dataset's defaults).
    """

    name: str
    #: ``None``: chosen by ``train`` from the training split's size (``training_budget``).
    batch_size: int | None = None
    split_seed: int = 0
    #: ``None``: ``VAL_FRACTION`` when that holds ``VAL_MIN`` samples, else no validation.
    val_fraction: float | None = None
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
    num_classes: int | None = None       # delayed-recall; arrays, entry points: classes
    dataset: str | None = None           # uea: problem name, e.g. JapaneseVowels
    extract_path: str | None = None      # uea: directory holding <dataset>/<dataset>_TRAIN.ts
    path: str | None = None              # arrays: .npz, .h5 or .hdf5 file
    standardize: bool | None = None      # uea, arrays, entry points: per-channel, train stats
    pad: str | None = None               # uea, arrays, entry points: none | end | start
    options: dict | None = None          # entry points: keyword arguments of the function

    @property
    def spec(self) -> "DatasetSpec":
        """This dataset's :class:`DatasetSpec` (an entry point's for ``module:function``)."""
        return DATASETS.get(self.name) or _ENTRY_POINT_SPEC

    def __post_init__(self):
        if self.name not in DATASETS and not _ENTRY_POINT.match(self.name):
            raise ValueError(f"data.name: unknown dataset {self.name!r}; choose one of "
                             f"{sorted(DATASETS)} or a Python entry point "
                             f"'module:function' (or 'file.py:function')")
        takes = self.spec.options
        label = self.name if self.name in DATASETS else "entry point " + self.name
        for field in dataclasses.fields(self):
            if field.default is None and getattr(self, field.name) is not None \
                    and field.name not in takes and field.name not in _GENERAL:
                raise ValueError(f"data.{field.name} is not an option of dataset "
                                 f"{label!r} (it takes {sorted(takes) or 'none'})")
        for key in self.spec.required:
            if getattr(self, key) is None:
                raise ValueError(f"data.{key} is required for dataset {self.name!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.val_fraction is not None and not 0 <= self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must lie in [0, 1), got {self.val_fraction}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"data.limit must be >= 1, got {self.limit}")
        for key, value in self.resolved().items():
            if value is None:
                continue
            if key == "pad" and value not in PAD_MODES:
                raise ValueError(f"data.pad: expected one of {list(PAD_MODES)}, got "
                                 f"{value!r}")
            if key == "test_fraction" and not 0 < value < 1:
                raise ValueError(f"data.test_fraction must lie in (0, 1), got {value}")
            if key in ("steps", "unit_pool", "train_samples", "test_samples") and value < 1:
                raise ValueError(f"data.{key} must be >= 1, got {value}")
            synthetic = self.name in ("adding", "delayed-recall")
            if key == "length" and value < (2 if synthetic else 1):
                raise ValueError(f"data.length must be >= {2 if synthetic else 1}, "
                                 f"got {value}")
            if key == "num_classes" and value < 2:
                raise ValueError(f"data.num_classes must be >= 2, got {value}")
            if key == "duration" and not value > 0:
                raise ValueError(f"data.duration must be > 0, got {value}")

    @property
    def label(self) -> str:
        """The data set in words: ``digits``, ``uea JapaneseVowels``, ``arrays my.npz``."""
        detail = {"uea": self.dataset, "arrays": self.path, "shd": self.root}.get(self.name)
        return f"{self.name} {detail}" if detail else self.name

    def resolved(self) -> dict:
        """This dataset's options: the set ones, the rest at their defaults."""
        return {key: default if getattr(self, key) is None else getattr(self, key)
                for key, default in self.spec.options.items()}


@dataclasses.dataclass(frozen=True)
class SequenceData:
    """Train/val/test splits of ``(x [T_i, C], target)`` samples and what a network needs."""

    train: Dataset
    val: Dataset | None
    test: Dataset
    in_features: int
    num_outputs: int
    #: ``data.length`` or the longest sample of either split: the network's ``T``, the
    #: hardware's ``max_steps``.
    steps: int
    #: ``classification`` (int64 labels, cross-entropy) or ``regression`` (float targets, MSE).
    task: str
    #: Why there is no validation split, or why it is too small to choose a checkpoint on
    #: (``None``: a validation split of at least ``VAL_MIN`` samples).
    val_note: str | None = None
    #: ``(shortest, longest)`` sample of either split when the samples keep lengths of their
    #: own that differ (``data.pad: none``), else ``None`` (every sample has ``steps`` steps).
    lengths: tuple[int, int] | None = None


class Samples(Dataset):
    """``(x [T_i, C], target)`` samples of their own lengths (``data.pad: none``)."""

    def __init__(self, series: list[torch.Tensor], targets: torch.Tensor):
        self.series, self.targets = series, targets

    def __len__(self):
        return len(self.series)

    def __getitem__(self, index):
        return self.series[index], self.targets[index]


def collate_samples(items) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A ``DataLoader`` batch of ``(x [T_i, C], target)`` items: ``(x [N, T, C], targets,
    lengths [N])``, ``x`` padded with zeros at the end to the batch's longest sample ``T``."""
    series = [x for x, _ in items]
    lengths = torch.tensor([len(x) for x in series], dtype=torch.int64)
    x = torch.nn.utils.rnn.pad_sequence(series, batch_first=True)
    return x, torch.stack([torch.as_tensor(y) for _, y in items]), lengths


def step_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``[steps, N]`` booleans, true at the valid steps ``t < lengths[n]`` of each sample."""
    return torch.arange(steps, device=lengths.device)[:, None] < lengths[None, :]


def valid_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The mean over time of ``values [T, N, C]`` at each sample's ``valid [T, N]`` steps
    only: a padded sample's output is its own steps' mean."""
    weights = valid.to(values.dtype)[..., None]
    return (values * weights).sum(0) / weights.sum(0)


def _split(count: int, fraction: float, seed: int, stream: int):
    """Seeded permutation of ``range(count)`` cut into ``(rest, part)`` with ``part`` a
    ``fraction`` of it (at least one sample when the fraction is positive)."""
    order = np.random.default_rng([seed, stream]).permutation(count)
    size = 0 if fraction == 0 else max(1, round(count * fraction))
    return order[size:], order[:size]


def _stratified(labels: np.ndarray, size: int, seed: int, stream: int):
    """``(rest, part)``: ``size`` indices with every class in proportion to its count
    (largest remainders, ties to the lower class), each class's members taken in the order of
    one seeded permutation; both keep that order."""
    order = np.random.default_rng([seed, stream]).permutation(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * size / len(labels)
    take = np.floor(quota).astype(np.int64)
    for index in np.argsort(-(quota - take), kind="stable")[:size - take.sum()]:
        take[index] += 1
    chosen = np.zeros(len(labels), dtype=bool)
    for label, count in zip(classes, take):
        members = order[labels[order] == label]
        chosen[members[:count]] = True
    return order[~chosen[order]], order[chosen[order]]


def validation_split(config: DataConfig, count: int, labels=None):
    """``(rest, val, note)``: the indices of a training split of ``count`` samples that train
    and validate, and why there is no validation split or why it is too small to choose on
    (``None`` when it is large enough). Stratified by class when ``labels`` are given.

    With ``data.val_fraction`` unset the validation split is ``VAL_FRACTION`` of the samples
    if that is at least ``VAL_MIN``, else there is none (every sample trains); a set fraction
    is cut as given (at least one sample when positive)."""
    fraction = config.val_fraction
    if fraction is None:
        size = round(count * VAL_FRACTION)
        if size < VAL_MIN:
            return (np.random.default_rng([config.split_seed, 1]).permutation(count),
                    np.zeros(0, dtype=np.int64),
                    f"no validation split: {VAL_FRACTION:.0%} of the {count} training samples "
                    f"is {size}, fewer than the {VAL_MIN} a checkpoint can be chosen on, so "
                    f"every training sample trains (set data.val_fraction to cut one anyway)")
    else:
        size = 0 if fraction == 0 else max(1, round(count * fraction))
    if labels is not None and size:
        rest, val = _stratified(np.asarray(labels), size, config.split_seed, stream=1)
    else:
        order = np.random.default_rng([config.split_seed, 1]).permutation(count)
        rest, val = order[size:], order[:size]
    note = None
    if size == 0:
        note = "no validation split (data.val_fraction: 0)"
    elif size < VAL_MIN:
        note = (f"the validation split holds {size} samples, fewer than the {VAL_MIN} a "
                f"checkpoint can be chosen on")
    return rest, val, note


def _limit(dataset: Dataset, limit: int | None) -> Dataset:
    if limit is None or limit >= len(dataset):
        return dataset
    return Subset(dataset, range(limit))


def _finish(config: DataConfig, train: Dataset, test: Dataset, labels=None, split=None,
            **info) -> SequenceData:
    """Cut the validation split from ``train`` (``split``: a :func:`validation_split` already
    made, else made here, stratified by ``labels``) and apply ``limit``."""
    rest, val, note = split or validation_split(config, len(train), labels)
    val_set = Subset(train, val.tolist()) if len(val) else None
    train_set = Subset(train, rest.tolist())
    val_set = None if val_set is None else _limit(val_set, config.limit)
    if val_set is not None and note is None and len(val_set) < VAL_MIN:
        note = (f"the validation split holds {len(val_set)} samples (data.limit), fewer than "
                f"the {VAL_MIN} a checkpoint can be chosen on")
    return SequenceData(train=_limit(train_set, config.limit), val=val_set,
                        test=_limit(test, config.limit), val_note=note, **info)


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
                   labels=y[train].numpy(), in_features=x.shape[2], num_outputs=10,
                   steps=x.shape[1], task="classification")


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
    return _finish(config, train, test, labels=train.labels, in_features=train.features,
                   num_outputs=SHD_CLASSES, steps=options["steps"], task="classification")


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

    fraction = VAL_FRACTION if config.val_fraction is None else config.val_fraction
    val_samples = round(options["train_samples"] * fraction)
    note = None if val_samples >= VAL_MIN else \
        "no validation split (data.val_fraction: 0)" if not val_samples else \
        (f"the validation split holds {val_samples} samples, fewer than the {VAL_MIN} a "
         f"checkpoint can be chosen on")
    return SequenceData(
        train=_limit(make(options["train_samples"], 0), config.limit),
        val=_limit(make(val_samples, 1), config.limit) if val_samples else None,
        test=_limit(make(options["test_samples"], 2), config.limit),
        in_features=2 if kind == "adding" else classes + 1,
        num_outputs=1 if kind == "adding" else classes, steps=options["length"],
        task="regression" if kind == "adding" else "classification", val_note=note)


# -- a user's own data: arrays, UEA/UCR sets, entry points ----------------------------------

def _series(source: str, key: str, x) -> list[np.ndarray]:
    """``x`` ([N, T, C], or a sequence of [T_i, C] series) as float64 arrays, checked."""
    if isinstance(x, np.ndarray) and x.dtype != object:
        if x.ndim != 3:
            raise DataError(f"{source}: {key} must be [N, T, C] (3 dimensions), got shape "
                            f"{tuple(x.shape)}")
        items = list(x)
    elif isinstance(x, (list, tuple, np.ndarray)):
        items = list(x)
    else:
        raise DataError(f"{source}: {key} must be an array [N, T, C] or a list of [T, C] "
                        f"arrays, got {type(x).__name__}")
    if not items:
        raise DataError(f"{source}: {key} is empty (N = 0): every split needs samples")
    series = []
    for index, item in enumerate(items):
        try:
            item = np.asarray(item, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{source}: {key} sample {index} does not hold numbers") from None
        if item.ndim != 2:
            raise DataError(f"{source}: {key} must be [N, T, C] (sample {index} has shape "
                            f"{tuple(item.shape)}, not [T, C])")
        if item.shape[0] == 0:
            raise DataError(f"{source}: {key} sample {index} has T = 0 time steps")
        if item.shape[1] == 0:
            raise DataError(f"{source}: {key} sample {index} has C = 0 channels")
        bad = ~np.isfinite(item)
        if bad.any():
            step, channel = np.argwhere(bad)[0]
            raise DataError(f"{source}: {key} contains NaN or inf (sample {index}, step "
                            f"{step}, channel {channel})")
        series.append(item)
    channels = {s.shape[1] for s in series}
    if len(channels) > 1:
        raise DataError(f"{source}: {key} mixes channel counts {sorted(channels)}")
    return series


def _own_lengths(source: str, key: str, series: list[np.ndarray], lengths) -> list:
    """``series`` cut to ``lengths`` (``[N]`` integers in ``[1, T_i]``), the steps of each
    padded sample that are its own."""
    lengths = np.asarray(lengths)
    if lengths.shape != (len(series),) or lengths.dtype.kind not in "iu":
        raise DataError(f"{source}: {key} must be [{len(series)}] integers (one length per "
                        f"sample), got shape {tuple(lengths.shape)} of dtype {lengths.dtype}")
    for index, (s, length) in enumerate(zip(series, lengths)):
        if not 1 <= length <= len(s):
            raise DataError(f"{source}: {key} gives sample {index} {length} steps, outside "
                            f"[1, {len(s)}]")
    return [s[:length] for s, length in zip(series, lengths)]


def _labels(source: str, key: str, y, count: int, x_key: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{source}: {key} must be [N] (one class index per sample), got shape "
                        f"{tuple(y.shape)}")
    if len(y) != count:
        raise DataError(f"{source}: {key} has {len(y)} labels for the {count} samples of "
                        f"{x_key}")
    if y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not
                                     (np.isfinite(y).all() and (y == np.round(y)).all())):
        raise DataError(f"{source}: {key} must hold integer class indices, got dtype {y.dtype}")
    return y.astype(np.int64)


def prepare_arrays(config: DataConfig, arrays: dict, source: str) -> SequenceData:
    """Check a user's ``x_train, y_train, x_test, y_test`` and build the splits.

    ``x_*`` are ``[N, T, C]`` arrays or sequences of ``[T_i, C]`` series (or padded arrays
    with ``lengths_train``/``lengths_test``, each sample's own steps), ``y_*`` class
    indices in ``[0, classes)`` (``data.num_classes``, default the largest label + 1). The
    validation split is cut from the training samples (``val_fraction``, ``split_seed``).
    With ``standardize`` every channel is shifted and scaled by the mean and standard
    deviation of the training samples' steps (validation excluded). Series longer than
    ``length`` (default: the longest series of either split) are cut to their first (``pad:
    none`` or ``end``) or last (``start``) ``length`` steps. With ``pad: none`` (the default)
    every sample keeps its own length (:class:`Samples`); ``end`` and ``start`` pad every
    series with zeros at that end to ``length`` steps (fixed-length mode: the padded steps
    become data). Raises :class:`DataError` naming the key.
    """
    missing = [key for key in ARRAY_KEYS if key not in arrays]
    if missing:
        raise DataError(f"{source}: no {', '.join(missing)} (it must provide "
                        f"{', '.join(ARRAY_KEYS)}; found {', '.join(sorted(arrays)) or 'none'})")
    options = config.resolved()
    x_train = _series(source, "x_train", arrays["x_train"])
    x_test = _series(source, "x_test", arrays["x_test"])
    if "lengths_train" in arrays:
        x_train = _own_lengths(source, "lengths_train", x_train, arrays["lengths_train"])
    if "lengths_test" in arrays:
        x_test = _own_lengths(source, "lengths_test", x_test, arrays["lengths_test"])
    if x_train[0].shape[1] != x_test[0].shape[1]:
        raise DataError(f"{source}: x_train has {x_train[0].shape[1]} channels, x_test "
                        f"{x_test[0].shape[1]}")
    y_train = _labels(source, "y_train", arrays["y_train"], len(x_train), "x_train")
    y_test = _labels(source, "y_test", arrays["y_test"], len(x_test), "x_test")
    classes = options.get("num_classes") or int(y_train.max()) + 1
    for key, y in (("y_train", y_train), ("y_test", y_test)):
        outside = np.flatnonzero((y < 0) | (y >= classes))
        if outside.size:
            hint = "" if options.get("num_classes") else \
                " (classes = the largest y_train label + 1; set data.num_classes)"
            raise DataError(f"{source}: {key} has label {y[outside[0]]} (sample {outside[0]}) "
                            f"outside [0, {classes}){hint}")
    if classes < 2:
        raise DataError(f"{source}: y_train has a single class; classification needs two or "
                        f"more (or set data.num_classes)")
    split = validation_split(config, len(x_train), y_train)
    rest = split[0]
    if len(rest) == 0:
        raise DataError(f"{source}: x_train has {len(x_train)} sample(s), too few to cut a "
                        f"validation split of {config.val_fraction} from (set "
                        f"data.val_fraction: 0)")
    if options.get("standardize"):
        steps = np.concatenate([x_train[i] for i in rest])
        mean, std = steps.mean(0), steps.std(0)
        std[std == 0] = 1.0
        x_train = [(s - mean) / std for s in x_train]
        x_test = [(s - mean) / std for s in x_test]
    length = options.get("length") or max(len(s) for s in x_train + x_test)
    at_start = options.get("pad") == "start"
    if options.get("pad") == "none":
        def own_length(series):
            return [torch.from_numpy(s[:length].astype(np.float32)) for s in series]

        train = Samples(own_length(x_train), torch.from_numpy(y_train))
        test = Samples(own_length(x_test), torch.from_numpy(y_test))
        sizes = [len(s) for s in train.series + test.series]
        return _finish(config, train, test, split=split, in_features=x_train[0].shape[1],
                       num_outputs=classes, steps=length, task="classification",
                       lengths=None if set(sizes) == {length} else (min(sizes), max(sizes)))

    def stack(series):
        out = np.zeros((len(series), length, series[0].shape[1]), dtype=np.float32)
        for index, s in enumerate(series):
            s = s[-length:] if at_start else s[:length]
            if at_start:
                out[index, length - len(s):] = s
            else:
                out[index, :len(s)] = s
        return torch.from_numpy(out)

    train = TensorDataset(stack(x_train), torch.from_numpy(y_train))
    test = TensorDataset(stack(x_test), torch.from_numpy(y_test))
    return _finish(config, train, test, split=split, in_features=x_train[0].shape[1],
                   num_outputs=classes, steps=length, task="classification")


def _arrays(config: DataConfig) -> SequenceData:
    path = Path(config.path)
    source = f"data.path {path}"
    if not path.is_file():
        raise DatasetNotFoundError(f"{source}: no such file (relative paths start from the "
                                   f"directory spikeforge runs in)")
    if path.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(path, "r") as file:
                arrays = {key: np.asarray(file[key]) for key in
                          ARRAY_KEYS + LENGTH_KEYS if key in file}
                found = sorted(file)
        except OSError as exc:
            raise DataError(f"{source}: cannot read as HDF5 ({exc})") from None
    elif path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as file:
                found = sorted(file.files)
                arrays = {key: file[key] for key in ARRAY_KEYS + LENGTH_KEYS
                          if key in file.files}
        except (OSError, ValueError) as exc:
            raise DataError(f"{source}: cannot read as .npz ({exc})") from None
    else:
        raise DataError(f"{source}: expected a .npz, .h5 or .hdf5 file")
    missing = [key for key in ARRAY_KEYS if key not in arrays]
    if missing:
        raise DataError(f"{source}: no {', '.join(missing)} (found {', '.join(found) or 'none'};"
                        f" it must hold {', '.join(ARRAY_KEYS)})")
    return prepare_arrays(config, arrays, source)


def _class_indices(labels) -> tuple[list, dict]:
    """Sorted class names (numerically when every label is a number) and their indices."""
    names = sorted(set(labels.tolist()))
    try:
        names = sorted(names, key=float)
    except (TypeError, ValueError):
        pass
    return names, {name: index for index, name in enumerate(names)}


def _uea(config: DataConfig) -> SequenceData:
    options = config.resolved()
    name, extract = options["dataset"], options["extract_path"]
    source = f"data.dataset {name}"
    try:
        from aeon.datasets import load_classification
    except ImportError:
        raise DataError(f"{source}: UEA/UCR sets need the aeon package, which this "
                        f"installation lacks: pip install 'spikeforge[data]' (in a checkout: "
                        f"pip install -e '.[data]')") from None
    splits = {}
    for split in ("train", "test"):
        try:
            splits[split] = load_classification(name, split=split, extract_path=extract)[:2]
        except Exception as exc:  # offline download attempts, unknown names, parse errors
            where = f"{extract}/{name}/" if extract else "the directory in data.extract_path"
            raise DatasetNotFoundError(
                f"{source}: aeon cannot load its {split} split ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}). aeon bundles a few sets "
                f"(JapaneseVowels, BasicMotions, ArrowHead, GunPoint, ItalyPowerDemand, "
                f"OSULeaf, ACSF1, ...); put other sets' {name}_TRAIN.ts and {name}_TEST.ts "
                f"into {where}") from None
    (x_train, labels_train), (x_test, labels_test) = splits["train"], splits["test"]
    names, index = _class_indices(np.asarray(labels_train))
    unknown = sorted(set(np.asarray(labels_test).tolist()) - set(names))
    if unknown:
        raise DataError(f"{source}: y_test has classes {unknown} that the training split "
                        f"lacks")

    def time_first(x):  # aeon: [N, C, T] or a list of [C, T_i]
        return np.transpose(x, (0, 2, 1)) if isinstance(x, np.ndarray) and x.ndim == 3 \
            else [np.asarray(s).T for s in x]

    arrays = {"x_train": time_first(x_train), "x_test": time_first(x_test),
              "y_train": np.array([index[v] for v in np.asarray(labels_train).tolist()]),
              "y_test": np.array([index[v] for v in np.asarray(labels_test).tolist()])}
    if config.num_classes is None:
        config = dataclasses.replace(config, num_classes=max(len(names), 2))
    return prepare_arrays(config, arrays, source)


def _entry_function(name: str):
    """The function named by ``module:function`` or ``file.py:function`` (relative to the
    working directory, which is also put on the import path)."""
    module_name, function_name = name.rsplit(":", 1)
    source = f"data.name {name}"
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise DataError(f"{source}: no such file {path} (relative paths start from "
                                f"the directory spikeforge runs in)")
            spec = importlib.util.spec_from_file_location(f"_spikeforge_data_{path.stem}",
                                                          path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            if str(Path.cwd()) not in sys.path and "" not in sys.path:
                sys.path.append(str(Path.cwd()))
            module = importlib.import_module(module_name)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{source}: cannot import {module_name} ({type(exc).__name__}: "
                        f"{exc})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise DataError(f"{source}: {module_name} has no function {function_name}")
    return function


def _entry_point(config: DataConfig) -> SequenceData:
    function = _entry_function(config.name)
    source = f"data.name {config.name}"
    kwargs = config.resolved()["options"] or {}
    try:
        result = function(**kwargs)
    except Exception as exc:
        raise DataError(f"{source}: the function raised {type(exc).__name__}: {exc}") from None
    if isinstance(result, SequenceData):
        return result
    if not isinstance(result, dict):
        raise DataError(f"{source}: the function must return a dict with "
                        f"{', '.join(ARRAY_KEYS)} (or a SequenceData), got "
                        f"{type(result).__name__}")
    return prepare_arrays(config, result, source)


_USER = {"standardize": False, "pad": "none", "length": None, "num_classes": None}
#: The options of a ``module:function`` dataset, with their defaults.
ENTRY_POINT_OPTIONS = {**_USER, "options": None}
_ENTRY_POINT_SPEC = DatasetSpec(_entry_point, ENTRY_POINT_OPTIONS)

_SYNTHETIC = {"length": 256, "train_samples": 2000, "test_samples": 500}

DATASETS = {
    "digits": DatasetSpec(lambda c: _digits(c, pixels=False), {"test_fraction": 0.25}),
    "digits-pixels": DatasetSpec(lambda c: _digits(c, pixels=True), {"test_fraction": 0.25}),
    "shd": DatasetSpec(_shd, {"root": "data/shd", "steps": 100, "duration": 1.4,
                              "unit_pool": 1}),
    "adding": DatasetSpec(lambda c: _synthetic(c, "adding"), dict(_SYNTHETIC)),
    "delayed-recall": DatasetSpec(lambda c: _synthetic(c, "delayed-recall"),
                                  {**_SYNTHETIC, "num_classes": 8}),
    "uea": DatasetSpec(_uea, {"dataset": None, "extract_path": None, **_USER,
                              "standardize": True}, required=("dataset",)),
    "arrays": DatasetSpec(_arrays, {"path": None, **_USER}, required=("path",)),
}


def load_data(config: DataConfig) -> SequenceData:
    """Build the splits of ``config.name`` (or of the entry point it names); a missing local
    dataset raises :class:`DatasetNotFoundError` saying which files to put where, unusable
    data :class:`DataError` naming the key and the problem."""
    return config.spec.loader(config)
