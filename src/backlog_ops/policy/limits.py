"""Per-ticket limits: what a proxy config's `backlog_ops` section sets, and the keys that set it.

Where the limits live: a project's backlog.config.json (`llmOps.budgets.perTicketUSD`,
`llmOps.budgets.tickets`, `llmOps.routing.maxEscalationsPerTicket`). `backlog-ops config render`
copies them into the rendered LiteLLM config under `backlog_ops.policy.projects.<project>`, and
the routing (frontier alias, critical tags) under `backlog_ops.routing`. One proxy can serve
several projects: requests are matched to a project by their `project:` tag.

Imports neither litellm nor pydantic: the ticket-policy callback uses it on every request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backlog_ops.context.fields import check_field
from backlog_ops.errors import ConfigError, InvalidContext

__all__ = [
    "ANY_PROJECT",
    "BUDGET_KEY",
    "ESCALATION_KEY",
    "LEDGER_UNAVAILABLE_KEY",
    "ON_LEDGER_UNAVAILABLE",
    "TicketPolicy",
    "override_key",
    "parse_policy_section",
    "parse_routing_section",
    "policy_for",
]

BUDGET_KEY = "llmOps.budgets.perTicketUSD"
ESCALATION_KEY = "llmOps.routing.maxEscalationsPerTicket"
LEDGER_UNAVAILABLE_KEY = "llmOps.budgets.onLedgerUnavailable"
# What a limited ticket's calls get while the ledger cannot be read: "allow" (go on, checked
# against the last figures read, with a loud alert in the proxy log) or "deny" (HTTP 503).
ON_LEDGER_UNAVAILABLE = ("allow", "deny")
# The entry of policy.projects that applies to requests of a project with no entry of its own.
ANY_PROJECT = "*"


def override_key(ticket: str) -> str:
    """The backlog.config.json key that sets one ticket's budget."""
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
    on_ledger_unavailable: str = "allow"  # one of ON_LEDGER_UNAVAILABLE

    def budget_for(self, ticket: str) -> tuple[float | None, str]:
        """(limit in USD or None, the backlog.config.json key that sets it)."""
        if ticket in self.ticket_budgets_usd:
            return self.ticket_budgets_usd[ticket], override_key(ticket)
        return self.ticket_budget_usd, BUDGET_KEY

    @property
    def limited(self) -> bool:
        return bool(self.ticket_budget_usd is not None or self.ticket_budgets_usd or self.max_escalations_per_ticket is not None)

    def is_escalation(self, model_group: str | None) -> bool:
        """A call to the frontier alias (critical-tagged calls are routed there before this check)."""
        return model_group == self.frontier_alias

    def is_frontier_model(self, model: str | None) -> bool:
        """Whether `model` (provider/model or bare) is one of the frontier models."""
        if not model:
            return False
        return any(model == m or (("/" in m) and model == m.split("/", 1)[1]) for m in self.frontier_models)


def policy_for(policies: dict[str, TicketPolicy], project: str | None) -> TicketPolicy | None:
    """The limits for a request of `project`: its own entry, else the '*' entry, else None."""
    return policies.get(project or "") or policies.get(ANY_PROJECT)


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
    return {str(name): _project_policy(str(name), entry) for name, entry in projects.items()}


def _project_policy(name: str, entry: Any) -> TicketPolicy:
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
    on_unavailable = entry.get("on_ledger_unavailable") or "allow"
    if on_unavailable not in ON_LEDGER_UNAVAILABLE:
        raise ConfigError(f"{where}.on_ledger_unavailable: must be 'allow' or 'deny', got {on_unavailable!r}")
    models = entry.get("frontier_models") or []
    if not isinstance(models, list):
        raise ConfigError(f"{where}.frontier_models: must be a list of provider/model names")
    return TicketPolicy(
        project=name,
        ticket_budget_usd=_number(entry.get("ticket_budget_usd"), f"{where}.ticket_budget_usd"),
        ticket_budgets_usd=checked,
        max_escalations_per_ticket=_number(
            entry.get("max_escalations_per_ticket"), f"{where}.max_escalations_per_ticket", integer=True
        ),
        frontier_alias=str(entry.get("frontier_alias") or "frontier"),
        frontier_models=tuple(str(m) for m in models),
        source=str(entry["source"]) if entry.get("source") else None,
        on_ledger_unavailable=on_unavailable,
    )


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
