"""A spool: JSON lines kept on disk by a process that could not deliver them before it stopped.

The next process loads them first. It claims the file by renaming it to `<name>.<pid>.loading`,
so two processes starting together never load the same new file, and removes a claimed file only
once its items are delivered; files that a crashed loader left behind are loaded too. A torn
line (a crash in the middle of an append) is skipped. Used by the ledger writer (rows) and the
quota events (events); both deliver idempotently, so an item loaded twice does no harm.
"""

from __future__ import annotations

import os

from backlog_ops.common.home import append_line

__all__ = ["load_spool", "spool_lines"]


def spool_lines(path, lines) -> int:
    """Append each of `lines` (strings, one JSON document each) to the spool at `path`; the count.

    Raises HomeError when the spool cannot be written.
    """
    count = 0
    for line in lines:
        append_line(path, line)
        count += 1
    return count


def load_spool(path, parse, deliver) -> int:
    """Claim and load the spool at `path` (and any a crashed loader left); the number of items.

    `parse(line)` turns one line (bytes) into an item and raises ValueError, KeyError or TypeError
    for a line it cannot read; `deliver(items)` gets each file's items. A file whose `deliver`
    raises stays claimed, and the exception propagates: the next load takes it again.
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
        return 0
    loaded = 0
    for claimed_name in claimed:
        taken = os.path.join(directory, claimed_name)
        try:
            with open(taken, "rb") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue  # another process loaded it meanwhile
        items = []
        for line in lines:
            try:
                items.append(parse(line))
            except (ValueError, KeyError, TypeError):
                continue  # a torn line from a crash mid-append
        deliver(items)
        try:
            os.unlink(taken)
        except FileNotFoundError:
            pass
        loaded += len(items)
    return loaded
