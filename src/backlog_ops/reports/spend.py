"""Per-ticket spend from the ledger: every ticket's totals, or one ticket's with a breakdown."""

from __future__ import annotations

from backlog_ops.ledger import open_ledger

__all__ = ["spend_report"]


def spend_report(ticket: str | None, *, by: str = "gate", project: str | None = None, since: str | None = None) -> dict:
    """Without a ticket: {"tickets": [...]}; with one ('-' = calls with no ticket): totals and breakdown."""
    with open_ledger() as ledger:
        if ticket is None:
            return {"tickets": ledger.tickets(project=project, since=since)}
        report = ledger.ticket(None if ticket == "-" else ticket, by=by, project=project, since=since)
    return report
