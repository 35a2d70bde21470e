"""NIR import without any framework: the float model's equations, the defaults, the run
directory that ``evaluate`` loads, and malformed or unsupported graphs refused with the node
named and nothing written (docs/nir.md)."""

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import click
from click.testing import CliRunner

nir = pytest.importorskip("nir")

from spikeforge.golden.nir_model import Choices, NIRNetwork, discretise  # noqa: E402
from spikeforge.sw.cli import main  # noqa: E402
from spikeforge.sw.nir_cli import run_import  # noqa: E402
from spikeforge.sw.nir_import import ImportRefused  # noqa: E402

SEED = 7
DT = 1e-4
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "configs" / "digits_lif.yaml"


def f32(values):
    return np.asarray(values, dtype=np.float32)


def lif(n, beta=0.9, threshold=1.0, **changes):
    """A LIF node as snnTorch 1.0 writes one (dt = 1e-4, tau = dt/(1 - beta), R = tau/dt)."""
    beta = f32(np.full(n, beta))
    tau = f32(DT / (1 - beta))
    params = dict(tau=tau, r=f32(tau / DT), v_leak=f32(np.zeros(n)),
                  v_threshold=f32(np.full(n, threshold)), v_reset=f32(np.zeros(n)))
    params.update(changes)
    return nir.LIF(**params)


def affine(rng, out, inp):
    return nir.Affine(weight=f32(rng.normal(0, 1, (out, inp))), bias=f32(rng.normal(0, .1, out)))


def mlp_graph(rng=None, hidden=12, **lif_changes):
    rng = rng or np.random.default_rng(SEED)
    nodes = {"input": nir.Input(input_type=np.array([8])), "fc1": affine(rng, hidden, 8),
             "lif1": lif(hidden, **lif_changes), "fc2": affine(rng, 10, hidden),
             "lif2": lif(10), "output": nir.Output(output_type=np.array([10]))}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "output")]
    return nodes, edges


def write(path, nodes, edges, type_check=False, compression="gzip"):
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=type_check),
              compression=compression)
    return path


def import_(tmp_path, path, **options):
    out = tmp_path / "run"
    return run_import(path, DATA, out, log=lambda *_: None, **options), out


# -- the model's equations ------------------------------------------------------------------

def reference_lif(x, beta, gain, threshold, reset, spike_when):
    """The sequential definition (docs/nir.md) in numpy float64."""
    v, s, out = np.zeros(x.shape[1:]), np.zeros(x.shape[1:]), []
    for xt in x:
        if reset == "zero":
            v = np.where(s > 0, 0.0, v)
        v = beta * v + gain * xt - (threshold * s if reset == "subtract" else 0)
        s = (v > threshold) if spike_when == "gt" else (v >= threshold)
        s = s.astype(np.float64)
        out.append(s)
    return np.stack(out)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("spike_when", ["gt", "ge"])
@pytest.mark.parametrize("discretisation", ["euler", "exact"])
def test_lif_node_follows_the_documented_equations(reset, spike_when, discretisation):
    rng = np.random.default_rng(SEED)
    n, dt, tau = 5, 1e-3, np.linspace(2e-3, 2e-2, 5)
    params = dict(tau=tau, r=np.full(n, 3.0), v_leak=np.zeros(n), v_threshold=np.full(n, 1.0),
                  v_reset=np.zeros(n))
    spec = {"nodes": [{"name": "in", "kind": "input", "params": {}, "inputs": []},
                      {"name": "lif", "kind": "lif", "params": params, "inputs": ["in"]},
                      {"name": "out", "kind": "output", "params": {}, "inputs": ["lif"]}],
            "input": "in", "output": "out", "sizes": {"in": n, "lif": n, "out": n}}
    choices = Choices(dt=dt, discretisation=discretisation, reset=reset, spike_when=spike_when)
    model = NIRNetwork(spec, choices)
    # inputs on a coarse grid so that some membranes land exactly on the threshold
    x = rng.integers(0, 4, (40, 3, n)) / 4.0
    beta = 1 - dt / tau if discretisation == "euler" else np.exp(-dt / tau)
    gain = (dt / tau if discretisation == "euler" else 1 - beta) * 3.0
    expected = reference_lif(x, beta, gain, 1.0, reset, spike_when)
    got = model.simulate(torch.as_tensor(x))["lif"].numpy()
    assert np.array_equal(got, expected), f"seed {SEED}"
    assert expected.sum() > 0


def test_snntorch_coefficients_round_trip_in_float32():
    """A float32 file holds tau = dt/(1 - beta), R = tau/dt; rounding the coefficients to the
    file's precision gives beta back exactly and the gain exactly 1 (beta >= 0.8)."""
    beta = np.linspace(0.8, 0.999, 2001).astype(np.float32)
    tau = f32(DT / (1 - beta))
    coefficients = discretise("lif", dict(tau=tau, r=f32(tau / DT), v_leak=f32(0 * tau),
                                          v_threshold=f32(1 + 0 * tau),
                                          v_reset=f32(0 * tau)), Choices(dt=DT), np.float32)
    assert np.array_equal(coefficients["mem_decay"], beta.astype(np.float64))
    assert np.all(coefficients["mem_gain"] == 1.0)


# -- import: defaults, table, run directory, evaluate -----------------------------------------

def test_import_writes_a_run_that_evaluate_loads(tmp_path):
    path = write(tmp_path / "g.nir", *mlp_graph())
    summary, out = import_(tmp_path, path)
    assert summary["source"] == "snntorch"
    assert summary["choices"] == {"dt": 1e-4, "discretisation": "euler", "reset": "subtract",
                                  "spike_when": "gt"}
    assert summary["origin"]["dt"] == "snntorch convention"
    for name in ("config.yaml", "best.pt", "last.pt", "summary.json", "graph.nir"):
        assert (out / name).is_file()
    result = CliRunner().invoke(main, ["evaluate", str(out)])
    assert result.exit_code == 0, result.output
    assert f"test accuracy  {100 * summary['test_acc']:.2f}%" in result.output
    assert "lif1" in result.output and "nir" in result.output


def test_cli_prints_the_choices_and_the_node_table(tmp_path):
    path = write(tmp_path / "g.nir", *mlp_graph())
    result = CliRunner().invoke(main, ["import", str(path), "--data", str(DATA), "--out",
                                       str(tmp_path / "run"), "--reset", "zero", "--dt", "2e-4"])
    assert result.exit_code == 0, result.output
    assert re.search(r"reset\s+zero\s+\(given\)", result.output)
    assert re.search(r"dt\s+0.0002\s+\(given\)", result.output)
    assert re.search(r"lif1\s+LIF\s+12\s+LIF neuron: beta 0.8", result.output)
    assert "fc1" in result.output and "synapse W·x + b" in result.output


def test_scalar_parameters_broadcast_per_neuron(tmp_path):
    """NIR#176: a LIF written with scalar parameters takes its size from the edge into it."""
    nodes, edges = mlp_graph()
    one = nodes["lif1"]
    nodes["lif1"] = nir.LIF(tau=f32(one.tau[0]), r=f32(one.r[0]), v_leak=f32(0),
                            v_threshold=f32(1), v_reset=f32(0))
    path = write(tmp_path / "g.nir", nodes, edges, compression=None)  # h5py: 0-d, no gzip
    summary, _ = import_(tmp_path, path, type_check=False)
    assert [n["shape"] for n in summary["nodes"] if n["node"] == "lif1"] == ["scalar"]


def test_nested_recurrent_subgraph_equals_the_flat_one(tmp_path):
    """snnTorch's importer (and older exports) nest a recurrent layer as a NIRGraph node
    (input -> lif, lif -> w_rec -> lif, lif -> output); both forms run the same."""
    rng = np.random.default_rng(SEED)
    w_in, w_rec, w_out = affine(rng, 12, 8), affine(rng, 12, 12), affine(rng, 10, 12)
    flat = {"input": nir.Input(input_type=np.array([8])), "fc1": w_in, "rec.lif": lif(12),
            "rec.w_rec": w_rec, "fc2": w_out, "lif2": lif(10),
            "output": nir.Output(output_type=np.array([10]))}
    flat_edges = [("input", "fc1"), ("fc1", "rec.lif"), ("rec.lif", "rec.w_rec"),
                  ("rec.w_rec", "rec.lif"), ("rec.lif", "fc2"), ("fc2", "lif2"),
                  ("lif2", "output")]
    sub = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([12])), "lif": lif(12),
                              "w_rec": w_rec, "output": nir.Output(output_type=np.array([12]))},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"),
                              ("lif", "output")], type_check=False)
    nested = {"input": nir.Input(input_type=np.array([8])), "fc1": w_in, "rec": sub,
              "fc2": w_out, "lif2": lif(10), "output": nir.Output(output_type=np.array([10]))}
    nested_edges = [("input", "fc1"), ("fc1", "rec"), ("rec", "fc2"), ("fc2", "lif2"),
                    ("lif2", "output")]
    a = run_import(write(tmp_path / "flat.nir", flat, flat_edges), DATA, tmp_path / "a",
                   type_check=False, log=lambda *_: None)
    b = run_import(write(tmp_path / "nested.nir", nested, nested_edges), DATA,
                   tmp_path / "b", type_check=False, log=lambda *_: None)
    assert a["test_acc"] == b["test_acc"]
    assert a["rates"]["rec.lif"] == b["rates"]["rec.lif"] > 0


# -- refusals: the node named, nothing written --------------------------------------------------

def _mutate(name):
    """``(nodes, edges, options, expected node, expected words)`` of a broken graph."""
    nodes, edges = mlp_graph()
    options = {}
    if name == "missing edge":
        edges.remove(("fc2", "lif2"))
        return nodes, edges, options, "lif2", "missing edge"
    if name == "edge to an unknown node":
        edges.append(("fc1", "ghost"))
        return nodes, edges, options, "ghost", "does not exist"
    if name == "duplicate edge":
        edges.append(("fc1", "lif1"))
        return nodes, edges, options, "lif1", "duplicate edge"
    if name == "NaN parameter":
        tau = nodes["lif1"].tau.copy()
        tau[3] = np.nan
        nodes["lif1"].tau = tau
        return nodes, edges, options, "lif1", "NaN"
    if name == "shape mismatch":
        nodes["fc2"] = affine(np.random.default_rng(1), 10, 11)
        options["type_check"] = False
        return nodes, edges, options, "fc2", "shape mismatch"
    if name == "type check":
        # an input typed [1, 8] (batch dimension kept, as some exporters write it)
        nodes["input"] = nir.Input(input_type=np.array([1, 8]))
        return nodes, edges, options, "input", "--no-type-check"
    if name == "unsupported node":
        nodes["lif1"] = nir.CubaLI(tau_syn=f32(np.ones(12)), tau_mem=f32(np.ones(12)),
                                   r=f32(np.ones(12)), v_leak=f32(np.zeros(12)))
        return nodes, edges, options, "lif1", "unsupported type CubaLI"
    if name == "unknown dt convention":
        nodes["lif1"] = lif(12, r=f32(np.full(12, 3.0)))
        nodes["lif2"] = lif(10, r=f32(np.full(10, 3.0)))
        return nodes, edges, options, "", "give --dt"
    if name == "leak the hardware cannot express":
        nodes["lif1"] = lif(12, v_leak=f32(np.full(12, 0.1)))
        return nodes, edges, options, "lif1", "v_leak"
    if name == "negative threshold":
        nodes["lif2"] = lif(10, threshold=-1.0)
        return nodes, edges, options, "lif2", "v_threshold < 0"
    if name == "unstable euler step":
        nodes["lif1"] = lif(12)
        options["dt"] = 1.0
        return nodes, edges, options, "lif1", "unstable"
    if name == "input features":
        nodes["fc1"] = affine(np.random.default_rng(1), 12, 7)
        nodes["input"] = nir.Input(input_type=np.array([7]))
        return nodes, edges, options, "input", "input features"
    if name == "outputs":
        nodes["fc2"] = affine(np.random.default_rng(1), 5, 12)
        nodes["lif2"] = lif(5)
        nodes["output"] = nir.Output(output_type=np.array([5]))
        return nodes, edges, options, "output", "5 outputs"
    if name == "two inputs":
        nodes["input2"] = nir.Input(input_type=np.array([8]))
        edges.append(("input2", "fc1"))
        return nodes, edges, options, "graph", "one Input"
    if name == "cycle without a neuron":
        nodes["loop"] = affine(np.random.default_rng(1), 8, 12)
        edges += [("fc1", "loop"), ("loop", "fc1")]
        return nodes, edges, options, "fc1", "must close on a neuron"
    if name == "reset potential":
        nodes["lif1"] = lif(12, v_reset=f32(np.full(12, 0.5)))
        options["reset"] = "zero"
        return nodes, edges, options, "lif1", "v_reset"
    if name == "dead end":
        nodes["spare"] = affine(np.random.default_rng(1), 3, 12)
        edges.append(("lif1", "spare"))
        return nodes, edges, options, "spare", "does not reach the output"
    raise AssertionError(name)


CASES = ["missing edge", "edge to an unknown node", "duplicate edge", "NaN parameter",
         "shape mismatch", "type check", "unsupported node", "unknown dt convention",
         "leak the hardware cannot express", "negative threshold", "unstable euler step",
         "input features", "outputs", "two inputs", "cycle without a neuron",
         "reset potential", "dead end"]


@pytest.mark.parametrize("case", CASES)
def test_broken_graph_is_refused_naming_the_node(case, tmp_path):
    nodes, edges, options, node, words = _mutate(case)
    path = write(tmp_path / "bad.nir", nodes, edges)
    out = tmp_path / "run"
    runner = CliRunner()
    args = ["import", str(path), "--data", str(DATA), "--out", str(out)]
    for key, value in options.items():
        if key == "type_check":
            args.append("--no-type-check")
        else:
            args += [f"--{key.replace('_', '-')}", str(value)]
    result = runner.invoke(main, args)
    assert result.exit_code == 1, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, result.output
    assert words in error[0], error[0]
    if node:
        assert f"'{node}'" in error[0] or f"{node}" in error[0], error[0]
    assert "Traceback" not in result.output
    assert not out.exists(), "a refused import wrote its run directory"


def _h5_case(tmp_path, name):
    path = write(tmp_path / "g.nir", *mlp_graph())
    if name == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        return path, "truncated"
    if name == "not hdf5":
        path.write_text("this is not a NIR file\n")
        return path, "not a readable HDF5 file"
    if name == "unknown type":
        with h5py.File(path, "r+") as file:
            del file["node/nodes/lif1/type"]
            file["node/nodes/lif1"].create_dataset("type", data=b"Conv3d")
        return path, "'lif1': unsupported NIR type 'Conv3d'"
    if name == "missing parameter":
        with h5py.File(path, "r+") as file:
            del file["node/nodes/lif2/tau"]
        return path, "'lif2' (LIF): cannot be read"
    if name == "no graph":
        with h5py.File(path, "w") as file:
            file.create_dataset("version", data="1.0")
        return path, "not a NIR file"
    raise AssertionError(name)


@pytest.mark.parametrize("case", ["truncated", "not hdf5", "unknown type", "missing parameter",
                                  "no graph"])
def test_unreadable_file_is_refused_in_one_line(case, tmp_path):
    path, words = _h5_case(tmp_path, case)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["import", str(path), "--data", str(DATA), "--out",
                                       str(out)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert words in lines[0], lines[0]
    assert not out.exists()


def test_no_type_check_reads_a_file_the_type_check_refuses(tmp_path):
    nodes, edges, _, _, _ = _mutate("type check")
    summary, out = import_(tmp_path, write(tmp_path / "old.nir", nodes, edges),
                           type_check=False)
    assert (out / "best.pt").is_file() and summary["type_check"] is False


def test_existing_run_is_refused_without_force(tmp_path):
    path = write(tmp_path / "g.nir", *mlp_graph())
    import_(tmp_path, path)
    with pytest.raises(ImportRefused, match="already holds a run"):
        import_(tmp_path, path)
    import_(tmp_path, path, force=True)


def test_hardware_layers_fold_the_input_gain_and_list_the_readout():
    """``NIRNetwork.hardware_layers`` (what an exporter quantises): the Euler input gain
    dt·R/τ folded into the synapse, the LIFConfig terms, an Affine readout last; a leak
    refused naming the node."""
    rng = np.random.default_rng(SEED)
    n, dt, tau = 6, 1e-3, np.full(6, 4e-3)
    w1, b1 = rng.normal(size=(n, 8)), rng.normal(size=n)
    w2, b2 = rng.normal(size=(10, n)), rng.normal(size=10)
    lif_params = dict(tau=tau, r=np.full(n, 2.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                      v_reset=np.zeros(n))
    spec = {"nodes": [
        {"name": "in", "kind": "input", "params": {}, "inputs": []},
        {"name": "fc", "kind": "affine", "params": {"weight": w1, "bias": b1}, "inputs": ["in"]},
        {"name": "lif", "kind": "lif", "params": lif_params, "inputs": ["fc"]},
        {"name": "ro", "kind": "affine", "params": {"weight": w2, "bias": b2}, "inputs": ["lif"]},
        {"name": "out", "kind": "output", "params": {}, "inputs": ["ro"]}],
        "input": "in", "output": "out",
        "sizes": {"in": 8, "fc": n, "lif": n, "ro": 10, "out": 10}}
    layers = NIRNetwork(spec, Choices(dt=dt, reset="zero")).hardware_layers()
    assert [layer["name"] for layer in layers] == ["lif", "ro"]
    gain = dt / 4e-3 * 2.0
    assert np.allclose(layers[0]["weight"], w1 * gain) and np.allclose(layers[0]["bias"], b1 * gain)
    assert layers[0]["lif"]["variant"] == "lif" and layers[0]["lif"]["reset"] == "zero"
    assert np.allclose(layers[0]["lif"]["beta"], 1 - dt / 4e-3)
    assert layers[1]["readout"] and layers[1]["lif"] is None
    spec["nodes"][2]["params"] = {**lif_params, "v_leak": np.full(n, 0.5)}
    with pytest.raises(ValueError, match="node 'lif': v_leak"):
        NIRNetwork(spec, Choices(dt=dt)).hardware_layers()


def test_norse_tau_bug_is_named_and_tau_scale_undoes_it(tmp_path):
    """A Norse 1.1.0 file (R = 1, dt = 1e-3 by convention) with τ written times dt
    (norse#411): the unstable Euler step is refused naming the bug; --tau-scale 1000 reads
    it with the intended τ."""
    rng = np.random.default_rng(SEED)
    tau = np.full(12, 1e-2 * 1e-3)  # τ = 10 ms, multiplied by dt = 1e-3 by the bug

    def norse_lif(n, tau):
        return nir.LIF(tau=tau[:n], r=np.ones(n), v_leak=np.zeros(n),
                       v_threshold=np.full(n, 0.5), v_reset=np.zeros(n))
    nodes = {"input": nir.Input(input_type=np.array([8])), "fc1": affine(rng, 12, 8),
             "lif1": norse_lif(12, tau), "fc2": affine(rng, 10, 12), "lif2": norse_lif(10, tau),
             "output": nir.Output(output_type=np.array([10]))}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "output")]
    path = write(tmp_path / "norse.nir", nodes, edges)
    with pytest.raises(ImportRefused, match=r"node 'lif1': dt/tau = 100 > 1.*norse#411.*"
                                            r"--tau-scale 1000"):
        import_(tmp_path, path)
    assert not (tmp_path / "run").exists()
    summary, _ = import_(tmp_path, path, tau_scale=1000.0)
    assert summary["source"] == "norse"
    assert summary["choices"] == {"dt": 1e-3, "discretisation": "euler", "reset": "zero",
                                  "spike_when": "gt"}


@pytest.mark.parametrize("args, words", [
    (["--dt=-1"], "dt must be a finite time step > 0"),
    (["--dt", "nan"], "dt must be a finite time step > 0"),
    (["--tau-scale", "0"], "--tau-scale must be a finite number > 0"),
    (["--data", "missing.yaml"], "missing.yaml: cannot read"),
])
def test_bad_options_are_one_line(args, words, tmp_path):
    path = write(tmp_path / "g.nir", *mlp_graph())
    out = tmp_path / "run"
    base = ["import", str(path), "--data", str(DATA), "--out", str(out)]
    if args[0] == "--data":
        base[3] = str(tmp_path / args[1])
        args = []
    result = CliRunner().invoke(main, base + args)
    assert result.exit_code == 1, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and words in error[0], result.output
    assert not out.exists()


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path):
    path = write(tmp_path / "g.nir", *mlp_graph())
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(main, ["import", str(path), "--data", str(DATA), "--out",
                                       str(tmp_path / "file")])
    # click's usage error (exit 2) for --out; run_import checks it too (exit 1)
    assert result.exit_code == 2 and "is a file" in result.output, result.output
    assert "Traceback" not in result.output
    with pytest.raises(click.ClickException, match="it is a file"):
        run_import(path, DATA, tmp_path / "file", log=lambda *_: None)


def test_hardware_export_of_an_imported_run(tmp_path):
    """`spikeforge export` of an imported run goes through ``export_imported`` (docs/nir.md,
    "Hardware export of an imported run") with the command's formats; the export checks;
    the width search (--tolerance) is refused in one line, nothing written."""
    import json

    path = write(tmp_path / "g.nir", *mlp_graph())
    _, run = import_(tmp_path, path)
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["export", str(run), "--out", str(out),
                                       "--weight-width", "10"])
    assert result.exit_code == 0, result.output
    assert "integer accuracy" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["formats"]["weight_width"] == 10
    assert manifest["source"]["nir"] == "g.nir"
    assert {layer["neuron"] for layer in manifest["layers"]} == {"lif"}
    assert CliRunner().invoke(main, ["export", "--check", str(out)]).exit_code == 0
    refused = tmp_path / "refused"
    result = CliRunner().invoke(main, ["export", str(run), "--out", str(refused),
                                       "--tolerance", "1"])
    assert result.exit_code == 1, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "--tolerance" in error[0], result.output
    assert "Traceback" not in result.output
    assert not refused.exists()


def _chain(kind, params, n, extra=None):
    return {"nodes": [{"name": "in", "kind": "input", "params": {}, "inputs": []},
                      {"name": "x", "kind": kind, "params": params, "inputs": ["in"]},
                      {"name": "out", "kind": "output", "params": {}, "inputs": ["x"]}],
            "input": "in", "output": "out", "sizes": {"in": n, "x": n, "out": n}}


def test_delay_node_per_channel_and_li_readout():
    """Delay ``x_{t−n}`` with its own n per channel; an LI output gives its mean membrane as
    the logits."""
    rng = np.random.default_rng(SEED)
    x = torch.as_tensor(rng.normal(size=(9, 2, 3)))
    model = NIRNetwork(_chain("delay", {"delay": np.array([0.0, 1e-3, 3e-3])}, 3),
                       Choices(dt=1e-3))
    y = model.simulate(x)["x"]
    assert torch.equal(y[:, :, 0], x[:, :, 0])
    assert torch.equal(y[1:, :, 1], x[:-1, :, 1]) and torch.all(y[0, :, 1] == 0)
    assert torch.equal(y[3:, :, 2], x[:-3, :, 2]) and torch.all(y[:3, :, 2] == 0)
    n, dt, tau = 3, 1e-3, np.array([2e-3, 5e-3, 1e-2])
    li = NIRNetwork(_chain("li", dict(tau=tau, r=np.ones(n), v_leak=np.zeros(n)), n),
                    Choices(dt=dt))
    v, expected = np.zeros((2, n)), []
    for xt in x.numpy():
        v = (1 - dt / tau) * v + dt / tau * xt
        expected.append(v)
    assert np.allclose(li(x).numpy(), np.mean(expected, axis=0), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="node 'x': delay .* not a whole number"):
        NIRNetwork(_chain("delay", {"delay": np.array([0.0, 1.5e-3, 0.0])}, 3),
                   Choices(dt=1e-3))


@pytest.mark.parametrize("discretisation", ["euler", "exact"])
def test_cubalif_node_follows_the_documented_equations(discretisation):
    rng = np.random.default_rng(SEED)
    n, dt = 4, 1e-3
    tau_syn, tau_mem = np.linspace(2e-3, 5e-3, n), np.linspace(4e-3, 2e-2, n)
    params = dict(tau_syn=tau_syn, tau_mem=tau_mem, r=np.full(n, 2.0), v_leak=np.zeros(n),
                  v_threshold=np.full(n, 0.3), v_reset=np.zeros(n), w_in=np.full(n, 1.5))
    model = NIRNetwork(_chain("cubalif", params, n),
                       Choices(dt=dt, discretisation=discretisation, reset="zero"))
    x = rng.integers(0, 3, (30, 2, n)) / 2.0
    if discretisation == "euler":
        a_s, g_s = 1 - dt / tau_syn, dt / tau_syn * 1.5
        a_m, g_m = 1 - dt / tau_mem, dt / tau_mem * 2.0
    else:
        a_s, a_m = np.exp(-dt / tau_syn), np.exp(-dt / tau_mem)
        g_s, g_m = (1 - a_s) * 1.5, (1 - a_m) * 2.0
    i, v, s, expected = np.zeros((2, n)), np.zeros((2, n)), np.zeros((2, n)), []
    for xt in x:
        i = a_s * i + g_s * xt
        v = a_m * np.where(s > 0, 0.0, v) + g_m * i
        s = (v > 0.3).astype(float)
        expected.append(s)
    got = model.simulate(torch.as_tensor(x))["x"].numpy()
    assert np.array_equal(got, np.stack(expected)) and got.sum() > 0, f"seed {SEED}"


def test_export_imported_writes_an_export_that_generate_reads(tmp_path):
    """``export_imported``: an imported run's integer network written like a trained run's
    export (manifest, report, data config that generate/cosim read); checked by
    ``load_network`` and by the accelerator's test split."""
    from spikeforge.sw.accelerator import test_split
    from spikeforge.sw.nir_import import export_imported

    path = write(tmp_path / "g.nir", *mlp_graph())
    _, run = import_(tmp_path, path)
    manifest = export_imported(run, tmp_path / "export", log=lambda *_: None)
    report = manifest["report"]
    assert report["samples"] == 449 and set(report["layers"]) == {"lif1", "lif2"}
    assert manifest["source"]["nir"] == "g.nir"
    _, network, samples, targets, name = test_split(tmp_path / "export", 5)
    assert name == "digits" and [x.shape for x in samples] == [(8, 8)] * 5
    assert [layer.core.spike for layer in network.layers] == ["gt", "gt"]
