"""Exact spend rollups, kept up to date in the transaction that writes the calls.

Four tables sum the calls of a UTC day:
- `spend_dim_day`: per (day, project) and one of gate, agent type, model, skill or source (`dim`
  names it, `value` is its value; dim '' holds the day's totals) — views over every ticket;
- `spend_ticket_day`: per (day, project, ticket) — per-ticket totals by day, week or month;
- `spend_day`: per (day, project, ticket, gate, agent type, model, skill, source) — any of those
  breakdowns of one ticket, and two of them at once;
- `spend_session_day`: per (day, project, session) — views by session.
One has no day, for all-time views: a ticket by one dimension over every day otherwise reads one
spend_day row per ticket, day and combination of the other four keys:
- `spend_ticket_dim`: per (project, ticket) and one of gate, agent type, model, skill or source
  (dim '' holds the ticket's totals), like spend_dim_day.
A written row's figures are added and the figures of the row it replaced subtracted, so an
upserted (replayed, updated, late-priced) call counts once, with its latest values.

Who keeps them: in PostgreSQL, statement-level triggers on `calls` (one aggregated upsert per
rollup per statement, exact whoever writes and however many replicas write at once); in SQLite,
which only has per-row triggers (they halved the ingest rate), `Deltas` in the writer's own
transaction, which SQLite makes the only writer while it runs (BEGIN IMMEDIATE).

Keys are stored as '' for NULL (a NULL never equals itself in a unique key); readers map '' back.
`row_count` counts ledger rows of any status: a rollup row whose calls all moved elsewhere (an
update changed their ticket) keeps zeros, and readers leave it out (HAVING SUM(row_count) > 0).
"""

from __future__ import annotations

from operator import itemgetter

from backlog_ops.ledger.record import COLUMNS

__all__ = ["DIM_COLUMNS", "DIM_TABLE", "DIM_TABLES", "M007_ROLLUPS", "MEASURES", "ROLLUPS", "TABLES", "TICKET_DIM_TABLE", "Deltas",
           "backfill_sql", "create_rollups", "measure_exprs", "upsert_sql"]

# rollup table -> its key columns (calls columns; `day` is the UTC day of started_at)
ROLLUPS = {
    "spend_ticket_day": ("day", "project", "ticket_id"),
    "spend_day": ("day", "project", "ticket_id", "gate", "agent_type", "model", "skill", "source"),
    "spend_session_day": ("day", "project", "session_id"),
}
# The per-dimension tables: their key before (dim, value), and the calls columns they sum by ('': totals).
DIM_TABLE = "spend_dim_day"
TICKET_DIM_TABLE = "spend_ticket_dim"
DIM_TABLES = {DIM_TABLE: ("day", "project"), TICKET_DIM_TABLE: ("project", "ticket_id")}
DIM_COLUMNS = ("", "gate", "agent_type", "model", "skill", "source")
TABLES = {**ROLLUPS, **{t: prefix + ("dim", "value") for t, prefix in DIM_TABLES.items()}}  # every rollup and its key

# Summed figures, in the order every spend query returns them.
MEASURES = ("row_count", "calls", "failed_calls", "cache_hits", "input_tokens", "output_tokens",
            "cache_write_tokens", "cache_read_tokens", "cost_usd")


def measure_exprs(rec: str = "") -> tuple[str, ...]:
    """Each MEASURES figure of one calls row in SQL (`rec`: a table alias with its dot, or '').

    Deltas.figures computes the same in Python. input_tokens leave cache reads and writes out:
    every capture path stores prompt_tokens with them included (LiteLLM's convention), and
    ccusage's "input" is the uncached part.
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


def upsert_sql(table: str) -> str:
    """Add one group's figures (keys then MEASURES, '?' placeholders) to `table`."""
    keys = TABLES[table]
    return (
        f"INSERT INTO {table} ({', '.join(keys + MEASURES)}) VALUES ({', '.join('?' for _ in keys + MEASURES)}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in MEASURES)
    )


_COL = {name: i for i, name in enumerate(COLUMNS)}
_STATUS, _HIT, _PROMPT, _READ, _WRITE, _OUTPUT, _COST, _STARTED = (
    _COL[c] for c in ("status", "cache_hit", "prompt_tokens", "cache_read_tokens", "cache_write_tokens",
                      "completion_tokens", "cost_usd", "started_at"))


# The finest key every rollup's key is a projection of: spend_day's and the session.
_FINE = ("day", "project", "ticket_id", "gate", "agent_type", "model", "skill", "source", "session_id")
_FINE_COLUMNS = tuple(_COL[k] for k in _FINE[1:])
_AT = {k: i for i, k in enumerate(_FINE)}
_KEY_AT = {table: tuple(_AT[k] for k in keys) for table, keys in ROLLUPS.items()}
_DIM_AT = {table: tuple(_AT[k] for k in prefix) for table, prefix in DIM_TABLES.items()}
_DIMS_AT = tuple((dim, _AT[dim] if dim else None) for dim in DIM_COLUMNS)


class Deltas:
    """What a batch of calls writes changes in each rollup, summed per key (SQLite's writer).

    Rows are summed once, per finest key (every rollup key is a projection of it); the rollups'
    sums are projected from those when asked for: a batch has far fewer distinct finest keys than
    rows, so most of the per-key work is done once per key rather than once per row and rollup.
    """

    def __init__(self) -> None:
        self.fine: dict[tuple, list] = {}

    @staticmethod
    def figures(row: tuple) -> list:
        """MEASURES of one row in COLUMNS order, as measure_exprs computes them."""
        ok = row[_STATUS] == "success"
        prompt, read, write = row[_PROMPT], row[_READ], row[_WRITE]
        return [1, 1 if ok else 0, 0 if ok else 1, 1 if row[_HIT] else 0, max(0, prompt - read - write),
                row[_OUTPUT], write, read, row[_COST]]

    def add(self, row: tuple, sign: int) -> None:
        """Add (sign 1) or take away (sign -1) one calls row, in COLUMNS order."""
        figures = self.figures(row)
        if sign < 0:
            figures = [-f for f in figures]
        key = (str(row[_STARTED])[:10], *[row[i] or "" for i in _FINE_COLUMNS])
        total = self.fine.get(key)
        if total is None:
            self.fine[key] = figures
        else:
            for j, value in enumerate(figures):
                total[j] += value

    def rows(self, table: str) -> list[tuple]:
        """Parameters for upsert_sql(table), one per key that changed, in key order.

        The finest sums are gathered per rollup key first and added column by column once
        per key (C loops: zip and sum), not one addition per value in Python; key order makes
        the upserts walk the rollup's B-tree in order.
        """
        groups: dict[tuple, list] = {}
        if table in DIM_TABLES:
            prefix_of = itemgetter(*_DIM_AT[table])
            for fine, figures in self.fine.items():
                prefix = prefix_of(fine)
                for dim, i in _DIMS_AT:
                    groups.setdefault((*prefix, dim, fine[i] if i is not None else ""), []).append(figures)
        else:
            key_of = itemgetter(*_KEY_AT[table])
            for fine, figures in self.fine.items():
                groups.setdefault(key_of(fine), []).append(figures)
        out = []
        for key, summed in groups.items():
            figures = summed[0] if len(summed) == 1 else [sum(column) for column in zip(*summed)]
            if any(figures):
                out.append((*key, *figures))
        out.sort()
        return out


# The rollups migration m007 created (and its call of create_rollups still creates).
M007_ROLLUPS = ("spend_ticket_day", "spend_day", "spend_dim_day")


def create_rollups(db, tables: tuple[str, ...] = M007_ROLLUPS, kept: tuple[str, ...] = M007_ROLLUPS) -> None:
    """Create `tables` filled from the calls stored, and in PostgreSQL the triggers keeping `kept`.

    `kept`: every rollup table once these exist (a migration names its own, as they were then).
    `db` is a migrations.MigrationConnection; the caller runs this in one transaction.
    """
    postgres = db.dialect == "postgres"
    if postgres:
        # No writer may commit between the backfill's snapshot and the triggers: its rows would
        # be in neither. Writers wait for this migration's commit (seconds per million rows).
        db.execute("LOCK TABLE calls IN SHARE ROW EXCLUSIVE MODE")
    real = db.float_type()
    big = "BIGINT" if postgres else "INTEGER"
    for table in tables:
        keys = TABLES[table]
        columns = [f"{k} TEXT NOT NULL" for k in keys]
        columns += [f"{m} {real if m == 'cost_usd' else big} NOT NULL" for m in MEASURES]
        suffix = "" if postgres else " WITHOUT ROWID"
        db.execute(f"CREATE TABLE {table} ({', '.join(columns)}, PRIMARY KEY ({', '.join(keys)})){suffix}")
        if "ticket_id" in keys:  # one ticket's report reads only its own rows
            db.execute(f"CREATE INDEX {table}_ticket ON {table} (ticket_id, {'day' if 'day' in keys else 'dim'})")
        for sql in backfill_sql(table):
            db.execute(sql)
    if postgres:
        _create_pg_triggers(db, kept)


def backfill_sql(table: str) -> list[str]:
    """Statements that fill an empty rollup from every stored call (the migration; bulk-loading benchmarks)."""
    sums = ", ".join(f"SUM({e})" for e in measure_exprs())
    if table in DIM_TABLES:
        return [
            f"INSERT INTO {table} ({', '.join(TABLES[table] + MEASURES)}) "
            f"SELECT {', '.join(_key_exprs(DIM_TABLES[table]))}, '{dim}', {_value_expr(dim)}, {sums} FROM calls GROUP BY 1, 2, 4"
            for dim in DIM_COLUMNS
        ]
    keys = ROLLUPS[table]
    return [
        f"INSERT INTO {table} ({', '.join(keys + MEASURES)}) "
        f"SELECT {', '.join(_key_exprs(keys))}, {sums} "
        f"FROM calls GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}"
    ]


def _value_expr(dim: str, rec: str = "") -> str:
    return f"COALESCE({rec}{dim}, '')" if dim else "''"


def _pg_apply(table: str, parts: list[tuple[str, str]]) -> str:
    """One upsert adding each transition table's rows (sign '' or '-') to `table`, per key."""
    keys = ROLLUPS[table]
    selects = " UNION ALL ".join(
        f"SELECT {', '.join(f'{e} AS {k}' for e, k in zip(_key_exprs(keys, 'r.'), keys))}, "
        f"{', '.join(f'{sign}({e}) AS {m}' for e, m in zip(measure_exprs('r.'), MEASURES))} FROM {rel} AS r"
        for rel, sign in parts
    )
    group = ", ".join(keys)
    # Sorted keys: concurrent writers lock the rollup rows they share in the same order (no deadlock).
    return (
        f"INSERT INTO {table} ({', '.join(keys + MEASURES)}) "
        f"SELECT {group}, {', '.join(f'SUM({m})' for m in MEASURES)} FROM ({selects}) AS d "
        f"GROUP BY {group} ORDER BY {group} "
        f"ON CONFLICT ({group}) DO UPDATE SET " + ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in MEASURES)
    )


def _pg_apply_dims(table: str, parts: list[tuple[str, str]]) -> list[str]:
    """One upsert adding each transition table's rows to a per-dimension `table`, every DIM_COLUMNS entry at once.

    Each row is unpivoted into one row per dim (LATERAL VALUES): one statement, one pass over
    the transition tables, instead of one per dim.
    """
    prefix = DIM_TABLES[table]
    keys = ", ".join(TABLES[table])
    values = ", ".join(f"('{dim}', {_value_expr(dim, 'r.')})" for dim in DIM_COLUMNS)
    selects = " UNION ALL ".join(
        f"SELECT {', '.join(f'{e} AS {k}' for e, k in zip(_key_exprs(prefix, 'r.'), prefix))}, v.dim, v.value, "
        f"{', '.join(f'{sign}({e}) AS {m}' for e, m in zip(measure_exprs('r.'), MEASURES))} "
        f"FROM {rel} AS r CROSS JOIN LATERAL (VALUES {values}) AS v(dim, value)"
        for rel, sign in parts
    )
    return [
        f"INSERT INTO {table} ({keys}, {', '.join(MEASURES)}) "
        f"SELECT {keys}, {', '.join(f'SUM({m})' for m in MEASURES)} FROM ({selects}) AS d "
        f"GROUP BY {keys} ORDER BY {keys} "
        f"ON CONFLICT ({keys}) DO UPDATE SET " + ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in MEASURES)
    ]


def _create_pg_triggers(db, kept: tuple[str, ...]) -> None:
    """(Re)define the trigger functions to keep every table in `kept`; the triggers call them."""
    events = {
        "insert": ([("new_rows", "")], "NEW TABLE AS new_rows"),
        "update": ([("old_rows", "-"), ("new_rows", "")], "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        "delete": ([("old_rows", "-")], "OLD TABLE AS old_rows"),
    }
    for event, (parts, referencing) in events.items():
        statements = []
        for table in kept:
            statements += _pg_apply_dims(table, parts) if table in DIM_TABLES else [_pg_apply(table, parts)]
        body = ";\n".join(statements)
        # SET search_path FROM CURRENT: the function finds the rollups in the ledger's schema
        # whatever the writing session's search_path is.
        db.execute(
            f"CREATE OR REPLACE FUNCTION calls_spend_rollup_{event}() RETURNS trigger LANGUAGE plpgsql "
            f"SET search_path FROM CURRENT AS $$\nBEGIN\n{body};\nRETURN NULL;\nEND\n$$"
        )
        db.execute(f"DROP TRIGGER IF EXISTS calls_spend_rollup_{event} ON calls")
        db.execute(
            f"CREATE TRIGGER calls_spend_rollup_{event} AFTER {event.upper()} ON calls "
            f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION calls_spend_rollup_{event}()"
        )
