"""The user's Claude Code files as install and uninstall touch them.

A JSON settings file that does not parse is an error, never something to overwrite; keys and
directories are removed only when empty, so nothing the user added is lost.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from backlog_ops.common.home import ensure_dir, write_atomic
from backlog_ops.errors import ConfigError

__all__ = [
    "file_sha",
    "load_json_object",
    "missing_keys",
    "prune_if_empty",
    "remove_empty_dirs",
    "save_json_object",
    "sha",
    "unlink_if_present",
]


def load_json_object(path: Path) -> tuple[dict, bool]:
    """(data, existed). A file that exists but is not a JSON object is an error: never clobber it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, False
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not text.strip():
        return {}, True
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix it by hand, then run install again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object; fix it by hand, then run install again")
    return data, True


def save_json_object(path: Path, data: dict) -> None:
    """Write `data` atomically, keeping the file's mode (a new ~/.claude.json is private: it holds tokens)."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600 if path.name == ".claude.json" else 0o644
    ensure_dir(path.parent)
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode(), mode=mode)


def missing_keys(data: dict, keys: list[str]) -> list[str]:
    """Which dotted keys of the path `keys` do not exist yet (so uninstall may delete them once empty)."""
    missing, node = [], data
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            missing += [".".join(keys[: j + 1]) for j in range(i, len(keys))]
            break
        node = node[key]
    return missing


def prune_if_empty(data: dict, dotted: str) -> None:
    """Delete the container at `dotted` if it is empty."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict) and node.get(keys[-1]) in ({}, []):
        del node[keys[-1]]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha(path: Path) -> str | None:
    """The file's SHA-256, or None when it cannot be read."""
    try:
        return sha(path.read_bytes())
    except OSError:
        return None


def unlink_if_present(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def remove_empty_dirs(directory: Path, only_self: bool = False) -> None:
    """Remove `directory` if empty; unless `only_self`, its empty subdirectories first."""
    if not directory.is_dir():
        return
    if not only_self:
        for sub in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                sub.rmdir()
            except OSError:
                pass
    try:
        directory.rmdir()
    except OSError:
        pass
