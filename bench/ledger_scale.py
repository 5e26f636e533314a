"""Ledger at scale: every view of `backlog-ops spend` over N ledger rows, ingest with the rollups kept, size on disk.

    .venv/bin/python bench/ledger_scale.py [--rows 1000000] [--backend sqlite|postgres|both] [--ingest 200000]
                                           [--keep DIR] [--no-views]

The ledger is N synthetic calls: 2,000 tickets over 90 days with a long tail (the biggest has ~8%
of the rows), gate, agent and model drawn at random for every call: the worst case for per-day
rollups, which compress real work — one ticket a few days at a time — far more. It is bulk-loaded
(SQLite: one transaction; PostgreSQL: COPY; the calls' secondary indexes are dropped for the load
and built again after it, as a bulk load would) and the rollups are then built with the
migration's own backfill, so 10,000,000 rows load in minutes; ingest is measured after that, on
top of the full ledger, through the proxy's LedgerWriter.

Printed per backend:
- the load: seconds, and size on disk per million rows (calls, their indexes and the rollups);
- every view (reports.views.spend_view, what the CLI and MCP run), median of 5 runs, in ms, and
  for each the same view summed from the calls alone (use_rollups=False: the baseline, what the
  views cost without rollups), once;
- ingest: rows/s through LedgerWriter as the proxy runs it (its defaults: a batch once 500 rows
  wait, up to 10,000 when it is behind), call ids random as LiteLLM's (uuid4), with the rollups
  kept, and the same writer with the rollup upkeep switched off, alternating rounds in the same
  run, for two shapes of traffic:
  "random" (every call on a ticket drawn at random: a 10,000-call batch lands on ~1,500
  tickets, the worst case) and "sessions" (calls in runs of 500 on one ticket, as agents work);
  and the mean time of one submit(), what the request side pays. --ingest 200,000 (the default)
  gives rounds of 100,000 rows: long enough for the writer to run behind at full batches, with
  its checkpoints, as under sustained load (rounds of 25,000 gave ~1.5x the sustained rate).
Every figure is printed with the load average at the time.
PostgreSQL: BACKLOG_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/test), a schema of
its own dropped at the end, VACUUM ANALYZE after the load (as autovacuum would).
--keep DIR: keep the loaded ledger (SQLite: DIR/ledger-<rows>.db; PostgreSQL: schema
ledger_bench_<rows>) and, when a later run finds it, measure on it instead of loading again
(a 10M load takes 10-30 minutes); rows ingested by earlier runs stay in it.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from backlog_ops.common.times import format_time
from backlog_ops.ledger import COLUMNS, CallRecord, LedgerWriter
from backlog_ops.ledger.rollup import TABLES, Deltas, backfill_sql
from backlog_ops.reports.views import spend_view

GATES = ["plan", "implement", "lint", "review", "commit"]
MODELS = ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-6", "anthropic/claude-opus-4-6"]
AGENTS = ["planner", "backend", "linter", "reviewer", "security-reviewer"]


def synthetic(n: int, seed: int = 7, run: int = 1):
    """n calls over the last 90 days; each ticket drawn at random for `run` calls in a row."""
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** 0.9 for i in range(2000)]
    tickets = [f"FEAT-{i:04d}" for i in range(2000)]
    chosen = rng.choices(tickets, weights=weights, k=-(-n // run))
    start = time.time() - 90 * 86400
    for i in range(n):
        ticket = chosen[i // run]
        gate = rng.choice(GATES)
        yield CallRecord(
            call_id=f"bench-{i}", started_at=format_time(start + i * (90 * 86400 / n)), status="success",
            session_id=f"s-{i // 40}", ticket_id=ticket, gate=gate, project="bench", agent_type=rng.choice(AGENTS),
            skill="backlog-implementer", model=rng.choice(MODELS), model_group="balanced", provider="anthropic",
            prompt_tokens=rng.randint(500, 20000), completion_tokens=rng.randint(50, 2000), cost_usd=rng.random() / 20,
            latency_ms=rng.random() * 3000,
        )


# Shapes of ingested traffic: calls in a row on one ticket.
SHAPES = {"random": 1, "sessions": 500}


def load_average() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


BIGGEST, TYPICAL = "FEAT-0000", "FEAT-1000"
# (label, spend_view arguments); "month" = the last 30 days, the all-ticket daily view of issue 13
VIEWS = [
    (f"spend {BIGGEST} (by gate: a ticket's report)", dict(ticket=BIGGEST, by="gate")),
    (f"spend {BIGGEST} --by model", dict(ticket=BIGGEST, by="model")),
    (f"spend {BIGGEST} --by day,model", dict(ticket=BIGGEST, by="day,model")),
    (f"spend {TYPICAL}", dict(ticket=TYPICAL, by="gate")),
    ("spend --by day --since 30d (all tickets, a month)", dict(by="day", since="30d")),
    ("spend --by day --since 30d --until 1d", dict(by="day", since="30d", until="1d")),
    ("spend (by ticket, all time)", dict(by="ticket")),
    ("spend --since 7d --top 10", dict(by="ticket", since="7d", top=10)),
    ("spend --by week", dict(by="week")),
    ("spend --by month", dict(by="month")),
    ("spend --by project", dict(by="project")),
    ("spend --by model", dict(by="model")),
    ("spend --by gate", dict(by="gate")),
    ("spend --by agent", dict(by="agent")),
    ("spend --by skill", dict(by="skill")),
    ("spend --by source", dict(by="source")),
    ("spend --by model --since 30d", dict(by="model", since="30d")),
    ("spend --by ticket,day --since 7d", dict(by="ticket,day", since="7d")),
    ("spend --by ticket,model", dict(by="ticket,model")),
    ("spend --by session --since 7d", dict(by="session", since="7d")),
    ("spend --by session (all time)", dict(by="session")),
]


def median_ms(fn, runs: int = 5) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def once_ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def baseline(ledger, args: dict) -> None:
    """The same view summed from the calls alone."""
    spend_view(ledger=ledger, use_rollups=False, **args)


def run_views(name: str, ledger, rows: int) -> None:
    print(f"\n[{name}] {rows:,} rows: views (median of 5; baseline: the same view from the calls alone, once)")
    for label, args in VIEWS:
        ms = median_ms(lambda: spend_view(ledger=ledger, **args))
        base = once_ms(lambda: baseline(ledger, args))
        print(f"  {label:<52} {ms:9.1f} ms   baseline {base:9.1f} ms  ({base / ms:6.1f}x)  [{load_average()}]",
              flush=True)


def fresh(n: int, run: int) -> list[CallRecord]:
    """n calls of today, each ticket for `run` calls in a row; new ids, sessions and draws every time.

    A kept ledger (--keep) must not see the same calls, or the same day's combinations of ticket,
    gate, agent and model, twice: they would update rollup rows instead of adding them, and flatter
    a second run on the same day.
    """
    now = time.time()
    out = []
    ids = random.Random()
    tag = f"{ids.getrandbits(32):08x}"
    for i, r in enumerate(synthetic(n, seed=ids.getrandbits(32), run=run)):
        r.call_id = str(uuid.UUID(int=ids.getrandbits(128), version=4))  # random, as LiteLLM's call ids
        r.session_id = f"{tag}-{r.session_id}"
        r.started_at = format_time(now - 3600 + i * 3600 / n)
        out.append(r)
    return out


def ingest(open_ledger, records: list[CallRecord]) -> tuple[float, float]:
    """Rows/s from the first submit to the last row committed (the writer thread's rate), and
    the mean time of one submit() (what the request side pays), in seconds."""
    writer = LedgerWriter(open_ledger, spool_path=Path(tempfile.gettempdir()) / f"ledger-bench-spool-{os.getpid()}.jsonl")
    t0 = time.perf_counter()
    submitting = 0.0
    for i, r in enumerate(records):
        s0 = time.perf_counter()
        writer.submit(r)
        submitting += time.perf_counter() - s0
        if i % 10_000 == 0:
            while writer.pending() > 50_000:
                time.sleep(0.01)
    if not writer.flush(3600):
        raise SystemExit("the writer did not drain")
    rate = len(records) / (time.perf_counter() - t0)
    writer.close()
    return rate, submitting / len(records)


def compare_ingest(name: str, open_ledger, switch, n: int) -> None:
    """Alternating rounds: rollups kept, rollups off (switch(False)), same writer, same ledger."""
    for shape, run in SHAPES.items():
        rates = {True: [], False: []}
        submits = []
        for _ in range(2):
            for keep in (True, False):
                switch(keep)
                rate, submit = ingest(open_ledger, fresh(n // 2, run))
                rates[keep].append(rate)
                submits.append(submit)
        switch(True)
        kept, off = statistics.mean(rates[True]), statistics.mean(rates[False])
        print(f"  ingest through LedgerWriter onto the full ledger, {shape} ({run} call(s) in a row per ticket): "
              f"{kept:,.0f} rows/s with the rollups kept, {off:,.0f} rows/s without ({kept / off:.2f}x); "
              f"submit() on the request side {statistics.mean(submits) * 1e6:.1f} us  [{n:,} rows, alternating rounds, {load_average()}]", flush=True)


# The bulk load only: memory for sorting while the indexes are built after it.
LOAD_CACHE_KIB = -262144  # SQLite PRAGMA cache_size (negative: KiB)
LOAD_WORK_MEM = "256MB"  # PostgreSQL maintenance_work_mem


# -- SQLite ------------------------------------------------------------------------------------------


def bench_sqlite(rows: int, ingest_rows: int, keep: Path | None, views: bool) -> None:
    from backlog_ops.ledger import SqliteLedger

    with tempfile.TemporaryDirectory() as tmp:
        path = (keep / f"ledger-{rows}.db") if keep else Path(tmp) / "ledger.db"
        if path.exists():
            ledger = SqliteLedger(path)  # applies any newer migration, as a user's upgrade would
            ledger.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            now = ledger.db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            print(f"\n[sqlite] the ledger kept in {path} ({rows:,} rows loaded earlier, {now:,} now): "
                  f"{path.stat().st_size / now * 1e6 / 2**20:,.0f} MiB on disk per million rows  [{load_average()}]",
                  flush=True)
        else:
            ledger = _load_sqlite(path, rows)
        counts = {t: ledger.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
        print("  rollup rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
        if views:
            run_views("sqlite", ledger, rows)
        ledger.close()

        real = SqliteLedger._rollup_deltas

        def switch(keep: bool) -> None:
            SqliteLedger._rollup_deltas = real if keep else (lambda self, rows: Deltas())

        compare_ingest("sqlite", lambda: SqliteLedger(path), switch, ingest_rows)


def _load_sqlite(path: Path, rows: int):
    from backlog_ops.ledger import SqliteLedger

    ledger = SqliteLedger(path)
    t0 = time.perf_counter()
    insert = f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
    batch = []
    ledger.db.execute(f"PRAGMA cache_size={LOAD_CACHE_KIB}")
    ledger.db.execute("BEGIN")
    indexes = [sql for (sql,) in ledger.db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'calls' AND sql IS NOT NULL")]
    for (name,) in ledger.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'calls' AND sql IS NOT NULL").fetchall():
        ledger.db.execute(f"DROP INDEX {name}")
    for r in synthetic(rows):
        batch.append(r.as_tuple())
        if len(batch) == 50_000:
            ledger.db.executemany(insert, batch)
            batch = []
    ledger.db.executemany(insert, batch)
    for sql in indexes:
        ledger.db.execute(sql)
    for table in TABLES:
        for sql in backfill_sql(table):
            ledger.db.execute(sql)
    ledger.db.execute("COMMIT")
    ledger.db.execute("ANALYZE")
    load = time.perf_counter() - t0
    ledger.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    print(f"\n[sqlite] bulk load of {rows:,} rows, their indexes and the rollup backfill: {load:.0f} s; "
          f"{size / rows * 1e6 / 2**20:,.0f} MiB on disk per million rows  [{load_average()}]", flush=True)
    return ledger


# -- PostgreSQL --------------------------------------------------------------------------------------


def bench_postgres(rows: int, ingest_rows: int, keep: bool, views: bool) -> None:
    import psycopg

    from backlog_ops.ledger.postgres import PostgresLedger

    url = os.environ.get("BACKLOG_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"ledger_bench_{rows}" if keep else f"ledger_bench_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as db:
        kept = keep and db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None
    try:
        if kept:
            PostgresLedger(url, schema=schema).close()  # applies any newer migration, as a user's upgrade would
            print(f"\n[postgres] the ledger kept in schema {schema} ({rows:,} rows loaded earlier)  [{load_average()}]",
                  flush=True)
        else:
            _load_postgres(url, schema, rows)
        if views:
            with PostgresLedger(url, schema=schema) as ledger:
                run_views("postgres", ledger, rows)

        def switch(keep: bool) -> None:
            with psycopg.connect(url, autocommit=True) as db:
                db.execute(f'ALTER TABLE "{schema}".calls {"ENABLE" if keep else "DISABLE"} TRIGGER USER')

        compare_ingest("postgres", lambda: PostgresLedger(url, schema=schema), switch, ingest_rows)
    finally:
        if not keep:
            PostgresLedger.drop_schema(url, schema)


def _load_postgres(url: str, schema: str, rows: int) -> None:
    import psycopg

    from backlog_ops.ledger.postgres import PostgresLedger

    PostgresLedger(url, schema=schema).close()
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=False) as db:
        db.execute(f'SET search_path TO "{schema}"')
        db.execute("ALTER TABLE calls DISABLE TRIGGER USER")
        indexes = db.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'calls' "
            "AND indexname <> 'calls_pkey'", (schema,)).fetchall()
        for name, _ in indexes:
            db.execute(f'DROP INDEX "{name}"')
        with db.cursor() as cur, cur.copy(f"COPY calls ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for r in synthetic(rows):
                row = list(r.as_tuple())
                row[COLUMNS.index("cache_hit")] = int(bool(row[COLUMNS.index("cache_hit")]))
                copy.write_row(row)
        db.execute(f"SET maintenance_work_mem = '{LOAD_WORK_MEM}'")
        for _, sql in indexes:
            db.execute(sql)
        for table in TABLES:
            for sql in backfill_sql(table):
                db.execute(sql)
        db.execute("ALTER TABLE calls ENABLE TRIGGER USER")
        db.commit()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f'VACUUM ANALYZE "{schema}".calls')
        for table in TABLES:
            db.execute(f'VACUUM ANALYZE "{schema}".{table}')
        load = time.perf_counter() - t0
        sizes = {t: db.execute("SELECT pg_total_relation_size(%s)", (f'"{schema}".{t}',)).fetchone()[0]
                 for t in ("calls", *TABLES)}
        counts = {t: db.execute(f'SELECT COUNT(*) FROM "{schema}".{t}').fetchone()[0] for t in TABLES}
    total = sum(sizes.values())
    print(f"\n[postgres] COPY of {rows:,} rows, their indexes, the rollup backfill and VACUUM ANALYZE: {load:.0f} s; "
          f"{total / rows * 1e6 / 2**20:,.0f} MiB on disk per million rows "
          f"(calls with indexes {sizes['calls'] / rows * 1e6 / 2**20:,.0f}, rollups "
          f"{sum(sizes[t] for t in TABLES) / rows * 1e6 / 2**20:,.0f})  [{load_average()}]", flush=True)
    print("  rollup rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--ingest", type=int, default=200_000, help="rows written through LedgerWriter after the load")
    parser.add_argument("--no-views", dest="views", action="store_false", help="measure ingest only")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the loaded ledger (SQLite in DIR, PostgreSQL in schema ledger_bench_<rows>) and reuse it")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    print(f"ledger at scale: {args.rows:,} rows (python {sys.version.split()[0]}, {load_average()})", flush=True)
    if args.backend in ("sqlite", "both"):
        bench_sqlite(args.rows, args.ingest, args.keep, args.views)
    if args.backend in ("postgres", "both"):
        bench_postgres(args.rows, args.ingest, args.keep is not None, args.views)


if __name__ == "__main__":
    main()
