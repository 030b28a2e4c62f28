"""The package's layers: imports go downward only, and the algorithm never imports Ray."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "raygrad"
# Lowest first; a module may import its own layer and those before it.
LAYERS = {"errors": 0, "llm": 1, "data": 1, "core": 2, "optim": 3, "tasks": 4, "runs": 5, "distributed": 6,
          "testing": 6, "api": 7, "cli": 7, "__init__": 7, "__main__": 7}


def layer_of(module: str) -> str:
    """'raygrad.optim.trainer' -> 'optim'; 'raygrad' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def raygrad_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found |= {n for n in names if n.split(".")[0] == "raygrad"}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "raygrad"}
    return found


def test_every_module_belongs_to_a_layer_and_imports_only_downward():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = layer_of(".".join(("raygrad", *path.relative_to(PACKAGE).with_suffix("").parts)))
        assert here in LAYERS, f"{path}: in no layer"
        for imported in raygrad_imports(path):
            there = layer_of(imported)
            if there in LAYERS and LAYERS[there] > LAYERS[here]:
                violations.append(f"{path.relative_to(PACKAGE)} ({here}) imports {imported} ({there})")
            if there == "testing" and here != "testing":
                violations.append(f"{path.relative_to(PACKAGE)}: the library never imports raygrad.testing")
    assert violations == []


def test_core_and_optim_never_import_ray():
    for path in sorted((PACKAGE / "core").rglob("*.py")) + sorted((PACKAGE / "optim").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            modules = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                       [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            assert not any(m.split(".")[0] == "ray" for m in modules), f"{path} imports {modules}"
    # ...nor through anything they import: a fresh interpreter has no Ray after importing them.
    probe = ("import sys, raygrad.optim.trainer, raygrad.optim.execution, raygrad.core.backward; "
             "print('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_every_subpackage_says_what_it_owns():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert docstring and len(docstring) > 40, f"{init} has no docstring saying what it owns"
