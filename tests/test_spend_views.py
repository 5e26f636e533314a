"""Spend views over every ticket (reports.views), their rollups, and `backlog-ops spend` as users run it.

The rollups are checked against the calls themselves on every view, in SQLite and PostgreSQL,
after replays, updates, late failures and ticket changes; and against figures computed here
in Python from the raw rows, so a mistake shared by both SQL paths would show too.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from backlog_ops.common.times import format_time, iso_to_epoch
from backlog_ops.ledger import COLUMNS, CallRecord, LedgerWriter, SqliteLedger, open_ledger
from backlog_ops.ledger.migrations import MIGRATIONS, MigrationConnection
from backlog_ops.reports.views import FIELDS, GROUPS, OTHERS, spend_view

from conftest import run_spawned

BIN = Path(sys.executable).parent
T0 = iso_to_epoch("2026-11-02T00:00:00.000+00:00")  # a Monday


def records(n: int, seed: int = 3, ids: int | None = None) -> list[CallRecord]:
    """Calls over two weeks, with missing keys, failures, cache hits and (ids < n) the same call written again."""
    rng = random.Random(seed)
    pick = lambda *xs: rng.choice(xs)  # noqa: E731
    return [
        CallRecord(
            call_id=f"c{rng.randrange(ids or n)}", started_at=format_time(T0 + rng.random() * 14 * 86400),
            status=pick("success", "success", "success", "failure"), source=pick("proxy", "transcript", "direct"),
            session_id=pick("s1", "s2", None), ticket_id=pick("FEAT-1", "FEAT-2", "BUG-3", None), gate=pick("plan", "review", None),
            project=pick("api", "web", None), agent_type=pick("backend", "reviewer"), skill=pick("impl", None),
            model=pick("haiku", "sonnet", None), prompt_tokens=rng.randint(100, 5000), completion_tokens=rng.randint(0, 900),
            cache_read_tokens=rng.randint(0, 60), cache_write_tokens=rng.randint(0, 60), cost_usd=round(rng.random(), 6),
            cache_hit=rng.random() < 0.1, ticket_source=pick("branch", None),
        )
        for _ in range(n)
    ]


def python_view(rows: list[dict], dims: tuple[str, ...], since: str | None = None, until: str | None = None) -> dict:
    """The view computed here from the raw rows: the reference for both SQL paths."""
    column = {"ticket": "ticket_id", "agent": "agent_type", "session": "session_id"}
    out: dict[tuple, dict] = {}
    for r in rows:
        if (since and r["started_at"] < since) or (until and r["started_at"] >= until):
            continue
        day = r["started_at"][:10]
        values = {"day": day, "month": day[:7], "ticket_source": r["ticket_source"] or "set"}
        key = tuple(values[d] if d in values else r[column.get(d, d)] for d in dims)
        s = out.setdefault(key, dict.fromkeys(FIELDS, 0))
        ok = r["status"] == "success"
        s["calls"] += ok
        s["failed_calls"] += not ok
        s["cache_hits"] += bool(r["cache_hit"])
        s["input_tokens"] += max(0, r["prompt_tokens"] - r["cache_read_tokens"] - r["cache_write_tokens"])
        s["output_tokens"] += r["completion_tokens"]
        s["cache_write_tokens"] += r["cache_write_tokens"]
        s["cache_read_tokens"] += r["cache_read_tokens"]
        s["cost_usd"] += r["cost_usd"]
    return {k: {**v, "cost_usd": round(v["cost_usd"], 6)} for k, v in out.items()}


def as_dict(rows: list[tuple], n: int) -> dict:
    return {tuple(r[:n]): {**dict(zip(FIELDS, r[n + 1:])), "cost_usd": round(r[-1], 6)} for r in rows}


VIEWS = [(d,) for d in GROUPS if d != "week"] + [("week",), ("ticket", "day"), ("ticket", "model"), ("gate", "agent"),
                                                  ("month", "project"), ("source", "skill"), ("session", "ticket"),
                                                  ("ticket", "gate"), ("project", "ticket"), ("session", "day")]
WINDOWS = [(None, None), ("2026-11-05T00:00:00.000+00:00", None), (None, "2026-11-09T00:00:00.000+00:00"),
           ("2026-11-04T13:14:15.000+00:00", "2026-11-11T02:00:00.000+00:00"),  # partial days at both ends
           ("2026-11-06T01:00:00.000+00:00", "2026-11-06T05:00:00.000+00:00")]  # within one day


def check_every_view(ledger) -> None:
    rows = ledger.rows()
    for dims, (since, until) in itertools.product(VIEWS, WINDOWS):
        rolled = as_dict(ledger.spend_groups(dims, since=since, until=until), len(dims))
        raw = as_dict(ledger.spend_groups(dims, since=since, until=until, use_rollups=False), len(dims))
        if "week" not in dims:  # weeks: the rollup and the calls agree (below); the reference has no weeks
            assert rolled == python_view(rows, dims, since, until), (dims, since, until)
        assert rolled == raw, (dims, since, until)


def write_with_replays(ledger) -> None:
    """Batches that replay, update and late-fail calls already written, and repeat calls within a batch."""
    batch = records(600, seed=1, ids=400)
    for start in range(0, len(batch), 150):
        ledger.record_many(batch[start:start + 150])
    ledger.record_many(records(300, seed=2, ids=400))  # the same call ids, other values
    ledger.record_many(batch[:150])  # a replay of the first batch


def test_rollups_match_the_calls_on_every_view_sqlite(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        write_with_replays(ledger)
        assert ledger.db.execute("SELECT COUNT(*) FROM spend_day").fetchone()[0] > 0
        check_every_view(ledger)


@pytest.mark.services
def test_rollups_match_the_calls_on_every_view_postgres(pg) -> None:
    with open_ledger() as ledger:
        assert ledger.dialect == "postgres"
        write_with_replays(ledger)
        check_every_view(ledger)
        # A statement of another writer (no batch): the triggers still keep the rollups.
        with ledger.db.cursor() as cur:
            cur.execute("UPDATE calls SET ticket_id = 'MOVED-1', cost_usd = cost_usd * 2 WHERE gate = 'plan'")
            cur.execute("DELETE FROM calls WHERE model = 'haiku' AND status = 'failure'")
        ledger.db.commit()
        check_every_view(ledger)


def test_a_replayed_or_updated_call_counts_once(tmp_path: Path) -> None:
    base = dict(started_at="2026-11-03T10:00:00.000+00:00", ticket_id="FEAT-1", gate="plan", project="p",
                prompt_tokens=1000, cache_read_tokens=300, cache_write_tokens=100, completion_tokens=50)
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        ledger.record_many([CallRecord(call_id="a", status="success", cost_usd=0.5, **base)])
        ledger.record_many([CallRecord(call_id="a", status="success", cost_usd=0.5, **base)])  # replayed
        ledger.record_many([CallRecord(call_id="a", status="failure", cost_usd=0.0, **base)])  # late failure: ignored
        view = spend_view(by="ticket", ledger=ledger)
        assert view["rows"] == [{"ticket": "FEAT-1", "calls": 1, "failed_calls": 0, "cache_hits": 0, "input_tokens": 600,
                                 "output_tokens": 50, "cache_write_tokens": 100, "cache_read_tokens": 300, "cost_usd": 0.5}]
        moved = {**base, "ticket_id": "FEAT-2", "started_at": "2026-11-04T10:00:00.000+00:00"}
        ledger.record_many([CallRecord(call_id="a", status="success", cost_usd=0.75, **moved)])  # re-priced, moved
        view = spend_view(by=("ticket", "day"), ledger=ledger)
        assert [(r["ticket"], r["day"], r["calls"], r["cost_usd"]) for r in view["rows"]] == [("FEAT-2", "2026-11-04", 1, 0.75)]
        failed_first = [CallRecord(call_id="b", status="failure", cost_usd=0.0, **base),
                        CallRecord(call_id="b", status="success", cost_usd=0.25, **base)]
        ledger.record_many(failed_first)  # a failure then its retry's success, in one batch
        assert spend_view(by="ticket", ticket="FEAT-1", ledger=ledger)["totals"]["calls"] == 1
        assert spend_view(by="ticket", ledger=ledger)["totals"]["failed_calls"] == 0


def test_an_old_ledger_gains_rollups_of_its_calls(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, migration in MIGRATIONS:
        if name.startswith("m007"):
            break
        migration(MigrationConnection(db, "sqlite"))
        db.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (name,))
    db.execute("INSERT INTO calls (call_id, started_at, status, ticket_id, cost_usd, prompt_tokens) "
               "VALUES ('old', '2026-01-01', 'success', 'FEAT-1', 1.5, 10)")
    old = [r.as_tuple() for r in {r.call_id: r for r in records(300, seed=5)}.values()]
    db.executemany(f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})", old)
    db.commit()
    db.close()
    with SqliteLedger(path) as ledger:
        assert {"m007_spend_rollups", "m008_spend_session_and_ticket_rollups"} <= set(ledger.applied_migrations())
        assert ("2026-01-01", 1, 1, 0, 0, 10, 0, 0, 0, 1.5) in ledger.spend_groups(("day",))
        check_every_view(ledger)  # every rollup backfilled from the calls stored
        ledger.record_many(records(200, seed=6, ids=300))  # then kept up to date
        check_every_view(ledger)


def test_all_time_views_by_session_and_by_ticket_read_their_rollups(tmp_path: Path) -> None:
    """Without rollups these views sum the calls: with the calls gone (behind the writer's back) they still answer."""
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        write_with_replays(ledger)
        rows = ledger.rows()
        views = [("session",), ("ticket", "model"), ("ticket", "gate"), ("ticket",), ("session", "project")]
        for dims in views:
            assert as_dict(ledger.spend_groups(dims), len(dims)) == python_view(rows, dims)
        assert ledger.db.execute("SELECT COUNT(*) FROM spend_ticket_dim").fetchone()[0] > 0
        ledger.db.execute("DELETE FROM calls")
        ledger.db.commit()
        for dims in views:
            assert as_dict(ledger.spend_groups(dims), len(dims)) == python_view(rows, dims), dims
        assert ledger.spend_groups(("ticket", "model"), use_rollups=False) == []


@pytest.mark.services
def test_a_postgres_ledger_of_m007_gains_the_new_rollups_and_keeps_them(pg, monkeypatch: pytest.MonkeyPatch) -> None:
    """m008 backfills from the calls stored and replaces the trigger functions: writes after it keep every rollup."""
    import backlog_ops.ledger.postgres as postgres

    upto_m007 = [m for m in MIGRATIONS if m[0] <= "m007_spend_rollups"]
    monkeypatch.setattr(postgres, "MIGRATIONS", upto_m007)
    with open_ledger() as ledger:
        assert ledger.applied_migrations()[-1] == "m007_spend_rollups"
        write_with_replays(ledger)
    monkeypatch.setattr(postgres, "MIGRATIONS", MIGRATIONS)
    with open_ledger() as ledger:
        assert ledger.applied_migrations()[-1] == MIGRATIONS[-1][0]
        assert "m008_spend_session_and_ticket_rollups" in ledger.applied_migrations()
        check_every_view(ledger)
        ledger.record_many(records(300, seed=8, ids=500))  # replays, updates, new calls
        with ledger.db.cursor() as cur:
            cur.execute("UPDATE calls SET session_id = 's9', model = 'opus' WHERE gate = 'review'")
        ledger.db.commit()
        check_every_view(ledger)


def test_top_folds_the_tail_and_order_keeps_groups_together(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        ledger.record_many(records(500))
        full = spend_view(by=("ticket", "day"), ledger=ledger)
        top = spend_view(by=("ticket", "day"), top=2, ledger=ledger)
        firsts = list(dict.fromkeys(r["ticket"] for r in full["rows"]))
        assert list(dict.fromkeys(r["ticket"] for r in top["rows"])) == [*firsts[:2], OTHERS]
        assert top["totals"] == full["totals"] and top["others"] == len(firsts) - 2
        assert top["rows"][-1]["day"] is None
        others = [r for r in full["rows"] if r["ticket"] not in firsts[:2]]
        assert top["rows"][-1]["calls"] == sum(r["calls"] for r in others)
        timed = spend_view(by=("day",), order="time", ledger=ledger)
        assert [r["day"] for r in timed["rows"]] == sorted(r["day"] for r in timed["rows"])
        costs = [r["cost_usd"] for r in spend_view(by=("day",), ledger=ledger)["rows"]]
        assert costs == sorted(costs, reverse=True)
        weeks = spend_view(by="week", ledger=ledger, order="time")["rows"]
        assert [r["week"] for r in weeks] == ["2026-11-02", "2026-11-09"]


def test_windows_and_durations(tmp_path: Path) -> None:
    now = iso_to_epoch("2026-11-16T12:00:00.000+00:00")
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        ledger.record_many(records(400))
        rows = ledger.rows()
        week = spend_view(by="day", since="7d", now=now, ledger=ledger)
        assert week["since"] == "2026-11-09T12:00:00.000+00:00" and week["until"] is None
        assert week["totals"]["calls"] == sum(r["status"] == "success" for r in rows if r["started_at"] >= week["since"])
        one_day = spend_view(by="ticket", since="2026-11-05", until="2026-11-05", ledger=ledger)  # the whole day
        assert one_day["until"] == "2026-11-06T00:00:00.000+00:00"
        assert one_day["totals"]["calls"] == sum(r["status"] == "success" for r in rows if r["started_at"][:10] == "2026-11-05")


# -- the command, as users run it ------------------------------------------------------------------


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "backlog-ops"), "spend", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def out(*args: str, env: dict | None = None) -> str:
    r = cli(*args, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def small_ledger(backlog_home: Path) -> None:
    base = dict(project="my-api", gate="implement", model="claude-sonnet-4-6", prompt_tokens=1_500_000,
                cache_read_tokens=200_000, cache_write_tokens=100_000, completion_tokens=20_000)
    with SqliteLedger(backlog_home / "ledger.db") as ledger:
        ledger.record_many([
            CallRecord(call_id="1", started_at="2026-11-03T10:00:00.000+00:00", status="success", ticket_id="FEAT-1", cost_usd=1234.5, **base),
            CallRecord(call_id="2", started_at="2026-11-04T10:00:00.000+00:00", status="failure", ticket_id="FEAT-1", cost_usd=0.0, **base),
            CallRecord(call_id="3", started_at="2026-11-04T11:00:00.000+00:00", status="success", ticket_id="FEAT-2",
                       cost_usd=0.25, cache_hit=True, **{**base, "model": "m|*x\x1b[31m"}),
            CallRecord(call_id="4", started_at="2026-11-05T11:00:00.000+00:00", status="success", ticket_id=None, cost_usd=0.125, **base),
        ])


def test_spend_table_over_every_ticket(small_ledger) -> None:
    table = out()
    lines = table.splitlines()
    assert lines[0].split() == ["ticket", "cost", "calls", "failed", "cache", "hits", "input", "output", "cache", "write",
                                "cache", "read"]
    assert lines[2].split()[:6] == ["FEAT-1", "$1,234.5000", "1", "1", "0", "2,400,000"]
    assert lines[4].startswith("(no ticket)") and lines[-1].split()[:3] == ["TOTAL", "$1,234.8750", "3"]


def test_spend_by_two_groups_in_every_format_with_the_same_fields(small_ledger) -> None:
    data = json.loads(out("--by", "ticket,day", "--json"))
    assert data["by"] == ["ticket", "day"] and [(r["ticket"], r["day"]) for r in data["rows"]] == \
        [("FEAT-1", "2026-11-03"), ("FEAT-1", "2026-11-04"), ("FEAT-2", "2026-11-04"), (None, "2026-11-05")]
    assert data["rows"][1]["failed_calls"] == 1 and data["rows"][1]["calls"] == 0 and data["rows"][2]["cache_hits"] == 1
    rows = list(csv.DictReader(io.StringIO(out("--by", "ticket,day", "--csv"))))
    assert set(rows[0]) == {"ticket", "day", *FIELDS}
    assert [(r["ticket"], r["day"], int(r["calls"]), float(r["cost_usd"])) for r in rows] == \
        [(r["ticket"] or "", r["day"], r["calls"], r["cost_usd"]) for r in data["rows"]]
    md = out("--by", "ticket,model", "--markdown").splitlines()
    assert md[0] == "| ticket | model | cost | calls | failed | cache hits | input | output | cache write | cache read |"
    assert md[1].startswith("|---|---|---:|")
    assert any(line.startswith("| FEAT-2 | m\\|\\*x\\\\x1b\\[31m |") for line in md), md  # escaped: no new cell, no markup
    assert md[-1].startswith("| **TOTAL** |  | **$1,234.8750** | **3** | **1** |")


def test_spend_one_ticket_with_a_window_and_top(small_ledger) -> None:
    text = out("FEAT-1")
    assert text.startswith("FEAT-1: $1,234.5000 over 1 call (1 failed), 3,040,000 tokens (2,400,000 input, 40,000 output, "
                           "200,000 cache write, 400,000 cache read)")
    assert "implement" in text and "TOTAL" in text
    days = json.loads(out("--by", "day", "--since", "2026-11-04", "--until", "2026-11-04", "--json"))
    assert [r["day"] for r in days["rows"]] == ["2026-11-04"] and days["until"] == "2026-11-05T00:00:00.000+00:00"
    top = json.loads(out("--top", "1", "--json"))
    assert [r["ticket"] for r in top["rows"]] == ["FEAT-1", OTHERS] and top["others"] == 2
    assert "no calls recorded for this filter" in out("--since", "2027-01-01")


@pytest.mark.parametrize(("args", "needle"), [
    (["--by", "colour"], "cannot group by 'colour'"),
    (["--by", "ticket,day,model"], "one or two"),
    (["--until", "whenever"], "is not a date"),
    (["--top", "-1"], "--top"),
])
def test_spend_bad_arguments_are_one_line(small_ledger, args, needle) -> None:
    r = cli(*args)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert len([line for line in r.stderr.splitlines() if "error:" in line]) == 1, r.stderr
    assert "Traceback" not in r.stderr


# -- PostgreSQL ------------------------------------------------------------------------------------


def _replica(index: int) -> None:
    """One proxy replica's writer: its own calls, and calls every replica writes (retries, replays)."""
    writer = LedgerWriter(open_ledger, spool_path=Path(os.environ["SPOOL_DIR"]) / f"spool{index}.jsonl", batch_size=40)
    for r in records(400, seed=10 + index, ids=250):
        writer.submit(r)
    assert writer.flush(120)
    writer.close()


@pytest.mark.services
def test_concurrent_writers_keep_the_rollups_exact(pg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOOL_DIR", str(tmp_path))
    with open_ledger():
        pass  # migrated once, before the replicas start
    run_spawned(_replica, [(i,) for i in range(3)], timeout=180)
    with open_ledger() as ledger:
        assert len(ledger.rows()) == 250
        check_every_view(ledger)


@pytest.mark.services
def test_spend_cli_on_postgres(pg) -> None:
    with open_ledger() as ledger:
        ledger.record_many(records(200))
        expected = python_view(ledger.rows(), ("ticket", "day"))
    data = json.loads(out("--by", "ticket,day", "--json", env={}))
    assert {(r["ticket"], r["day"]): {f: r[f] for f in FIELDS} for r in data["rows"]} == expected
    assert "TOTAL" in out("--by", "week,model")
