"""The package as a user installs it: a wheel built from this checkout, installed into a fresh
virtual environment, run from a directory that is not the checkout (issue 28: the wheel held
no configurations, so `spikeforge demo` and `train --config NAME` failed after `pip install`).

The default test installs the wheel alone (``--no-deps``) and borrows the dependencies of the
environment running the tests through a ``.pth`` line (which does not carry that environment's
editable install along); the slow test resolves every dependency from the package index into
an empty environment, as a user's ``pip install`` does (torch 2.13.0 first: the CPU build on
these machines), and runs the demo."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Top-level entries of the checkout that are not part of a build.
NOT_SOURCE = {".venv", ".git", "build", "runs", "dist", "data", "out", "sim_build",
              ".pytest_cache", "spikeforge.egg-info"}


def _run(command, cwd, timeout=900, env=None):
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env=env)
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def build_wheel(tmp: Path) -> Path:
    """A wheel of a copy of the checkout's sources (the checkout itself stays untouched)."""
    source = tmp / "src"

    def ignore(directory, names):
        top = NOT_SOURCE if Path(directory) == ROOT else set()
        return [n for n in names if n in top or n == "__pycache__" or n.endswith(".egg-info")]

    shutil.copytree(ROOT, source, ignore=ignore)
    _run([sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--no-build-isolation",
          "-q", "-w", tmp / "dist"], cwd=tmp)
    (wheel,) = (tmp / "dist").glob("spikeforge-*.whl")
    return wheel


def fresh_env() -> dict:
    """The environment without the variables that would point Python at the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def check_installed(venv: Path, work: Path) -> str:
    """Run the installed ``spikeforge`` from ``work`` (not the checkout): the bundled
    configurations and examples are found by name, training runs. Returns train's output."""
    python, script = venv / "bin" / "python", venv / "bin" / "spikeforge"
    env = fresh_env()
    out = _run([python, "-c", "import spikeforge, spikeforge.sw.demo as d; "
                "print(spikeforge.__file__); print(d.DEMO_CONFIG.is_file())"], work, env=env)
    location, found = out.split()[:2]
    assert Path(location).is_relative_to(venv) and found == "True", out
    out = _run([python, "-c", "from spikeforge.sw.configs import bundled_configs as b\n"
                "from spikeforge.sw.train import load_config\n"
                "print(' '.join(n for n in b() if load_config(n)))"], work, env=env)
    assert out.split() == sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))
    out = _run([script, "train", "--config", "digits_cpsn", "--epochs", "1", "--out", "run",
                "--threads", "1", "--no-progress"], work, env=env)
    assert out.startswith("data: digits: T 8 steps x C 8 channels, 10 classes"), out
    assert (work / "run" / "last.pt").is_file() and (work / "run" / "best.pt").is_file()
    _run([script, "generate", "--config", "cpsn", "--out", "core"], work, env=env)
    assert (work / "core").is_dir() and any((work / "core").glob("*.v"))
    return out


def test_the_wheel_ships_configs_and_examples_and_trains_from_anywhere(tmp_path):
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp_path)
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index",
          wheel], tmp_path, env=fresh_env())
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (venv / "lib" / version / "site-packages" / "_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")  # torch & co. from the test's environment
    work = tmp_path / "elsewhere"
    work.mkdir()
    check_installed(venv, work)


@pytest.mark.slow
def test_pip_install_of_the_wheel_into_an_empty_venv_gives_a_working_demo(tmp_path):
    """Every dependency from the index (minutes: torch, triton, yowasp, ...)."""
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp_path)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
    _run(pip + ["torch==2.13.0"], tmp_path, timeout=1800, env=fresh_env())
    _run(pip + [wheel], tmp_path, timeout=1800, env=fresh_env())
    work = tmp_path / "elsewhere"
    work.mkdir()
    check_installed(venv, work)
    env = {**fresh_env(), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = _run([venv / "bin" / "spikeforge", "demo", "--epochs", "1", "--samples", "4",
                "--no-synth", "--out", "demo"], work, timeout=1800, env=env)
    assert "spikeforge demo summary" in out and (work / "demo" / "summary.json").is_file()
