"""Status line and feedback hooks: wall time vs. a bare interpreter, on a large ledger.

    .venv/bin/python bench/statusline_walltime.py [--runs 40] [--rows 200000] [--postgres]

Claude Code runs the status line every few seconds and the PostToolUse hook after every tool
call, and waits for both, so what matters is the whole process: start, imports, reads, exit.
A ledger of N rows is built (one ticket with half of them) and the ticket's totals file is
written by the same keeper the proxy runs (its refresh time is reported: that is the ledger
query, paid off the request path, once per written batch). Then, interleaved round after round:

    python -c pass                      the baseline (this interpreter, same site-packages)
    status line                         the command `backlog-ops install` wires (python -c …run())
    status line, console script         `backlog-ops statusline` (pip's wrapper imports `re`)
    PostToolUse / UserPromptSubmit      the hook command install wires; nothing new to tell
    sum from the ledger                 what a status line without the totals file would run:
                                        a fresh process summing the ticket in SQLite (and, with
                                        --postgres, in PostgreSQL through psycopg)

Medians and 90th percentiles in ms; the ratio is the median over `python -c pass`'s median
(goal for the status line: <= 1.5), and the ratio of the minimums, the least noisy estimate on
a busy machine. PostgreSQL: BACKLOG_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/test),
in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backlog_ops.claude.install_content import HOOK_CODE
from backlog_ops.claude.install_statusline import STATUSLINE_CODE
from backlog_ops.common.times import format_time
from backlog_ops.ledger import CallRecord, SqliteLedger

SID = "4542a6ff-4e36-481a-b119-ba2bea61312e"
TICKET, PROJECT = "FEAT-1", "bench"


def rows(n: int):
    start = time.time() - 30 * 86400
    for i in range(n):
        ticket = TICKET if i % 2 == 0 else f"FEAT-{2 + i % 997}"
        yield CallRecord(call_id=f"b{i}", started_at=format_time(start + i), status="success", session_id=f"s{i // 50}",
                         ticket_id=ticket, project=PROJECT, gate="implement", agent_type="backend", model_group="balanced",
                         prompt_tokens=1000, completion_tokens=100, cost_usd=0.001)


def fill(ledger, n: int) -> None:
    batch = []
    for record in rows(n):
        batch.append(record)
        if len(batch) == 5000:
            ledger.record_many(batch)
            batch = []
    if batch:
        ledger.record_many(batch)


def timed(cmd: list[str], stdin: bytes, env: dict) -> float:
    start = time.perf_counter()
    r = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - start
    if r.returncode != 0 or b"unavailable" in r.stdout or b"systemMessage" in r.stdout:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stdout!r} {r.stderr!r}")
    return elapsed * 1000


def keeper_ms(open_ledger, runs: int = 7) -> float:
    from backlog_ops.policy.limits import TicketPolicy
    from backlog_ops.reports.totals_keeper import TotalsKeeper

    keeper = TotalsKeeper(open_ledger, limits=lambda p: TicketPolicy(project=PROJECT, ticket_budget_usd=500.0))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        assert keeper.refresh(PROJECT, TICKET) is not None
        times.append((time.perf_counter() - t0) * 1000)
    keeper.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--postgres", action="store_true", help="also sum the ticket in PostgreSQL")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home, project = Path(tmp) / "home", Path(tmp) / "my-api"
        project.mkdir()
        env = {**os.environ, "BACKLOG_HOME": str(home)}
        os.environ["BACKLOG_HOME"] = str(home)
        bo = Path(sys.executable).parent / "backlog-ops"
        subprocess.run([str(bo), "context", "set", TICKET, "implement", "backend", "--session", SID, "--project", PROJECT],
                       env=env, cwd=project, check=True, capture_output=True)
        db = home / "ledger.db"
        t0 = time.perf_counter()
        with SqliteLedger(db) as ledger:
            fill(ledger, args.rows)
        print(f"SQLite ledger: {args.rows:,} rows ({args.rows // 2:,} for {TICKET}) built in {time.perf_counter() - t0:.1f} s")
        print(f"keeper refresh of {TICKET} from SQLite (off the request path): {keeper_ms(lambda: SqliteLedger(db)):.1f} ms")

        status = json.dumps({"session_id": SID, "transcript_path": f"/tmp/{SID}.jsonl", "cwd": str(project),
                             "model": {"id": "claude-sonnet-4-6", "display_name": "Sonnet 4.6"},
                             "workspace": {"current_dir": str(project), "project_dir": str(project), "added_dirs": []},
                             "version": "2.1.197", "cost": {"total_cost_usd": 0.01}}).encode()
        hook = {"session_id": SID, "transcript_path": f"/tmp/{SID}.jsonl", "cwd": str(project)}
        post = json.dumps({**hook, "hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"},
                           "tool_response": {"stdout": "a"}, "tool_use_id": "toolu_1"}).encode()
        prompt = json.dumps({**hook, "hook_event_name": "UserPromptSubmit", "prompt": "go on"}).encode()
        # The session has heard the marks the ticket passed: the hooks' usual case is nothing new.
        subprocess.run([sys.executable, "-c", HOOK_CODE], input=post, env=env, check=True, capture_output=True)
        line = subprocess.run([sys.executable, "-c", STATUSLINE_CODE], input=status, env=env, capture_output=True).stdout
        print(f"status line: {line.decode().strip()}")

        naive_sqlite = ("import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
                        "print(db.execute('SELECT SUM(cost_usd) FROM calls WHERE ticket_id = ? AND project = ?', "
                        f"({TICKET!r}, {PROJECT!r})).fetchone()[0])")
        commands: dict[str, tuple[list[str], bytes]] = {
            "python -c pass (this interpreter)": ([sys.executable, "-c", "pass"], b""),
            "status line (what install wires)": ([sys.executable, "-c", STATUSLINE_CODE], status),
            "status line, console script": ([str(bo), "statusline"], status),
            "hook PostToolUse (nothing new)": ([sys.executable, "-c", HOOK_CODE], post),
            "hook UserPromptSubmit (nothing new)": ([sys.executable, "-c", HOOK_CODE], prompt),
            "sum from the SQLite ledger": ([sys.executable, "-c", naive_sqlite, str(db)], b""),
        }
        pg = None
        if args.postgres:
            pg = postgres_ledger(args.rows)
            print(f"keeper refresh of {TICKET} from PostgreSQL: {keeper_ms(pg[1]):.1f} ms")
            naive_pg = ("import psycopg, sys; c = psycopg.connect(sys.argv[1]); "
                        f"print(c.execute('SELECT SUM(cost_usd) FROM \"{pg[2]}\".calls WHERE ticket_id = %s AND project = %s', "
                        f"({TICKET!r}, {PROJECT!r})).fetchone()[0])")
            commands["sum from the PostgreSQL ledger"] = ([sys.executable, "-c", naive_pg, pg[0]], b"")
        try:
            samples: dict[str, list[float]] = {name: [] for name in commands}
            for name, (cmd, stdin) in commands.items():  # warm the page cache and .pyc files
                timed(cmd, stdin, env)
            for _ in range(args.runs):
                for name, (cmd, stdin) in commands.items():
                    samples[name].append(timed(cmd, stdin, env))
        finally:
            if pg is not None:
                from backlog_ops.ledger.postgres import PostgresLedger

                PostgresLedger.drop_schema(pg[0], pg[2])

    base = statistics.median(samples["python -c pass (this interpreter)"])
    low = min(samples["python -c pass (this interpreter)"])
    print(f"\nwall time, {args.runs} runs each, interleaved; {sys.executable} (Python {sys.version.split()[0]})")
    print(f"{'command':40} {'median ms':>10} {'p90 ms':>8} {'min ms':>7} {'x pass':>7} {'x pass (min)':>13}")
    for name, xs in samples.items():
        xs.sort()
        med, p90 = statistics.median(xs), xs[int(0.9 * (len(xs) - 1))]
        print(f"{name:40} {med:10.1f} {p90:8.1f} {xs[0]:7.1f} {med / base:7.2f} {xs[0] / low:13.2f}")


def postgres_ledger(n: int):
    """(url, opener, schema) of a PostgreSQL ledger of n rows in a schema of its own."""
    from backlog_ops.ledger.postgres import PostgresLedger

    url = os.environ.get("BACKLOG_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    schema = f"bench_statusline_{os.getpid()}"
    t0 = time.perf_counter()
    import psycopg

    with PostgresLedger(url, schema=schema) as ledger:
        fill(ledger, n)
    with psycopg.connect(url, autocommit=True) as db:  # as autovacuum would shortly after a load
        db.execute(f'VACUUM ANALYZE "{schema}".calls')
    print(f"PostgreSQL ledger: {n:,} rows built in {time.perf_counter() - t0:.1f} s")
    return url, (lambda: PostgresLedger(url, schema=schema)), schema


if __name__ == "__main__":
    main()
