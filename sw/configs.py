"""Load a core configuration file, whatever neuron it describes."""

import json
from pathlib import Path

from ..hw.cpsn_config import CPSNConfig

__all__ = ["load_core_config", "CONFIG_TYPES"]

#: ``"neuron"`` key of a configuration file → its configuration class.
CONFIG_TYPES = {"cpsn": CPSNConfig}


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
    neuron = data.get("neuron", "cpsn")
    if neuron not in CONFIG_TYPES:
        raise ValueError(f"{path}: unknown neuron {neuron!r}; known: {sorted(CONFIG_TYPES)}")
    try:
        return CONFIG_TYPES[neuron].from_json(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
