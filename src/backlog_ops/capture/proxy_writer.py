"""The proxy's ledger writer: one per BACKLOG_HOME, journaled, shared by the spend ledger and the budget check.

The spend ledger hands it every row; the budget check waits (once, bounded) for its first load
of what an earlier proxy left (spool, journal of a killed process), so the first calls after a
restart are checked against every row the previous proxy answered.
"""

from __future__ import annotations

import threading

from backlog_ops.capture.response_record import price_early_record
from backlog_ops.common.home import home
from backlog_ops.ledger import LedgerWriter, open_ledger

__all__ = ["SPOOL_NAME", "JOURNAL_NAME", "proxy_writer"]

SPOOL_NAME = "ledger-spool.jsonl"
JOURNAL_NAME = "ledger-journal"

_writers: dict[str, LedgerWriter] = {}
_lock = threading.Lock()


def proxy_writer(on_written=()) -> LedgerWriter:
    """This home's writer, started: its thread loads the spool and dead writers' journals first.

    `on_written` hooks (the ticket totals keeper) are attached to it, once each.
    """
    root = home()
    key = str(root)
    writer = _writers.get(key)
    if writer is None:
        with _lock:
            writer = _writers.get(key)
            if writer is None:
                writer = LedgerWriter(open_ledger, spool_path=root / SPOOL_NAME, journal_dir=root / JOURNAL_NAME,
                                      price_early=price_early_record)
                writer.start()
                _writers[key] = writer
    # The budget check may have made the writer first: the hooks join it whenever they come.
    for hook in on_written:
        if hook not in writer.on_written:
            writer.on_written.append(hook)
    return writer
