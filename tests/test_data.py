"""Datasets: digits (rows and pixels), SHD from a small HDF5 file, synthetic long-range tasks."""

import h5py
import numpy as np
import pytest
import torch

from spikeforge.golden.data import (DATASETS, DataConfig, DatasetNotFoundError, SHD_FILES,
                                    load_data)


def all_items(dataset):
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs), torch.stack(ys)


def test_digits_rows_and_pixels_hold_the_same_images():
    rows = load_data(DataConfig(name="digits"))
    pixels = load_data(DataConfig(name="digits-pixels"))
    assert (rows.steps, rows.in_features, rows.num_outputs) == (8, 8, 10)
    assert (pixels.steps, pixels.in_features, pixels.num_outputs) == (64, 1, 10)
    assert len(rows.train) + len(rows.val) + len(rows.test) == 1797
    assert (len(rows.test), len(rows.val)) == (449, 135)
    x_rows, y_rows = all_items(rows.test)
    x_pixels, y_pixels = all_items(pixels.test)
    assert torch.equal(x_rows.reshape(-1, 64, 1), x_pixels) and torch.equal(y_rows, y_pixels)
    assert x_rows.dtype == torch.float32 and 0 <= x_rows.min() and x_rows.max() == 1
    assert set(y_rows.tolist()) == set(range(10))


def test_digits_split_is_fixed_by_its_seed_and_disjoint():
    def fingerprints(split_seed):
        data = load_data(DataConfig(name="digits", split_seed=split_seed))
        return [{tuple(x.flatten().tolist()) for x, _ in split}
                for split in (data.train, data.val, data.test)]

    first, again, other = fingerprints(0), fingerprints(0), fingerprints(1)
    assert first == again
    assert first[2] != other[2]
    train, val, test = first
    # 1797 images with a few exact duplicates in the set: nearly all splits are disjoint
    assert len(train & test) < 10 and len(train & val) < 5 and len(val & test) < 5


def test_limit_caps_every_split():
    data = load_data(DataConfig(name="digits-pixels", limit=20))
    assert (len(data.train), len(data.val), len(data.test)) == (20, 20, 20)
    assert load_data(DataConfig(name="digits", val_fraction=0.0)).val is None


def write_shd(path, samples):
    """Write ``[(times, units, label), ...]`` in the distributed SHD layout."""
    with h5py.File(path, "w") as file:
        floats = h5py.vlen_dtype(np.dtype("float32"))
        ints = h5py.vlen_dtype(np.dtype("uint16"))
        times = file.create_dataset("spikes/times", (len(samples),), dtype=floats)
        units = file.create_dataset("spikes/units", (len(samples),), dtype=ints)
        for i, (t, u, _) in enumerate(samples):
            times[i] = np.asarray(t, dtype=np.float32)
            units[i] = np.asarray(u, dtype=np.uint16)
        file.create_dataset("labels", data=np.array([s[2] for s in samples], dtype=np.uint8))


def random_shd(rng, count):
    samples = []
    for _ in range(count):
        n = int(rng.integers(5, 60))
        samples.append((np.sort(rng.random(n) * 1.3), rng.integers(0, 700, n),
                        int(rng.integers(0, 20))))
    return samples


def test_shd_bins_spike_times_and_units(tmp_path, rng):
    known = ([0.0, 0.05, 0.099, 0.1, 0.5, 0.999, 1.0, 1.2], [3, 3, 3, 699, 10, 11, 12, 3], 7)
    write_shd(tmp_path / SHD_FILES[0], [known] + random_shd(rng, 9))
    write_shd(tmp_path / SHD_FILES[1], random_shd(rng, 4))
    data = load_data(DataConfig(name="shd", root=str(tmp_path), steps=10, duration=1.0,
                                val_fraction=0.0))
    assert (data.steps, data.in_features, data.num_outputs) == (10, 700, 20)
    assert data.task == "classification"
    x, y = data.train.dataset[0]  # the unshuffled file order
    want = torch.zeros(10, 700)
    want[0, 3] = 3  # 0.0, 0.05, 0.099 fall in bin 0 of 0.1 s
    want[1, 699] = 1
    want[5, 10] = 1
    want[9, 11] = 1  # 0.999; 1.0 and 1.2 lie past the duration and are dropped
    assert torch.equal(x, want) and y.item() == 7
    pooled = load_data(DataConfig(name="shd", root=str(tmp_path), steps=10, duration=1.0,
                                  unit_pool=4, val_fraction=0.0))
    xp, _ = pooled.train.dataset[0]
    assert pooled.in_features == 175 and xp[0, 0] == 3 and xp[1, 174] == 1
    assert xp.sum() == x.sum()


def test_shd_missing_files_say_what_to_put_where(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"shd_train\.h5, shd_test\.h5 not found in "
                       + str(tmp_path)):
        load_data(DataConfig(name="shd", root=str(tmp_path)))
    with pytest.raises(DatasetNotFoundError, match="data.root"):
        load_data(DataConfig(name="shd", root=str(tmp_path / "nowhere")))


def test_shd_foreign_file_is_refused(tmp_path):
    with h5py.File(tmp_path / SHD_FILES[0], "w") as file:
        file.create_dataset("labels", data=np.zeros(3, dtype=np.uint8))
    (tmp_path / SHD_FILES[1]).write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not an SHD file.*spikes/times"):
        load_data(DataConfig(name="shd", root=str(tmp_path)))


@pytest.mark.parametrize("length", [16, 4096])
def test_adding_problem(length):
    data = load_data(DataConfig(name="adding", length=length, train_samples=30,
                                test_samples=5))
    assert (data.steps, data.in_features, data.num_outputs, data.task) == \
        (length, 2, 1, "regression")
    assert (len(data.train), len(data.val), len(data.test)) == (30, 3, 5)
    for split in (data.train, data.test):
        for i in range(len(split)):
            x, target = split[i]
            assert x.shape == (length, 2)
            marks = torch.nonzero(x[:, 1]).flatten().tolist()
            assert len(marks) == 2 and marks[0] < length // 2 <= marks[1]
            assert target.item() == pytest.approx(x[marks, 0].sum().item())
            assert 0 <= x[:, 0].min() and x[:, 0].max() < 1
    again = load_data(DataConfig(name="adding", length=length, train_samples=30,
                                 test_samples=5))
    assert torch.equal(data.train[3][0], again.train[3][0])
    assert not torch.equal(data.train[0][0], data.test[0][0])


def test_delayed_recall():
    data = load_data(DataConfig(name="delayed-recall", length=50, num_classes=4,
                                train_samples=40, test_samples=10))
    assert (data.steps, data.in_features, data.num_outputs) == (50, 5, 4)
    x, y = all_items(data.train)
    assert torch.equal(x[:, 0, :4].argmax(1), y) and torch.equal(x[:, 0, :4].sum(1),
                                                                 torch.ones(40))
    assert torch.equal(x[:, -1, 4], torch.ones(40))
    assert x[:, 1:-1].abs().sum() == 0 and x[:, -1, :4].abs().sum() == 0
    assert len(set(y.tolist())) == 4
    with pytest.raises(IndexError):
        data.train.dataset[40] if hasattr(data.train, "dataset") else data.train[40]


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="digits", length=10), "data.length is not an option of dataset 'digits'"),
    (dict(name="adding", test_fraction=0.2), "data.test_fraction is not an option"),
    (dict(name="shd", num_classes=3), "data.num_classes"),
    (dict(name="mnist"), "unknown dataset 'mnist'"),
    (dict(name="digits", batch_size=0), "data.batch_size must be >= 1"),
    (dict(name="digits", test_fraction=1.0), r"data.test_fraction must lie in \(0, 1\)"),
    (dict(name="adding", length=1), "data.length must be >= 2"),
    (dict(name="shd", duration=0.0), "data.duration must be > 0"),
    (dict(name="digits", val_fraction=-0.1), "data.val_fraction"),
])
def test_data_config_rejects_keys_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataConfig(**kwargs)


def test_every_dataset_has_defaults_for_its_options():
    # None only where "unset" has a meaning: uea's extract_path (aeon's bundled sets),
    # length (the longest series), num_classes (the largest label + 1)
    optional = {"extract_path", "length", "num_classes"}
    for name, spec in DATASETS.items():
        required = {key: "x" for key in spec.required}
        resolved = DataConfig(name=name, **required).resolved()
        assert set(resolved) == set(spec.options)
        assert all(value is not None for key, value in resolved.items()
                   if key not in optional), name


# -- validation split (issue 28) -----------------------------------------------------------------

def test_digits_validation_is_a_stratified_tenth():
    from spikeforge.golden.data import VAL_MIN

    data = load_data(DataConfig(name="digits"))
    assert (len(data.train), len(data.val), len(data.test)) == (1213, 135, 449)
    assert data.val_note is None and len(data.val) >= VAL_MIN
    train = torch.stack([y for _, y in data.train]).bincount(minlength=10)
    val = torch.stack([y for _, y in data.val]).bincount(minlength=10)
    share = (train + val).double() * 135 / 1348  # every class in proportion, within one
    assert ((val - share).abs() < 1).all() and val.sum() == 135


def test_validation_split_rules():
    from spikeforge.golden.data import validation_split

    labels = np.repeat([0, 1, 2], [30, 10, 5])  # 45 samples
    rest, val, note = validation_split(DataConfig(name="digits"), 45, labels)
    assert len(val) == 0 and sorted(rest) == list(range(45))  # 4 < 50: none, all train
    assert note.startswith("no validation split: 10% of the 45 training samples is 4")
    rest, val, note = validation_split(DataConfig(name="digits", val_fraction=0.2), 45, labels)
    assert np.bincount(labels[val], minlength=3).tolist() == [6, 2, 1]  # stratified
    assert sorted([*rest, *val]) == list(range(45))
    assert note == ("the validation split holds 9 samples, fewer than the 50 a checkpoint can "
                    "be chosen on")
    again = validation_split(DataConfig(name="digits", val_fraction=0.2), 45, labels)
    other = validation_split(DataConfig(name="digits", val_fraction=0.2, split_seed=1), 45,
                             labels)
    assert np.array_equal(again[1], val) and not np.array_equal(other[1], val)
    labels = np.arange(600) % 4
    rest, val, note = validation_split(DataConfig(name="digits"), 600, labels)
    assert note is None and np.bincount(labels[val]).tolist() == [15, 15, 15, 15]
    assert validation_split(DataConfig(name="digits", val_fraction=0.0), 600, labels)[2] == \
        "no validation split (data.val_fraction: 0)"


def test_data_config_names_its_set():
    assert DataConfig(name="digits").label == "digits"
    assert DataConfig(name="uea", dataset="GunPoint").label == "uea GunPoint"
    assert DataConfig(name="arrays", path="my.npz").label == "arrays my.npz"
