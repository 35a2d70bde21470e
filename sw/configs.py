"""Configuration files: the bundled run configurations and core examples, and core
configurations whatever neuron they describe.

The package ships ``configs/*.yaml`` (run configurations for ``spikeforge train``) and
``examples/*.json`` (core configurations for ``generate``/``cosim``/``synth --config``) as
package data beside its sub-packages, so an installed wheel finds them as a checkout does:
a path that does not exist is looked up by its name among the bundled files
(``digits_cpsn``, ``digits_cpsn.yaml`` and ``configs/digits_cpsn.yaml`` all name
``<package>/configs/digits_cpsn.yaml`` when no such file exists where spikeforge runs).
"""

import json
from pathlib import Path

__all__ = ["PACKAGE_ROOT", "CONFIG_DIR", "EXAMPLE_DIR", "bundled_configs", "bundled_examples",
           "resolve_run_config", "resolve_core_config", "load_core_config"]

#: The package's root: the repository root in a checkout, ``site-packages/spikeforge`` when
#: installed (setuptools maps the package ``spikeforge`` to the repository root).
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PACKAGE_ROOT / "configs"
EXAMPLE_DIR = PACKAGE_ROOT / "examples"


def bundled_configs() -> list[str]:
    """Names of the bundled run configurations (``configs/<name>.yaml``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def bundled_examples() -> list[str]:
    """Names of the bundled core configurations (``examples/<name>.json``)."""
    return sorted(p.stem for p in EXAMPLE_DIR.glob("*.json"))


def _resolve(value, directory: Path, suffix: str, names: list[str], what: str) -> Path:
    path = Path(value)
    if path.is_file():
        return path
    if path.is_dir():
        raise FileNotFoundError(f"{what} {value} is a directory, not a file")
    parts = path.parts
    # a bare name, NAME.suffix, or <directory name>/NAME(.suffix) as the README writes it
    if not (len(parts) == 1 or (len(parts) == 2 and parts[0] == directory.name)):
        raise FileNotFoundError(f"{what} {value} does not exist")
    name = parts[-1][:-len(suffix)] if parts[-1].endswith(suffix) else parts[-1]
    candidate = directory / f"{name}{suffix}"
    if name and candidate.is_file():
        return candidate
    shown = ", ".join(names) if names else "none (this installation has no bundled files)"
    raise FileNotFoundError(f"{what} {value} does not exist, and no bundled {what} has that "
                            f"name (bundled: {shown})")


def resolve_run_config(value) -> Path:
    """The run configuration file ``value`` names: the path itself when it exists, else the
    bundled ``configs/<name>.yaml``; ``FileNotFoundError`` listing the bundled names."""
    return _resolve(value, CONFIG_DIR, ".yaml", bundled_configs(), "configuration")


def resolve_core_config(value) -> Path:
    """The core configuration file ``value`` names: the path itself when it exists, else the
    bundled ``examples/<name>.json``."""
    return _resolve(value, EXAMPLE_DIR, ".json", bundled_examples(), "configuration file")


def load_core_config(path):
    """Read a JSON core configuration (a path, or a bundled example's name); errors name the
    file and the offending key."""
    from ..hw.cores import config_from_json

    path = resolve_core_config(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a configuration must be a JSON object")
    try:
        return config_from_json(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
