"""Exact per-day spend rollups, kept by the database on every write to `calls`.

Two tables sum the calls of a UTC day:
- `spend_ticket_day`: per (day, project, ticket) — daily, weekly, monthly and per-ticket totals;
- `spend_day`: per (day, project, ticket, gate, agent type, model, skill, source) — any of those
  breakdowns, one ticket's or every ticket's.
Triggers on `calls` add a new row's figures and subtract an old row's, so an upserted (replayed,
updated, late-priced) call is counted once, with its latest values, and a deleted one not at all.
Keys are stored as '' for NULL (a NULL never equals itself in a unique key); readers map '' back.
`row_count` counts ledger rows of any status: a rollup row whose calls all moved elsewhere (an
update changed their ticket) keeps zeros and is left out by readers (HAVING SUM(row_count) > 0).
"""

from __future__ import annotations

__all__ = ["MEASURES", "ROLLUPS", "create_rollups", "measure_exprs"]

# rollup table -> its key columns (calls columns; `day` is derived from started_at)
ROLLUPS = {
    "spend_ticket_day": ("day", "project", "ticket_id"),
    "spend_day": ("day", "project", "ticket_id", "gate", "agent_type", "model", "skill", "source"),
}

# Summed figures, in the order every spend query returns them.
MEASURES = ("row_count", "calls", "failed_calls", "cache_hits", "input_tokens", "output_tokens",
            "cache_write_tokens", "cache_read_tokens", "cost_usd")


def measure_exprs(rec: str = "") -> tuple[str, ...]:
    """Each MEASURES figure of one calls row (`rec`: 'NEW.', 'OLD.' or '' for a plain SELECT).

    input_tokens leave cache reads and writes out: every capture path stores prompt_tokens with
    them included (LiteLLM's convention), and ccusage's "input" is the uncached part.
    """
    r = rec
    return (
        "1",
        f"CASE WHEN {r}status = 'success' THEN 1 ELSE 0 END",
        f"CASE WHEN {r}status = 'success' THEN 0 ELSE 1 END",
        f"CASE WHEN {r}cache_hit <> 0 THEN 1 ELSE 0 END",
        f"CASE WHEN {r}prompt_tokens > {r}cache_read_tokens + {r}cache_write_tokens "
        f"THEN {r}prompt_tokens - {r}cache_read_tokens - {r}cache_write_tokens ELSE 0 END",
        f"{r}completion_tokens",
        f"{r}cache_write_tokens",
        f"{r}cache_read_tokens",
        f"{r}cost_usd",
    )


def _key_exprs(keys: tuple[str, ...], rec: str = "") -> list[str]:
    return [f"substr({rec}started_at, 1, 10)" if k == "day" else f"COALESCE({rec}{k}, '')" for k in keys]


def _upsert(table: str, rec: str, sign: str) -> str:
    """Add (sign '') or subtract (sign '-') one calls row (`rec` 'NEW.' or 'OLD.') in `table`."""
    keys = ROLLUPS[table]
    values = _key_exprs(keys, rec) + [f"{sign}({e})" for e in measure_exprs(rec)]
    return (
        f"INSERT INTO {table} ({', '.join(keys + MEASURES)}) VALUES ({', '.join(values)}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in MEASURES)
    )


def create_rollups(db) -> None:
    """Create the rollup tables and their triggers, and fill them from the calls already stored.

    `db` is a migrations.MigrationConnection; the caller runs this in one transaction.
    """
    postgres = db.dialect == "postgres"
    if postgres:
        # No writer may commit between the backfill's snapshot and the trigger: its rows would
        # be in neither. Writers wait for this migration's commit (a few seconds per million rows).
        db.execute("LOCK TABLE calls IN SHARE ROW EXCLUSIVE MODE")
    real = db.float_type()
    big = "BIGINT" if postgres else "INTEGER"
    for table, keys in ROLLUPS.items():
        columns = [f"{k} TEXT NOT NULL" for k in keys]
        columns += [f"{m} {real if m == 'cost_usd' else big} NOT NULL" for m in MEASURES]
        suffix = " WITHOUT ROWID" if not postgres else ""
        db.execute(f"CREATE TABLE {table} ({', '.join(columns)}, PRIMARY KEY ({', '.join(keys)})){suffix}")
        # One ticket's report reads only its own rows.
        db.execute(f"CREATE INDEX {table}_ticket ON {table} (ticket_id, day)")
        db.execute(
            f"INSERT INTO {table} ({', '.join(keys + MEASURES)}) "
            f"SELECT {', '.join(_key_exprs(keys))}, {', '.join(f'SUM({e})' for e in measure_exprs())} "
            f"FROM calls GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}"
        )
    if postgres:
        add = ";\n".join(_upsert(t, "NEW.", "") for t in ROLLUPS)
        sub = ";\n".join(_upsert(t, "OLD.", "-") for t in ROLLUPS)
        # SET search_path FROM CURRENT: the function finds the rollups in the ledger's schema
        # whatever the writing session's search_path is.
        db.execute(
            "CREATE FUNCTION calls_spend_rollup() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$\n"
            f"BEGIN\nIF TG_OP <> 'INSERT' THEN\n{sub};\nEND IF;\nIF TG_OP <> 'DELETE' THEN\n{add};\nEND IF;\n"
            "RETURN NULL;\nEND\n$$"
        )
        db.execute(
            "CREATE TRIGGER calls_spend_rollup AFTER INSERT OR UPDATE OR DELETE ON calls "
            "FOR EACH ROW EXECUTE FUNCTION calls_spend_rollup()"
        )
        return
    add = "".join(_upsert(t, "NEW.", "") + ";\n" for t in ROLLUPS)
    sub = "".join(_upsert(t, "OLD.", "-") + ";\n" for t in ROLLUPS)
    db.execute(f"CREATE TRIGGER calls_rollup_insert AFTER INSERT ON calls BEGIN\n{add}END")
    db.execute(f"CREATE TRIGGER calls_rollup_update AFTER UPDATE ON calls BEGIN\n{sub}{add}END")
    db.execute(f"CREATE TRIGGER calls_rollup_delete AFTER DELETE ON calls BEGIN\n{sub}END")
