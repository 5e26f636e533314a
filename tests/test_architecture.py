"""The house rules of ARCHITECTURE.md, checked on the code as it is.

Imports are read with `ast` (module level and inside functions alike), so a lazy import that
closes a circle counts too.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Installed name -> folder in the repository (pyproject's package-dir).
ROOTS = {
    "backlog_ops": REPO / "src" / "backlog_ops",
    "backlog_ops.callbacks": REPO / "callbacks",
    "backlog_ops.hooks": REPO / "hooks",
    "backlog_ops.mcp_server": REPO / "mcp_server",
}
FACES = ("backlog_ops.cli", "backlog_ops.callbacks", "backlog_ops.hooks", "backlog_ops.mcp_server")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in ROOTS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "backlog_ops" and parts and parts[0] in ("callbacks", "hooks", "mcp_server"):
                continue
            found[name] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        for target in targets:
            # the longest known module the import names
            parts = target.split(".")
            for i in range(len(parts), 0, -1):
                candidate = ".".join(parts[:i])
                if candidate in known and candidate != name:
                    out.add(candidate)
                    break
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    # A package's __init__ that only re-exports is not an edge worth a circle: skip package names
    # as targets when the importer is inside that package.
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _is_face(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FACES)


def test_no_core_module_imports_a_face(graph) -> None:
    wrong = sorted(f"{m} -> {t}" for m, targets in graph.items() if not _is_face(m) for t in targets if _is_face(t))
    assert wrong == [], "core modules importing faces:\n" + "\n".join(wrong)


def test_no_import_circles(graph) -> None:
    # Edges into a package's own __init__ from inside the package are re-exports, not dependencies.
    def edges(m: str) -> set[str]:
        return {t for t in graph[m] if not m.startswith(t + ".")}

    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges(m)):
            if state.get(t) == 1:
                circles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert circles == [], "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_no_module_imports_another_modules_private_name() -> None:
    offenders = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("backlog_ops"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        offenders.append(f"{name}: from {node.module} import {alias.name}")
    assert offenders == []


def test_every_exception_class_lives_in_errors_py() -> None:
    elsewhere = []
    for name, path in _modules().items():
        if name == "backlog_ops.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if any(b.endswith(("Error", "Exception")) for b in bases):
                    elsewhere.append(f"{name}.{node.name}")
    assert elsewhere == []


def test_a_checkout_imports_the_faces_from_the_source_tree() -> None:
    """PYTHONPATH=src finds callbacks/, hooks/, mcp_server/ and config/ as installed names.

    `-S` leaves out site-packages (and with it the editable install's finder), so only the
    checkout can answer; the hook entry point imports nothing outside the standard library.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    code = (
        "import backlog_ops.hooks.entry, backlog_ops.mcp_server, backlog_ops.config, backlog_ops.callbacks;"
        "print(backlog_ops.hooks.entry.__file__); print(backlog_ops.config.__file__)"
    )
    result = subprocess.run([sys.executable, "-S", "-c", code], env=env, cwd="/", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(REPO / "hooks" / "entry.py"), str(REPO / "config" / "__init__.py")]


def test_a_missing_extra_is_a_one_line_error(monkeypatch, tmp_path, capsys) -> None:
    from backlog_ops.cli import main

    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    monkeypatch.setenv("BACKLOG_HOME", str(tmp_path))
    monkeypatch.setenv("BACKLOG_LEDGER_URL", "postgresql://backlog@127.0.0.1:1/none")
    assert main(["spend"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["backlog-ops: error: The PostgreSQL ledger (BACKLOG_LEDGER_URL) needs psycopg, "
                   "which is not installed: pip install 'backlog-ops[postgres]'"]
