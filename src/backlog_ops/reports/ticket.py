"""One ticket's spend with its budget: what `backlog-ops spend TICKET` and the MCP tool ticket_spend show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backlog_ops.errors import BacklogOpsError
from backlog_ops.policy.limits import ESCALATION_KEY, parse_policy_section
from backlog_ops.project.file import CONFIG_FILE
from backlog_ops.reports.views import spend_view

__all__ = ["TicketSpend", "ticket_budget", "ticket_budgets", "ticket_spend"]


@dataclass(frozen=True)
class TicketSpend:
    """A ticket's spend report and, when its project sets limits, its budget."""

    report: dict  # spend_view(ticket=...): the ticket's rows by one group, and its totals
    budget: dict | None  # ticket_budget(ticket), or None when no limit applies or it cannot be read
    budget_problem: str | None = None  # why the budget could not be read

    @property
    def remaining_usd(self) -> float | None:
        """Budget left, when the ticket has a dollar budget."""
        return self.budget.get("remaining_usd") if self.budget else None


def ticket_spend(
    ticket: str,
    *,
    by: str | tuple[str, ...] = "gate",
    project: str | None = None,
    since: str | None = None,
    until: str | None = None,
    project_dir: str | Path | None = None,
    **view_options,
) -> TicketSpend:
    """A ticket's spend ('-' = calls with no ticket) and its budget per project_dir/backlog.config.json.

    `by`, since, until and view_options are spend_view's. A ledger that cannot be read raises;
    a budget that cannot be read is None, with the reason.
    """
    report = spend_view(by=by, ticket=ticket, project=project, since=since, until=until, **view_options)
    if ticket == "-":
        return TicketSpend(report, None)
    try:
        return TicketSpend(report, ticket_budget(ticket, project_dir))
    except (BacklogOpsError, OSError, ValueError) as exc:
        return TicketSpend(report, None, str(exc))


def ticket_budget(ticket_id: str, project_dir: str | Path | None = None) -> dict | None:
    """A ticket's budget, spend and escalations per its project's backlog.config.json and the ledger.

    None when the project has no backlog.config.json or sets neither a budget for the ticket nor
    an escalation limit. Raises ConfigError for an invalid backlog.config.json.
    """
    found = _project_policy(project_dir)
    if found is None or not found[2].limited:
        return None
    from backlog_ops.ledger import open_ledger

    with open_ledger() as ledger:
        return _budget_status(ledger, ticket_id, *found)


def ticket_budgets(ticket_ids, project_dir: str | Path | None = None, *, ledger=None) -> list[dict]:
    """ticket_budget() of each of these tickets and of every ticket the config gives a budget of its
    own, in that order, skipping tickets with no limit; [] without a backlog.config.json.

    One read of the config and one ledger (`ledger`, else one opened here) for all of them.
    """
    found = _project_policy(project_dir)
    if found is None or not found[2].limited:
        return []
    wanted = list(dict.fromkeys([t for t in ticket_ids if t] + sorted(found[2].ticket_budgets_usd)))
    if ledger is not None:
        return [s for s in (_budget_status(ledger, ticket, *found) for ticket in wanted) if s is not None]
    from backlog_ops.ledger import open_ledger

    with open_ledger() as own:
        return [s for s in (_budget_status(own, ticket, *found) for ticket in wanted) if s is not None]


def _project_policy(project_dir: str | Path | None):
    """(config path, project name, its TicketPolicy), or None without a backlog.config.json."""
    from backlog_ops.project.file import default_project
    from backlog_ops.project.schema import load_backlog_config, policy_section

    directory = Path.cwd() if project_dir is None else Path(project_dir)
    path = directory / CONFIG_FILE
    if not path.is_file():
        return None
    config = load_backlog_config(path)
    project = config.project.name or default_project(directory)
    policy = parse_policy_section({"policy": {"projects": {project: policy_section(config, path)}}})[project]
    return path, project, policy


def _budget_status(ledger, ticket_id: str, path: Path, project: str, policy) -> dict | None:
    budget, key = policy.budget_for(ticket_id)
    max_esc = policy.max_escalations_per_ticket
    if budget is None and max_esc is None:
        return None
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
