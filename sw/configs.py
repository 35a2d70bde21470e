"""Load a core configuration file, whatever neuron it describes."""

import json
from pathlib import Path

from ..hw.cores import config_from_json

__all__ = ["load_core_config"]


def load_core_config(path):
    """Read a JSON core configuration; errors name the file and the offending key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"configuration file {path} does not exist")
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
