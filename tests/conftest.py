import os
import random

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def warm_wasm_tools():
    """The WebAssembly tools compile themselves on first use; parallel workers doing that at
    once crash (SIGBUS). One worker compiles under a lock, the others wait for it."""
    from spikeforge.hw.wasm_tools import warm_wasm_tools

    warm_wasm_tools()


@pytest.fixture
def seed(request):
    """A per-test seed: fixed by default, overridable with SPIKEFORGE_SEED; shown on failure."""
    value = int(os.environ.get("SPIKEFORGE_SEED", "0")) + sum(map(ord, request.node.name))
    request.node.user_properties.append(("seed", value))
    random.seed(value)
    return value


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)


@pytest.fixture
def simulate_core():
    """Runs a core in the Amaranth simulator and checks every output beat against the integer
    golden model: ``simulate_core(config, samples, rng, **probabilities)`` streams ``samples``
    through the core of ``config`` with random handshakes (``run_stream``'s probabilities) and
    returns ``(core, cycles, expected beats)``. One harness for the CPSN, PRF and LIF tests."""
    from spikeforge.hw.cores import core_type
    from spikeforge.sim.amaranth_sim import run_stream
    from spikeforge.sim.beats import expected_beats, input_beats
    from spikeforge.sim.scoreboard import Scoreboard

    def simulate(config, samples, rng, **probabilities):
        core = core_type(config).component(config)
        expected = expected_beats(config, samples)
        outputs, cycles = run_stream(core, input_beats(config, samples), rng, **probabilities)
        board = Scoreboard(config, expected)
        for beat in outputs:
            board.check(beat)
        assert board.done
        return core, cycles, expected

    return simulate


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        seeds = [v for k, v in item.user_properties if k == "seed"]
        if seeds:
            report.sections.append(("seed", f"seed = {seeds[0]} (rerun with SPIKEFORGE_SEED "
                                            f"to vary the base)"))
