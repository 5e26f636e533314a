"""`backlog-ops report --html FILE | --open`: the spend report as one self-contained HTML page."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from backlog_ops.errors import LedgerError, ReportError

__all__ = ["add_report_args", "run_report"]


def add_report_args(p) -> None:
    """The report command's options (main.py's parser calls this: its edits stay one line)."""
    from backlog_ops.reports.html import DEFAULT_TOP

    p.add_argument("--html", metavar="FILE", help="write the page to FILE (replaced atomically)")
    p.add_argument("--open", action="store_true",
                   help="open the page in the default browser (without --html: written under BACKLOG_HOME/reports/)")
    p.add_argument("--top", type=_top, default=DEFAULT_TOP, metavar="N",
                   help=f"tickets shown one by one, the rest as '(others)' (default: {DEFAULT_TOP})")


def run_report(args, out: TextIO = sys.stdout) -> int:
    from backlog_ops.cli.spend_cmd import ledger_hint
    from backlog_ops.common.home import home_dir, write_atomic
    from backlog_ops.common.terminal import printable
    from backlog_ops.reports.html import html_report

    if not args.html and not args.open:
        raise ReportError("say where the page goes: --html FILE, or --open to open it in a browser")
    try:
        page = html_report(since=args.since, until=args.until, project=args.project, top=args.top)
    except LedgerError as exc:
        raise LedgerError(ledger_hint(exc)) from None
    if args.html:
        path = Path(args.html).expanduser().resolve()
    else:
        import time

        path = Path(home_dir()) / "reports" / time.strftime("spend-%Y%m%d-%H%M%S.html", time.gmtime())
    write_atomic(path, page.encode(), mode=0o600, durable=False)  # HomeError says what went wrong
    print(f"report written to {printable(str(path))}", file=out)
    if args.open:
        import webbrowser

        if not webbrowser.open(path.as_uri()):
            print(f"backlog-ops: no browser found to open it: open {printable(path.as_uri())} yourself", file=sys.stderr)
    return 0


def _top(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 50:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number from 1 to 50")
    return value
