"""Spend views at scale: every view of `backlog-ops spend` over N ledger rows, ingest with the rollups kept, size on disk.

    .venv/bin/python bench/report_scale.py [--rows 1000000] [--backend sqlite|postgres|both] [--ingest 50000]

The ledger is N synthetic calls (bench/ledger_scale.py's: 2,000 tickets over 90 days, the biggest
with ~8% of the rows, gate, agent and model drawn at random for every call: the worst case for
per-day rollups, which compress real work — one ticket a few days at a time — far more). It is
bulk-loaded (SQLite: one transaction; PostgreSQL: COPY) and the rollups are then built with the
migration's own backfill, so 10,000,000 rows load in minutes; ingest is measured after that, on
top of the full ledger, through the proxy's LedgerWriter.

Printed per backend:
- every view (reports.views.spend_view, what the CLI and MCP run), median of 5 runs, in ms, and
  for each the same view summed from the calls alone (use_rollups=False: the baseline, what the
  views cost without rollups), once;
- ingest: rows/s through LedgerWriter with the rollups kept, and the same writer with the
  rollup upkeep switched off, alternating rounds in the same run;
- size on disk per million rows (calls, their indexes and the rollups).
PostgreSQL: BACKLOG_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/test), a schema of
its own dropped at the end, VACUUM ANALYZE after the load (as autovacuum would).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ledger_scale import synthetic  # noqa: E402

from backlog_ops.common.times import format_time  # noqa: E402
from backlog_ops.ledger import COLUMNS, CallRecord, LedgerWriter  # noqa: E402
from backlog_ops.ledger.rollup import TABLES, Deltas, backfill_sql  # noqa: E402
from backlog_ops.reports.views import spend_view  # noqa: E402

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
        print(f"  {label:<52} {ms:9.1f} ms   baseline {base:9.1f} ms  ({base / ms:6.1f}x)", flush=True)


def fresh(start: int, n: int) -> list[CallRecord]:
    """n calls of today (new ids), shaped like the load."""
    now = time.time()
    out = []
    for i, r in enumerate(synthetic(n, seed=start)):
        r.call_id = f"ingest-{start}-{i}"
        r.started_at = format_time(now - 3600 + i * 3600 / n)
        out.append(r)
    return out


def ingest(open_ledger, records: list[CallRecord]) -> float:
    writer = LedgerWriter(open_ledger, spool_path=Path(tempfile.gettempdir()) / f"report-bench-spool-{os.getpid()}.jsonl",
                          batch_size=2000)
    t0 = time.perf_counter()
    for i, r in enumerate(records):
        writer.submit(r)
        if i % 10_000 == 0:
            while writer.pending() > 50_000:
                time.sleep(0.01)
    if not writer.flush(3600):
        raise SystemExit("the writer did not drain")
    rate = len(records) / (time.perf_counter() - t0)
    writer.close()
    return rate


def compare_ingest(name: str, open_ledger, switch, n: int) -> None:
    """Alternating rounds: rollups kept, rollups off (switch(False)), same writer, same ledger."""
    rates = {True: [], False: []}
    for round_ in range(2):
        for keep in (True, False):
            switch(keep)
            rates[keep].append(ingest(open_ledger, fresh(round_ * 2 + keep + 100, n // 2)))
    switch(True)
    kept, off = statistics.mean(rates[True]), statistics.mean(rates[False])
    print(f"  ingest through LedgerWriter onto the full ledger: {kept:,.0f} rows/s with the rollups kept, "
          f"{off:,.0f} rows/s without ({kept / off:.2f}x)  [{n:,} rows, alternating rounds]")


# -- SQLite ------------------------------------------------------------------------------------------


def bench_sqlite(rows: int, ingest_rows: int) -> None:
    from backlog_ops.ledger import SqliteLedger

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        ledger = SqliteLedger(path)
        t0 = time.perf_counter()
        insert = f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
        batch = []
        ledger.db.execute("BEGIN")
        for r in synthetic(rows):
            batch.append(r.as_tuple())
            if len(batch) == 50_000:
                ledger.db.executemany(insert, batch)
                batch = []
        ledger.db.executemany(insert, batch)
        for table in TABLES:
            for sql in backfill_sql(table):
                ledger.db.execute(sql)
        ledger.db.execute("COMMIT")
        ledger.db.execute("ANALYZE")
        load = time.perf_counter() - t0
        ledger.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = path.stat().st_size
        print(f"\n[sqlite] bulk load of {rows:,} rows and the rollup backfill: {load:.0f} s; "
              f"{size / rows * 1e6 / 2**20:,.0f} MiB on disk per million rows")
        counts = {t: ledger.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
        print("  rollup rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
        run_views("sqlite", ledger, rows)
        ledger.close()

        real = SqliteLedger._rollup_deltas

        def switch(keep: bool) -> None:
            SqliteLedger._rollup_deltas = real if keep else (lambda self, rows: Deltas())

        compare_ingest("sqlite", lambda: SqliteLedger(path), switch, ingest_rows)


# -- PostgreSQL --------------------------------------------------------------------------------------


def bench_postgres(rows: int, ingest_rows: int) -> None:
    import psycopg

    from backlog_ops.ledger.postgres import PostgresLedger

    url = os.environ.get("BACKLOG_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"report_bench_{os.getpid()}"
    try:
        PostgresLedger(url, schema=schema).close()
        t0 = time.perf_counter()
        with psycopg.connect(url, autocommit=False) as db:
            db.execute(f'SET search_path TO "{schema}"')
            db.execute("ALTER TABLE calls DISABLE TRIGGER USER")
            with db.cursor() as cur, cur.copy(f"COPY calls ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for r in synthetic(rows):
                    row = list(r.as_tuple())
                    row[COLUMNS.index("cache_hit")] = int(bool(row[COLUMNS.index("cache_hit")]))
                    copy.write_row(row)
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
        print(f"\n[postgres] COPY of {rows:,} rows, the rollup backfill and VACUUM ANALYZE: {load:.0f} s; "
              f"{total / rows * 1e6 / 2**20:,.0f} MiB on disk per million rows "
              f"(calls with indexes {sizes['calls'] / rows * 1e6 / 2**20:,.0f}, rollups "
              f"{sum(sizes[t] for t in TABLES) / rows * 1e6 / 2**20:,.0f})")
        print("  rollup rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
        ledger = PostgresLedger(url, schema=schema)
        run_views("postgres", ledger, rows)
        ledger.close()

        def switch(keep: bool) -> None:
            with psycopg.connect(url, autocommit=True) as db:
                db.execute(f'ALTER TABLE "{schema}".calls {"ENABLE" if keep else "DISABLE"} TRIGGER USER')

        compare_ingest("postgres", lambda: PostgresLedger(url, schema=schema), switch, ingest_rows)
    finally:
        PostgresLedger.drop_schema(url, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--ingest", type=int, default=50_000, help="rows written through LedgerWriter after the load")
    args = parser.parse_args()
    print(f"spend views at scale (python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f})")
    if args.backend in ("sqlite", "both"):
        bench_sqlite(args.rows, args.ingest)
    if args.backend in ("postgres", "both"):
        bench_postgres(args.rows, args.ingest)


if __name__ == "__main__":
    main()
