"""Writes ledger rows off the request path, and loses none to a crash or an outage.

Callbacks hand records to `submit`, which appends the row to the writer's journal (when it has
one: common/journal.py) and to a queue, and returns. A daemon thread writes the queue in batches.
When the ledger cannot be written, the thread drops its connection and opens a new one with a
capped back-off (a restarted PostgreSQL is picked up within seconds), keeping the rows queued;
past `max_pending` rows in memory the oldest wait in the journal only, and are loaded from it
once the ledger keeps up again. At exit the queue is flushed, and rows that still cannot be
written go to a spool file that the next writer loads first. A process killed with -9 leaves its
journal, which the next writer loads (rows are upserts on call_id: a row loaded twice is one row).

Losses and spooled rows are always reported, with their count; only retry warnings are throttled.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from backlog_ops.common.spool import load_spool, spool_lines
from backlog_ops.common.warnings import Tally, Warnings
from backlog_ops.errors import BacklogOpsError
from backlog_ops.common.journal import Journal
from backlog_ops.ledger.record import COLUMNS, CallRecord

__all__ = ["LedgerWriter"]

log = logging.getLogger("backlog_ops.ledger")

_RECENT = 100_000  # call ids of rows submitted lately: an early row for one of them is not needed
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


class LedgerWriter:
    """Batching background writer over a ledger made by `open_ledger` (called in the thread).

    `journal_dir`: where to journal rows (None: no journal, rows live in memory until written).
    `batch_size`: rows that are written at once (fewer wait up to `interval` for more);
    `max_batch`: the most one transaction takes when more wait (a writer behind catches up).
    `price_early(record)`: fills in the cost of an early row just before it is written.
    """

    def __init__(
        self,
        open_ledger: Callable[[], object],
        *,
        spool_path: Path,
        journal_dir: Path | None = None,
        batch_size: int = 500,
        max_batch: int = 10_000,
        interval: float = 0.05,
        max_pending: int = 100_000,
        early_ttl: float = 120.0,
        price_early: Callable[[CallRecord], CallRecord] | None = None,
    ) -> None:
        self._open_ledger = open_ledger
        self.spool_path = spool_path
        self._journal = Journal(journal_dir, name="ledger journal") if journal_dir is not None else None
        self._replay_path = os.path.join(os.fspath(journal_dir), "replay.jsonl") if journal_dir is not None else None
        self._batch_size = batch_size
        self._max_batch = max(batch_size, max_batch)
        self._interval = interval
        self._max_pending = max_pending
        self._early_ttl = early_ttl
        self._price_early = price_early
        self._pending: deque[tuple[CallRecord, object]] = deque()  # (row, its journal segment or None)
        self._early: dict[str, tuple[object, float, CallRecord]] = {}  # call_id -> (segment, when, row)
        self._recent: dict[str, None] = {}
        self._spilled = False
        self._cond = threading.Condition()
        self._loaded = threading.Event()  # set once the thread's first attempt to open and load is over
        self._thread: threading.Thread | None = None
        self._ledger = None
        self._closed = False
        self._in_flight = 0
        self._last_write = float("-inf")  # when the thread last started writing a batch
        # Retry warnings at most every 30 s: a broken ledger must not flood the proxy log.
        self._warnings = Warnings(log, interval=30)
        self._failing_since: float | None = None
        self._lost = Tally(log, "ledger queue full ({limit} rows) and no journal to keep more: {total} rows lost so far",
                           level=logging.ERROR)
        self._spill = Tally(log, "ledger queue full ({limit} rows in memory): {total} rows so far wait in the journal "
                                 "until the ledger catches up")
        self._unjournaled = Tally(log, "cannot journal ledger rows ({detail}): {total} rows so far held only in memory "
                                       "until written")
        self.dropped = 0
        # Called with each batch once it is in the ledger, on the writer's thread (reports/totals_keeper.py).
        self.on_written: list[Callable[[list[CallRecord]], object]] = []

    # -- the caller's side: never blocks on the ledger, never raises ----------------------------

    def submit(self, record: CallRecord) -> None:
        """Journal and queue a record."""
        segment = self._journal_row(record, early=False)
        with self._cond:
            self._recent[record.call_id] = None
            if len(self._recent) > _RECENT:
                del self._recent[next(iter(self._recent))]
            if len(self._pending) >= self._max_pending:
                _, old_segment = self._pending.popleft()
                if old_segment is not None:
                    self._journal.spill(old_segment)
                    self._spilled = True
                    self._spill.add(limit=self._max_pending)
                else:
                    self.dropped += 1
                    self._lost.add(limit=self._max_pending)
            self._pending.append((record, segment))
            if self._thread is None and not self._closed:
                self._start()
            self._cond.notify()

    def submit_early(self, record: CallRecord) -> None:
        """Journal the row of a call whose response is completing, before LiteLLM logs the call.

        Never written while the call's own row comes (`submit`); after a crash, or when no row came
        within `early_ttl` seconds, it is written if the ledger has no row for its call.
        """
        if self._journal is None or record.call_id in self._recent:
            return
        segment = self._journal_row(record, early=True)
        if segment is None:
            return
        with self._cond:
            done = record.call_id in self._recent or record.call_id in self._early
            if not done:
                self._early[record.call_id] = (segment, time.monotonic(), record)
                if self._thread is None and not self._closed:
                    self._start()
        if done:
            self._journal.resolve(segment)

    def start(self) -> None:
        """Start the writer thread now: it loads the spool and what a crashed writer left in its journal."""
        with self._cond:
            if self._thread is None and not self._closed:
                self._start()

    def wait_loaded(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until the thread has tried once to load what earlier writers left."""
        return self._loaded.wait(timeout)

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
        self.flush(min(timeout, 1.0) if self._failing_since is not None else timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            leftover = list(self._pending)
            self._pending.clear()
            early = [row for _, _, row in self._early.values()]
            self._early.clear()
        kept = self._spool(leftover, early) if (leftover or early) else True
        if self._in_flight:
            kept = False  # a batch the thread still holds: its journal lines stay for the next start
        if self._journal is not None:
            if self._spilled and self._journal.take_spilled(self._replay_path) == 0 and self._journal.outstanding():
                kept = False
            self._journal.close(keep=not kept)
        for tally in (self._lost, self._spill, self._unjournaled):
            tally.report_rest()
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
        first = True
        while True:
            with self._cond:
                if not self._pending and not self._closed and not first:
                    # Wake now and then while early rows wait for their call's own row.
                    self._cond.wait(1.0 if (self._early or self._spilled) else None)
                if not self._pending and self._closed:
                    return
                # While rows keep coming, write at most every `interval` s: a busy proxy then writes
                # a batch a transaction instead of a row or two (each row is in the journal meanwhile).
                # A row after a quiet spell is written at once.
                while (self._pending and not self._closed and len(self._pending) < self._batch_size
                       and (gather := self._last_write + self._interval - time.monotonic()) > 0):
                    self._cond.wait(gather)
                # Behind (more waiting than a batch): take up to max_batch at once. One transaction
                # then sums many calls per rollup key, and its fixed costs are paid once.
                batch = [self._pending.popleft() for _ in range(min(self._max_batch, len(self._pending)))]
                self._in_flight = len(batch)
            first = False
            if batch:
                self._last_write = time.monotonic()
            try:
                self._write(batch)
                self._recovered()
                backoff = self._interval
                if batch:
                    self._after_write([record for record, _ in batch])
            except Exception as exc:  # noqa: BLE001 - the writer must survive any ledger failure
                with self._cond:
                    self._pending.extendleft(reversed(batch))
                    self._in_flight = 0
                self._drop_connection()
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                self._warnings(f"cannot write {len(self._pending)} ledger rows, will reconnect and retry: {exc}", key="ledger")
                with self._cond:
                    if self._closed:
                        return
                    self._cond.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            finally:
                self._loaded.set()
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()
            try:
                self._housekeeping()
            except Exception as exc:  # noqa: BLE001 - retried on the next round
                self._drop_connection()
                self._warnings(f"cannot write early ledger rows, will retry: {exc}", key="ledger")

    def _after_write(self, records: list[CallRecord]) -> None:
        for hook in list(self.on_written):
            try:
                hook(records)
            except Exception as exc:  # noqa: BLE001 - a hook never stops the writer
                self._warnings(f"after-write hook failed: {type(exc).__name__}: {exc}", key="after-write")

    def _write(self, batch: list[tuple[CallRecord, object]]) -> None:
        if self._ledger is None:
            self._ledger = self._open_ledger()
            tune = getattr(self._ledger, "writes_in_background", None)  # SQLite's: ledger/sqlite.py
            if tune is not None:
                tune()
            self._load_spools()
        if batch:
            self._ledger.record_many([record for record, _ in batch])
            self._resolve(batch)

    def _resolve(self, batch: list[tuple[CallRecord, object]]) -> None:
        """The ledger has these rows: their journal lines (and their calls' early rows) are done."""
        if self._journal is None:
            return
        with self._cond:
            early = [self._early.pop(record.call_id) for record, _ in batch if record.call_id in self._early]
        counts: dict[int, list] = {}
        for segment in [segment for _, segment in batch] + [segment for segment, _, _ in early]:
            if segment is not None:
                entry = counts.setdefault(id(segment), [segment, 0])
                entry[1] += 1
        for segment, count in counts.values():
            self._journal.resolve(segment, count)

    def _housekeeping(self) -> None:
        """Write early rows whose call never got its own row; load rows that waited in the journal only."""
        cutoff = time.monotonic() - self._early_ttl
        with self._cond:
            expired = []
            for call_id, (segment, at, record) in self._early.items():
                if at > cutoff or len(expired) >= self._batch_size:
                    break
                expired.append(record)
        if expired:
            self._insert_missing(expired)
            with self._cond:
                done = [self._early.pop(r.call_id) for r in expired if r.call_id in self._early]
            for segment, _, _ in done:
                self._journal.resolve(segment)
        if self._spilled and not self._pending:
            self._spilled = False
            if self._journal.take_spilled(self._replay_path):
                self._load(self._replay_path)
        for tally in (self._lost, self._spill, self._unjournaled):
            tally.report_rest(every=30.0)

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.warning("backlog-ops: ledger reachable again after %.1f s (%d rows still queued)",
                        time.monotonic() - self._failing_since, len(self._pending))
            self._failing_since = None

    def _drop_connection(self) -> None:
        """Forget a ledger that failed: the next attempt opens a new connection."""
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            try:
                ledger.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close
                pass

    # -- the journal ---------------------------------------------------------------------------

    def _journal_row(self, record: CallRecord, *, early: bool):
        if self._journal is None:
            return None
        try:
            # ["row" | "early", values in COLUMNS order]: a third of a keyed object's size and encoding time.
            line = _ENCODE(["early" if early else "row", *record.as_tuple()]) + "\n"
            return self._journal.append(line.encode())
        except Exception as exc:  # noqa: BLE001 - the row still goes to the ledger from memory
            self._unjournaled.add(detail=str(exc))
            return None

    # -- the spool: rows that outlived the process that received them ------------------------

    def _spool(self, records: list[tuple[CallRecord, object]], early: list[CallRecord]) -> bool:
        """Keep rows the ledger did not take for the next writer; True when every one was kept."""
        journaled = sum(1 for _, segment in records if segment is not None) + len(early)
        try:
            spool_lines(self.spool_path, (json.dumps(record.as_row(), separators=(",", ":")) for record, _ in records))
            if early:
                spool_lines(self._replay_path, (json.dumps({**r.as_row(), "_early": True}, separators=(",", ":")) for r in early))
        except (BacklogOpsError, OSError) as exc:
            if self._journal is not None and journaled:
                log.warning("backlog-ops: ledger unavailable at exit and cannot spool (%s): %d rows stay in the journal %s "
                            "and are loaded by the next start%s", exc, journaled, self._journal.directory,
                            f"; {len(records) + len(early) - journaled} rows not journaled are lost" if journaled < len(records) + len(early) else "")
            else:
                log.error("backlog-ops: ledger unavailable at exit and cannot spool: %d rows lost (%s)", len(records), exc)
            return False
        if records:
            log.warning("backlog-ops: ledger unavailable at exit: %d rows kept in %s", len(records), self.spool_path)
        return True

    def _load_spools(self) -> None:
        """Load spooled rows, then what crashed writers left in their journals (now ours to load)."""
        self._load(self.spool_path)
        if self._journal is not None:
            self._journal.adopt_orphans(self._replay_path)
            self._load(self._replay_path)

    def _load(self, path) -> None:
        result = load_spool(path, _parse_line, self._deliver)
        if result.loaded:
            log.warning("backlog-ops: loaded %d ledger rows kept by a stopped or killed process (%s); rows the ledger "
                        "already had are unchanged", result.loaded, path)
        if result.bad:
            log.warning("backlog-ops: %d unreadable ledger rows in %s moved to %s (kept, not loaded)", result.bad, path, result.bad_path)

    def _deliver(self, items: list[tuple[CallRecord, bool]]) -> None:
        full = [record for record, early in items if not early]
        if full:
            self._ledger.record_many(full)
        early = [record for record, early in items if early]
        if early:
            self._insert_missing(early)

    def _insert_missing(self, records: list[CallRecord]) -> None:
        """Write early rows whose call has no row in the ledger (a row there is always better)."""
        present = self._ledger.existing([r.call_id for r in records])
        missing = [r for r in records if r.call_id not in present]
        if missing and self._price_early is not None:
            missing = [self._price_early(r) for r in missing]
        if missing:
            self._ledger.record_many(missing)


def _parse_line(line: bytes) -> tuple[CallRecord, bool]:
    """A spool line (a row object) or a journal line (["row" | "early", values in COLUMNS order])."""
    data = json.loads(line)
    if isinstance(data, list):
        if not data or data[0] not in ("row", "early") or len(data) - 1 > len(COLUMNS):
            raise ValueError("not a journal line")
        # A journal written before a column was added has fewer values: the new ones keep their defaults.
        return CallRecord.from_row(dict(zip(COLUMNS, data[1:]))), data[0] == "early"
    early = isinstance(data, dict) and bool(data.pop("_early", False))
    return CallRecord.from_row(data), early
