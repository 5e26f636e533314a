"""The spend report as one self-contained HTML page: `backlog-ops report --html FILE`.

data.py gathers what the page shows into a plain dict (from reports/views.py); page.py renders
that dict into HTML with the charts as inline SVG (svg.py), no script and no external resource.
Light to import (the CLI's parser reads DEFAULT_TOP): the renderer loads when a page is made.
"""

from __future__ import annotations

from pathlib import Path

from backlog_ops.reports.html.data import DEFAULT_TOP, report_data

__all__ = ["DEFAULT_TOP", "html_report", "report_data"]


def html_report(*, since: str | None = None, until: str | None = None, project: str | None = None,
                top: int = DEFAULT_TOP, ledger=None, project_dir: str | Path | None = None) -> str:
    """The page for these filters, as a string."""
    from backlog_ops.reports.html.page import render_page

    return render_page(report_data(since=since, until=until, project=project, top=top, ledger=ledger,
                                   project_dir=project_dir))
