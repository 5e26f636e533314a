"""The per-ticket check: what a ticket has used, and whether its next call may go.

What a ticket has used is counted from the ledger, plus what the ledger does not have yet:
calls in flight (each reserves an estimate of its cost, and one escalation when it goes to the
frontier alias) and calls finished but not yet written by the ledger's background writer. Check
and reservation happen together, atomically, so requests for one ticket that arrive at once
cannot all slip past the limit: in this process's memory (policy/counts.py), or, with the team's
Redis configured, in Redis, shared by every proxy process and replica (policy/redis_counts.py).

When the ledger cannot be read (a database restart, an outage), the reader reconnects with a
capped back-off, and meanwhile a limited ticket's calls follow its policy's
`on_ledger_unavailable`: "allow" goes on against the last figures read plus what this process
counted, with a loud, counted alert in the proxy log; "deny" refuses them with HTTP 503. A ticket
already over its limit on the figures known is refused either way. Never a silent fail-open.

Imports neither litellm nor pydantic: the ticket-policy callback runs it on every request.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from backlog_ops.common.warnings import Tally
from backlog_ops.errors import BacklogOpsError, BudgetStoreError, LedgerError
from backlog_ops.policy.counts import LocalCounts
from backlog_ops.policy.limits import LEDGER_UNAVAILABLE_KEY, TicketPolicy
from backlog_ops.policy.messages import budget_message, escalation_message, ledger_unavailable_message

__all__ = ["PolicyEngine", "Refusal", "ledger_query_reader", "ledger_usage_reader"]

log = logging.getLogger("backlog_ops.policy")

_TYPES = {"budget": "ticket_budget_exceeded", "escalations": "ticket_escalations_exceeded",
          "ledger_unavailable": "ticket_limit_unverifiable", "gateway_budget": "gateway_budget_exceeded"}


@dataclass(frozen=True)
class Refusal:
    """A deliberate stop: what the client is told, and the facts behind it."""

    kind: str  # "budget" | "escalations" | "ledger_unavailable" | "gateway_budget"
    ticket: str | None  # None: a gateway-wide budget, not a ticket's
    project: str | None
    message: str
    used: float
    limit: float
    status: int = 402  # 402: not retried the way 429 is; 503 (ledger unavailable): try again later

    def detail(self) -> dict:
        return {
            "error": self.message,
            "type": _TYPES[self.kind],
            "ticket": self.ticket,
            "project": self.project,
            "used": self.used,
            "limit": self.limit,
        }


class PolicyEngine:
    """Counts per ticket (ledger + in flight + not yet written) and decides; thread-safe.

    `usage_reader(ticket, project, policy, call_ids)` returns (cost, escalations, call ids of
    `call_ids` that the ledger already has), read in one snapshot. It is called at most once
    per `refresh_seconds` per ticket, so the hot path usually touches only memory.

    `shared`: a store shared by every proxy process (policy/redis_counts.py, made with
    `policy.redis_counts.shared_counts_factory`), or None: this process's memory only. When the shared
    store cannot be reached, a limited ticket's calls follow `on_ledger_unavailable` as for an
    unreadable ledger: "allow" checks them in this process only (a loud, counted alert: replicas
    may then overshoot), "deny" refuses them with HTTP 503; Redis is asked again after a back-off
    (0.5 s, doubling, at most 5 s), so an outage never costs each call a timeout.
    """

    def __init__(
        self,
        usage_reader: Callable[[str, str | None, TicketPolicy, list[str]], tuple[float, int, set[str]]] | None = None,
        *,
        refresh_seconds: float = 2.0,
        stale_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        shared: Callable[[Callable], Any] | None = None,
    ) -> None:
        self._reader = usage_reader or ledger_usage_reader()
        self._clock = clock
        self._lock = threading.Lock()
        self._local = LocalCounts(self._read, refresh_seconds=refresh_seconds, stale_seconds=stale_seconds, clock=clock)
        # `shared(read)` makes the shared store (it needs the ledger reader); None: local only.
        self._shared = None
        if shared is not None:
            try:
                self._shared = shared(self._read)
            except BacklogOpsError as exc:  # a missing extra, a malformed URL: say so, count per process
                log.error("backlog-ops: cannot use the shared budget store (%s); per-ticket limits are checked in "
                          "this process only, so replicas and workers may overshoot a budget together", exc)
        self._shared_down_until = float("-inf")
        self._shared_backoff = 0.5
        # call_id -> (store, usage key, policy): where a reservation lives until it settles
        self._calls: dict[str, tuple[Any, tuple[str | None, str], TicketPolicy]] = {}
        self._down_since: float | None = None
        self._unchecked = Tally(
            log, "the spend ledger cannot be read ({reason}); per-ticket limits are checked against the last figures "
                 "read, and {total} calls of limited tickets were let through so far (" + LEDGER_UNAVAILABLE_KEY +
                 ": allow)", level=logging.ERROR, every=10.0)
        self._refused = Tally(
            log, "the spend ledger cannot be read ({reason}); {total} calls of limited tickets refused with HTTP 503 "
                 "so far (" + LEDGER_UNAVAILABLE_KEY + ": deny)", level=logging.ERROR, every=10.0)
        self._local_only = Tally(
            log, "{reason}; per-ticket limits are checked in this process only (replicas and workers may overshoot "
                 "a budget together): {total} calls of limited tickets so far (" + LEDGER_UNAVAILABLE_KEY + ": allow)",
            level=logging.ERROR, every=10.0)
        self._shared_refused = Tally(
            log, "{reason}; {total} calls of limited tickets refused with HTTP 503 so far (" + LEDGER_UNAVAILABLE_KEY +
                 ": deny)", level=logging.ERROR, every=10.0)
        self._unsettled = Tally(
            log, "{reason}; {total} finished calls could not be settled there so far (their reservations expire, "
                 "and the ledger counts them once written)", level=logging.ERROR, every=10.0)
        self._reason = ""
        self._shared_reason = ""

    @property
    def shared(self) -> bool:
        """Whether reservations are shared with other processes (a shared store is configured)."""
        return self._shared is not None

    def check(
        self,
        call_id: str,
        ticket: str,
        policy: TicketPolicy,
        *,
        escalation: bool,
        estimate_usd: float,
        config_hint: str | None = None,
    ) -> Refusal | None:
        """Refuse, or reserve (estimate_usd, escalation) for call_id until `settle`/`release`."""
        budget, _ = policy.budget_for(ticket)
        max_esc = policy.max_escalations_per_ticket
        if budget is None and (max_esc is None or not escalation):
            return None
        key = (policy.project, ticket)
        limits = {"estimate": estimate_usd, "escalation": escalation, "budget": budget,
                  "max_escalations": max_esc if escalation else None}
        deny = policy.on_ledger_unavailable == "deny"
        store = self._store()
        try:
            verdict = store.reserve(key, policy, call_id, dry=deny, **limits)
            if verdict.status == "checked":  # deny: reserve only once the figures are known to be current
                verdict = (verdict if verdict.counts.unreadable
                           else store.reserve(key, policy, call_id, **limits))
        except BudgetStoreError as exc:
            self._shared_failed(exc)
            if deny:
                self._shared_refused.add(reason=self._shared_reason)
                # The limit cannot be checked across replicas: refused as when the ledger is down.
                return Refusal("ledger_unavailable", ticket, policy.project,
                               ledger_unavailable_message(ticket, policy, config_hint), 0.0,
                               budget if budget is not None else float(max_esc or 0), status=503)
            self._local_only.add(reason=self._shared_reason)
            store = self._local
            verdict = store.reserve(key, policy, call_id, **limits)
        counts = verdict.counts
        if verdict.status == "budget":
            return Refusal("budget", ticket, policy.project,
                           budget_message(ticket, policy, counts.cost, budget, counts.fly_cost, config_hint),
                           counts.cost, budget)
        if verdict.status == "escalations":
            return Refusal("escalations", ticket, policy.project,
                           escalation_message(ticket, policy, counts.escalations, max_esc, counts.fly_escalations,
                                              config_hint), counts.escalations, max_esc)
        if verdict.status == "checked":  # deny, and the ledger cannot be read
            self._refused.add(reason=self._reason)
            return Refusal("ledger_unavailable", ticket, policy.project,
                           ledger_unavailable_message(ticket, policy, config_hint), counts.cost,
                           budget if budget is not None else float(max_esc or 0), status=503)
        if counts.unreadable:
            self._unchecked.add(reason=self._reason)
        with self._lock:
            self._calls[call_id] = (store, key, policy)
            if len(self._calls) > 100_000:  # bounded even if completion events never come: the oldest go
                for old in list(self._calls)[:10_000]:
                    del self._calls[old]
        return None

    def settle(
        self, call_id: str, cost: float, *, model_group: str | None = None, model: str | None = None, cache_hit: bool = False
    ) -> None:
        """A reserved call finished: keep its real cost (and whether it escalated) until the ledger has it."""
        with self._lock:
            entry = self._calls.pop(call_id, None)
        if entry is None:
            return
        store, key, policy = entry
        escalation = not cache_hit and (model_group == policy.frontier_alias or policy.is_frontier_model(model))
        try:
            store.settle(key, call_id, cost, escalation)
        except BudgetStoreError as exc:
            self._shared_failed(exc)
            self._unsettled.add(reason=self._shared_reason)

    def release(self, call_id: str) -> None:
        """A reserved call failed before any cost: forget its reservation."""
        with self._lock:
            entry = self._calls.pop(call_id, None)
        if entry is None:
            return
        store, key, _ = entry
        try:
            store.release(key, call_id)
        except BudgetStoreError as exc:
            self._shared_failed(exc)
            self._unsettled.add(reason=self._shared_reason)

    def usage(self, ticket: str, policy: TicketPolicy) -> tuple[float, int]:
        key = (policy.project, ticket)
        try:
            counts = self._store().usage(key, policy)
        except BudgetStoreError as exc:
            self._shared_failed(exc)
            counts = self._local.usage(key, policy)
        return counts.cost, counts.escalations

    # -- inside ----------------------------------------------------------------------------------

    def _store(self):
        """The shared store, unless it failed lately (then this process's own counts)."""
        if self._shared is None:
            return self._local
        if self._clock() < self._shared_down_until:
            return _Failing(BudgetStoreError(self._shared_reason))
        return self._shared if not self._shared_reason else _Recovering(self)

    def _shared_failed(self, exc: BudgetStoreError) -> None:
        now = self._clock()
        if now >= self._shared_down_until:
            self._shared_reason = str(exc)
            self._shared_down_until = now + self._shared_backoff
            self._shared_backoff = min(self._shared_backoff * 2, 5.0)

    def _shared_back(self) -> None:
        if self._shared_reason:
            log.warning("backlog-ops: the shared budget store answers again; per-ticket limits are shared by every "
                        "process again")
            self._shared_reason = ""
            self._shared_backoff = 0.5
            for tally in (self._local_only, self._shared_refused, self._unsettled):
                tally.report_rest()

    def _read(self, ticket: str, project: str | None, policy: TicketPolicy, call_ids: list[str]):
        """The ledger's figures for a ticket, or None when it cannot be read (counted, logged once it is back)."""
        try:
            figures = self._reader(ticket, project, policy, call_ids)
        except Exception as exc:  # noqa: BLE001 - any failure to read is "the ledger cannot be read"
            self._reason = str(exc) or type(exc).__name__
            if self._down_since is None:
                self._down_since = self._clock()
            return None
        if self._down_since is not None:
            log.warning("backlog-ops: the spend ledger can be read again after %.1f s; per-ticket limits are "
                        "checked against it", self._clock() - self._down_since)
            self._down_since = None
            self._unchecked.report_rest()
            self._refused.report_rest()
        return figures


class _Recovering:
    """The shared store's first use after a failure: says so once it answers again."""

    def __init__(self, engine: PolicyEngine) -> None:
        self._engine = engine

    def reserve(self, *args, **kwargs):
        verdict = self._engine._shared.reserve(*args, **kwargs)
        self._engine._shared_back()
        return verdict

    def usage(self, *args, **kwargs):
        counts = self._engine._shared.usage(*args, **kwargs)
        self._engine._shared_back()
        return counts

    def settle(self, *args, **kwargs):
        return self._engine._shared.settle(*args, **kwargs)

    def release(self, *args, **kwargs):
        return self._engine._shared.release(*args, **kwargs)


class _Failing:
    """Stands in for the shared store during its back-off: every use fails at once, without a network wait."""

    def __init__(self, error: BudgetStoreError) -> None:
        self._error = error

    def reserve(self, *args, **kwargs):
        raise self._error

    usage = reserve


def ledger_query_reader(query: Callable[..., Any], open_ledger: Callable[[], Any] | None = None, *,
                        max_backoff: float = 5.0, clock: Callable[[], float] = time.monotonic):
    """`read(*args)` = `query(ledger, *args)` over the spend ledger, with one connection kept open.

    A read that fails drops the connection and tries a new one at once (a restarted database
    is back); if that fails too, the reader raises LedgerError without touching the network
    until a back-off (0.5 s, doubling, at most `max_backoff`) has passed, so an outage never
    makes every call wait for a connection timeout.
    """
    state: dict[str, Any] = {"ledger": None, "retry_at": float("-inf"), "backoff": 0.5, "error": ""}
    lock = threading.Lock()

    def opener():
        if open_ledger is not None:
            return open_ledger()
        from backlog_ops.capture.proxy_writer import proxy_writer
        from backlog_ops.ledger import open_ledger as open_configured

        if not state.get("recovered"):
            # Once per process: let the writer load what a killed proxy journaled before the
            # first check counts the spend (milliseconds; at most 2 s).
            state["recovered"] = True
            proxy_writer().wait_loaded(2.0)
        return open_configured(connect_timeout=2)  # on the request path: never a long wait

    def drop() -> None:
        ledger, state["ledger"] = state["ledger"], None
        if ledger is not None:
            try:
                ledger.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close
                pass

    def attempt(args):
        if state["ledger"] is None:
            state["ledger"] = opener()
        return query(state["ledger"], *args)

    def read(*args: Any) -> Any:
        with lock:
            if state["ledger"] is None and clock() < state["retry_at"]:
                raise LedgerError(f"{state['error']} (next try in {state['retry_at'] - clock():.1f} s)")
            try:
                try:
                    result = attempt(args)
                except Exception:  # noqa: BLE001 - a connection that died: one new one at once
                    had = state["ledger"] is not None
                    drop()
                    if not had:
                        raise
                    result = attempt(args)
            except Exception as exc:  # noqa: BLE001
                drop()
                state["error"] = str(exc) or type(exc).__name__
                state["retry_at"] = clock() + state["backoff"]
                state["backoff"] = min(state["backoff"] * 2, max_backoff)
                raise LedgerError(state["error"]) from exc
            state["backoff"] = 0.5
        return result

    return read


def ledger_usage_reader(open_ledger: Callable[[], Any] | None = None, *, max_backoff: float = 5.0,
                        clock: Callable[[], float] = time.monotonic):
    """A PolicyEngine usage reader over the spend ledger (see ledger_query_reader for outages)."""

    def ticket_usage(ledger, ticket, project, policy, call_ids):
        return ledger.ticket_usage(
            ticket, project=project, frontier_alias=policy.frontier_alias,
            frontier_models=policy.frontier_models, call_ids=call_ids,
        )

    query = ledger_query_reader(ticket_usage, open_ledger, max_backoff=max_backoff, clock=clock)

    def read(ticket: str, project: str | None, policy: TicketPolicy, call_ids: list[str]) -> tuple[float, int, set[str]]:
        usage = query(ticket, project, policy, call_ids)
        return usage["cost_usd"], usage["escalations"], set(usage["present"])

    return read
