"""What a refused client is told: the limit it reached, and where to raise it."""

from __future__ import annotations

from typing import Any

from backlog_ops.policy.limits import (
    BUDGET_KEY,
    ESCALATION_KEY,
    LEDGER_UNAVAILABLE_KEY,
    TicketPolicy,
    override_key,
)
from backlog_ops.project.file import CONFIG_FILE

__all__ = [
    "alias_budget_message",
    "budget_message",
    "escalation_message",
    "ledger_unavailable_message",
    "monthly_budget_message",
    "money",
    "provider_budget_message",
]


def money(value: float) -> str:
    """USD with four decimals below $100 (per-call costs are fractions of a cent), else two."""
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def _where(policy: TicketPolicy, config_hint: str | None) -> str:
    return _render_hint(policy.source, config_hint, restart=False)


def _render_hint(source: str | None, config_hint: str | None, *, restart: bool) -> str:
    source = source or CONFIG_FILE
    then = "then run `backlog-ops config render"
    then += f" --input {source} --output {config_hint}`" if config_hint else f" --input {source}` to the proxy's config"
    after = "and restart the proxy (LiteLLM reads its router budgets at start)" if restart else \
        "(the running proxy picks the new limit up within seconds)"
    return f"in {source}, {then} {after}"


def _of_project(policy: TicketPolicy) -> str:
    return f" (project {policy.project})" if policy.project else ""


def budget_message(
    ticket: str, policy: TicketPolicy, cost: float, budget: float, fly_cost: float, config_hint: str | None
) -> str:
    """A budget refusal: spent so far (with what calls still running reserve) and the keys that raise it."""
    flying = f", including {money(fly_cost)} reserved for calls still running" if fly_cost > 0 else ""
    return (
        f"backlog-ops: ticket {ticket}{_of_project(policy)} has reached its budget: spent {money(cost)} of {money(budget)}"
        f"{flying}. This call was refused. To raise the limit, set {override_key(ticket)} "
        f"(this ticket) or {BUDGET_KEY} (every ticket) {_where(policy, config_hint)}."
    )


def escalation_message(
    ticket: str, policy: TicketPolicy, esc: int, max_esc: int, fly_esc: int, config_hint: str | None
) -> str:
    """An escalation refusal: frontier calls so far and how to go on (a cheaper alias, or a higher limit)."""
    flying = f", {fly_esc} of them still running" if fly_esc else ""
    return (
        f"backlog-ops: ticket {ticket}{_of_project(policy)} has used its {max_esc} escalation(s) to the "
        f"{policy.frontier_alias} model: {esc} frontier call(s) so far{flying}. This {policy.frontier_alias} call "
        f"was refused; use the cheap or balanced alias, or raise {ESCALATION_KEY} {_where(policy, config_hint)}."
    )


def ledger_unavailable_message(ticket: str, policy: TicketPolicy, config_hint: str | None) -> str:
    """A refusal because the ledger cannot be read and the policy says deny (HTTP 503: try again later).

    The cause stays in the proxy log: it may name the database, and this text reaches the client.
    """
    return (
        f"backlog-ops: ticket {ticket}{_of_project(policy)} has a spend limit, and the spend ledger cannot be read "
        f"right now, so this call cannot be checked against it and was refused ({LEDGER_UNAVAILABLE_KEY} is \"deny\"). "
        f"Try again in a moment; the proxy's log says why the ledger is unavailable. To let calls go on while it is "
        f"down, set {LEDGER_UNAVAILABLE_KEY} to \"allow\" {_where(policy, config_hint)}."
    )


def monthly_budget_message(spent: float, limit: float, budgets: Any, config_hint: str | None) -> str:
    """The gateway's overall budget is spent: every call through this proxy is refused until the period rolls on."""
    return (
        f"backlog-ops: the gateway has reached its overall budget: spent {money(spent)} of {money(limit)} in the "
        f"last {budgets.period} (all projects). This call was refused. To raise the limit, set "
        f"llmOps.budgets.monthlyUSD (or llmOps.budgets.period) {_render_hint(budgets.source, config_hint, restart=False)}."
    )


def alias_budget_message(alias: str, model: str, limit: float | None, budgets: Any, config_hint: str | None) -> str:
    """An alias (and its fallbacks) over their budgets: LiteLLM's router found no deployment within budget."""
    of = f" of {money(limit)}" if limit is not None else ""
    return (
        f"backlog-ops: the {alias} model ({model}) has used its budget{of} for the period ({budgets.period}), and "
        f"its fallbacks have none left either. This call was refused. To raise the limit, set "
        f"llmOps.budgets.perAliasUSD.{alias} {_render_hint(budgets.source, config_hint, restart=True)}."
    )


def provider_budget_message(provider: str, spent: float, limit: float, budgets: Any, config_hint: str | None) -> str:
    """A provider over its budget: LiteLLM's router skips its deployments, and no other was left."""
    return (
        f"backlog-ops: provider {provider} has reached its budget: spent {money(spent)} of {money(limit)} in this "
        f"period ({budgets.period}); no other deployment could serve the call. This call was refused. To raise the "
        f"limit, set llmOps.budgets.perProviderUSD.{provider} {_render_hint(budgets.source, config_hint, restart=True)}."
    )
