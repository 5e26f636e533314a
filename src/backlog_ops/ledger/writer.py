"""Writes ledger rows off the request path.

Callbacks hand records to `submit`, which only appends to a queue. A daemon thread writes them
in batches. If the ledger cannot be written, rows stay queued (up to `max_pending`) and are
retried; at interpreter exit the queue is flushed, and rows that still cannot be written are
appended to a spool file that the next writer loads first, so a stopped proxy loses nothing.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from backlog_ops.common.spool import load_spool, spool_lines
from backlog_ops.common.warnings import Warnings
from backlog_ops.errors import BacklogOpsError
from backlog_ops.ledger.record import CallRecord

__all__ = ["LedgerWriter"]

log = logging.getLogger("backlog_ops.ledger")


class LedgerWriter:
    """Batching background writer over a ledger made by `open_ledger` (called in the thread)."""

    def __init__(
        self,
        open_ledger: Callable[[], object],
        *,
        spool_path: Path,
        batch_size: int = 500,
        interval: float = 0.05,
        max_pending: int = 100_000,
    ) -> None:
        self._open_ledger = open_ledger
        self.spool_path = spool_path
        self._batch_size = batch_size
        self._interval = interval
        self._max_pending = max_pending
        self._pending: deque[CallRecord] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._ledger = None
        self._closed = False
        self._in_flight = 0
        # One warning per 30 s at most, whatever the problem: a broken ledger must not flood the proxy log.
        self._warnings = Warnings(log, interval=30)
        self._failing = False
        self.dropped = 0
        # Called with each batch once it is in the ledger, on the writer's thread (reports/totals_keeper.py).
        self.on_written: list[Callable[[list[CallRecord]], object]] = []

    def submit(self, record: CallRecord) -> None:
        """Queue a record; never blocks on I/O and never raises."""
        with self._cond:
            if len(self._pending) >= self._max_pending:
                self._pending.popleft()
                self.dropped += 1
                self._warn(f"ledger queue full ({self._max_pending} rows): dropped the oldest row")
            self._pending.append(record)
            if self._thread is None and not self._closed:
                self._start()
            self._cond.notify()

    def pending(self) -> int:
        """Rows queued and not yet written."""
        return len(self._pending) + self._in_flight

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued row is written; False if that did not happen within `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self._pending or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Flush, stop the thread, and spool whatever could not be written."""
        if self._closed:
            return
        # A ledger that is failing will not recover in the seconds before exit: spool at once.
        self.flush(min(timeout, 1.0) if self._failing else timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            leftover = list(self._pending)
            self._pending.clear()
        if leftover:
            self._spool(leftover)
        if self._ledger is not None:
            try:
                self._ledger.close()
            except Exception:  # noqa: BLE001 - closing at exit must not raise
                pass

    # -- the writer thread -------------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="backlog-ops-ledger", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        backoff = self._interval
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                batch = [self._pending.popleft() for _ in range(min(self._batch_size, len(self._pending)))]
                self._in_flight = len(batch)
            try:
                self._write(batch)
                backoff = self._interval
                self._failing = False
            except Exception as exc:  # noqa: BLE001 - the writer must survive any ledger failure
                self._failing = True
                with self._cond:
                    self._pending.extendleft(reversed(batch))
                self._warn(f"cannot write {len(batch)} ledger rows, will retry: {exc}")
                with self._cond:
                    self._in_flight = 0
                    if self._closed:
                        return
                    self._cond.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._after_write(batch)
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()

    def _after_write(self, batch: list[CallRecord]) -> None:
        for hook in list(self.on_written):
            try:
                hook(batch)
            except Exception as exc:  # noqa: BLE001 - a hook never stops the writer
                self._warn(f"after-write hook failed: {type(exc).__name__}: {exc}")

    def _write(self, batch: list[CallRecord]) -> None:
        if self._ledger is None:
            self._ledger = self._open_ledger()
            self._load_spool()
        self._ledger.record_many(batch)

    # -- the spool: rows that outlived the process that received them ------------------------

    def _spool(self, records: list[CallRecord]) -> None:
        try:
            spool_lines(self.spool_path, (json.dumps(record.as_row(), separators=(",", ":")) for record in records))
            self._warn(f"ledger unavailable at exit: {len(records)} rows kept in {self.spool_path}")
        except (BacklogOpsError, OSError) as exc:
            self._warn(f"ledger unavailable at exit and cannot spool: {len(records)} rows lost ({exc})")

    def _load_spool(self) -> None:
        """Move spooled rows (and any a crashed loader left behind) into the ledger."""
        # Rows are upserts: loading a file twice is harmless.
        load_spool(self.spool_path, lambda line: CallRecord(**json.loads(line)), self._ledger.record_many)

    def _warn(self, message: str) -> None:
        self._warnings(message, key="ledger")
