"""Amaranth-simulator tests of the whole-network accelerator against IntegerNetwork."""

import numpy as np
import pytest

from spikeforge.hw.network import NetworkAccelerator, NetworkError
from spikeforge.sim.amaranth_sim import run_stream
from spikeforge.sim.network_beats import (network_input_beats, network_output_beats,
                                          sample_traces)
from spikeforge.sim.regression import random_network


def random_inputs(network, rng, lengths):
    bound = 1 << (network.input_width - 1)
    return [rng.integers(-bound, bound, size=(steps, network.in_features)) for steps in lengths]


def check_network(network, samples, rng, **options):
    probabilities = {k: options.pop(k) for k in ("valid_probability", "ready_probability")
                     if k in options}
    accelerator = NetworkAccelerator(network, max_steps=max(s.shape[0] for s in samples),
                                     **options)
    traces = sample_traces(network, samples)
    logits = np.concatenate([trace.logits for trace in traces])
    want = network_output_beats(logits, accelerator.stages["readout"].logit_width)
    got, cycles = run_stream(accelerator, network_input_beats(network, samples), rng,
                             expected_outputs=len(want), **probabilities)
    assert got == want
    return traces, cycles


@pytest.mark.parametrize("neurons,lanes", [(("cpsn", "prf"), (4, 2)), (("prf",), (8,)),
                                           (("cpsn", "cpsn", "cpsn"), (1, 2, 8))])
def test_network_matches_integer_model_under_backpressure(neurons, lanes, rng):
    network = random_network(rng, neurons=neurons, hidden=(8,) * len(neurons), lanes=lanes)
    traces, _ = check_network(network, random_inputs(network, rng, (3, 1, 5)), rng,
                              macs=4, spike_parallel=4, valid_probability=0.7,
                              ready_probability=0.3)
    fired = [int(t.spikes[layer.name].sum()) for t in traces for layer in network.layers]
    assert sum(fired), "no core fired: the test would not see spike errors"


@pytest.mark.parametrize("readout", ["mean_membrane", "last_membrane"])
def test_network_back_to_back_samples_at_full_rate(readout, rng):
    network = random_network(rng, readout=readout)
    check_network(network, random_inputs(network, rng, (1, 4, 1, 2, 6)), rng)


def test_network_refuses_prf_tiles_with_the_layer_named(rng):
    network = random_network(rng)
    layer = network.layers[1]
    tiled = type(layer)(layer.name, layer.synapse, layer.core.replace(time_parallelism=2))
    bad = type(network)(network.input_width, network.input_frac_bits,
                        (network.layers[0], tiled), network.readout, network.readout_kind)
    with pytest.raises(NetworkError, match="layer 'sn1'.*--prf-parallelism 1"):
        NetworkAccelerator(bad, max_steps=4)


def test_direct_links_without_fifos_still_lose_nothing(rng):
    network = random_network(rng)
    check_network(network, random_inputs(network, rng, (4, 2)), rng, fifo_depth=0,
                  valid_probability=0.6, ready_probability=0.3)


class _LossyLink(NetworkAccelerator):
    """A deliberately broken top: the FIFO after the last core is removed and its link
    ignores backpressure (the source is always told 'ready'), as a careless hand-written glue
    would be. The backpressure test must catch it."""

    def _link(self, m, source, sink, name):
        if name != f"fifo_{self.network.layers[-1].name}":
            return super()._link(m, source, sink, name)
        m.d.comb += [sink.tdata.eq(source.tdata), sink.tlast.eq(source.tlast),
                     sink.tvalid.eq(source.tvalid), source.tready.eq(1)]


def test_backpressure_test_catches_a_link_that_drops_beats(rng):
    network = random_network(rng, neurons=("cpsn", "cpsn"), lanes=(4, 4))
    samples = random_inputs(network, rng, (3,) * 8)
    traces = sample_traces(network, samples)
    logits = np.concatenate([trace.logits for trace in traces])
    lossy = _LossyLink(network, max_steps=5)
    want = network_output_beats(logits, lossy.stages["readout"].logit_width)
    # under random backpressure the broken link loses beats: outputs differ or never come
    with pytest.raises((AssertionError, TimeoutError)):
        got, _ = run_stream(lossy, network_input_beats(network, samples), rng,
                            expected_outputs=len(want), valid_probability=0.9,
                            ready_probability=0.01, max_cycles=6_000)
        assert got == want
    # the intact top passes the same backpressure within the same cycle budget, and the
    # broken one passes without backpressure: the dropped beats are what the test caught
    got, _ = run_stream(NetworkAccelerator(network, max_steps=5),
                        network_input_beats(network, samples), np.random.default_rng(7),
                        expected_outputs=len(want), valid_probability=0.9,
                        ready_probability=0.01, max_cycles=6_000)
    assert got == want
    got, _ = run_stream(_LossyLink(network, max_steps=5), network_input_beats(network, samples),
                        rng, expected_outputs=len(want))
    assert got == want


def test_generate_refuses_before_writing_verilog(tmp_path, rng):
    from spikeforge.hw.generate import generate_network

    network = random_network(rng)
    layer = network.layers[1]
    tiled = type(layer)(layer.name, layer.synapse, layer.core.replace(time_parallelism=2))
    bad = type(network)(network.input_width, network.input_frac_bits,
                        (network.layers[0], tiled), network.readout, network.readout_kind)
    with pytest.raises(NetworkError, match="layer 'sn1'"):
        generate_network(bad, tmp_path / "net", max_steps=4)
    assert not any((tmp_path / "net").glob("*.v"))
