"""`backlog-ops spend`: spend over every ticket, or one ticket's with its budget, as a table, JSON, CSV or Markdown."""

from __future__ import annotations

import sys
from typing import TextIO

from backlog_ops.common.terminal import one_line, printable
from backlog_ops.errors import LedgerError
from backlog_ops.policy.messages import money
from backlog_ops.reports.views_text import NO_TICKET, render_view, summary_line

__all__ = ["format_budget", "ledger_hint", "print_spend"]


def print_spend(args, out: TextIO = sys.stdout) -> int:
    """The view asked for; with a TICKET, its summary and (per ./backlog.config.json) its budget."""
    from backlog_ops.reports.ticket import ticket_spend
    from backlog_ops.reports.views import parse_groups, spend_view

    fmt = "json" if args.json else "csv" if args.csv else "markdown" if args.markdown else "table"
    by = parse_groups(args.by or ("gate" if args.ticket is not None else "ticket"))
    options = {"by": by, "project": args.project, "since": args.since, "until": args.until, "top": args.top, "order": "time"}
    budget = None
    try:
        if args.ticket is None:
            view = spend_view(**options)
        else:
            spend = ticket_spend(args.ticket, **options)
            view, budget = spend.report, spend.budget
            if spend.budget_problem:
                print(f"backlog-ops: warning: no budget shown: {one_line(spend.budget_problem)}", file=sys.stderr)
    except LedgerError as exc:
        raise LedgerError(ledger_hint(exc)) from None
    filtered = bool(args.project or args.since or args.until or args.ticket)
    text = render_view(view, fmt, filtered=filtered, extra={"budget": budget} if budget is not None else None)
    if args.ticket is not None and fmt in ("table", "markdown") and view["rows"]:
        name = NO_TICKET if args.ticket == "-" else args.ticket
        text = summary_line(view["totals"], name) + "\n\n" + text
    out.write(text)
    if budget is not None and fmt in ("table", "markdown"):
        out.write("\n" + format_budget(budget))
    if not filtered and not view["rows"]:
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
