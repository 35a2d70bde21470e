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


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        seeds = [v for k, v in item.user_properties if k == "seed"]
        if seeds:
            report.sections.append(("seed", f"seed = {seeds[0]} (rerun with SPIKEFORGE_SEED "
                                            f"to vary the base)"))
