"""Finding Claude Code's transcript files and reading only what is new in them.

Where transcripts are
    ``<root>/<project-dir>/<session-id>.jsonl`` for main sessions and
    ``<project-dir>/<session-id>/subagents/agent-<agent-id>.jsonl`` for subagents (older
    releases: ``agent-<id>.jsonl`` beside the sessions). Default root: ``$CLAUDE_CONFIG_DIR/projects``
    when set, else ``~/.claude/projects`` (and ``~/.config/claude/projects`` if it exists). Every
    ``*.jsonl`` below the root is read if it is a regular file (or a link to one); FIFOs, devices
    and sockets are skipped unopened, and the report says which and why.

Streamed
    Lines are read one at a time, up to the size the file had when it was opened, and parsed as
    they come: memory does not grow with a file's size. A line over MAX_LINE_BYTES is skipped
    unread (reported as malformed).

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
import stat
from pathlib import Path
from typing import Iterator

from backlog_ops.common.home import home, write_atomic
from backlog_ops.errors import TranscriptFileError

__all__ = ["MAX_LINE_BYTES", "NewLines", "bytes_to_read", "default_roots", "find_transcripts", "load_state",
           "special_kind", "read_new_lines", "save_state", "state_path"]

STATE_FILE = "transcripts-import.json"
HEAD_BYTES = 4096


# A line longer than this is skipped unread and reported: usage lines are a few KB,
# and reading a line into memory must stay bounded whatever the file holds.
MAX_LINE_BYTES = 32 * 1024 * 1024
_CHUNK = 1024 * 1024
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


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
    """`root` itself if it is not a directory, else every *.jsonl below it, hidden directories left out.

    Whatever is found is checked when it is opened (`read_new_lines`): a FIFO or a link to a
    device named *.jsonl is skipped there, with the reason.
    """
    if not root.is_dir():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".jsonl"):
                yield Path(dirpath) / name


def special_kind(mode: int) -> str | None:
    """What a file of this st_mode is when it is not a regular file ('a FIFO', 'a socket', …); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a special file"


class NewLines:
    """The complete lines a file gained since the last import, read one at a time.

    Iterate it once for the lines (bytes with their newline; None for a line longer than
    MAX_LINE_BYTES, skipped unread); `state` is then what to keep for the file. Reads stop at
    the size the file had when it was opened, so a file being written cannot keep the import
    reading, and a line still being written is left for next time. A context manager (it holds
    the file open).
    """

    def __init__(self, fh, first_line: int, offset: int, signature: dict) -> None:
        self._fh = fh
        self.first_line = first_line  # the number of the line before the first one read
        self._offset = offset
        self._signature = signature
        self._lines = first_line
        self.state: dict | None = None  # inode, size, mtime_ns, offset, lines, head: after iteration

    def __iter__(self) -> Iterator[bytes | None]:
        fh, end = self._fh, self._signature["size"]
        fh.seek(self._offset)
        position = self._offset
        while position < end:
            line = fh.readline(min(MAX_LINE_BYTES, end - position))
            if not line:
                break
            if line.endswith(b"\n"):
                position += len(line)
                self._lines += 1
                yield line
                continue
            if position + len(line) >= end:
                break  # the last line, still being written: next time
            skipped = _skip_line(fh, position + len(line), end)
            if skipped is None:
                break  # too long and not finished yet: next time, from its start
            position = skipped
            self._lines += 1
            yield None
        self.state = {**self._signature, "offset": position, "lines": self._lines, "head": _head(fh, position)}

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "NewLines":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _skip_line(fh, position: int, end: int) -> int | None:
    """Read past the rest of an over-long line in chunks; the offset after it, or None if it does not end before `end`."""
    while position < end:
        chunk = fh.read(min(_CHUNK, end - position))
        if not chunk:
            return None
        newline = chunk.find(b"\n")
        if newline >= 0:
            position += newline + 1
            fh.seek(position)
            return position
        position += len(chunk)
    return None


def _signature(st: os.stat_result) -> dict:
    return {"inode": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _unchanged(prior: dict | None, signature: dict) -> bool:
    return bool(prior) and all(prior.get(k) == v for k, v in signature.items())


def bytes_to_read(path: Path, prior: dict | None) -> int | None:
    """About how many bytes `path` gained since `prior`; None if it is unchanged (not even opened).

    0 when that cannot be told without opening it (not a regular file, or not there): reading it
    (`read_new_lines`) says why.
    """
    try:
        st = os.stat(path)
    except OSError:
        return 0
    if special_kind(st.st_mode):
        return 0
    signature = _signature(st)
    if _unchanged(prior, signature):
        return None
    offset = _whole(prior.get("offset")) if prior and prior.get("inode") == st.st_ino else None
    return st.st_size - offset if offset is not None and offset <= st.st_size else st.st_size


def read_new_lines(path: Path, prior: dict | None) -> NewLines | None:
    """What `path` gained since `prior` (its state after the last import); None if it is unchanged.

    Raises TranscriptFileError for anything but a regular file (a FIFO, a device, a socket, a
    directory: checked on the open descriptor, which never blocks), OSError if it cannot be read.
    """
    kind = special_kind(os.stat(path).st_mode)
    if kind:
        raise TranscriptFileError(f"not a regular file ({kind})")  # never opened: a FIFO's open blocks
    # O_NONBLOCK: a FIFO swapped in after the stat still cannot hang the open.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        kind = special_kind(st.st_mode)
        if kind:
            raise TranscriptFileError(f"not a regular file ({kind})")
        fh = os.fdopen(fd, "rb", buffering=_CHUNK)  # 1 MiB reads: 8 KiB ones cost ~50k syscalls per 200 MB
    except BaseException:
        os.close(fd)
        raise
    signature = _signature(st)
    try:
        if _unchanged(prior, signature):
            fh.close()
            return None
        offset, line_no = 0, 0
        prior_offset = _whole(prior.get("offset")) if prior else None
        if (prior and prior.get("inode") == st.st_ino and prior_offset is not None and prior_offset <= st.st_size
                and prior.get("head") == _head(fh, prior_offset)):
            offset, line_no = prior_offset, _whole(prior.get("lines")) or 0
    except BaseException:
        fh.close()
        raise
    return NewLines(fh, line_no, offset, signature)


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _head(fh, upto: int) -> str:
    """A fingerprint of the part already read (its first 4 KiB): a file replaced in place differs."""
    fh.seek(0)
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
