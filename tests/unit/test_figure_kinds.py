"""Figure kinds as plug-ins (figure_kinds.KINDS): every kind has a data and a paint module, the
painters compute no physics, the registry is light enough for the Snakefile."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tsmeta.figure_kinds import KINDS

SRC = Path(__file__).resolve().parents[2] / "src" / "tsmeta"


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_has_a_data_and_a_paint_module(name):
    kind = KINDS[name]
    for module, function in ((kind.data, "data"), (kind.paint, "paint")):
        assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
        assert callable(getattr(importlib.import_module(module), function, None)), module


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (also inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("path", sorted((SRC / "figures").glob("*.py")), ids=lambda p: p.name)
def test_no_painter_imports_the_theory(path):
    theory = sorted(
        n for n in _imports(path) if n == "tsmeta.theory" or n.startswith("tsmeta.theory.")
    )
    assert theory == [], f"{path.name} imports {theory}: compute in figure_data instead"


def test_the_registry_imports_neither_torch_scipy_nor_matplotlib():
    code = (
        "import sys, tsmeta.figure_kinds, tsmeta.config; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'scipy', 'matplotlib'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_options_split_into_data_and_paint():
    from tsmeta.figure_kinds import split_options

    data, paint = split_options({"kind": "finite_size", "escape_level": 0.003, "xscale": "linear"})
    assert data == {"kind": "finite_size", "escape_level": 0.003}
    assert paint == {"title": "", "xscale": "linear"}
