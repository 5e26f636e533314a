"""Ledger ingest with the kill -9 journal, against the same writer without it, measured in one run.

Three ways through the same LedgerWriter, each into a fresh ledger, alternating rounds so machine
noise hits all of them alike:
  baseline    no journal (rows live in memory until written: what a kill -9 used to lose)
  journal     each row appended to the journal first (what `submit` does in the proxy)
  proxy path  an early row as the response completes, then the call's own row (two appends)

Prints rows/s for each (the best of the rounds) and the ratio to the baseline; submit() cost per
row on the caller's side; and what is left in the journal after the writer caught up (should be
nothing). Goal: ingest >= 5,000 rows/s with the journal.

    .venv/bin/python bench/journal_ingest.py [--rows 100000] [--rounds 3] [--backend sqlite|postgres|both]

PostgreSQL runs on a throwaway server of its own (backlog_ops.testing.servers), never a shared one.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from backlog_ops.common.times import format_time
from backlog_ops.ledger import CallRecord, LedgerWriter, SqliteLedger

MODES = ("baseline", "journal", "proxy path")


def records(n: int, run: str):
    start = time.time() - 86400
    for i in range(n):
        yield CallRecord(
            call_id=f"{run}-{i}", started_at=format_time(start + i * 0.01), status="success", source="proxy",
            session_id=f"s-{i // 40}", ticket_id=f"FEAT-{i % 500}", gate="implement", project="bench",
            agent_type="backend", skill="backlog-implementer", model="claude-haiku-4-5", model_group="cheap",
            provider="anthropic", prompt_tokens=1200 + i % 900, completion_tokens=150 + i % 300,
            cost_usd=0.0012, latency_ms=900.0,
        )


def one_round(mode: str, rows: int, open_ledger, work: Path) -> tuple[float, float, int]:
    """(rows/s, submit microseconds per row, journal bytes left after the flush)."""
    run = uuid.uuid4().hex[:8]
    journal = work / f"journal-{run}" if mode != "baseline" else None
    writer = LedgerWriter(open_ledger, spool_path=work / f"spool-{run}.jsonl", journal_dir=journal, batch_size=2000)
    early = mode == "proxy path"
    submit_time = 0.0
    t0 = time.perf_counter()
    for i, record in enumerate(records(rows, run)):
        s0 = time.perf_counter()
        if early:
            writer.submit_early(record)
        writer.submit(record)
        submit_time += time.perf_counter() - s0
        if i % 10_000 == 0:
            while writer.pending() > 50_000:  # stay under the memory bound: measure the drain rate
                time.sleep(0.01)
    if not writer.flush(1800):
        raise SystemExit("the writer did not drain")
    elapsed = time.perf_counter() - t0
    left = sum(p.stat().st_size for p in journal.glob("*.jsonl")) if journal is not None else 0
    writer.close()
    return rows / elapsed, submit_time / rows * 1e6, left


def bench(name: str, make_ledger, rows: int, rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-journal-"))
    results: dict[str, list[tuple[float, float, int]]] = {m: [] for m in MODES}
    try:
        for r in range(rounds):
            for mode in (MODES if r % 2 == 0 else tuple(reversed(MODES))):
                results[mode].append(one_round(mode, rows, make_ledger(work, f"{mode}-{r}"), work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = max(rate for rate, _, _ in results["baseline"])
    print(f"\n[{name}] {rows:,} rows x {rounds} rounds (best round; median submit cost)")
    for mode in MODES:
        rate = max(r for r, _, _ in results[mode])
        submit = statistics.median(s for _, s, _ in results[mode])
        left = max(left for _, _, left in results[mode])
        print(f"  {mode:<11} {rate:>9,.0f} rows/s  {rate / base:5.2f}x baseline   submit() {submit:5.1f} us/row"
              f"   journal left after flush: {left} bytes")


def sqlite_ledger(work: Path, label: str):
    path = work / f"{label}.db"
    return lambda: SqliteLedger(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        bench("SQLite", sqlite_ledger, args.rows, args.rounds)
    if args.backend in ("postgres", "both"):
        from backlog_ops.ledger.postgres import PostgresLedger
        from backlog_ops.testing.servers import ThrowawayPostgres

        with ThrowawayPostgres() as server:
            bench("PostgreSQL (throwaway server)",
                  lambda work, label: (lambda: PostgresLedger(server.url, schema=f"bench_{label.replace(' ', '_').replace('-', '_')}")),
                  args.rows, args.rounds)


if __name__ == "__main__":
    main()
