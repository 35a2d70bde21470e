"""Generated Verilog in Icarus Verilog, IEEE 1364-2005 and 1800-2012: defined state out of
reset, no X on any handshake, every beat through, and bit-exact results (skipped, with the
reason, where Icarus is not installed)."""

import shutil

import numpy as np
import pytest

from spikeforge.hw.cores import core_verilog
from spikeforge.hw.generate import describe_core, generate_network, load_network_dir
from spikeforge.sim.portable import run_icarus_handshakes
from spikeforge.sim.regression import random_network
from spikeforge.sw.configs import load_core_config

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None,
                                reason="Icarus Verilog (iverilog) is not installed; "
                                       "apt-get install iverilog")

EXAMPLES = ("examples/cpsn.json", "examples/prf.json")


def core_sources(config, name="core"):
    from spikeforge.hw.cores import core_type

    sources = {f"{name}.v": core_verilog(config, name)}
    ports = describe_core(config, name, "baked")["ports"]
    return sources, ports


@pytest.mark.parametrize("generation", ["2012", "2005"])
@pytest.mark.parametrize("example", [
    EXAMPLES[0], pytest.param(EXAMPLES[1], marks=pytest.mark.slow)])  # PRF: a minute each
def test_cores_leave_reset_cleanly_in_icarus(example, generation, tmp_path):
    config = load_core_config(example)
    sources, ports = core_sources(config)
    beats = 6 * config.groups * 5
    result = run_icarus_handshakes(sources, "core", ports, tmp_path, beats=beats,
                                   last_every=5 * config.groups, generation=generation)
    assert result == {"x_cycle": None, "sent": beats, "received": beats}


def test_the_check_sees_amaranths_time_zero_x(tmp_path):
    """Amaranth's own converter (combinational processes started by a trigger register) left
    the CPSN core's output handshake X under 1800 rules; the check must see that."""
    from amaranth.back import verilog

    from spikeforge.hw.cpsn import CPSNCore

    config = load_core_config(EXAMPLES[0])
    _, ports = core_sources(config)
    legacy = {"core.v": verilog.convert(CPSNCore(config), name="core", emit_src=False,
                                        strip_internal_attrs=True)}
    result = run_icarus_handshakes(legacy, "core", ports, tmp_path, beats=40, last_every=10,
                                   generation="2012")
    assert result["x_cycle"] is not None


@pytest.mark.parametrize("generation", ["2012", "2005"])
def test_network_leaves_reset_cleanly_in_icarus(generation, tmp_path):
    network = random_network(np.random.default_rng(5))
    generate_network(network, tmp_path / "net", max_steps=4, macs=4, spike_parallel=4)
    description, files = load_network_dir(tmp_path / "net")
    result = run_icarus_handshakes(files, "spikeforge_network", description["ports"],
                                   tmp_path / "run", beats=40, last_every=4,
                                   generation=generation)
    assert result == {"x_cycle": None, "sent": 40, "received": 10}


@pytest.mark.parametrize("example", [
    EXAMPLES[0], pytest.param(EXAMPLES[1], marks=pytest.mark.slow)])
def test_cores_bit_exact_under_icarus_2012(example, tmp_path):
    from spikeforge.sim.runner import run_cosim

    result = run_cosim(load_core_config(example), seed=2, samples=2, max_steps=6,
                       build_root=tmp_path, simulator="icarus-2012")
    assert result.passed, result.mismatch


def test_network_bit_exact_under_icarus_2012(tmp_path):
    from spikeforge.sim.network_runner import run_network_cosim

    rng = np.random.default_rng(6)
    network = random_network(rng)
    generate_network(network, tmp_path / "net", max_steps=5, macs=4, spike_parallel=4)
    _, files = load_network_dir(tmp_path / "net")
    samples = [rng.integers(-128, 128, size=(int(t), network.in_features)) for t in (5, 2, 3)]
    result = run_network_cosim(network, samples, files["network.v"],
                               {n: t for n, t in files.items() if n.endswith(".hex")},
                               seed=1, build_root=tmp_path, simulator="icarus-2012")
    assert result.passed, result.mismatch
