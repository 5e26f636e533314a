"""A spool: JSON lines kept on disk by a process that could not deliver them before it stopped.

The next process loads them first. It claims the file by renaming it to `<name>.<pid>.loading`,
so two processes starting together never load the same new file; each claimed file is loaded under
a lock (a proxy's workers list the same claimed files) and removed only once its items are
delivered; files that a crashed loader left behind are loaded too. A line that
cannot be read (a torn line from a crash mid-append, or one whose values have the wrong types)
is moved to `<name>.bad` and counted, and the rest is loaded: one bad line never blocks a spool.
Used by the ledger writer (rows) and the quota events (events); both deliver idempotently, so an
item loaded twice does no harm.
"""

from __future__ import annotations

import fcntl
import os
from typing import NamedTuple

from backlog_ops.common.home import append_line

__all__ = ["SpoolLoad", "load_spool", "spool_lines"]

_BATCH = 1000
_MAX_LINE = 4 << 20  # a longer line is not one we wrote: it is moved aside in pieces


class SpoolLoad(NamedTuple):
    """What a load did: items delivered, lines moved aside, and where they went."""

    loaded: int = 0
    bad: int = 0
    bad_path: str = ""


def spool_lines(path, lines) -> int:
    """Append each of `lines` (strings, one JSON document each) to the spool at `path`; the count.

    Raises HomeError when the spool cannot be written.
    """
    count = 0
    for line in lines:
        append_line(path, line)
        count += 1
    return count


def load_spool(path, parse, deliver) -> SpoolLoad:
    """Claim and load the spool at `path` (and any a crashed loader left).

    `parse(line)` turns one line (bytes) into an item and raises ValueError, KeyError or TypeError
    for a line it cannot read; such lines go to `<path>.bad`. `deliver(items)` gets the items in
    batches. A file whose `deliver` raises stays claimed, and the exception propagates: the next
    load takes it again (items already delivered are delivered again, which is harmless).
    """
    path = os.fspath(path)
    try:
        os.rename(path, f"{path}.{os.getpid()}.loading")
    except OSError:
        pass  # no spool, or another process claimed it first
    directory, name = os.path.split(path)
    try:
        claimed = sorted(n for n in os.listdir(directory or ".") if n.startswith(name + ".") and n.endswith(".loading"))
    except OSError:
        return SpoolLoad()
    loaded = bad = 0
    for claimed_name in claimed:
        taken = os.path.join(directory, claimed_name)
        held = _hold(taken)
        if held is None:
            continue  # another process is loading it, or has loaded it meanwhile
        try:
            try:
                counts = _load_file(taken, parse, deliver)
            except FileNotFoundError:
                continue
            if counts[1]:
                _move_aside(taken + ".bad", path + ".bad")
            try:
                os.unlink(taken)
            except FileNotFoundError:
                pass
        finally:
            os.close(held)  # unlinked first: a process waiting for this lock finds the file gone
        loaded += counts[0]
        bad += counts[1]
    return SpoolLoad(loaded, bad, path + ".bad" if bad else "")


def _hold(taken: str) -> int | None:
    """Lock a claimed file for loading; None when another process holds it or it is gone.

    Several processes of one home (a proxy's workers) start together and see the same claimed
    files: the lock lets one load each, and the check after locking that the name still leads to
    the locked file keeps a process from loading again what another just loaded and removed.
    """
    try:
        fd = os.open(taken, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(taken).st_ino == os.fstat(fd).st_ino:
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _load_file(taken: str, parse, deliver) -> tuple[int, int]:
    """Deliver the readable lines of one claimed file; unreadable ones go to `taken.bad` (rewritten each try)."""
    loaded = bad = 0
    items: list = []
    quarantine = None
    try:
        with open(taken, "rb") as fh:
            while True:
                line = fh.readline(_MAX_LINE)
                if not line:
                    break
                if len(line) == _MAX_LINE and not line.endswith(b"\n"):
                    quarantine = quarantine or _open_quarantine(taken)
                    bad += 1
                    while line and not line.endswith(b"\n"):
                        os.write(quarantine, line)
                        line = fh.readline(_MAX_LINE)
                    os.write(quarantine, line if line.endswith(b"\n") else line + b"\n")
                    continue
                stripped = line.strip()
                if not stripped:
                    continue
                try:
                    items.append(parse(stripped))
                except (ValueError, KeyError, TypeError):
                    quarantine = quarantine or _open_quarantine(taken)
                    os.write(quarantine, stripped + b"\n")
                    bad += 1
                    continue
                if len(items) >= _BATCH:
                    deliver(items)
                    loaded += len(items)
                    items = []
        if items:
            deliver(items)
            loaded += len(items)
    finally:
        if quarantine is not None:
            os.close(quarantine)
    return loaded, bad


def _open_quarantine(taken: str) -> int:
    return os.open(taken + ".bad", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)


def _move_aside(source: str, target: str) -> None:
    """Append the lines kept in `source` to `target` (0600) and remove `source`."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with open(source, "rb") as fh:
            while chunk := fh.read(1 << 20):
                os.write(fd, chunk)
    finally:
        os.close(fd)
    os.unlink(source)
