"""What a ticket has used, counted where the check runs: the reservation stores of the budget check.

A store answers one question atomically: given the limits, may this call go, and if so, reserve
its estimated cost (and one escalation) until it settles or is released. Two stores:

- `LocalCounts` (here): in this process's memory. Exact for one proxy process; several
  processes behind one address (replicas, LiteLLM's --num_workers) each see only their own
  calls in flight, so together they can overshoot a budget by many calls.
- `RedisCounts` (policy/redis_counts.py): in the team's Redis, shared by every process and
  replica, chosen when BACKLOG_CONTEXT_URL names one (`redis_counts.shared_counts_factory`).

Both add the same three parts: the ledger's figures (read at most every `refresh_seconds`),
calls finished but maybe not in the ledger yet (kept until a ledger read shows their row), and
calls in flight. Both expire entries after `stale_seconds`, so a process that died mid-call does
not hold a ticket's budget forever.

Imports neither litellm nor redis: the ticket-policy callback runs it on every request.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from backlog_ops.policy.limits import TicketPolicy

__all__ = ["Counts", "LedgerRead", "LocalCounts", "Verdict", "decide"]

# A ledger read: (ticket, project, policy, call ids) -> (cost, escalations, ids the ledger has), or
# None when the ledger cannot be read now (the engine counts and reports that).
LedgerRead = Callable[[str, "str | None", TicketPolicy, list], "tuple[float, int, set[str]] | None"]


class Counts(NamedTuple):
    """A ticket's use: everything counted, and of it what calls still running reserve."""

    cost: float
    escalations: int
    fly_cost: float
    fly_escalations: int
    unreadable: bool = False  # the ledger could not be read: the figures may be old


class Verdict(NamedTuple):
    """What `reserve` decided: "ok" (reserved), "checked" (dry: not reserved), "budget" or "escalations"."""

    status: str
    counts: Counts


def decide(counts: Counts, budget: float | None, max_escalations: int | None) -> str | None:
    """The limit a ticket's use has reached ("budget", "escalations"), or None: the one rule, both stores."""
    if budget is not None and counts.cost >= budget:
        return "budget"
    if max_escalations is not None and counts.escalations >= max_escalations:
        return "escalations"
    return None


@dataclass
class _Usage:
    ledger_cost: float = 0.0
    ledger_escalations: int = 0
    read_at: float = float("-inf")
    # call_id -> (cost, escalation, monotonic time): finished here, maybe not in the ledger yet
    settled: dict[str, tuple[float, bool, float]] = field(default_factory=dict)
    # call_id -> (reserved cost, escalation, monotonic time)
    inflight: dict[str, tuple[float, bool, float]] = field(default_factory=dict)
    unreadable: bool = False  # the last attempt to read the ledger failed

    def counts(self) -> Counts:
        fly_cost = sum(c for c, _, _ in self.inflight.values())
        fly_esc = sum(1 for _, e, _ in self.inflight.values() if e)
        cost = self.ledger_cost + sum(c for c, _, _ in self.settled.values()) + fly_cost
        esc = self.ledger_escalations + sum(1 for _, e, _ in self.settled.values() if e) + fly_esc
        return Counts(cost, esc, fly_cost, fly_esc, self.unreadable)


class LocalCounts:
    """Per-ticket counts in this process's memory; thread-safe. Check and reservation share one lock."""

    shared = False

    def __init__(self, read: LedgerRead, *, refresh_seconds: float = 2.0, stale_seconds: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._refresh = refresh_seconds
        self._stale = stale_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._usage: dict[tuple[str | None, str], _Usage] = {}
        self._keys: dict[str, tuple[str | None, str]] = {}  # call_id -> usage key

    def reserve(self, key: tuple[str | None, str], policy: TicketPolicy, call_id: str, *, estimate: float,
                escalation: bool, budget: float | None, max_escalations: int | None, dry: bool = False) -> Verdict:
        with self._lock:
            usage = self._usage_for(key, policy)
            counts = usage.counts()
            reached = decide(counts, budget, max_escalations)
            if reached or dry:
                return Verdict(reached or "checked", counts)
            usage.inflight[call_id] = (max(0.0, estimate), escalation, self._clock())
            self._keys[call_id] = key
            if len(self._keys) > 100_000:  # bounded even if completion events never come
                self._expire(self._clock(), force=True)
        return Verdict("ok", counts)

    def settle(self, key: tuple[str | None, str], call_id: str, cost: float, escalation: bool) -> None:
        with self._lock:
            self._keys.pop(call_id, None)
            usage = self._usage.get(key)
            if usage is None:
                return
            usage.inflight.pop(call_id, None)
            usage.settled[call_id] = (max(0.0, cost), escalation, self._clock())

    def release(self, key: tuple[str | None, str], call_id: str) -> None:
        with self._lock:
            self._keys.pop(call_id, None)
            usage = self._usage.get(key)
            if usage is not None:
                usage.inflight.pop(call_id, None)

    def usage(self, key: tuple[str | None, str], policy: TicketPolicy) -> Counts:
        with self._lock:
            return self._usage_for(key, policy).counts()

    def _usage_for(self, key: tuple[str | None, str], policy: TicketPolicy) -> _Usage:
        usage = self._usage.get(key)
        now = self._clock()
        if usage is None:
            if len(self._usage) > 10_000:
                self._expire(now, force=True)
            usage = self._usage[key] = _Usage()
        if now - usage.read_at >= self._refresh:
            figures = self._read(key[1], key[0], policy, list(usage.settled))
            if figures is None:
                # Keep the last figures and what this process counted since; read again next time.
                usage.unreadable = True
                return usage
            usage.ledger_cost, usage.ledger_escalations, present = figures
            usage.read_at, usage.unreadable = now, False
            for call_id in present:
                usage.settled.pop(call_id, None)
            self._expire(now)
        return usage

    def _expire(self, now: float, force: bool = False) -> None:
        for key, usage in list(self._usage.items()):
            for bucket in (usage.settled, usage.inflight):
                for call_id, (_, _, at) in list(bucket.items()):
                    if now - at > self._stale:
                        bucket.pop(call_id, None)
                        self._keys.pop(call_id, None)
            if force and not usage.inflight and not usage.settled:
                del self._usage[key]
