"""The package layers import one way only, and imports stay at the top of modules.

``LAYERS`` lists tinyhil's packages from the bottom up; a module may import its own package and any package in a
lower layer, never one in its own layer or above (docs/architecture.md explains each layer). An import inside a
function body is kept only where it is optional or deliberately lazy (a heavy dependency kept off a command's
start-up path); the count is capped so new ones are a decision, not a habit.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent.parent / "harness"

#: Bottom to top. A package may import only packages of lower layers (and itself).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("results",),
    ("config",),
    ("ir",),
    ("ops",),
    ("native",),
    ("graph",),
    ("tflite",),
    ("precision",),
    ("reference",),
    ("memory",),
    ("table",),
    ("data",),
    ("models",),
    ("quant",),
    ("synth",),
    ("patch",),
    ("codegen",),
    ("build",),
    ("transport",),
    ("timing",),
    ("boards",),
    ("measure",),
    ("search",),
    ("loop",),
    ("experiments",),
    ("cli",),
)
MAX_FUNCTION_IMPORTS = 40


def _layer_of() -> dict[str, int]:
    return {pkg: i for i, names in enumerate(LAYERS) for pkg in names}


def _package(path: Path) -> str:
    rel = path.relative_to(HARNESS)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(tree: ast.AST) -> list[tuple[ast.stmt, str]]:
    """(statement, imported harness package) for every import of a harness module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "harness"
                                    else [])
            for m in mods:
                parts = m.split(".")
                if parts[0] == "harness" and len(parts) > 1:
                    out.append((node, parts[1]))
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "harness" and len(parts) > 1:
                    out.append((node, parts[1]))
    return out


def _modules() -> list[Path]:
    return sorted(p for p in HARNESS.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_package_has_a_layer():
    layer = _layer_of()
    pkgs = {_package(p) for p in _modules()} - {"__init__"}
    assert sorted(pkgs - set(layer)) == []


def test_no_package_imports_one_above_it_or_beside_it():
    layer = _layer_of()
    bad = []
    for path in _modules():
        src = _package(path)
        if src == "__init__":
            continue
        for node, dst in _imports(ast.parse(path.read_text())):
            if dst == src or dst not in layer:
                continue
            if layer[dst] >= layer[src]:
                bad.append(f"{path.relative_to(HARNESS.parent)}:{node.lineno}: {src} imports {dst}")
    assert bad == []


def _function_imports() -> list[str]:
    found = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        found.append(f"{path.relative_to(HARNESS.parent)}:{node.lineno}")
    return sorted(set(found))


def test_imports_inside_functions_stay_rare():
    found = _function_imports()
    assert len(found) < MAX_FUNCTION_IMPORTS, "\n".join(found)


@pytest.mark.parametrize("upward", ["harness.loop", "harness.measure.session"])
def test_the_checker_sees_an_upward_import(tmp_path, upward):
    # The rule itself: a module of a low layer importing a high one is reported.
    src = f"from {upward} import x\n"
    tree = ast.parse(src)
    layer = _layer_of()
    (node, dst), = _imports(tree)
    assert layer[dst] > layer["ir"]
