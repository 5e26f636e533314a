"""Keeps each ticket's totals file (reports/totals_file.py) current as the ledger writer writes rows.

The writer calls `written(batch)` on its thread after a batch is in the ledger; that only notes
which tickets changed. A thread of the keeper's own then reads each such ticket's cost and
escalations from the ledger (one indexed query) and rewrites its file, at most every `interval`
seconds, so a busy writer is never slowed and a ticket written a thousand times a second is
summed a few times a second. Summing from the ledger, rather than adding up rows, keeps the
file exact whatever wrote the rows (a retried call is one upserted row, other proxies and
direct calls share the ledger).

The limits come from `limits(project)` (the policy the proxy enforces); without it the limits
already in the file are kept. When a ticket passes a mark (policy/thresholds.py) during an update,
every `on_threshold(totals, mark)` subscriber hears it once: updates are serialized on a lock
file, so two proxies sharing a home never both announce one mark.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any, Callable

from backlog_ops.common.lock import ExclusiveLock
from backlog_ops.common.times import format_time
from backlog_ops.common.warnings import Warnings
from backlog_ops.policy.thresholds import newly_crossed
from backlog_ops.reports.totals_file import lock_path, read_totals, totals_path, write_totals

__all__ = ["TotalsKeeper"]

log = logging.getLogger("backlog_ops.ledger")

_MAX_DIRTY = 10_000  # tickets waiting for an update; past it the oldest waits for its next row


class TotalsKeeper:
    """Rewrites the totals files of tickets whose rows were written; thread-safe, never raises to the writer."""

    def __init__(
        self,
        open_ledger: Callable[[], Any],
        *,
        limits: Callable[[str | None], Any] | None = None,
        interval: float = 0.1,
    ) -> None:
        self._open_ledger = open_ledger
        self._limits = limits
        self._interval = interval
        self.on_threshold: list[Callable[[dict, str], object]] = []
        self._dirty: dict[tuple[str | None, str], None] = {}
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._ledger = None
        self._warn = Warnings(log, interval=30)
        # Registered now, before the writer it serves registers its own: atexit runs the writer's
        # last flush first, then this one, which writes the totals of those last rows.
        atexit.register(self.close)

    # -- the writer's side ---------------------------------------------------------------------

    def written(self, records) -> None:
        """Note the tickets of a written batch (called on the writer's thread: memory only)."""
        # A name that cannot be a file name (a caller's crafted tag) gets no file and no announcement.
        keys = {(r.project, r.ticket_id) for r in records
                if getattr(r, "ticket_id", None) and totals_path(r.project, r.ticket_id) is not None}
        if not keys:
            return
        with self._cond:
            if self._closed:
                return
            for key in keys:
                self._dirty[key] = None
            while len(self._dirty) > _MAX_DIRTY:
                del self._dirty[next(iter(self._dirty))]
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="backlog-ops-totals", daemon=True)
                self._thread.start()
            self._cond.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every noted ticket's file is written; False if that took longer than `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._dirty or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._drop_ledger()

    def _drop_ledger(self) -> None:
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            try:
                ledger.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not raise
                pass

    # -- the keeper's thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._closed:
                    self._cond.wait()
                if not self._dirty:
                    return
                keys = list(self._dirty)
                self._dirty.clear()
                self._busy = True
            try:
                for project, ticket in keys:
                    self.refresh(project, ticket)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                    if not self._closed:
                        self._cond.wait(self._interval)  # paces a busy ledger: rows gather meanwhile

    def refresh(self, project: str | None, ticket: str) -> dict | None:
        """Sum one ticket from the ledger, rewrite its file, tell subscribers of marks passed; None on failure."""
        try:
            with ExclusiveLock(lock_path()):
                old = read_totals(project, ticket)
                new = self._totals(project, ticket, old)
                write_totals(new)
        except Exception as exc:  # noqa: BLE001 - totals are a convenience: the ledger stays the record
            self._drop_ledger()  # a broken connection is opened again next time
            self._warn(f"cannot update the totals of ticket {ticket}: {type(exc).__name__}: {exc}", key="totals")
            return None
        for mark in newly_crossed(old, new):
            for subscriber in list(self.on_threshold):
                try:
                    subscriber(new, mark)
                except Exception as exc:  # noqa: BLE001 - one broken subscriber must not stop the others
                    self._warn(f"budget mark subscriber failed: {type(exc).__name__}: {exc}", key="threshold")
        return new

    def _totals(self, project: str | None, ticket: str, old: dict | None) -> dict:
        limits = self._limits_for(project, ticket, old)
        if self._ledger is None:
            self._ledger = self._open_ledger()
        usage = self._ledger.ticket_usage(
            ticket, project=project, frontier_alias=limits["frontier_alias"], frontier_models=limits["frontier_models"]
        )
        return {
            "project": project,
            "ticket_id": ticket,
            "spent_usd": round(float(usage["cost_usd"]), 6),
            "escalations": int(usage["escalations"]),
            **limits,
            "updated_at": format_time(time.time()),
        }

    def _limits_for(self, project: str | None, ticket: str, old: dict | None) -> dict:
        if self._limits is None:  # not the proxy: keep what the proxy last wrote
            old = old or {}
            return {key: old.get(key, default) for key, default in _NO_LIMITS.items()}
        policy = self._limits(project)
        if policy is None:
            return dict(_NO_LIMITS)
        budget, key = policy.budget_for(ticket)
        return {
            "budget_usd": budget,
            "budget_key": key if budget is not None else None,
            "max_escalations": policy.max_escalations_per_ticket,
            "source": policy.source,
            "frontier_alias": policy.frontier_alias,
            "frontier_models": list(policy.frontier_models),
        }


_NO_LIMITS = {
    "budget_usd": None,
    "budget_key": None,
    "max_escalations": None,
    "source": None,
    "frontier_alias": "frontier",
    "frontier_models": [],
}
