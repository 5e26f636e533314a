"""Per-ticket budgets and escalation limits: where they are set, what a ticket has used, and the check.

Where the limits live: a project's backlog.config.json (`llmOps.budgets.perTicketUSD`,
`llmOps.budgets.tickets`, `llmOps.routing.maxEscalationsPerTicket`). `backlog-ops config render`
copies them into the rendered LiteLLM config under `backlog_ops.policy.projects.<project>`; the
ticket-policy callback reads that section from the config file the proxy runs (or from
$BACKLOG_POLICY_FILE), and re-reads it when the file changes. One proxy can serve several
projects: requests are matched to a project by their `project:` tag.

What a ticket has used is counted from the ledger, plus what this process knows the ledger
does not have yet: calls in flight (each reserves an estimate of its cost, and one escalation
when it goes to the frontier alias) and calls finished but not yet written by the ledger's
background writer. Check and reservation happen together under one lock, so requests for one
ticket that arrive at once cannot all slip past the limit.

This module imports neither litellm nor pydantic: the callback runs it on every request.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from backlog_ops.errors import ConfigError, InvalidContext
from backlog_ops.context.fields import check_field

__all__ = [
    "PolicyEngine",
    "Refusal",
    "TicketPolicy",
    "format_budget",
    "parse_policy_section",
    "parse_routing_section",
    "ticket_budget",
]

PROJECT_CONFIG = "backlog.config.json"
BUDGET_KEY = "llmOps.budgets.perTicketUSD"
ESCALATION_KEY = "llmOps.routing.maxEscalationsPerTicket"


def _override_key(ticket: str) -> str:
    return f'llmOps.budgets.tickets["{ticket}"]'


@dataclass(frozen=True)
class TicketPolicy:
    """One project's per-ticket limits, as rendered into the proxy config."""

    project: str | None
    ticket_budget_usd: float | None = None
    ticket_budgets_usd: dict[str, float] = field(default_factory=dict)
    max_escalations_per_ticket: int | None = None
    frontier_alias: str = "frontier"
    frontier_models: tuple[str, ...] = ()
    source: str | None = None  # the backlog.config.json it came from

    def budget_for(self, ticket: str) -> tuple[float | None, str]:
        """(limit in USD or None, the backlog.config.json key that sets it)."""
        if ticket in self.ticket_budgets_usd:
            return self.ticket_budgets_usd[ticket], _override_key(ticket)
        return self.ticket_budget_usd, BUDGET_KEY

    @property
    def limited(self) -> bool:
        return bool(self.ticket_budget_usd is not None or self.ticket_budgets_usd or self.max_escalations_per_ticket is not None)

    def is_escalation(self, model_group: str | None) -> bool:
        """A call to the frontier alias (critical-tagged calls are routed there before this check)."""
        return model_group == self.frontier_alias


def _number(value: Any, key: str, *, integer: bool = False) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{key}: must be a number >= 0 or null, got {value!r}")
    if integer and int(value) != value:
        raise ConfigError(f"{key}: must be a whole number, got {value!r}")
    return int(value) if integer else float(value)


def parse_policy_section(section: Any) -> dict[str, TicketPolicy]:
    """The `backlog_ops` section of a proxy config -> {project: TicketPolicy}; ConfigError names the key."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError("must be a mapping with a 'policy' key")
    policy = section.get("policy") or {}
    projects = policy.get("projects") if isinstance(policy, dict) else None
    if projects is None:
        return {}
    if not isinstance(projects, dict):
        raise ConfigError("policy.projects: must map project names to their limits")
    out: dict[str, TicketPolicy] = {}
    for name, entry in projects.items():
        where = f"policy.projects.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a mapping")
        overrides = entry.get("ticket_budgets_usd") or {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"{where}.ticket_budgets_usd: must map ticket ids to USD")
        checked = {}
        for ticket, limit in overrides.items():
            try:
                check_field("ticket_id", ticket)
            except InvalidContext as exc:
                raise ConfigError(f"{where}.ticket_budgets_usd: {exc}") from None
            checked[ticket] = _number(limit, f"{where}.ticket_budgets_usd.{ticket}")
        models = entry.get("frontier_models") or []
        if not isinstance(models, list):
            raise ConfigError(f"{where}.frontier_models: must be a list of provider/model names")
        out[str(name)] = TicketPolicy(
            project=str(name),
            ticket_budget_usd=_number(entry.get("ticket_budget_usd"), f"{where}.ticket_budget_usd"),
            ticket_budgets_usd=checked,
            max_escalations_per_ticket=_number(
                entry.get("max_escalations_per_ticket"), f"{where}.max_escalations_per_ticket", integer=True
            ),
            frontier_alias=str(entry.get("frontier_alias") or "frontier"),
            frontier_models=tuple(str(m) for m in models),
            source=str(entry["source"]) if entry.get("source") else None,
        )
    return out


def parse_routing_section(section: Any) -> tuple[str, tuple[str, ...]]:
    """(frontier alias, critical tags) from the `backlog_ops.routing` section."""
    routing = (section or {}).get("routing") if isinstance(section, dict) else None
    if routing is None:
        return "frontier", ()
    if not isinstance(routing, dict):
        raise ConfigError("routing: must be a mapping with frontier_alias and critical_tags")
    alias = routing.get("frontier_alias") or "frontier"
    tags = routing.get("critical_tags") or []
    if not isinstance(alias, str) or not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ConfigError("routing: frontier_alias must be a model name and critical_tags a list of tags")
    return alias, tuple(tags)


# -- the hot-path check --------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A deliberate stop: what the client is told, and the facts behind it."""

    kind: str  # "budget" | "escalations"
    ticket: str
    project: str | None
    message: str
    used: float
    limit: float

    def detail(self) -> dict:
        return {
            "error": self.message,
            "type": f"ticket_{self.kind}_exceeded",
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
        budget, budget_key = policy.budget_for(ticket)
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
                    _budget_message(ticket, policy, cost, budget, budget_key, fly_cost, config_hint), cost, budget,
                )
            if escalation and max_esc is not None and esc >= max_esc:
                return Refusal(
                    "escalations", ticket, policy.project,
                    _escalation_message(ticket, policy, esc, max_esc, fly_esc, config_hint), esc, max_esc,
                )
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
            escalation = not cache_hit and (
                model_group == policy.frontier_alias or _is_frontier_model(model, policy.frontier_models)
            )
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
            cost, escalations, present = self._reader(key[1], key[0], policy, pending)
            usage.ledger_cost, usage.ledger_escalations, usage.read_at = cost, escalations, now
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
                        self._calls.pop(call_id, None)
            if force and not usage.inflight and not usage.settled:
                del self._usage[key]


def _is_frontier_model(model: str | None, frontier_models: tuple[str, ...]) -> bool:
    if not model:
        return False
    return any(model == m or (("/" in m) and model == m.split("/", 1)[1]) for m in frontier_models)


def ledger_usage_reader(open_ledger: Callable[[], Any] | None = None):
    """A usage reader over the spend ledger, with one connection kept open."""
    state: dict[str, Any] = {}
    lock = threading.Lock()

    def read(ticket: str, project: str | None, policy: TicketPolicy, call_ids: list[str]) -> tuple[float, int, set[str]]:
        with lock:
            ledger = state.get("ledger")
            if ledger is None:
                if open_ledger is None:
                    from backlog_ops.ledger import open_ledger as opener
                else:
                    opener = open_ledger
                ledger = state["ledger"] = opener()
            usage = ledger.ticket_usage(
                ticket, project=project, frontier_alias=policy.frontier_alias,
                frontier_models=policy.frontier_models, call_ids=call_ids,
            )
        return usage["cost_usd"], usage["escalations"], set(usage["present"])

    return read


def _money(value: float) -> str:
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def _where(policy: TicketPolicy, config_hint: str | None) -> str:
    source = policy.source or PROJECT_CONFIG
    then = "then run `backlog-ops config render"
    then += f" --input {source} --output {config_hint}`" if config_hint else f" --input {source}` to the proxy's config"
    return f"in {source}, {then} (the running proxy picks the new limit up within seconds)"


def _budget_message(ticket, policy, cost, budget, key, fly_cost, config_hint) -> str:
    project = f" (project {policy.project})" if policy.project else ""
    flying = f", including {_money(fly_cost)} reserved for calls still running" if fly_cost > 0 else ""
    return (
        f"backlog-ops: ticket {ticket}{project} has reached its budget: spent {_money(cost)} of {_money(budget)}"
        f"{flying}. This call was refused. To raise the limit, set {_override_key(ticket)} "
        f"(this ticket) or {BUDGET_KEY} (every ticket) {_where(policy, config_hint)}."
    )


def _escalation_message(ticket, policy, esc, max_esc, fly_esc, config_hint) -> str:
    project = f" (project {policy.project})" if policy.project else ""
    flying = f", {fly_esc} of them still running" if fly_esc else ""
    return (
        f"backlog-ops: ticket {ticket}{project} has used its {max_esc} escalation(s) to the "
        f"{policy.frontier_alias} model: {esc} frontier call(s) so far{flying}. This {policy.frontier_alias} call "
        f"was refused; use the cheap or balanced alias, or raise {ESCALATION_KEY} {_where(policy, config_hint)}."
    )


# -- what a ticket has left (MCP ticket_spend, `backlog-ops spend`) -----------------------------


def ticket_budget(ticket_id: str, project_dir: str | Path | None = None) -> dict | None:
    """A ticket's budget, spend and escalations per its project's backlog.config.json and the ledger.

    None when the project has no backlog.config.json or sets neither a budget for the ticket nor
    an escalation limit. Raises ConfigError for an invalid backlog.config.json.
    """
    from backlog_ops.project.schema import load_backlog_config, policy_section
    from backlog_ops.ledger import open_ledger
    from backlog_ops.project.file import default_project

    directory = Path.cwd() if project_dir is None else Path(project_dir)
    path = directory / PROJECT_CONFIG
    if not path.is_file():
        return None
    config = load_backlog_config(path)
    project = config.project.name or default_project(directory)
    policy = parse_policy_section({"policy": {"projects": {project: policy_section(config, path)}}})[project]
    budget, key = policy.budget_for(ticket_id)
    max_esc = policy.max_escalations_per_ticket
    if budget is None and max_esc is None:
        return None
    with open_ledger() as ledger:
        usage = ledger.ticket_usage(
            ticket_id, project=project, frontier_alias=policy.frontier_alias, frontier_models=policy.frontier_models
        )
    spent = usage["cost_usd"]
    return {
        "ticket_id": ticket_id,
        "project": project,
        "budget_usd": budget,
        "spent_usd": round(spent, 6),
        "remaining_usd": None if budget is None else round(max(0.0, budget - spent), 6),
        "over_budget": budget is not None and spent >= budget,
        "budget_key": key if budget is not None else None,
        "escalations": usage["escalations"],
        "max_escalations": max_esc,
        "escalations_remaining": None if max_esc is None else max(0, max_esc - usage["escalations"]),
        "escalation_key": ESCALATION_KEY,
        "config": str(path.resolve()),
    }


def format_budget(status: dict | None) -> str:
    """One or two lines for `backlog-ops spend TICKET`; '' when no limit applies."""
    if not status:
        return ""
    lines = []
    if status["budget_usd"] is not None:
        state = "OVER BUDGET: new calls are refused" if status["over_budget"] else f"{_money(status['remaining_usd'])} remaining"
        lines.append(
            f"budget: {_money(status['spent_usd'])} of {_money(status['budget_usd'])} spent, {state} ({status['budget_key']})"
        )
    if status["max_escalations"] is not None:
        lines.append(
            f"escalations: {status['escalations']} of {status['max_escalations']} frontier calls, "
            f"{status['escalations_remaining']} remaining ({status['escalation_key']})"
        )
    return "\n".join(lines) + "\n"
