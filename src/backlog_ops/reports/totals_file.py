"""One small file per ticket with what it has cost so far: what the status line and the hooks read.

    BACKLOG_HOME/ticket-totals/<project>~<ticket>.json     ('-' for a ticket with no project)

    {"project": "shop-api", "ticket_id": "FEAT-1", "spent_usd": 1.23, "escalations": 1,
     "budget_usd": 5.0, "budget_key": "llmOps.budgets.perTicketUSD", "max_escalations": 3,
     "source": "/home/me/shop-api/backlog.config.json", "updated_at": "2026-12-03T07:05:01.123+00:00"}

Summing a ticket's rows takes milliseconds on a large ledger and a database driver to import;
reading this file takes microseconds, so a status line that runs every few seconds stays as fast
as a bare interpreter. The ledger writer's keeper (reports/totals_keeper.py) writes it, from the
ledger itself, after the rows of a ticket are written; the limits come from the policy the proxy
enforces. Light: os and fastjson only.
"""

from __future__ import annotations

import os

from backlog_ops.common import fastjson
from backlog_ops.common.home import home_dir, write_atomic
from backlog_ops.common.state_files import file_stem, read_small_json

__all__ = ["MAX_BYTES", "lock_path", "read_totals", "totals_dir", "totals_path", "write_totals"]

MAX_BYTES = 16 * 1024


def totals_dir() -> str:
    return os.path.join(home_dir(), "ticket-totals")


def lock_path() -> str:
    """The lock writers of totals files take (several proxies may share one home)."""
    return os.path.join(totals_dir(), ".lock")


def totals_path(project: str | None, ticket: str | None) -> str | None:
    """The file of (project, ticket); None when either is not a name that may become a file name."""
    ticket_name = _name(ticket)
    project_name = "-" if project is None else _name(project)
    if ticket_name is None or project_name is None:
        return None
    return os.path.join(totals_dir(), f"{project_name}~{ticket_name}.json")


def read_totals(project: str | None, ticket: str | None) -> dict | None:
    """The ticket's totals, or None when there are none yet or the file is unreadable (never raises)."""
    path = totals_path(project, ticket)
    if path is None:
        return None
    data = read_small_json(path, MAX_BYTES)
    if data is None or data.get("ticket_id") != ticket:
        return None
    return data


def write_totals(totals: dict) -> None:
    """Replace the ticket's file (callers hold lock_path()); no fsync: the ledger is the record."""
    path = totals_path(totals.get("project"), totals.get("ticket_id"))
    if path is None:
        return
    write_atomic(path, (fastjson.dumps(totals) + "\n").encode(), durable=False)


def _name(value: object) -> str | None:
    # Ticket ids and projects are validated slugs already; this only keeps a crafted tag off the disk.
    return file_stem(value, max_len=64, bad_first=".-")
