"""The ledger's schema as an append-only list of named migrations.

Never edit or reorder a migration that has shipped: add a new one. Each runs once, in order, in
its own transaction, and is recorded by name. Errors propagate: a migration that fails stops the
ledger from opening (llm-tracking-learnings.md, insight 2) instead of leaving it half-migrated.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["MIGRATIONS", "MigrationConnection"]


class MigrationConnection:
    """What a migration sees: `execute(sql)` and the `dialect` ('sqlite' or 'postgres')."""

    def __init__(self, connection: Any, dialect: str) -> None:
        self._connection = connection
        self.dialect = dialect

    def execute(self, sql: str) -> None:
        if self.dialect == "postgres":
            with self._connection.cursor() as cur:
                cur.execute(sql)
        else:
            self._connection.execute(sql)

    def float_type(self) -> str:
        # SQLite's REAL is 8 bytes; PostgreSQL's REAL is 4 and would round costs.
        return "DOUBLE PRECISION" if self.dialect == "postgres" else "REAL"


def m001_create_calls(db: MigrationConnection) -> None:
    real = db.float_type()
    db.execute(
        f"""
        CREATE TABLE calls (
            call_id TEXT PRIMARY KEY,
            started_at TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('success', 'failure')),
            source TEXT NOT NULL DEFAULT 'proxy',
            session_id TEXT,
            agent_id TEXT,
            ticket_id TEXT,
            gate TEXT,
            project TEXT,
            agent_type TEXT,
            skill TEXT,
            component TEXT,
            model TEXT,
            model_group TEXT,
            provider TEXT,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd {real} NOT NULL DEFAULT 0,
            cache_hit INTEGER NOT NULL DEFAULT 0,
            saved_cost_usd {real} NOT NULL DEFAULT 0,
            latency_ms {real},
            error_class TEXT,
            key_alias TEXT,
            team_id TEXT
        )
        """
    )


def m002_index_ticket_and_time(db: MigrationConnection) -> None:
    db.execute("CREATE INDEX calls_ticket_started ON calls (ticket_id, started_at)")
    db.execute("CREATE INDEX calls_project_started ON calls (project, started_at)")
    db.execute("CREATE INDEX calls_started ON calls (started_at)")


def m003_index_ticket_policy(db: MigrationConnection) -> None:
    # The ticket-policy check sums one ticket's cost and frontier calls: a covering index
    # answers it without reading the table.
    db.execute(
        "CREATE INDEX calls_ticket_policy ON calls "
        "(ticket_id, project, status, cache_hit, model_group, model, cost_usd)"
    )


def m004_index_ticket_spend_by_gate(db: MigrationConnection) -> None:
    # `spend TICKET --by gate` (ticket_spend's default) reads only this index: answers stay
    # within milliseconds for tickets with tens of thousands of calls.
    db.execute(
        "CREATE INDEX calls_ticket_gate_spend ON calls "
        "(ticket_id, gate, cost_usd, prompt_tokens, completion_tokens)"
    )


def m005_add_guardrail_alerts(db: MigrationConnection) -> None:
    # Alert-only guardrails flag a call with the kinds they found ("injection.override,pii.email");
    # never the matched text. NULL: no alert (or a row written before guardrails existed).
    db.execute("ALTER TABLE calls ADD COLUMN guardrail_alerts TEXT")


def m006_add_ticket_source(db: MigrationConnection) -> None:
    # How the row's ticket was found: 'branch' when it was inferred from the git branch because
    # nothing set a context; NULL when a context was set (or a row written before inference).
    db.execute("ALTER TABLE calls ADD COLUMN ticket_source TEXT")


def m007_spend_rollups(db: MigrationConnection) -> None:
    # Per-day sums kept by triggers: reports over all tickets and one big ticket's report read
    # thousands of rollup rows instead of millions of calls (ledger/rollup.py).
    from backlog_ops.ledger.rollup import create_rollups

    create_rollups(db)


def m008_spend_session_and_ticket_rollups(db: MigrationConnection) -> None:
    # All-time views by session, and by ticket and one other dimension, read thousands of rollup
    # rows instead of every call or every (day, ticket, gate, agent, model...) row.
    from backlog_ops.ledger.rollup import M007_ROLLUPS, create_rollups

    create_rollups(db, ("spend_session_day", "spend_ticket_dim"),
                   (*M007_ROLLUPS, "spend_session_day", "spend_ticket_dim"))


def m009_one_ticket_index(db: MigrationConnection) -> None:
    # Calls land on many tickets at once, and each index that starts with the ticket costs every
    # insert a B-tree page of its own: at ten million rows that, not the rollups, bounded ingest.
    # Since m007/m008 the rollups answer `spend TICKET --by gate`, so m004's index is read by
    # nothing; m002's (ticket, time) and m003's covering policy index become one: the ticket's
    # time window is its prefix, and the policy check still reads it alone (it no longer narrows
    # by project first: a ticket id in two projects is rare). Built once, on the first open after
    # an upgrade: one to two minutes per ten million calls, writers waiting meanwhile.
    db.execute(
        "CREATE INDEX calls_ticket_time_policy ON calls "
        "(ticket_id, started_at, project, status, cache_hit, model_group, model, cost_usd)"
    )
    for name in ("calls_ticket_gate_spend", "calls_ticket_started", "calls_ticket_policy"):
        db.execute(f"DROP INDEX IF EXISTS {name}")


MIGRATIONS: list[tuple[str, Callable[[MigrationConnection], None]]] = [
    ("m001_create_calls", m001_create_calls),
    ("m002_index_ticket_and_time", m002_index_ticket_and_time),
    ("m003_index_ticket_policy", m003_index_ticket_policy),
    ("m004_index_ticket_spend_by_gate", m004_index_ticket_spend_by_gate),
    ("m005_add_guardrail_alerts", m005_add_guardrail_alerts),
    ("m006_add_ticket_source", m006_add_ticket_source),
    ("m007_spend_rollups", m007_spend_rollups),
    ("m008_spend_session_and_ticket_rollups", m008_spend_session_and_ticket_rollups),
    ("m009_one_ticket_index", m009_one_ticket_index),
]
