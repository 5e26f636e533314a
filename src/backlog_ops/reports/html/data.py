"""What the HTML report shows, gathered from the ledger's spend views into one plain dict.

Views over one open ledger and one time window: cost per ticket (top N, the rest folded into
"(others)"); for each ticket shown, by gate and agent and by model and day; per day (the
"(others)" share of a day is its total less the shown tickets'); then the budgets of the
tickets shown and of every ticket the project's backlog.config.json gives a budget of its own.
No SQL here: reports/views.py owns the queries.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from backlog_ops.common.times import format_time
from backlog_ops.reports.views import FIELDS, OTHERS, parse_window, spend_view

__all__ = ["BREAKDOWNS", "DEFAULT_TOP", "OTHERS", "periods_between", "report_data", "roll_up_periods", "time_unit_for"]

DEFAULT_TOP = 10
BREAKDOWNS = ("gate", "model", "agent")
# Past this many days the over-time chart shows weeks, past MAX_WEEKS weeks months: columns stay readable.
MAX_DAYS = 62
MAX_WEEKS = 60


def report_data(*, since: str | None = None, until: str | None = None, project: str | None = None,
                top: int = DEFAULT_TOP, ledger=None, project_dir: str | Path | None = None,
                now: float | None = None) -> dict:
    """Everything the page shows; `ledger` an open ledger, else one is opened (and closed) here.

    since/until as spend_view takes them ('7d', a date, an ISO time), resolved once so that
    every view covers the same window. ReportError for a bad one.
    """
    now = time.time() if now is None else now
    start, end = parse_window(since, until, now=now)
    if ledger is None:
        from backlog_ops.ledger import open_ledger

        with open_ledger() as own:
            return report_data(since=start, until=end, project=project, top=top, ledger=own,
                               project_dir=project_dir, now=now)
    scope = {"since": start, "until": end, "project": project, "ledger": ledger}
    tickets = spend_view(by=("ticket",), top=top, **scope)
    shown = [row["ticket"] for row in tickets["rows"] if row["ticket"] != OTHERS]
    # Two views per ticket shown, each reading only that ticket's rows (an index range), cost
    # less on a large ledger than views over every ticket's breakdown that would be cut to the
    # top N afterwards; the four breakdowns are sums of their rows.
    breakdowns: dict[str, list[dict]] = {name: [] for name in BREAKDOWNS}
    by_day: list[dict] = []
    for ticket in shown:
        one = {**scope, "ticket": "-" if ticket is None else ticket}
        gate_agent = spend_view(by=("gate", "agent"), **one)["rows"]
        model_day = spend_view(by=("model", "day"), **one)["rows"]
        for name, rows in (("gate", gate_agent), ("agent", gate_agent), ("model", model_day)):
            breakdowns[name] += [{"ticket": ticket, **row} for row in _sum_by(rows, name)]
        by_day += [{"ticket": ticket, **row} for row in _sum_by(model_day, "day")]
    if len(shown) < len(tickets["rows"]):
        by_day += _others_per_day(by_day, spend_view(by=("day",), **scope)["rows"])
    budgets, budget_problem, budget_project = _budgets([t for t in shown if t is not None], project, ledger, project_dir)
    days = sorted({row["day"] for row in by_day if row["day"]})
    unit = time_unit_for(days)
    return {
        "generated_at": format_time(now),
        "since": start,
        "until": end,
        "project": project,
        "top": top,
        "totals": tickets["totals"],
        "tickets": tickets["rows"],
        "time_unit": unit,
        "periods": periods_between(days[0], days[-1], unit) if days else [],
        "over_time": roll_up_periods(by_day, unit),
        "breakdowns": breakdowns,
        "budgets": budgets,
        "budget_project": budget_project,
        "budget_problem": budget_problem,
    }


def _sum_by(rows: list[dict], key: str) -> list[dict]:
    """Rows of a two-group view summed over the other group: one row per value of `key`, costliest first."""
    out: dict = {}
    for row in rows:
        acc = out.setdefault(row[key], {key: row[key], **{f: 0 for f in FIELDS}})
        for f in FIELDS:
            acc[f] += row[f]
    for acc in out.values():
        acc["cost_usd"] = round(acc["cost_usd"], 6)
    return sorted(out.values(), key=lambda r: (-r["cost_usd"], r[key] is None, str(r[key])))


def _others_per_day(top_rows: list[dict], day_rows: list[dict]) -> list[dict]:
    """Per day, what the tickets not shown cost: the day's totals less the shown tickets' rows."""
    shown: dict[str, dict] = {}
    for row in top_rows:
        acc = shown.setdefault(row["day"], {})
        for key, value in row.items():
            if key not in ("ticket", "day"):
                acc[key] = acc.get(key, 0) + value
    out = []
    for day in day_rows:
        rest = {key: value - shown.get(day["day"], {}).get(key, 0) for key, value in day.items() if key != "day"}
        rest["cost_usd"] = max(round(rest["cost_usd"], 6), 0.0)
        if rest["calls"] or rest["failed_calls"] or rest["cost_usd"]:
            out.append({"ticket": OTHERS, "day": day["day"], **rest})
    return out


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
