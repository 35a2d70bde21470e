"""Samples of their own lengths, end to end: the data keeps each sample's length, padded
steps change no sample's output (readouts, BatchNorm statistics, calibration), the integer
model runs each sample on its own steps, and the accelerator's cycles follow the lengths."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from spikeforge.golden.cpsn_bn import CPSNBN
from spikeforge.golden.data import (DataConfig, DataError, collate_samples, load_data,
                                    prepare_arrays)
from spikeforge.golden.network_int import pad_samples
from spikeforge.golden.networks import ModelConfig, NeuronConfig, SeqBatchNorm, build_model
from spikeforge.sim.network_beats import sample_traces
from spikeforge.sim.regression import random_network

LENGTHS = range(7, 30)  # JapaneseVowels' 7..29 steps


def user_arrays(rng, channels=3):
    """Train and test series of every length in LENGTHS, in a seeded order."""
    def split(count):
        lengths = rng.permutation(np.resize(np.array(LENGTHS), count))
        return [rng.normal(size=(int(n), channels)) + 1.0 for n in lengths], \
            rng.integers(0, 3, size=count)

    (x_train, y_train), (x_test, y_test) = split(46), split(23)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


# -- data ------------------------------------------------------------------------------------

def test_user_series_keep_their_own_lengths(rng):
    arrays = user_arrays(rng)
    data = prepare_arrays(DataConfig(name="arrays", path="unused", val_fraction=0.0),
                          arrays, "test")
    assert (data.steps, data.lengths) == (29, (7, 29))
    for split, name in ((data.train, "train"), (data.test, "test")):
        indices = split.indices if hasattr(split, "indices") else range(len(split))
        for (x, y), index in zip(split, indices):
            series = arrays[f"x_{name}"][index].astype(np.float32)
            assert torch.equal(x, torch.from_numpy(series)) and y == arrays[f"y_{name}"][index]
    assert sorted(len(x) for x, _ in data.test) == list(LENGTHS)
    # a batch is padded at the end to its own longest sample, the lengths alongside
    x, y, lengths = next(iter(DataLoader(data.test, batch_size=5, collate_fn=collate_samples)))
    expected = [len(s) for s in arrays["x_test"][:5]]
    assert lengths.tolist() == expected and x.shape == (5, max(expected), 3)
    for n, length in enumerate(expected):
        assert x[n, length:].abs().sum() == 0 and x[n, :length].all()


def write_ragged_npz(path, arrays: dict) -> dict:
    """``arrays``' series padded into ``[N, T, C]`` with ``lengths_train``/``lengths_test``
    (returned, labels aside)."""
    padded = {}
    for key, lengths_key in (("x_train", "lengths_train"), ("x_test", "lengths_test")):
        x, lengths = pad_samples(arrays[key])
        padded[key], padded[lengths_key] = x.transpose(1, 0, 2), lengths
    np.savez(path, **padded, y_train=arrays["y_train"], y_test=arrays["y_test"])
    return padded


def test_padded_files_give_their_lengths_back(tmp_path, rng):
    """``.npz`` holds no ragged arrays: padded ``x_*`` plus ``lengths_*`` give each sample
    back its own steps; ``data.length`` still cuts the longer ones."""
    arrays = user_arrays(rng)
    padded = write_ragged_npz(tmp_path / "ragged.npz", arrays)
    data = load_data(DataConfig(name="arrays", path=str(tmp_path / "ragged.npz"),
                                val_fraction=0.0, length=20))
    assert (data.steps, data.lengths) == (20, (7, 20))
    assert [len(x) for x, _ in data.test] == [min(len(s), 20) for s in arrays["x_test"]]
    padded["lengths_test"][0] = 30
    np.savez(tmp_path / "bad.npz", **padded, y_train=arrays["y_train"],
             y_test=arrays["y_test"])
    with pytest.raises(DataError, match=r"lengths_test gives sample 0 30 steps, outside "
                                        r"\[1, 29\]"):
        load_data(DataConfig(name="arrays", path=str(tmp_path / "bad.npz")))


def test_fixed_length_sources_are_unchanged():
    digits = load_data(DataConfig(name="digits", limit=16))
    adding = load_data(DataConfig(name="adding", length=12, train_samples=8,
                                  test_samples=4))
    for data, steps in ((digits, 8), (adding, 12)):
        assert data.lengths is None and data.steps == steps
        x, _, lengths = next(iter(DataLoader(data.test, batch_size=4,
                                             collate_fn=collate_samples)))
        assert x.shape[1] == steps and lengths.tolist() == [steps] * 4
        assert torch.equal(x, torch.stack([data.test[i][0] for i in range(4)]))


# -- masks -----------------------------------------------------------------------------------

def firing_model(neuron: str, readout: str = "mean_membrane", hidden=(16, 16),
                 norm: str = "batchnorm"):
    """A seeded fresh network whose every layer fires (its weights scaled up)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(neuron=NeuronConfig(name=neuron), hidden=hidden,
                                    readout=readout, norm=norm), 3, 4, 29)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.mul_(32 if neuron == "prf" else 4)  # PRF resonates, rarely fires
    return model


def padded_batch(rng, lengths, channels=3, padding=0.0):
    """``(samples, x [T, N, C] padded at the end with ``padding``, lengths)``."""
    samples = [torch.tensor(rng.normal(size=(n, channels)), dtype=torch.float32)
               for n in lengths]
    x = torch.full((max(lengths), len(samples), channels), padding)
    for n, sample in enumerate(samples):
        x[:len(sample), n] = sample
    return samples, x, torch.tensor(lengths)


@pytest.mark.parametrize("neuron", ["cpsn", "cpsn_bn", "lif", "prf"])
@pytest.mark.parametrize("readout", ["mean_membrane", "last_membrane", "mean_spikes"])
def test_a_padded_batch_gives_every_sample_its_own_logits_and_loss(neuron, readout, rng):
    model = firing_model(neuron, readout).eval()
    samples, x, lengths = padded_batch(rng, [7, 29, 12, 18], padding=5.0)
    targets = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        batch = model(x, lengths)
        alone = torch.cat([model(s[:, None]) for s in samples])
        unmasked = model(x)
    assert torch.allclose(batch, alone, atol=1e-5)
    assert not torch.allclose(alone[0], alone[1], atol=1e-3)  # the samples' spikes count
    assert torch.allclose(F.cross_entropy(batch, targets, reduction="none"),
                          F.cross_entropy(alone, targets, reduction="none"), atol=1e-5)
    assert not torch.allclose(unmasked, alone, atol=1e-3)  # the padding would have counted


@pytest.mark.parametrize("neuron,norm", [("cpsn", "batchnorm"), ("cpsn_bn", "batchnorm"),
                                        ("cpsn_bn", "none")])
def test_training_statistics_ignore_the_padding(neuron, norm, rng):
    """In training mode (BatchNorm on batch statistics) what fills the padded steps changes
    neither the logits, nor the gradients, nor the running statistics (``norm: none``: the
    padding reaches cpsn_bn's own statistics unchanged)."""
    _, x, lengths = padded_batch(rng, [7, 29, 12, 18])
    garbage = x.clone()
    garbage[torch.arange(29)[:, None] >= lengths[None, :]] = 100.0
    results = []
    for batch in (x, garbage):
        model = firing_model(neuron, hidden=(16,), norm=norm).train()
        logits = model(batch, lengths)
        logits.sum().backward()
        statistics = [b.clone() for m in model.modules()
                      if isinstance(m, (SeqBatchNorm, CPSNBN)) for b in
                      (m.running_mean, m.running_var)]
        results.append((logits.detach(), model.layers.fc0.weight.grad, statistics))
    (a, grad_a, stats_a), (b, grad_b, stats_b) = results
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(grad_a, grad_b, atol=1e-5)
    assert len(stats_a) == 2 * ((neuron == "cpsn_bn") + (norm == "batchnorm"))
    assert all(torch.allclose(u, v) for u, v in zip(stats_a, stats_b))


def test_batchnorm_statistics_are_those_of_the_valid_steps(rng):
    _, x, lengths = padded_batch(rng, [3, 9, 5], channels=4, padding=50.0)
    valid = torch.arange(9)[:, None] < lengths[None, :]
    norm = SeqBatchNorm(4, momentum=1.0).train()
    out = norm(x, valid)
    steps = x[valid]  # [valid steps, C]
    assert torch.allclose(norm.running_mean, steps.mean(0), atol=1e-5)
    assert torch.allclose(norm.running_var, steps.var(0), atol=1e-4)
    assert torch.allclose(out[valid].mean(0), torch.zeros(4), atol=1e-5)
    assert out[~valid].abs().sum() == 0


def test_non_causal_neurons_refuse_samples_shorter_than_t(rng):
    """PSN's T×T weights read every step: a padded step would change the valid ones."""
    model = build_model(ModelConfig(neuron=NeuronConfig(name="psn"), hidden=(8,)), 3, 4, 29)
    _, x, lengths = padded_batch(rng, [7, 29])
    with pytest.raises(ValueError, match=r"psn is not causal.*data\.pad: end"):
        model(x, lengths)
    assert model(x).shape == (2, 4)  # samples of T steps (fixed-length mode) run


def test_train_refuses_a_non_causal_neuron_on_variable_lengths(tmp_path, rng, monkeypatch):
    from spikeforge.sw.train import ConfigError, RunConfig, train_run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "userdata.py").write_text(
        "import numpy as np\n"
        "def load():\n"
        "    rng = np.random.default_rng(0)\n"
        "    x = [rng.normal(size=(n, 3)) for n in (7, 29, 12, 18)]\n"
        "    return {'x_train': x, 'y_train': [0, 1, 0, 1], 'x_test': x, 'y_test': [0, 1, 0, 1]}\n")
    config = RunConfig(data=DataConfig(name="userdata.py:load", val_fraction=0.0),
                       model=ModelConfig(neuron=NeuronConfig(name="psn"), hidden=(8,)))
    with pytest.raises(ConfigError, match=r"model\.neuron: psn is not causal.*7\.\.29 steps.*"
                                          r"data\.pad: end"):
        train_run(config, tmp_path / "run", log=lambda *_: None)
    assert not (tmp_path / "run").exists()


def test_calibration_ignores_the_padded_steps(rng):
    """Padded steps full of large values change no scale of the integer network."""
    from spikeforge.sw.quantise import quantise_network

    model = firing_model("cpsn_bn", hidden=(8, 8)).eval()
    _, x, lengths = padded_batch(rng, [7, 29, 12, 18] * 4)
    garbage = x.clone()
    garbage[torch.arange(29)[:, None] >= lengths[None, :]] = 1000.0
    networks = [quantise_network(model, batch.double().numpy(), calibration_lengths=lengths)
                for batch in (x, garbage)]
    unmasked = quantise_network(model, garbage.double().numpy())
    fracs = [(n.input_frac_bits, [layer.synapse.shift for layer in n.layers])
             for n in networks + [unmasked]]
    assert fracs[0] == fracs[1] != fracs[2]


# -- the integer model -----------------------------------------------------------------------

@pytest.mark.parametrize("readout", ["mean_membrane", "last_membrane"])
def test_integer_model_padded_and_unpadded_differ_only_in_the_readout(readout, rng):
    """One sample alone vs the same sample padded with zeros to T: the valid steps' spikes
    are identical (causal cores); the readout is not: ``mean_membrane`` adds every padded
    step's ``R·S_t + r`` (the bias at least), ``last_membrane`` reads step T − 1 instead of
    the sample's last. With its length the padded sample gives the unpadded logits back."""
    network = random_network(rng, neurons=("cpsn", "prf"), readout=readout)
    length, steps = 7, 29
    sample = rng.integers(-128, 128, size=(length, network.in_features)).astype(np.float64)
    padded = np.zeros((steps, 1, network.in_features))
    padded[:length, 0] = sample
    alone, whole = network.run(sample[:, None]), network.run(padded)
    for layer in network.layers:
        assert np.array_equal(alone.spikes[layer.name], whole.spikes[layer.name][:length])
    last = whole.spikes[network.layers[-1].name][:, 0]
    synapse = network.readout
    if readout == "mean_membrane":
        # every padded step adds R·S_t + r: the bias r once per padded step, spikes or not
        extra = synapse.weight @ last[length:].sum(axis=0) + (steps - length) * synapse.bias
        assert np.array_equal(whole.logits[0] - alone.logits[0], extra) and extra.any()
    else:  # the padded run reads step T − 1, the sample alone its own last step
        assert np.array_equal(alone.logits[0], synapse.accumulate(last[length - 1]))
        assert np.array_equal(whole.logits[0], synapse.accumulate(last[steps - 1]))
    masked = network.run(padded, lengths=[length])
    assert np.array_equal(masked.logits, alone.logits)
    assert masked.spikes[network.layers[0].name][length:].sum() == 0  # not run


def test_integer_model_runs_a_padded_batch_as_each_sample_alone(rng):
    network = random_network(rng, neurons=("cpsn", "prf"), readout="last_membrane")
    samples = [rng.integers(-128, 128, size=(int(n), network.in_features))
               for n in rng.permutation(np.array([7, 29, 12, 7, 18, 29]))]
    x, lengths = pad_samples(samples)
    trace = network.run(x, lengths)
    alone = sample_traces(network, samples)  # what co-simulation compares against
    assert np.array_equal(trace.logits, np.concatenate([t.logits for t in alone]))
    for n, (one, length) in enumerate(zip(alone, lengths)):
        for name in trace.spikes:
            assert np.array_equal(trace.spikes[name][:length, n], one.spikes[name][:, 0])
    assert trace.valid.sum() == lengths.sum()
    with pytest.raises(ValueError, match="lengths must be one value in"):
        network.run(x, lengths[:-1])


# -- the accelerator -------------------------------------------------------------------------

def test_the_accelerator_agrees_on_samples_of_their_own_lengths(rng, tmp_path):
    """A small generated network on samples of 2..12 steps: every class and logit equals the
    integer model's on each sample's own steps, and short samples take fewer cycles."""
    from spikeforge.hw.generate import generate_network, load_network_dir
    from spikeforge.sim.network_runner import run_network_cosim
    from spikeforge.sw.accelerator import expected_cycles

    network = random_network(rng, neurons=("cpsn", "prf"), hidden=(8, 8), lanes=(4, 2),
                             readout="mean_membrane")
    generate_network(network, tmp_path, max_steps=12, macs=4, spike_parallel=4)
    description, files = load_network_dir(tmp_path)
    tables = {name: text for name, text in files.items() if name.endswith(".hex")}

    def draw(lengths):
        return [rng.integers(-128, 128, size=(int(n), network.in_features)) for n in lengths]

    mixed = draw(rng.integers(2, 13, size=12))
    x, lengths = pad_samples([s.astype(np.float64) for s in mixed])
    result = run_network_cosim(network, mixed, files["network.v"], tables, seed=1,
                               valid_probability=1.0, ready_probability=1.0)
    assert result.passed and result.class_agreement == result.logit_agreement == 1.0
    hardware = [t.logits for t in sample_traces(network, mixed)]
    assert np.array_equal(network.run(x, lengths).logits, np.concatenate(hardware))
    cycles, expected = {}, {}
    for name, length in (("short", 2), ("long", 12)):
        samples = draw([length] * 6)
        run = run_network_cosim(network, samples, files["network.v"], tables, seed=1,
                                valid_probability=1.0, ready_probability=1.0)
        assert run.passed
        cycles[name] = run.cycles
        expected[name] = expected_cycles(description, samples, 1.0)
    assert cycles["short"] * 3 < cycles["long"], cycles
    assert expected["short"] * 6 == expected["long"]  # the estimate follows the steps sent


def test_nir_export_round_trips_samples_of_their_own_lengths(tmp_path, rng):
    """The NIR export's round trip (our importer reads the file back) compares each test
    sample's own steps and its masked mean: every spike and class equal."""
    pytest.importorskip("nir")
    from spikeforge.sw.checkpoint import save_checkpoint
    from spikeforge.sw.nir_export import export_nir
    from spikeforge.sw.train import config_to_dict, parse_config

    write_ragged_npz(tmp_path / "ragged.npz", user_arrays(rng))
    config = parse_config({
        "data": {"name": "arrays", "path": str(tmp_path / "ragged.npz"), "val_fraction": 0.0,
                 "num_classes": 4},
        "model": {"hidden": [16], "neuron": {"name": "cpsn_bn", "exp_max": 2}}})
    model = firing_model("cpsn_bn", hidden=(16,))
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "best.pt", {
        "config": config_to_dict(config), "state_dict": model.state_dict(),
        "model_inputs": {"in_features": 3, "outputs": 4, "steps": 29}, "optimizer": {},
        "epoch": 1, "epochs": 1, "seed": 0, "rng": {}, "metrics": [], "best": {}})
    result = export_nir(run, tmp_path / "ragged.nir", log=lambda *_: None)
    assert result["sn0"] == 0 and result["classes"] == 0 and result["spikes"]["sn0"] > 0
    assert result["max_logit_difference"] < 1e-9


def test_runs_saved_before_lengths_read_as_padded_at_the_end():
    """A checkpoint or manifest without data.pad (written before samples kept their lengths)
    was trained on end-padded samples: it reads as pad: end; recorded values and datasets
    without the option are left as they are."""
    from spikeforge.sw.checkpoint import with_recorded_padding

    old = {"data": {"name": "uea", "dataset": "JapaneseVowels"}, "model": {}}
    assert with_recorded_padding(old)["data"]["pad"] == "end"
    assert "pad" not in old["data"]  # not changed in place
    recorded = {"data": {"name": "arrays", "path": "x.npz", "pad": "none"}}
    assert with_recorded_padding(recorded) == recorded
    fixed = {"data": {"name": "digits"}}
    assert with_recorded_padding(fixed) == fixed
    assert with_recorded_padding({"data": {"name": "no such set"}})["data"] == \
        {"name": "no such set"}
