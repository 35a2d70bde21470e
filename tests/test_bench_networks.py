"""`spikeforge bench cosim`'s whole-network part: both harnesses in the same run, ratios,
and the page that reports them."""

import pytest

from spikeforge.sw import bench_doc, bench_networks


@pytest.mark.slow
def test_small_network_bench_measures_both_harnesses(monkeypatch):
    monkeypatch.setattr(bench_networks, "LONG_NETWORKS", {
        "prf_long": (("prf",), (8,), (4,), 32, 6, 2),
        "cpsn_long": (("cpsn",), (8,), (4,), 32, 6, 2)})
    result = bench_networks.run_network_bench(jobs=2, log=print)
    for name, entry in result["workloads"].items():
        assert {"fast_1", "fast_2", "cocotb"} <= set(entry), entry
        assert all(entry[k]["passed"] for k in ("fast_1", "fast_2", "cocotb")), name
        assert entry["fast_1"]["samples"] == 6 and entry["cocotb"]["samples"] == 2
        assert entry["fast_1_speedup"] > 1, entry  # no Python per cycle
        runs = entry["fast_1"]["cycles_per_s_runs"]  # a short run is repeated, warm
        assert len(runs) == bench_networks.REPEATS, runs
        assert min(runs) <= entry["fast_1"]["cycles_per_s"] <= max(runs)
        assert "cycles_per_s_runs" not in entry["cocotb"]
    text = "\n".join(bench_doc._networks_section(result))
    assert "| prf_long (prf C=8 L=4) | 32 | fast | 2 |" in text


def _entry(harness, jobs, cycles_per_s, **extra):
    return {"harness": harness, "samples": 449, "jobs": jobs, "optimisation": "-O1",
            "passed": True, "class_agreement": 1.0, "logit_agreement": 1.0,
            "cycles": 161_756, "cycles_per_sample": 360.3, "sim_s": 0.2, "build_s": 15.0,
            "total_s": 16.0, "cycles_per_s": cycles_per_s, "samples_per_s": 2000.0, **extra}


def test_the_page_states_each_target_and_whether_it_was_met():
    networks = {"jobs": 2, "probability": 0.8, "workloads": {
        "demo": {"steps": 8, "layers": ["cpsn C=64 L=4", "prf C=64 L=4"],
                 "fast_1": _entry("fast", 1, 600_000), "fast_2": _entry("fast", 2, 1_100_000,
                                                cycles_per_s_runs=[900_000, 1_100_000,
                                                                   1_250_000]),
                 "cocotb": _entry("cocotb", 1, 20_000, optimisation=None),
                 "fast_1_speedup": 30.0, "fast_2_speedup": 55.0},
        "prf_long": {"steps": 1024, "layers": ["prf C=32 L=4"],
                     "fast_1": _entry("fast", 1, 500_000, total_s=130.0),
                     "fast_2": _entry("fast", 2, 900_000, total_s=95.0),
                     "cocotb": _entry("cocotb", 1, 15_000, optimisation=None),
                     "fast_1_speedup": 33.3, "fast_2_speedup": 60.0}}}
    text = "\n".join(bench_doc._networks_section(networks))
    assert "| 1,100,000 (900,000–1,250,000, 3 runs) |" in text
    assert "measured 1,100,000, the median of its runs (met)" in text and "55.0× (met)" in text
    assert "95.0 s (met)" in text
    slow = dict(networks["workloads"]["demo"], fast_2=_entry("fast", 2, 900_000),
                fast_2_speedup=39.0)
    text = "\n".join(bench_doc._networks_section(
        {**networks, "workloads": {"demo": slow}}))
    assert "measured 900,000, the median of its runs (**not met**)" in text
    assert "39.0× (**not met**)" in text
