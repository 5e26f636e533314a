"""The MCP tool spend_report's work: spend over every ticket, grouped as `backlog-ops spend` groups it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from backlog_ops.common.secrets import scrub_dsn
from backlog_ops.errors import BacklogOpsError, ToolInputError

__all__ = ["REPORT_HINTS", "SpendReportResult", "spend_report"]

REPORT_HINTS = {
    "group_by": "send one or two groups, e.g. 'ticket', 'ticket,day' or 'model'",
    "since": "send YYYY-MM-DD, an ISO 8601 time, or a span such as '24h', '7d'",
    "until": "send YYYY-MM-DD, an ISO 8601 time, or a span such as '24h', '7d'",
    "top": "send a whole number from 1 to 1000, e.g. top=10",
}


class SpendReportResult(BaseModel):
    """Spend over every ticket (or one), grouped, most expensive first (backlog_ops.reports.views)."""

    by: list[str]
    since: str | None = None
    until: str | None = None
    project: str | None = None
    ticket: str | None = None
    rows: list[dict] = Field(description="one object per group: the group values, then the figures")
    totals: dict
    others: int = Field(default=0, description="groups summed into the '(others)' row")

    def text(self) -> str:
        from backlog_ops.reports.views_text import render_view, summary_line

        window = f" since {self.since}" if self.since else ""
        window += f" until {self.until}" if self.until else ""
        head = f"Spend by {' and '.join(self.by)}{window}: {summary_line(self.totals)}."
        if not self.rows:
            return head + "\nNo calls recorded" + (" in that period." if window else ".")
        folded = f"\n({self.others} more groups summed as '(others)'.)" if self.others else ""
        # Markdown: ledger values are escaped (no control character, no markup).
        return head + "\n\n" + render_view(self.model_dump(), "markdown").rstrip("\n") + folded


def spend_report(*, group_by: str = "ticket", since: str | None = None, until: str | None = None,
                 project: str | None = None, ticket_id: str | None = None, top: int | None = 10) -> SpendReportResult:
    """Spend over every ticket grouped by one or two of reports.views.GROUPS; ToolInputError for bad arguments."""
    from backlog_ops.errors import ReportError
    from backlog_ops.reports.views import spend_view

    try:
        view = spend_view(by=group_by, since=since, until=until, project=project or None, ticket=ticket_id or None,
                          top=top, order="time")
    except ReportError as exc:
        raise ToolInputError(f"Invalid arguments: {exc}") from None
    except BacklogOpsError as exc:
        raise ToolInputError(f"cannot read the spend ledger: {scrub_dsn(exc)}") from None
    return SpendReportResult(**view)
