"""The one place that picks the ledger backend: PostgreSQL when BACKLOG_LEDGER_URL is set, else SQLite."""

from __future__ import annotations

from pathlib import Path

from backlog_ops.common.settings import settings

__all__ = ["describe_ledger", "open_ledger"]


def open_ledger(path: Path | None = None, *, connect_timeout: int | None = None):
    """The configured ledger (`path`: a SQLite file to open instead, for tests and tools).

    `connect_timeout`: seconds to wait for PostgreSQL (its default is 10; the budget check, on
    the request path, waits less).
    """
    conf = settings()
    if path is None and conf.ledger_url:
        from backlog_ops.ledger.postgres import PostgresLedger

        if connect_timeout is not None:
            return PostgresLedger(conf.ledger_url, schema=conf.ledger_schema, connect_timeout=connect_timeout)
        return PostgresLedger(conf.ledger_url, schema=conf.ledger_schema)
    from backlog_ops.ledger.sqlite import SqliteLedger, default_ledger_path

    return SqliteLedger(default_ledger_path() if path is None else path)


def describe_ledger() -> str:
    """Which ledger open_ledger() writes to, for people: never a user name or password."""
    conf = settings()
    if conf.ledger_url:
        from backlog_ops.common.secrets import dsn_location

        return f"PostgreSQL at {dsn_location(conf.ledger_url)} (schema {conf.ledger_schema})"
    from backlog_ops.ledger.sqlite import default_ledger_path

    return f"SQLite at {default_ledger_path()}"
