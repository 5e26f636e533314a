"""The HTML spend report over a 1,000,000-row ledger, SQLite and PostgreSQL.

    .venv/bin/python bench/report_html.py [--rows 1000000] [--backend sqlite|postgres|both] [--keep DIR]

Builds a ledger of N synthetic calls (2,000 tickets with a long tail, 90 days, five gates, agents
and three models, prompt-cache reads and writes, 2% failures) in batches through the ledger's own
record_many (its triggers keep the rollups), then times, median of 5 runs each:
- the whole page: `html_report()` (every view, the budgets from a backlog.config.json, rendering),
  over all time and over the last 7 days;
- baseline in the same run: the plain all-ticket view, `spend_view(by=("ticket",))`, the
  cheapest question the page asks;
- and the real command `backlog-ops report --html FILE` end to end, median of 3 (interpreter start
  and imports included).
Goal: the page in at most 3 s. PostgreSQL uses BACKLOG_BENCH_PG_URL (default
postgresql://postgres@127.0.0.1:5432/test) in a schema of its own, dropped at the end unless --keep.
With --keep DIR the SQLite ledger is kept in DIR and reused by the next run with the same --rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backlog_ops.common.times import format_time
from backlog_ops.ledger import CallRecord

GATES = ["plan", "implement", "lint", "review", "commit"]
MODELS = ["anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-6", "anthropic/claude-opus-4-6"]
AGENTS = ["planner", "backend", "linter", "reviewer", "security-reviewer"]
TICKETS = 2000
GOAL_S = 3.0


def synthetic(n: int, seed: int = 11):
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** 0.9 for i in range(TICKETS)]
    tickets = [f"FEAT-{i:04d}" for i in range(TICKETS)]
    chosen = rng.choices(tickets, weights=weights, k=n)
    start = time.time() - 90 * 86400
    for i, ticket in enumerate(chosen):
        prompt = rng.randint(500, 20000)
        cached = rng.randint(0, prompt // 2)
        yield CallRecord(
            call_id=f"bench-{i}", started_at=format_time(start + i * (90 * 86400 / n)),
            status="failure" if rng.random() < 0.02 else "success", session_id=f"s-{i // 40}",
            ticket_id=ticket if rng.random() > 0.01 else None, gate=rng.choice(GATES), project="bench",
            agent_type=rng.choice(AGENTS), skill="backlog-implementer", model=rng.choice(MODELS), model_group="balanced",
            provider="anthropic", prompt_tokens=prompt, completion_tokens=rng.randint(50, 2000), cache_read_tokens=cached,
            cache_write_tokens=rng.randint(0, 500), cost_usd=rng.random() / 20, cache_hit=rng.random() < 0.01,
        )


def fill(ledger, rows: int) -> float:
    t0 = time.perf_counter()
    batch = []
    for record in synthetic(rows):
        batch.append(record)
        if len(batch) == 5000:
            ledger.record_many(batch)
            batch = []
    if batch:
        ledger.record_many(batch)
    return time.perf_counter() - t0


def median_s(fn, runs: int = 5) -> float:
    fn()  # warm the page cache, as any second report would find it
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(name: str, open_ledger, env: dict, project: Path, rows: int) -> bool:
    from backlog_ops.reports.html import html_report
    from backlog_ops.reports.views import spend_view

    with open_ledger() as ledger:
        count = ledger._query("SELECT COUNT(*) FROM calls", ())[0][0]  # noqa: SLF001 - a benchmark's sanity check
        cwd = os.getcwd()
        os.chdir(project)  # the budgets come from ./backlog.config.json
        try:
            baseline = median_s(lambda: spend_view(by=("ticket",), ledger=ledger))
            page_all = median_s(lambda: html_report(ledger=ledger))
            page_week = median_s(lambda: html_report(since="7d", ledger=ledger))
            size = len(html_report(ledger=ledger).encode())
        finally:
            os.chdir(cwd)
    out = project / f"{name}.html"
    cli_runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        done = subprocess.run([str(Path(sys.executable).parent / "backlog-ops"), "report", "--html", str(out)], cwd=project,
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
        cli_runs.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise SystemExit(f"backlog-ops report failed: {done.stderr.strip()}")
    cli_s = statistics.median(cli_runs)
    print(f"\n[{name}] {count:,} rows in the ledger")
    print(f"  baseline: the all-ticket view            {baseline * 1000:8.0f} ms")
    print(f"  html_report(), all time                  {page_all * 1000:8.0f} ms  ({page_all / baseline:.1f}x the baseline; page {size / 1024:.0f} KiB)")
    print(f"  html_report(), --since 7d                {page_week * 1000:8.0f} ms  ({page_week / baseline:.1f}x)")
    print(f"  `backlog-ops report --html` end to end   {cli_s * 1000:8.0f} ms  (median of 3, interpreter start and imports included)")
    ok = max(page_all, page_week, cli_s) <= GOAL_S
    print(f"  goal <= {GOAL_S:.0f} s: {'met' if ok else 'MISSED'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--keep", metavar="DIR", help="keep (and reuse) the SQLite ledger and the PostgreSQL schema")
    args = parser.parse_args()
    print(f"HTML report benchmark (python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.1f})")
    if args.keep:
        ok = run(args, Path(args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:  # a 1M-row SQLite ledger is ~700 MB
            ok = run(args, Path(tmp))
    sys.exit(0 if ok else 1)


def run(args, work: Path) -> bool:
    """Build (or reuse) the ledgers under `work` and measure; True when every figure met the goal."""
    project = work / "project"
    project.mkdir(parents=True, exist_ok=True)
    config = {"project": {"name": "bench"}, "llmOps": {"budgets": {"perTicketUSD": 400, "tickets": {"FEAT-0000": 2500, "FEAT-0001": 1500}}}}
    (project / "backlog.config.json").write_text(json.dumps(config))
    ok = True

    if args.backend in ("sqlite", "both"):
        from backlog_ops.ledger import SqliteLedger

        home = work / f"home-sqlite-{args.rows}"  # the command reads the SQLite ledger at BACKLOG_HOME/ledger.db
        home.mkdir(mode=0o700, exist_ok=True)
        path = home / "ledger.db"
        if not path.exists():
            with SqliteLedger(path) as ledger:
                print(f"[sqlite] writing {args.rows:,} rows ... {args.rows / fill(ledger, args.rows):,.0f} rows/s")
        env = {"BACKLOG_HOME": str(home), "BACKLOG_LEDGER_URL": ""}
        ok &= measure("sqlite", lambda: SqliteLedger(path), env, project, args.rows)

    if args.backend in ("postgres", "both"):
        from backlog_ops.ledger.postgres import PostgresLedger

        url = os.environ.get("BACKLOG_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
        schema = f"bench_report_{args.rows}" if args.keep else f"bench_report_{os.getpid()}"
        try:
            with PostgresLedger(url, schema=schema) as ledger:
                have = ledger._query("SELECT COUNT(*) FROM calls", ())[0][0]  # noqa: SLF001
                if have != args.rows:
                    print(f"[postgres] writing {args.rows:,} rows ... {args.rows / fill(ledger, args.rows):,.0f} rows/s")
            import psycopg

            with psycopg.connect(url, autocommit=True) as db:  # what autovacuum does shortly after a bulk load
                for table in ("calls", "spend_day", "spend_ticket_day"):
                    db.execute(f'VACUUM ANALYZE "{schema}".{table}')
            env = {"BACKLOG_HOME": str(work / "home"), "BACKLOG_LEDGER_URL": url, "BACKLOG_LEDGER_SCHEMA": schema}
            ok &= measure("postgres", lambda: PostgresLedger(url, schema=schema), env, project, args.rows)
        finally:
            if not args.keep:
                PostgresLedger.drop_schema(url, schema)
    return ok


if __name__ == "__main__":
    main()
