"""Whole networks under Verilator (cocotb) against IntegerNetwork, and fault detection."""

import numpy as np
import pytest

from spikeforge.hw.generate import generate_network, load_network_dir
from spikeforge.sim.network_runner import run_network_cosim
from spikeforge.sim.regression import random_network

NETWORKS = {
    # name: (neurons, hidden widths, lanes, readout): CPSN only, PRF only, mixed; 1 and 3
    # hidden layers; lanes 1/2/4/8, folded (C > L) and not
    "mixed_folded": (("cpsn", "prf"), (8, 8), (4, 2), "mean_membrane"),
    "three_layers": (("cpsn", "prf", "cpsn"), (8, 16, 4), (1, 8, 2), "last_membrane"),
    "prf_only": (("prf",), (8,), (8,), "mean_membrane"),
    "cpsn_only": (("cpsn",), (12,), (4,), "last_membrane"),
}


def generated(name, tmp_path, seed=0):
    neurons, hidden, lanes, readout = NETWORKS[name]
    rng = np.random.default_rng(seed)
    network = random_network(rng, neurons=neurons, hidden=hidden, lanes=lanes,
                             readout=readout)
    samples = [rng.integers(-128, 128, size=(int(steps), network.in_features))
               for steps in rng.integers(1, 10, size=24)]
    generate_network(network, tmp_path, max_steps=9, macs=4, spike_parallel=4)
    description, files = load_network_dir(tmp_path)
    tables = {n: text for n, text in files.items() if n.endswith(".hex")}
    return network, samples, files["network.v"], tables


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow)
                                  if n == "three_layers" else n for n in sorted(NETWORKS)])
def test_whole_network_matches_integer_model(name, tmp_path):
    from spikeforge.sim.network_beats import sample_traces

    network, samples, verilog, tables = generated(name, tmp_path)
    traces = sample_traces(network, samples)
    for layer in network.layers:  # every core fires, so a spike error would show
        assert sum(int(t.spikes[layer.name].sum()) for t in traces) > 0, layer.name
    for valid, ready in ((0.7, 0.4), (1.0, 1.0)):
        result = run_network_cosim(network, samples, verilog, tables, seed=3,
                                   valid_probability=valid, ready_probability=ready)
        assert result.passed, result.mismatch
        assert result.class_agreement == result.logit_agreement == 1.0


def test_corrupted_weight_word_is_caught_and_located(tmp_path):
    """A corrupted synapse weight word (the export's check bypassed) must fail the run,
    name the sample, and the probed rerun must name the layer behind that synapse."""
    from spikeforge.sim.network_beats import sample_traces

    network, samples, verilog, tables = generated("mixed_folded", tmp_path)
    # the word of the input that spikes most: every weight of that row (block 0) inverted
    active = sum(t.spikes["sn0"][:, 0, :].sum(axis=0) for t in sample_traces(network, samples))
    row = int(np.argmax(active))
    lines = tables["synapse_sn1_weights.hex"].splitlines()
    lines[row] = f"{~int(lines[row], 16) & ((1 << 4 * len(lines[row])) - 1):0{len(lines[row])}x}"
    tables["synapse_sn1_weights.hex"] = "\n".join(lines) + "\n"
    result = run_network_cosim(network, samples, verilog, tables, seed=3)
    assert not result.passed and result.first_mismatch_sample is not None
    assert result.mismatch.startswith(f"sample {result.first_mismatch_sample}:")

    from spikeforge.hw.generate import network_accelerator, network_verilog

    probed = network_verilog(network_accelerator(network, max_steps=9, macs=4,
                                                 spike_parallel=4, probes=True))
    rerun = run_network_cosim(network, samples[:result.first_mismatch_sample + 1], probed,
                              tables, seed=3, probes=True)
    assert rerun.layer_mismatch is not None and rerun.layer_mismatch["layer"] == "sn1", \
        rerun.layer_mismatch
