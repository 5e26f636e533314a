"""Finding Claude Code's transcript files and reading only what is new in them.

Where transcripts are
    ``<root>/<project-dir>/<session-id>.jsonl`` for main sessions and
    ``<project-dir>/<session-id>/subagents/agent-<agent-id>.jsonl`` for subagents (older
    releases: ``agent-<id>.jsonl`` beside the sessions). Default root: ``$CLAUDE_CONFIG_DIR/projects``
    when set, else ``~/.claude/projects`` (and ``~/.config/claude/projects`` if it exists). Every
    ``*.jsonl`` below the root is read.

Incremental
    BACKLOG_HOME/transcripts-import.json keeps each file's inode, size, mtime and the offset
    read so far, and a fingerprint of its first 4 KiB: unchanged files are skipped without being
    opened, grown files are read from the offset (only complete lines: a line being written is
    left for next time), replaced or truncated files are read again (upserts make that harmless).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator, NamedTuple

from backlog_ops.common.home import home, write_atomic

__all__ = ["NewLines", "default_roots", "find_transcripts", "load_state", "read_new_lines", "save_state", "state_path"]

STATE_FILE = "transcripts-import.json"
HEAD_BYTES = 4096


class NewLines(NamedTuple):
    """The complete lines a file gained since the last import, and the state to keep for it."""

    data: bytes  # whole lines, each ending in a newline
    first_line: int  # the number of the line before `data` (0: data starts the file)
    state: dict  # inode, size, mtime_ns, offset, lines, head


def default_roots() -> list[Path]:
    """Where Claude Code keeps its transcripts, whether they exist or not."""
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    if configured:
        return [Path(configured).expanduser() / "projects"]
    roots = [Path("~/.claude/projects").expanduser()]
    xdg = Path("~/.config/claude/projects").expanduser()
    if xdg.is_dir():
        roots.append(xdg)
    return roots


def find_transcripts(root: Path) -> Iterator[Path]:
    """`root` itself if it is a file, else every *.jsonl below it, hidden directories left out."""
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".jsonl"):
                yield Path(dirpath) / name


def read_new_lines(path: Path, prior: dict | None) -> NewLines | None:
    """What `path` gained since `prior` (its state after the last import); None if it is unchanged.

    Raises OSError if the file cannot be read.
    """
    st = path.stat()
    signature = {"inode": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if prior and all(prior.get(k) == v for k, v in signature.items()):
        return None
    offset, line_no = 0, 0
    if (prior and prior.get("inode") == st.st_ino and prior.get("offset", 0) <= st.st_size
            and prior.get("head") == _head(path, int(prior.get("offset", 0)))):
        offset, line_no = int(prior.get("offset", 0)), int(prior.get("lines", 0))
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    data = data[: data.rfind(b"\n") + 1]  # a line still being written is left for next time
    end = offset + len(data)
    state = {**signature, "offset": end, "lines": line_no + data.count(b"\n"), "head": _head(path, end)}
    return NewLines(data, line_no, state)


def _head(path: Path, upto: int) -> str:
    """A fingerprint of the part already read (its first 4 KiB): a file replaced in place differs."""
    with open(path, "rb") as fh:
        return hashlib.sha1(fh.read(min(upto, HEAD_BYTES))).hexdigest()[:16]


def state_path() -> Path:
    return home() / STATE_FILE


def load_state(path: Path) -> dict:
    """Each file's state after the last import, by resolved path."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}  # a missing or unreadable state only costs a full re-read: the upserts keep it correct
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def save_state(path: Path, files: dict) -> None:
    write_atomic(path, (json.dumps({"version": 1, "files": files}, indent=1, sort_keys=True) + "\n").encode())
