"""LIF networks to hardware: the quantiser's mapping of trained LIF layers, the accelerator
with LIF cores in the Amaranth simulator, and a trained run exported, generated and
co-simulated under Verilator (every class and logit)."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from spikeforge.golden.lif import LIF
from spikeforge.golden.lif_config import LIFConfig
from spikeforge.golden.lif_int import lif_integer
from spikeforge.golden.network_int import IntegerLayer, IntegerNetwork, IntegerSynapse
from spikeforge.golden.prf_int import round_shift
from spikeforge.hw.network import NetworkAccelerator, NetworkError
from spikeforge.sim.amaranth_sim import run_stream
from spikeforge.sim.network_beats import (network_input_beats, network_output_beats,
                                          sample_traces)
from spikeforge.sim.regression import random_network
from spikeforge.sw.cli import main
from spikeforge.sw.quantise import Formats, lif_config
from spikeforge.sw.train import parse_config, train_run

RUN = {"data": {"name": "digits", "batch_size": 32, "limit": 256},
       "model": {"arch": "mlp", "hidden": [16, 8], "neuron": {"name": "lif"},
                 "neurons": [{"name": "lif"}, {"name": "decoupled_lif", "tau": 4.0}]},
       "train": {"epochs": 2, "lr": 0.02, "seed": 0}}


def lif_network(rng, lanes=(4, 2), **fields):
    """A random integer network whose hidden cores are LIF cores."""
    base = random_network(rng, neurons=("cpsn",) * len(lanes), lanes=lanes)
    layers = []
    for layer, lane in zip(base.layers, lanes):
        core = LIFConfig.random(rng, channels=layer.core.channels, lanes=lane, shared=False,
                                input_width=layer.core.input_width, **fields)
        core = core.replace(threshold=np.maximum(1, core.per_channel("threshold") // 4))
        layers.append(IntegerLayer(layer.name, layer.synapse, core))
    return IntegerNetwork(base.input_width, base.input_frac_bits, tuple(layers), base.readout,
                          base.readout_kind)


@pytest.mark.parametrize("variant,reset", [("lif", "subtract_decayed"), ("cuba_lif", "zero"),
                                           ("if", "subtract")])
def test_accelerator_with_lif_cores_matches_the_integer_model(variant, reset):
    rng = np.random.default_rng([21, len(variant), len(reset)])
    network = lif_network(rng, variant=variant, reset=reset)
    bound = 1 << (network.input_width - 1)
    samples = [rng.integers(-bound, bound, size=(steps, network.in_features))
               for steps in (3, 1, 6)]
    accelerator = NetworkAccelerator(network, max_steps=6, macs=4, spike_parallel=4)
    traces = sample_traces(network, samples)
    logits = np.concatenate([trace.logits for trace in traces])
    want = network_output_beats(logits, accelerator.stages["readout"].logit_width)
    got, _ = run_stream(accelerator, network_input_beats(network, samples), rng,
                        expected_outputs=len(want), valid_probability=0.7,
                        ready_probability=0.4)
    assert got == want
    fired = sum(int(t.spikes[layer.name].sum()) for t in traces for layer in network.layers)
    assert fired, "no LIF core fired: the test would not see spike errors"


def test_a_leaky_integrator_cannot_be_a_hidden_layer():
    rng = np.random.default_rng(22)
    network = lif_network(rng)
    layer = network.layers[0]
    li = LIFConfig(channels=layer.core.channels, lanes=layer.core.lanes, variant="li",
                   beta=[192], input_width=layer.core.input_width, membrane_out=True)
    bad = IntegerNetwork(network.input_width, network.input_frac_bits,
                         (IntegerLayer(layer.name, layer.synapse, li), network.layers[1]),
                         network.readout, network.readout_kind)
    with pytest.raises(NetworkError, match="layer 'sn0'.*'li' core emits no spikes"):
        NetworkAccelerator(bad, max_steps=4)


@pytest.mark.parametrize("tau", [2.0, 4.0, 8.0])
def test_quantised_lif_equals_the_float_neuron_on_its_grid(tau):
    """The trained neuron's semantics (reset subtract_decayed, >=): on inputs on the core's
    grid, β = 1 − 1/τ a power-of-two step and a membrane grid fine enough that no decay
    rounds (T steps add T·log2 τ bits), the core equals golden.lif.LIF exactly."""
    steps = 5
    k = int(np.log2(tau))
    neuron = LIF(tau=tau, v_threshold=1.0)
    formats = Formats(lif_extra_frac_bits=k * steps, lif_decay_mode="shift")
    config = lif_config(neuron, 8, 8, 4, formats, lanes=4)
    assert (config.reset, config.spike, config.variant) == ("subtract_decayed", "ge", "lif")
    assert int(config.beta[0]) == 256 - (256 >> k)
    x = np.random.default_rng(k).integers(-128, 128, size=(steps, 5, 8))
    spikes, membrane = lif_integer(config, x)
    neuron.store_v_seq = True
    with torch.no_grad():
        want = neuron(torch.tensor(x / 16.0, dtype=torch.float64)).numpy()
    np.testing.assert_array_equal(spikes, want)
    np.testing.assert_array_equal(membrane / 2.0 ** config.state_frac_bits,
                                  neuron.v_seq.numpy())
    assert 0 < spikes.mean() < 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("lif_run")
    torch.set_num_threads(1)
    train_run(parse_config(RUN), out, progress=False, log=lambda *_: None)
    return out


def test_trained_lif_run_export_generate_cosim(trained, tmp_path):
    """digits with LIF and decoupled-reset LIF layers: export, generate the accelerator and
    co-simulate it under Verilator: every class and logit equals the integer model."""
    runner = CliRunner()
    export_dir, network = tmp_path / "export", tmp_path / "network"
    result = runner.invoke(main, ["export", str(trained), "--out", str(export_dir),
                                  "--lanes", "4"])
    assert result.exit_code == 0, result.output
    assert "sn0 (lif)" in result.output and "sn1 (lif)" in result.output
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert [entry["neuron"] for entry in manifest["layers"]] == ["lif", "lif"]
    assert manifest["layers"][1]["config"]["reset"] == "subtract_decayed"
    result = runner.invoke(main, ["generate", "--from", str(export_dir), "--out",
                                  str(network)])
    assert result.exit_code == 0, result.output
    report_path = tmp_path / "cosim.json"
    result = runner.invoke(main, ["cosim", str(network), "--samples", "30", "--json",
                                  str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["samples"] == 30
    assert report["class_agreement"] == 1.0 and report["logit_agreement"] == 1.0


def recurrent_lif_network(rng, layers=(0, 1), **fields):
    """``lif_network`` with recurrent weights (RLeaky) on the given layers."""
    network = lif_network(rng, **fields)
    out = []
    for index, layer in enumerate(network.layers):
        synapse = layer.synapse
        if index in layers:
            hi = (1 << (synapse.weight_width - 1)) - 1
            scale = 1 << max(0, synapse.shift - 1)  # a spike moves U by about ±1/2 … ±hi/2
            recurrent = np.clip(rng.integers(-hi, hi + 1, size=(synapse.outputs,) * 2) * scale
                                // 2, -hi, hi)
            synapse = IntegerSynapse(weight=synapse.weight, bias=synapse.bias,
                                     weight_width=synapse.weight_width,
                                     weight_frac_bits=synapse.weight_frac_bits,
                                     shift=synapse.shift, out_width=synapse.out_width,
                                     input_bound=synapse.input_bound, recurrent=recurrent)
        out.append(IntegerLayer(layer.name, synapse, layer.core))
    return IntegerNetwork(network.input_width, network.input_frac_bits, tuple(out),
                          network.readout, network.readout_kind)


def test_recurrent_integer_model_feeds_spikes_one_step_later():
    """A recurrent layer's drive at step t is W·a_t + V·s_{t−1} + b (s_{−1} = 0): checked
    against a direct loop over time, and different from the same network without V."""
    rng = np.random.default_rng(23)
    network = recurrent_lif_network(rng)
    x = rng.integers(-128, 128, size=(7, 3, network.in_features))
    trace = network.run(x / 2.0 ** network.input_frac_bits)
    layer = network.layers[0]
    activity = network.quantise_input(x / 2.0 ** network.input_frac_bits)[0]
    previous = np.zeros((3, layer.core.channels), dtype=np.int64)
    state = None
    from spikeforge.golden.network_int import core_model
    for t in range(7):
        accumulated = activity[t] @ layer.synapse.weight.T + layer.synapse.bias + \
            previous @ layer.synapse.recurrent.T
        drive = np.clip(round_shift(accumulated, layer.synapse.shift), -128, 127)
        np.testing.assert_array_equal(trace.inputs["sn0"][t], drive)
        previous, state = core_model(layer.core).step(layer.core, drive, state)
        np.testing.assert_array_equal(trace.spikes["sn0"][t], previous)
    plain = IntegerNetwork(network.input_width, network.input_frac_bits,
                           tuple(IntegerLayer(l.name, IntegerSynapse(
                               weight=l.synapse.weight, bias=l.synapse.bias,
                               weight_width=l.synapse.weight_width,
                               weight_frac_bits=l.synapse.weight_frac_bits,
                               shift=l.synapse.shift, out_width=l.synapse.out_width,
                               input_bound=l.synapse.input_bound), l.core)
                                 for l in network.layers), network.readout,
                           network.readout_kind)
    assert (plain.run(x / 2.0 ** network.input_frac_bits).spikes["sn0"]
            != trace.spikes["sn0"]).any()


@pytest.mark.parametrize("layers", [(0,), (1,), (0, 1)])
def test_recurrent_accelerator_matches_the_integer_model(layers):
    """Recurrent connections in hardware: the core's spikes of step t go back to its own
    synapse engine for step t + 1 (values and spike engines), under backpressure, with
    samples of one step (whose feedback is dropped) between longer ones."""
    rng = np.random.default_rng([24, *layers])
    network = recurrent_lif_network(rng, layers=layers)
    bound = 1 << (network.input_width - 1)
    samples = [rng.integers(-bound, bound, size=(steps, network.in_features))
               for steps in (4, 1, 5, 1, 1, 3)]
    accelerator = NetworkAccelerator(network, max_steps=5, macs=4, spike_parallel=4)
    traces = sample_traces(network, samples)
    logits = np.concatenate([trace.logits for trace in traces])
    want = network_output_beats(logits, accelerator.stages["readout"].logit_width)
    for valid, ready in ((1.0, 1.0), (0.7, 0.4)):
        got, _ = run_stream(accelerator, network_input_beats(network, samples), rng,
                            expected_outputs=len(want), valid_probability=valid,
                            ready_probability=ready)
        assert got == want
    fired = sum(int(t.spikes[layer.name].sum()) for t in traces for layer in network.layers)
    assert fired


def test_recurrent_network_export_round_trip_and_cosim(tmp_path):
    """A recurrent LIF network survives export and load (network.npz holds V), and its
    generated accelerator matches the integer model under Verilator on every class and
    logit."""
    from spikeforge.sw.export import export_network, load_network
    from spikeforge.sw.network import generate_from

    rng = np.random.default_rng(25)
    network = recurrent_lif_network(rng, layers=(0, 1))
    export_network(network, tmp_path / "export")
    _, loaded = load_network(tmp_path / "export")
    for a, b in zip(network.layers, loaded.layers):
        np.testing.assert_array_equal(a.synapse.recurrent, b.synapse.recurrent)
    x = rng.integers(-128, 128, size=(6, 4, network.in_features)) / 1.0
    np.testing.assert_array_equal(network.run(x).logits, loaded.run(x).logits)
    from spikeforge.hw.generate import generate_network
    from spikeforge.sim.network_runner import run_network_cosim

    out = tmp_path / "network"
    generate_network(loaded, out, max_steps=6, macs=4, spike_parallel=4,
                     weight_storage="file")
    tables = {p.name: p.read_text() for p in out.glob("*.hex")}
    samples = [rng.integers(-128, 128, size=(steps, network.in_features))
               for steps in (6, 1, 3, 5, 1, 2)]
    result = run_network_cosim(loaded, samples, (out / "network.v").read_text(), tables,
                               seed=3, valid_probability=0.7, ready_probability=0.6)
    assert result.mismatch is None, result.mismatch
    assert result.checked == len(samples) and result.logit_agreement == 1.0
