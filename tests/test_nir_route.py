"""The NIR route end to end through the command line: an snnTorch network (trained a few steps
inside the test, written with snnTorch's own ``export_to_nir``) → ``spikeforge demo --nir``
(import → export → generate → cosim under Verilator), ``spikeforge export`` of an imported run
(the same options as a trained run's) and ``spikeforge export RUN --nir FILE``. Skipped where
snnTorch (the ``nir-clients`` extra) is not installed."""

import json
from pathlib import Path

import pytest
import torch

snn = pytest.importorskip("snntorch")
nir = pytest.importorskip("nir")
pytest.importorskip("nirtorch")
from click.testing import CliRunner  # noqa: E402
from snntorch.export_nir import export_to_nir  # noqa: E402

from spikeforge.golden.data import DataConfig, load_data  # noqa: E402
from spikeforge.sw.cli import main  # noqa: E402

# snnTorch 1.0.0's exporter calls nirtorch's deprecated extract_nir_graph
pytestmark = pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph:DeprecationWarning")

SEED = 20261207
DATA = Path(__file__).resolve().parents[1] / "configs" / "digits_lif.yaml"


def _leaky_mlp(reset):
    """8-16-10 snnTorch Leaky MLP (per-neuron β and θ: NIR#176)."""
    full = lambda n, v: torch.full((n,), float(v))  # noqa: E731
    kw = dict(init_hidden=True, reset_mechanism=reset)
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 16), snn.Leaky(beta=full(16, 0.9), threshold=full(16, 1), **kw),
        torch.nn.Linear(16, 10),
        snn.Leaky(beta=full(10, 0.9), threshold=full(10, 1), output=True, **kw))
    return net


def _train(net, steps=40):
    """A few Adam steps on spike counts (seeded), so the graph is not a random one."""
    torch.manual_seed(SEED)
    data = load_data(DataConfig(name="digits"))
    xs, ys = zip(*(data.train[i] for i in range(len(data.train))))
    x = torch.stack(xs).transpose(0, 1).contiguous()
    y = torch.stack([torch.as_tensor(v) for v in ys])
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        batch = torch.randint(0, x.shape[1], (64,), generator=generator)
        for module in net.modules():
            if hasattr(module, "reset_mem") and module is not net:
                module.reset_mem()
        counts = sum(net(x[t, batch])[0] for t in range(x.shape[0]))
        loss = torch.nn.functional.cross_entropy(counts, y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """``{reset: path}``: the snnTorch MLP written by snnTorch's exporter, subtract (its
    default) and zero reset."""
    root = tmp_path_factory.mktemp("graphs")
    paths = {}
    for reset in ("subtract", "zero"):
        net = _train(_leaky_mlp(reset))
        paths[reset] = root / f"leaky_{reset}.nir"
        nir.write(paths[reset], export_to_nir(net.float(), torch.zeros(8)))
    return paths


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error(result) -> str:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def imported(graph, out, *options):
    result = cli("import", graph, "--data", DATA, "--out", out, *options)
    assert result.exit_code == 0, result.output
    return json.loads((Path(out) / "summary.json").read_text())


def test_demo_nir_runs_the_route_end_to_end(graphs, tmp_path):
    """``spikeforge demo --nir``: import replaces training; the accelerator agrees with the
    integer model on every co-simulated sample's class and logits, with random handshakes
    and at full rate, and the summary's float accuracy is the import's."""
    out = tmp_path / "demo"
    result = cli("demo", "--nir", graphs["subtract"], "--data", DATA, "--out", out,
                 "--samples", 12, "--no-synth")
    assert result.exit_code == 0, result.output
    assert "[1/5] import" in result.output
    assert "spikeforge demo summary" in result.output
    summary = json.loads((out / "summary.json").read_text())
    run = json.loads((out / "run" / "summary.json").read_text())
    assert summary["source"]["nir"] == str(graphs["subtract"])
    assert set(summary["times_s"]) >= {"import", "export", "generate", "cosim"}
    assert "train" not in summary["times_s"]
    assert summary["report"]["float_accuracy"] == pytest.approx(run["test_acc"])
    assert summary["report"]["samples"] == 449
    for label in ("random handshakes", "full rate"):
        cosim = summary["cosim"][label]
        assert cosim["samples"] == 12
        assert cosim["passed"], cosim
        assert cosim["class_agreement"] == 1.0 and cosim["logit_agreement"] == 1.0, cosim
    manifest = json.loads((out / "export" / "manifest.json").read_text())
    assert [layer["neuron"] for layer in manifest["layers"]] == ["lif", "lif"]
    assert manifest["source"]["nir"] == graphs["subtract"].name
    assert (out / "network" / "network.v").is_file()


def test_demo_nir_bad_input_is_one_line_and_writes_nothing(graphs, tmp_path):
    out = tmp_path / "demo"
    # --nir without --data, --data without --nir, --epochs with --nir: usage errors
    for args in (["--nir", graphs["zero"]], ["--data", DATA],
                 ["--nir", graphs["zero"], "--data", DATA, "--epochs", 2]):
        result = cli("demo", *args, "--out", out, "--no-synth")
        assert result.exit_code == 2, result.output
        one_error(result)
        assert not out.exists()
    bad = tmp_path / "bad.nir"
    bad.write_text("not a NIR file\n")
    error = one_error(cli("demo", "--nir", bad, "--data", DATA, "--out", out, "--no-synth"))
    assert "not a readable HDF5 file" in error, error
    assert not (out / "run").exists() and not (out / "export").exists()


def test_export_of_an_imported_run_takes_the_export_options(graphs, tmp_path):
    """``spikeforge export`` dispatches an imported run to ``export_imported`` with the given
    widths, lanes and percentile; ``--tolerance`` (the trained networks' width search) is
    refused in one line, writing nothing."""
    run = tmp_path / "run"
    accuracy = imported(graphs["subtract"], run)["test_acc"]
    out = tmp_path / "export"
    result = cli("export", run, "--out", out, "--weight-width", 12, "--lanes", 4,
                 "--percentile", 99.9)
    assert result.exit_code == 0, result.output
    assert "imported from the NIR file leaky_subtract.nir" in result.output
    assert "float accuracy" in result.output and "integer accuracy" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["formats"]["weight_width"] == 12
    assert manifest["formats"]["percentile"] == 99.9
    assert [layer["config"]["lanes"] for layer in manifest["layers"]] == [4, 2]
    assert manifest["report"]["float_accuracy"] == pytest.approx(accuracy)
    assert manifest["source"]["nir"] == "leaky_subtract.nir"
    assert cli("export", "--check", out).exit_code == 0
    error = one_error(cli("export", run, "--out", tmp_path / "t", "--tolerance", 1))
    assert "--tolerance" in error, error
    assert not (tmp_path / "t").exists()


def test_export_nir_option(graphs, tmp_path):
    """``spikeforge export RUN --nir FILE``: a zero-reset import goes back to NIR (proven by
    the round trip) and imports again to the same accuracy; a subtract-reset import is
    refused in one line naming the layer, writing nothing."""
    run = tmp_path / "zero"
    accuracy = imported(graphs["zero"], run, "--reset", "zero")["test_acc"]
    path = tmp_path / "back.nir"
    result = cli("export", run, "--nir", path)
    assert result.exit_code == 0, result.output
    assert "every spike and class equal" in result.output
    again = imported(path, tmp_path / "again")
    assert again["source"] == "spikeforge"
    assert again["test_acc"] == accuracy

    subtract = tmp_path / "subtract"
    imported(graphs["subtract"], subtract)
    refused = tmp_path / "refused.nir"
    error = one_error(cli("export", subtract, "--nir", refused))
    assert "layer " in error and "reset 'subtract'" in error, error
    assert not refused.exists() and not refused.with_name("refused.nir.tmp").exists()
    # --nir is a file, not an export directory or a check
    one_error(cli("export", run, "--nir", path, "--out", tmp_path / "x"))
    assert not (tmp_path / "x").exists()
