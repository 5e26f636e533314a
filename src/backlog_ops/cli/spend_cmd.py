"""`backlog-ops spend`: per-ticket spend from the ledger as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import TextIO

from backlog_ops.common.terminal import one_line, printable
from backlog_ops.errors import LedgerError
from backlog_ops.policy.messages import money
from backlog_ops.reports.spend import spend_report
from backlog_ops.reports.ticket import ticket_spend

__all__ = ["NO_TICKET", "format_budget", "format_table", "ledger_hint", "print_spend", "render_spend"]

NO_TICKET = "(no ticket)"
# A table cell longer than this is cut (JSON and CSV keep whole values).
MAX_CELL = 80


def print_spend(args, out: TextIO = sys.stdout) -> int:
    """Every ticket's spend, or one ticket's with its breakdown and (per ./backlog.config.json) its budget."""
    fmt = "json" if args.json else "csv" if args.csv else "table"
    budget = None
    try:
        if args.ticket is None:
            report = spend_report(None, by=args.by, project=args.project, since=args.since)
        else:
            spend = ticket_spend(args.ticket, by=args.by, project=args.project, since=args.since)
            report, budget = spend.report, spend.budget
            if spend.budget_problem:
                print(f"backlog-ops: warning: no budget shown: {one_line(spend.budget_problem)}", file=sys.stderr)
    except LedgerError as exc:
        raise LedgerError(ledger_hint(exc)) from None
    if budget is not None:
        report = {**report, "budget": budget}
    filtered = bool(args.project or args.since or args.ticket)
    out.write(render_spend(report, fmt, filtered=filtered))
    if budget is not None and fmt == "table":
        out.write("\n" + format_budget(budget))
    if not filtered and not report.get("tickets"):
        _say_when_no_proxy_records()
    return 0


def ledger_hint(exc: LedgerError) -> str:
    """A ledger error on one line, with what to do about it."""
    from backlog_ops.common.settings import settings

    text = " ".join(str(exc).split())
    if settings().ledger_backend == "postgres":
        return f"{text} (start PostgreSQL, or unset BACKLOG_LEDGER_URL to read the local SQLite ledger)"
    return text


def _say_when_no_proxy_records() -> None:
    """An empty ledger and no proxy running: say where calls come from (stderr: stdout stays data)."""
    from pathlib import Path

    from backlog_ops.doctor.gateway import START_HINT, gateway_url
    from backlog_ops.gateway.status import probe

    url = gateway_url(None, Path.cwd())[0]
    found = probe(url, timeout=3)
    if not found.answers:
        print(f"backlog-ops: no proxy answers at {url}, and calls are recorded by the proxy: {START_HINT}", file=sys.stderr)


def format_budget(status: dict | None) -> str:
    """One or two lines for `backlog-ops spend TICKET`; '' when no limit applies."""
    if not status:
        return ""
    lines = []
    if status["budget_usd"] is not None:
        state = "OVER BUDGET: new calls are refused" if status["over_budget"] else f"{money(status['remaining_usd'])} remaining"
        lines.append(
            f"budget: {money(status['spent_usd'])} of {money(status['budget_usd'])} spent, {state} ({printable(status['budget_key'])})"
        )
    if status["max_escalations"] is not None:
        lines.append(
            f"escalations: {status['escalations']} of {status['max_escalations']} frontier calls, "
            f"{status['escalations_remaining']} remaining ({printable(status['escalation_key'])})"
        )
    return "\n".join(lines) + "\n"


def render_spend(report: dict, fmt: str = "table", *, filtered: bool = False) -> str:
    """A spend_report as 'table', 'json' or 'csv' text.

    Ledger values come from callers: in the table and the CSV every control character is shown
    as an escape (`\\x1b`) and the table cuts cells at MAX_CELL characters; JSON escapes control
    characters itself (`\\u001b`), so it stays valid and exact.
    """
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=True) + "\n"
    if "tickets" in report:
        header = ["ticket", "project", "cost_usd", "calls", "tokens"]
        rows = [[printable(t["ticket_id"] or NO_TICKET), printable(t["project"] or ""), t["cost_usd"], t["calls"], t["tokens"]]
                for t in report["tickets"]]
        total = ["TOTAL", "", round(sum(t["cost_usd"] for t in report["tickets"]), 6),
                 sum(t["calls"] for t in report["tickets"]), sum(t["tokens"] for t in report["tickets"])]
    else:
        header = [report["by"], "cost_usd", "calls", "tokens"]
        rows = [[printable(b["key"]) if b["key"] is not None else "(none)", b["cost_usd"], b["calls"], b["tokens"]] for b in report["breakdown"]]
        total = ["TOTAL", report["cost_usd"], report["calls"], report["tokens"]]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(header)
        writer.writerows(rows)
        return buf.getvalue()
    text = ""
    if "ticket_id" in report:
        name = printable(report["ticket_id"] or NO_TICKET)
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
        return str(value) if len(str(value)) <= MAX_CELL else str(value)[:MAX_CELL - 3] + "..."

    text = [[cell(h, v) for h, v in zip(header, row)] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(header)]
    numeric = [all(isinstance(r[i], (int, float)) for r in rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric)).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in text[:-1]), sep, line(text[-1])])
