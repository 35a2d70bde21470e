"""The layers only point down: golden ← hw ← sim ← sw (nothing imports upward)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("golden", "hw", "sim", "sw")


def imported_layers(path: Path) -> set[str]:
    """The project layers a module imports (relative ``from ..x`` or ``spikeforge.x``)."""
    package = path.relative_to(ROOT).parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative to the package: spikeforge is the repository root
                parts = list(package[:len(package) - node.level + 1])
                parts += node.module.split(".") if node.module else []
            elif (node.module or "").startswith("spikeforge"):
                parts = node.module.split(".")[1:]
            else:
                continue
            if parts and parts[0] in ORDER:
                found.add(parts[0])
            elif not parts:  # from .. import hw
                found.update(alias.name for alias in node.names if alias.name in ORDER)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "spikeforge" and len(parts) > 1 and parts[1] in ORDER:
                    found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", ORDER)
def test_layers_import_only_downward(layer):
    allowed = set(ORDER[:ORDER.index(layer) + 1])
    wrong = {str(path.relative_to(ROOT)): sorted(imported_layers(path) - allowed)
             for path in sorted((ROOT / layer).rglob("*.py"))
             if imported_layers(path) - allowed}
    assert not wrong, f"{layer} imports upward: {wrong}"
