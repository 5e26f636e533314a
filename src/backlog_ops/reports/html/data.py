"""What the HTML report shows, gathered from the ledger's spend views into one plain dict.

Five views over one open ledger: cost per ticket (top N, the rest folded into "(others)"), cost
per ticket and day (the same top N), and per ticket and gate, model and agent; then the budgets
of the tickets shown and of every ticket the project's backlog.config.json gives a budget of its
own. No SQL here: reports/views.py owns the queries.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from backlog_ops.common.times import format_time

__all__ = ["BREAKDOWNS", "DEFAULT_TOP", "OTHERS", "periods_between", "report_data", "roll_up_periods", "time_unit_for"]

DEFAULT_TOP = 10
BREAKDOWNS = ("gate", "model", "agent")
OTHERS = "(others)"  # the first key of the row the views fold the rest into
# Past this many days the over-time chart shows weeks, past MAX_WEEKS weeks months: columns stay readable.
MAX_DAYS = 62
MAX_WEEKS = 60


def report_data(*, since: str | None = None, until: str | None = None, project: str | None = None,
                top: int = DEFAULT_TOP, ledger=None, project_dir: str | Path | None = None,
                now: float | None = None) -> dict:
    """Everything the page shows; `ledger` an open ledger, else one is opened (and closed) here."""
    if ledger is None:
        from backlog_ops.ledger import open_ledger

        with open_ledger() as own:
            return report_data(since=since, until=until, project=project, top=top, ledger=own,
                               project_dir=project_dir, now=now)
    from backlog_ops.reports.views import spend_view

    scope = {"since": since, "until": until, "project": project, "top": top, "ledger": ledger}
    tickets = spend_view(by=("ticket",), **scope)
    by_day = spend_view(by=("ticket", "day"), **scope)
    breakdowns = {name: spend_view(by=("ticket", name), **scope)["rows"] for name in BREAKDOWNS}
    shown = [row["ticket"] for row in tickets["rows"] if row["ticket"] not in (None, OTHERS)]
    budgets, budget_problem, budget_project = _budgets(shown, project, ledger, project_dir)
    days = sorted({row["day"] for row in by_day["rows"] if row["day"]})
    unit = time_unit_for(days)
    return {
        "generated_at": format_time(time.time() if now is None else now),
        "since": tickets.get("since"),
        "until": tickets.get("until"),
        "project": project,
        "top": top,
        "totals": tickets["totals"],
        "tickets": tickets["rows"],
        "time_unit": unit,
        "periods": periods_between(days[0], days[-1], unit) if days else [],
        "over_time": roll_up_periods(by_day["rows"], unit),
        "breakdowns": breakdowns,
        "budgets": budgets,
        "budget_project": budget_project,
        "budget_problem": budget_problem,
    }


def _budgets(tickets: list[str], project: str | None, ledger, project_dir) -> tuple[list[dict], str | None, str | None]:
    """(budget statuses, why none could be read, the project they are for) per ./backlog.config.json."""
    from backlog_ops.errors import BacklogOpsError
    from backlog_ops.policy.limits import BUDGET_KEY
    from backlog_ops.reports.ticket import ticket_budgets

    try:
        budgets = ticket_budgets(tickets, project_dir, ledger=ledger)
    except (BacklogOpsError, OSError, ValueError) as exc:
        return [], f"no budgets shown: {exc}", None
    # A ticket of another project shown on an all-projects page has spent nothing in the config's
    # project: its default budget there is not its budget. Tickets the config names stay.
    budgets = [b for b in budgets if b["spent_usd"] > 0 or b["budget_key"] not in (None, BUDGET_KEY)]
    budget_project = budgets[0]["project"] if budgets else None
    if project is not None and budget_project is not None and budget_project != project:
        # The config's limits are for another project than the one this page is about.
        return [], None, None
    return budgets, None, budget_project


def time_unit_for(days: list[str]) -> str:
    """'day', 'week' or 'month': the finest unit that keeps the over-time chart to a readable width."""
    if len(days) < 2:
        return "day"
    span = (dt.date.fromisoformat(days[-1]) - dt.date.fromisoformat(days[0])).days + 1
    if span <= MAX_DAYS:
        return "day"
    return "week" if span <= MAX_WEEKS * 7 else "month"


def _period(day: str, unit: str) -> str:
    if unit == "day":
        return day
    if unit == "month":
        return day[:7]
    date = dt.date.fromisoformat(day)
    return (date - dt.timedelta(days=date.weekday())).isoformat()  # a week is named by its Monday


def roll_up_periods(rows: list[dict], unit: str) -> list[dict]:
    """(ticket, day) rows summed into (ticket, period) rows, in period order."""
    numeric = [k for k, v in (rows[0].items() if rows else ()) if k not in ("ticket", "day") and isinstance(v, (int, float))]
    out: dict[tuple, dict] = {}
    for row in rows:
        if not row.get("day"):
            continue
        key = (row["ticket"], _period(row["day"], unit))
        acc = out.setdefault(key, {"ticket": key[0], "period": key[1], **{k: 0 for k in numeric}})
        for k in numeric:
            acc[k] += row[k] or 0
    for acc in out.values():
        if "cost_usd" in acc:
            acc["cost_usd"] = round(acc["cost_usd"], 6)
    return sorted(out.values(), key=lambda r: r["period"])


def periods_between(first_day: str, last_day: str, unit: str) -> list[str]:
    """Every period from the one holding first_day to the one holding last_day: a gap shows as a gap."""
    out, day = [], dt.date.fromisoformat(first_day)
    last = _period(last_day, unit)
    while True:
        period = _period(day.isoformat(), unit)
        if not out or out[-1] != period:
            out.append(period)
        if period == last:
            return out
        day += dt.timedelta(days=1 if unit == "day" else 7 if unit == "week" else 28)
