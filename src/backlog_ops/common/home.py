"""Where backlog-ops keeps its state, and how it writes there safely.

One variable, BACKLOG_HOME (default ~/.backlog-toolkit), relocates everything. Files are created
0600 and directories 0700; whole-file writes go through a temporary file and os.replace, so a
reader that takes no lock sees either the old file or the new one, never a torn one.

Paths are plain strings here (functions accept str or os.PathLike): Claude Code hooks import this
module, and pathlib (with the `re` it imports) would cost each hook ~12 ms. `home()` and
`global_context_path()` give pathlib.Path objects to everyone else.
"""

from __future__ import annotations

import os

from backlog_ops.common.settings import settings
from backlog_ops.errors import HomeError

__all__ = [
    "append_line",
    "ensure_dir",
    "global_context_file",
    "global_context_path",
    "home",
    "home_dir",
    "write_atomic",
]

def home_dir() -> str:
    """The toolkit home: $BACKLOG_HOME, else ~/.backlog-toolkit."""
    return settings().home


def home():
    """home_dir() as a pathlib.Path."""
    from pathlib import Path

    return Path(home_dir())


def global_context_file() -> str:
    """The global context file: $BACKLOG_CONTEXT_FILE (the design's override), else HOME/current-context.json."""
    return settings().context_file


def global_context_path():
    """global_context_file() as a pathlib.Path."""
    from pathlib import Path

    return Path(global_context_file())


def ensure_dir(path) -> str:
    """Create `path` and its missing parents, each 0700; raise HomeError if that is impossible.

    os.makedirs(mode=0o700) would not do: its mode passes through the umask and applies to the
    last directory only, so a BACKLOG_HOME made on the way to HOME/claude-code came out 0755.
    Each directory made here is chmod-ed; directories that already exist are left as they are.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return path
    missing = []
    parent = os.path.abspath(path)
    while not os.path.lexists(parent):
        missing.append(parent)
        parent, child = os.path.dirname(parent), parent
        if parent == child:
            break
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue  # made meanwhile by another process: its mode is its creator's business
        except OSError as exc:
            raise HomeError(f"cannot create directory {directory}: {exc.strerror or exc}") from exc
        try:
            os.chmod(directory, 0o700)
        except OSError as exc:
            raise HomeError(f"cannot make {directory} private: {exc.strerror or exc}") from exc
    if not os.path.isdir(path):
        raise HomeError(f"{path} exists and is not a directory")
    return path


def write_atomic(path, data: bytes, *, mode: int = 0o600, durable: bool = True) -> None:
    """Replace `path` with `data` atomically (temp file in the same directory, fsync, rename).

    Readers always see the old or the new content either way; `durable=False` skips the fsync,
    so after a power loss the file may be empty (which readers treat as unreadable and skip).
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    ensure_dir(directory)
    # A random suffix instead of tempfile: tempfile's import costs the hooks several ms.
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    except OSError as exc:
        raise HomeError(f"cannot write in {directory}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise HomeError(f"cannot write {path}: {exc.strerror or exc}") from exc


def append_line(path, line: str) -> None:
    """Append one line with a single write(2) on an O_APPEND descriptor (callers hold the lock)."""
    path = os.fspath(path)
    ensure_dir(os.path.dirname(path) or ".")
    data = (line.rstrip("\n") + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise HomeError(f"cannot append to {path}: {exc.strerror or exc}") from exc
    try:
        os.write(fd, data)
    except OSError as exc:
        raise HomeError(f"cannot append to {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
