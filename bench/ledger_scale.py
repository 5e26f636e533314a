"""Ledger at scale: ingest rate off the request path, and spend queries over 1,000,000 rows.

    .venv/bin/python bench/ledger_scale.py [--rows 1000000] [--backend sqlite|postgres|both]

Builds a ledger of N synthetic calls (2,000 tickets with a long tail: the biggest has ~5% of all
rows), through the same LedgerWriter the proxy uses, and reports:
- ingest: rows/s from the first submit to the last row committed (the writer thread's rate);
- `spend TICKET --by gate` (what `ticket_spend` runs) for the biggest ticket and a typical one,
  and the all-tickets summary, median of 15 runs each, in ms.
Baseline in the same run: the same ticket query with the ledger's indexes dropped (a full scan).
PostgreSQL uses BACKLOG_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/test) in a
schema of its own that is dropped at the end; after the load it runs VACUUM ANALYZE, as
autovacuum would shortly after (without it the planner cannot use index-only scans yet).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from backlog_ops.common.times import format_time
from backlog_ops.ledger import CallRecord, LedgerWriter

GATES = ["plan", "implement", "lint", "review", "commit"]
MODELS = ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-6", "anthropic/claude-opus-4-6"]
AGENTS = ["planner", "backend", "linter", "reviewer", "security-reviewer"]


def synthetic(n: int, seed: int = 7):
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** 0.9 for i in range(2000)]
    tickets = [f"FEAT-{i:04d}" for i in range(2000)]
    chosen = rng.choices(tickets, weights=weights, k=n)
    start = time.time() - 90 * 86400
    for i, ticket in enumerate(chosen):
        gate = rng.choice(GATES)
        yield CallRecord(
            call_id=f"bench-{i}", started_at=format_time(start + i * (90 * 86400 / n)), status="success",
            session_id=f"s-{i // 40}", ticket_id=ticket, gate=gate, project="bench", agent_type=rng.choice(AGENTS),
            skill="backlog-implementer", model=rng.choice(MODELS), model_group="balanced", provider="anthropic",
            prompt_tokens=rng.randint(500, 20000), completion_tokens=rng.randint(50, 2000), cost_usd=rng.random() / 20,
            latency_ms=rng.random() * 3000,
        )


def median_ms(fn, runs: int = 15) -> float:
    fn()  # warm the page cache like a second query would
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def bench(name: str, open_ledger, rows: int, drop_indexes, settle=None) -> None:
    writer = LedgerWriter(open_ledger, spool_path=Path(tempfile.gettempdir()) / f"bench-spool-{os.getpid()}.jsonl", batch_size=2000)
    t0 = time.perf_counter()
    submit_time = 0.0
    for i, record in enumerate(synthetic(rows)):
        s0 = time.perf_counter()
        writer.submit(record)
        submit_time += time.perf_counter() - s0
        if i % 10_000 == 0:
            while writer.pending() > 50_000:  # stay under the writer's bound: measure its drain rate
                time.sleep(0.01)
    if not writer.flush(1800):
        raise SystemExit("the writer did not drain")
    ingest = time.perf_counter() - t0
    writer.close()
    if settle is not None:
        settle()

    ledger = open_ledger()
    biggest = ledger.tickets(project="bench")[0]
    typical = "FEAT-1000"
    big_ms = median_ms(lambda: ledger.ticket(biggest["ticket_id"], by="gate"))
    typ_ms = median_ms(lambda: ledger.ticket(typical, by="gate"))
    model_ms = median_ms(lambda: ledger.ticket(biggest["ticket_id"], by="model"))
    all_ms = median_ms(lambda: ledger.tickets(), runs=5)
    drop_indexes(ledger)
    scan_ms = median_ms(lambda: ledger.ticket(biggest["ticket_id"], by="gate"), runs=5)
    ledger.close()

    print(f"\n[{name}] {rows:,} rows")
    print(f"  ingest through LedgerWriter: {rows / ingest:,.0f} rows/s  (submit() alone: {submit_time / rows * 1e6:.1f} us per row)")
    print(f"  spend {biggest['ticket_id']} --by gate ({biggest['calls']:,} rows): {big_ms:.1f} ms   --by model: {model_ms:.1f} ms")
    print(f"  spend {typical} --by gate: {typ_ms:.2f} ms")
    print(f"  spend (all {len(ledger_tickets_cache(open_ledger)):,} tickets): {all_ms:.0f} ms")
    print(f"  baseline, same query with no index (full scan): {scan_ms:.1f} ms  -> index speed-up {scan_ms / big_ms:.1f}x")


def ledger_tickets_cache(open_ledger):
    ledger = open_ledger()
    try:
        return ledger.tickets()
    finally:
        ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    print(f"ledger scale benchmark (python {sys.version.split()[0]})")

    if args.backend in ("sqlite", "both"):
        from backlog_ops.ledger import SqliteLedger

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ledger.db"

            def drop(ledger):
                for (name,) in ledger.db.execute("SELECT name FROM sqlite_master WHERE type='index' AND name LIKE 'calls_%'").fetchall():
                    ledger.db.execute(f"DROP INDEX {name}")

            bench("sqlite", lambda: SqliteLedger(path), args.rows, drop)

    if args.backend in ("postgres", "both"):
        try:
            from backlog_ops.ledger.postgres import PostgresLedger
        except ImportError as exc:
            print(f"\n[postgres] skipped: {exc}")
            return
        url = os.environ.get("BACKLOG_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
        schema = f"bench_{os.getpid()}"

        def drop(ledger):
            with ledger.db.cursor() as cur:
                cur.execute(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'calls' AND indexname LIKE 'calls_%%' AND indexname <> 'calls_pkey'",
                    (schema,),
                )
                for (name,) in cur.fetchall():
                    cur.execute(f'DROP INDEX "{schema}"."{name}"')
            ledger.db.commit()

        def vacuum():
            # What autovacuum does shortly after a bulk load: statistics and the visibility map
            # that lets the planner answer from the covering index alone.
            import psycopg

            with psycopg.connect(url, autocommit=True) as db:
                db.execute(f'VACUUM ANALYZE "{schema}".calls')

        try:
            bench("postgres", lambda: PostgresLedger(url, schema=schema), args.rows, drop, settle=vacuum)
        finally:
            PostgresLedger.drop_schema(url, schema)


if __name__ == "__main__":
    main()
