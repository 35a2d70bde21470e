"""The on-disk (JSON) form shared by every core configuration dataclass."""

import json
import re
from pathlib import Path

__all__ = ["JSONConfig"]


class JSONConfig:
    """Mixin for a frozen configuration dataclass: ``to_json``, ``from_json``, ``load``,
    ``save``.

    A subclass names its neuron (``NEURON``), its scalar fields (``_JSON_FIELDS``), its integer
    tables (``_JSON_TABLES``, numpy arrays, or None where a variant uses no such table: the
    document then leaves the key out) and the keys a document must give (``_JSON_REQUIRED``).
    Unknown or missing keys are refused by name.
    """

    NEURON: str
    _JSON_FIELDS: tuple[str, ...]
    _JSON_TABLES: tuple[str, ...]
    _JSON_REQUIRED: tuple[str, ...]

    def to_json(self) -> dict:
        data = {"neuron": self.NEURON}
        data.update({name: getattr(self, name) for name in self._JSON_FIELDS})
        for name in self._JSON_TABLES:
            table = getattr(self, name)
            if table is not None:
                data[name] = table.tolist()
        return data

    @classmethod
    def from_json(cls, data: dict):
        """Build from a JSON object, refusing unknown or missing keys by name."""
        owner = cls.__name__
        if not isinstance(data, dict):
            raise TypeError(f"a {owner} JSON document must be an object, got "
                            f"{type(data).__name__}")
        data = dict(data)
        neuron = data.pop("neuron", cls.NEURON)
        if neuron != cls.NEURON:
            raise ValueError(f"{owner}: 'neuron' must be {cls.NEURON!r}, got {neuron!r}")
        known = set(cls._JSON_FIELDS) | set(cls._JSON_TABLES)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{owner}: unknown key(s) {unknown}; known keys are "
                             f"{sorted(known)}")
        missing = sorted(set(cls._JSON_REQUIRED) - set(data))
        if missing:
            raise ValueError(f"{owner}: missing key(s) {missing}")
        return cls(**data)

    @classmethod
    def load(cls, path):
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_json(data)

    def save(self, path) -> None:
        text = json.dumps(self.to_json(), indent=1)
        # One innermost list per line: readable and diff-friendly.
        text = re.sub(r"\[\s+([^\[\]]*?)\s+\]",
                      lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
        Path(path).write_text(text + "\n")
