"""`backlog-ops spend`: per-ticket spend from the ledger as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import TextIO

from backlog_ops.ledger import open_ledger

__all__ = ["NO_TICKET", "format_table", "print_spend", "render_spend", "spend_report"]

NO_TICKET = "(no ticket)"


def spend_report(ticket: str | None, *, by: str = "gate", project: str | None = None, since: str | None = None) -> dict:
    """Without a ticket: {"tickets": [...]}; with one ('-' = calls with no ticket): totals and breakdown."""
    with open_ledger() as ledger:
        if ticket is None:
            return {"tickets": ledger.tickets(project=project, since=since)}
        report = ledger.ticket(None if ticket == "-" else ticket, by=by, project=project, since=since)
    return report


def print_spend(args, out: TextIO = sys.stdout) -> int:
    report = spend_report(args.ticket, by=args.by, project=args.project, since=args.since)
    fmt = "json" if args.json else "csv" if args.csv else "table"
    budget = _budget(args.ticket)
    if budget is not None:
        report["budget"] = budget
    out.write(render_spend(report, fmt, filtered=bool(args.project or args.since or args.ticket)))
    if budget is not None and fmt == "table":
        from backlog_ops.policy.budgets import format_budget

        out.write("\n" + format_budget(budget))
    return 0


def _budget(ticket: str | None) -> dict | None:
    """The ticket's budget and escalations per ./backlog.config.json; None when no limit applies."""
    if ticket in (None, "-"):
        return None
    from backlog_ops.policy.budgets import ticket_budget
    from backlog_ops.errors import ConfigError

    try:
        return ticket_budget(ticket)
    except ConfigError as exc:
        print(f"backlog-ops: warning: no budget shown: {exc}", file=sys.stderr)
        return None


def render_spend(report: dict, fmt: str = "table", *, filtered: bool = False) -> str:
    """A spend_report as 'table', 'json' or 'csv' text."""
    if fmt == "json":
        return json.dumps(report, indent=2) + "\n"
    if "tickets" in report:
        header = ["ticket", "project", "cost_usd", "calls", "tokens"]
        rows = [[t["ticket_id"] or NO_TICKET, t["project"] or "", t["cost_usd"], t["calls"], t["tokens"]] for t in report["tickets"]]
        total = ["TOTAL", "", round(sum(t["cost_usd"] for t in report["tickets"]), 6),
                 sum(t["calls"] for t in report["tickets"]), sum(t["tokens"] for t in report["tickets"])]
    else:
        header = [report["by"], "cost_usd", "calls", "tokens"]
        rows = [[b["key"] if b["key"] is not None else "(none)", b["cost_usd"], b["calls"], b["tokens"]] for b in report["breakdown"]]
        total = ["TOTAL", report["cost_usd"], report["calls"], report["tokens"]]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(header)
        writer.writerows(rows)
        return buf.getvalue()
    text = ""
    if "ticket_id" in report:
        name = report["ticket_id"] or NO_TICKET
        text += f"{name}: ${report['cost_usd']:.4f} over {report['calls']} calls, {report['tokens']:,} tokens\n\n"
    if not rows:
        return text + "no calls recorded" + (" for this filter" if filtered else "") + "\n"
    return text + format_table(header, rows + [total]) + "\n"


def format_table(header: list[str], rows: list[list]) -> str:
    """Plain-text table: money with 4 decimals, counts with thousands separators, numbers right-aligned."""
    def cell(col: str, value) -> str:
        if col == "cost_usd" and isinstance(value, (int, float)):
            return f"${value:,.4f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    text = [[cell(h, v) for h, v in zip(header, row)] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(header)]
    numeric = [all(isinstance(r[i], (int, float)) for r in rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric)).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in text[:-1]), sep, line(text[-1])])
