"""Which files the check reads: Python and JS/TS sources, not vendored, virtualenv or built ones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

__all__ = ["JS_SUFFIXES", "is_bundle", "is_js", "iter_files"]

JS_SUFFIXES = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx")
_SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "env", ".env", "node_modules", "__pycache__", "site-packages",
              "build", "dist", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".cache", ".eggs"}


def is_js(name: str) -> bool:
    return name.endswith(JS_SUFFIXES)


def iter_files(paths: Iterable[str]) -> Iterable[Path]:
    """The files to check under `paths` (files given by name are taken when their suffix fits)."""
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            if p.suffix == ".py" or is_js(p.name):
                yield p
            continue
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
            for name in sorted(filenames):
                if name.endswith(".py") or (is_js(name) and not name.endswith((".min.js", ".d.ts"))):
                    yield Path(dirpath) / name


def is_bundle(path: str, source: str) -> bool:
    """Built output (minified, bundled): not the code anyone commits by hand, and full of sample strings."""
    if "/_next/" in path or "/static/chunks/" in path or ".min." in path or "/dist/" in path:
        return True
    return any(len(line) > 1000 for line in source.splitlines())
