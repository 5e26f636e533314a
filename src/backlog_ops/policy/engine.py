"""The per-ticket check: what a ticket has used, and whether its next call may go.

What a ticket has used is counted from the ledger, plus what this process knows the ledger
does not have yet: calls in flight (each reserves an estimate of its cost, and one escalation
when it goes to the frontier alias) and calls finished but not yet written by the ledger's
background writer. Check and reservation happen together under one lock, so requests for one
ticket that arrive at once cannot all slip past the limit.

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
from dataclasses import dataclass, field
from typing import Any, Callable

from backlog_ops.common.warnings import Tally
from backlog_ops.errors import LedgerError
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

    def totals(self) -> tuple[float, int, float, int]:
        """(cost, escalations, of which in flight: cost, escalations)."""
        fly_cost = sum(c for c, _, _ in self.inflight.values())
        fly_esc = sum(1 for _, e, _ in self.inflight.values() if e)
        cost = self.ledger_cost + sum(c for c, _, _ in self.settled.values()) + fly_cost
        esc = self.ledger_escalations + sum(1 for _, e, _ in self.settled.values() if e) + fly_esc
        return cost, esc, fly_cost, fly_esc


class PolicyEngine:
    """Counts per ticket (ledger + in flight + not yet written) and decides; thread-safe.

    `usage_reader(ticket, project, policy, call_ids)` returns (cost, escalations, call ids of
    `call_ids` that the ledger already has), read in one snapshot. It is called at most once
    per `refresh_seconds` per ticket, so the hot path usually touches only memory.
    """

    def __init__(
        self,
        usage_reader: Callable[[str, str | None, TicketPolicy, list[str]], tuple[float, int, set[str]]] | None = None,
        *,
        refresh_seconds: float = 2.0,
        stale_seconds: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reader = usage_reader or ledger_usage_reader()
        self._refresh = refresh_seconds
        self._stale = stale_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._usage: dict[tuple[str | None, str], _Usage] = {}
        self._calls: dict[str, tuple[tuple[str | None, str], TicketPolicy]] = {}  # call_id -> (usage key, policy)
        self._down_since: float | None = None
        self._unchecked = Tally(
            log, "the spend ledger cannot be read ({reason}); per-ticket limits are checked against the last figures "
                 "read, and {total} calls of limited tickets were let through so far (" + LEDGER_UNAVAILABLE_KEY +
                 ": allow)", level=logging.ERROR, every=10.0)
        self._refused = Tally(
            log, "the spend ledger cannot be read ({reason}); {total} calls of limited tickets refused with HTTP 503 "
                 "so far (" + LEDGER_UNAVAILABLE_KEY + ": deny)", level=logging.ERROR, every=10.0)
        self._reason = ""

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
        with self._lock:
            usage = self._usage_for(key, policy)
            cost, esc, fly_cost, fly_esc = usage.totals()
            if budget is not None and cost >= budget:
                return Refusal(
                    "budget", ticket, policy.project,
                    budget_message(ticket, policy, cost, budget, fly_cost, config_hint), cost, budget,
                )
            if escalation and max_esc is not None and esc >= max_esc:
                return Refusal(
                    "escalations", ticket, policy.project,
                    escalation_message(ticket, policy, esc, max_esc, fly_esc, config_hint), esc, max_esc,
                )
            if usage.unreadable:
                if policy.on_ledger_unavailable == "deny":
                    self._refused.add(reason=self._reason)
                    return Refusal(
                        "ledger_unavailable", ticket, policy.project,
                        ledger_unavailable_message(ticket, policy, config_hint), cost,
                        budget if budget is not None else float(max_esc or 0), status=503,
                    )
                self._unchecked.add(reason=self._reason)
            usage.inflight[call_id] = (max(0.0, estimate_usd), escalation, self._clock())
            self._calls[call_id] = (key, policy)
            if len(self._calls) > 100_000:  # bounded even if completion events never come
                self._expire(self._clock(), force=True)
        return None

    def settle(
        self, call_id: str, cost: float, *, model_group: str | None = None, model: str | None = None, cache_hit: bool = False
    ) -> None:
        """A reserved call finished: keep its real cost (and whether it escalated) until the ledger has it."""
        with self._lock:
            entry = self._calls.pop(call_id, None)
            if entry is None:
                return
            key, policy = entry
            usage = self._usage.get(key)
            if usage is None:
                return
            usage.inflight.pop(call_id, None)
            escalation = not cache_hit and (model_group == policy.frontier_alias or policy.is_frontier_model(model))
            usage.settled[call_id] = (max(0.0, cost), escalation, self._clock())

    def release(self, call_id: str) -> None:
        """A reserved call failed before any cost: forget its reservation."""
        with self._lock:
            entry = self._calls.pop(call_id, None)
            usage = self._usage.get(entry[0]) if entry else None
            if usage is not None:
                usage.inflight.pop(call_id, None)

    def usage(self, ticket: str, policy: TicketPolicy) -> tuple[float, int]:
        with self._lock:
            cost, esc, _, _ = self._usage_for((policy.project, ticket), policy).totals()
        return cost, esc

    def _usage_for(self, key: tuple[str | None, str], policy: TicketPolicy) -> _Usage:
        usage = self._usage.get(key)
        now = self._clock()
        if usage is None:
            if len(self._usage) > 10_000:
                self._expire(now, force=True)
            usage = self._usage[key] = _Usage()
        if now - usage.read_at >= self._refresh:
            pending = list(usage.settled)
            try:
                cost, escalations, present = self._reader(key[1], key[0], policy, pending)
            except Exception as exc:  # noqa: BLE001 - any failure to read is "the ledger cannot be read"
                # Keep the last figures and what this process counted since; read again next time.
                usage.unreadable = True
                self._reason = str(exc) or type(exc).__name__
                if self._down_since is None:
                    self._down_since = now
                return usage
            usage.ledger_cost, usage.ledger_escalations, usage.read_at = cost, escalations, now
            usage.unreadable = False
            for call_id in present:
                usage.settled.pop(call_id, None)
            if self._down_since is not None:
                log.warning("backlog-ops: the spend ledger can be read again after %.1f s; per-ticket limits are "
                            "checked against it", now - self._down_since)
                self._down_since = None
                self._unchecked.report_rest()
                self._refused.report_rest()
            self._expire(now)
        return usage

    def _expire(self, now: float, force: bool = False) -> None:
        for key, usage in list(self._usage.items()):
            for bucket in (usage.settled, usage.inflight):
                for call_id, (_, _, at) in list(bucket.items()):
                    if now - at > self._stale:
                        bucket.pop(call_id, None)
                        self._calls.pop(call_id, None)
            if force and not usage.inflight and not usage.settled:
                del self._usage[key]


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
