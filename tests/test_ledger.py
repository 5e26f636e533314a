"""The SQLite ledger: migrations, idempotent writes, the background writer, spend queries."""

from __future__ import annotations

import json
import sqlite3
import stat
import threading
import time
from unittest import mock
from pathlib import Path

import pytest

from backlog_ops.errors import LedgerError
from backlog_ops.ledger import CallRecord, LedgerWriter, SqliteLedger
from backlog_ops.ledger import migrations as migrations_module
from backlog_ops.ledger.migrations import MIGRATIONS, MigrationConnection


def rec(call_id: str, **kw) -> CallRecord:
    base = dict(started_at="2026-11-20T10:00:00.000+00:00", status="success", ticket_id="FEAT-1", gate="plan",
                project="p", agent_type="planner", model="m", prompt_tokens=100, completion_tokens=10, cost_usd=0.01)
    return CallRecord(call_id=call_id, **{**base, **kw})


def test_new_ledger_is_private_and_fully_migrated(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with SqliteLedger(path) as ledger:
        assert ledger.applied_migrations() == [name for name, _ in MIGRATIONS]
        assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_old_schema_is_upgraded_in_order(tmp_path: Path) -> None:
    """A ledger written by a release that had only the first migration gains the later ones."""
    path = tmp_path / "ledger.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    first_name, first = MIGRATIONS[0]
    first(MigrationConnection(db, "sqlite"))
    db.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (first_name,))
    db.execute("INSERT INTO calls (call_id, started_at, status, ticket_id, cost_usd) VALUES ('old', '2026-01-01', 'success', 'FEAT-1', 1.5)")
    db.commit()
    db.close()
    with SqliteLedger(path) as ledger:
        assert ledger.applied_migrations() == [name for name, _ in MIGRATIONS]
        assert ledger.ticket("FEAT-1")["cost_usd"] == 1.5
        indexes = {r[0] for r in ledger.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "calls_ticket_time_policy" in indexes
        assert not indexes & {"calls_ticket_started", "calls_ticket_policy", "calls_ticket_gate_spend"}, "m009 merged them"


def test_a_failing_migration_stops_the_ledger_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def m999_broken(db):
        db.execute("ALTER TABLE no_such_table ADD COLUMN x")

    monkeypatch.setattr(migrations_module, "MIGRATIONS", [*MIGRATIONS, ("m999_broken", m999_broken)])
    monkeypatch.setattr("backlog_ops.ledger.sqlite.MIGRATIONS", migrations_module.MIGRATIONS)
    with pytest.raises(LedgerError, match="migration m999_broken failed: no such table"):
        SqliteLedger(tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    assert [r[0] for r in db.execute("SELECT name FROM schema_migrations")] == [n for n, _ in MIGRATIONS]


def test_a_ledger_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    SqliteLedger(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_migrations VALUES ('m900_from_the_future', 'later')")
    db.commit()
    db.close()
    with pytest.raises(LedgerError, match="newer backlog-ops"):
        SqliteLedger(path)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="ledger"):
        SqliteLedger(path)


def test_writes_are_idempotent_and_a_success_is_final(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        ledger.record_many([rec("c1", status="failure", cost_usd=0, error_class="RateLimitError")])
        ledger.record_many([rec("c1", status="success", cost_usd=0.02)])  # retried, then succeeded
        ledger.record_many([rec("c1", status="failure", cost_usd=0, error_class="Late")])  # a late duplicate
        ledger.record_many([rec("c1", status="success", cost_usd=0.02)])
        rows = ledger.rows()
    assert len(rows) == 1
    assert rows[0]["status"] == "success" and rows[0]["cost_usd"] == 0.02 and rows[0]["error_class"] is None


def test_spend_queries(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        ledger.record_many([
            rec("a", gate="plan", cost_usd=0.10, prompt_tokens=100, completion_tokens=10),
            rec("b", gate="implement", cost_usd=0.50, model="big", started_at="2026-11-21T09:00:00.000+00:00"),
            rec("c", gate="implement", cost_usd=0.25, started_at="2026-11-22T09:00:00.000+00:00"),
            rec("d", ticket_id="FEAT-2", cost_usd=0.05),
            rec("e", ticket_id=None, gate=None, cost_usd=0.01),
            rec("f", ticket_id="FEAT-1", project="other", cost_usd=1.0),
        ])
        tickets = ledger.tickets()
        assert [(t["ticket_id"], t["project"]) for t in tickets] == [("FEAT-1", "other"), ("FEAT-1", "p"), ("FEAT-2", "p"), (None, "p")]
        assert ledger.tickets(project="p")[0] == {"ticket_id": "FEAT-1", "project": "p", "cost_usd": 0.85, "calls": 3, "tokens": 330}

        one = ledger.ticket("FEAT-1", project="p")
        assert (one["cost_usd"], one["calls"]) == (0.85, 3)
        assert [(b["key"], b["cost_usd"], b["calls"]) for b in one["breakdown"]] == [("implement", 0.75, 2), ("plan", 0.10, 1)]
        assert [b["key"] for b in ledger.ticket("FEAT-1", by="model", project="p")["breakdown"]] == ["big", "m"]
        assert [b["key"] for b in ledger.ticket("FEAT-1", by="day", project="p")["breakdown"]] == ["2026-11-21", "2026-11-22", "2026-11-20"]
        assert ledger.ticket("FEAT-1", since="2026-11-21T12:00", project="p")["cost_usd"] == 0.25
        assert ledger.ticket(None)["calls"] == 1, "calls with no ticket are reported, not dropped"
        with pytest.raises(LedgerError, match="cannot group by"):
            ledger.ticket("FEAT-1", by="color")


def test_writer_batches_off_the_caller_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    writer = LedgerWriter(lambda: SqliteLedger(path), spool_path=tmp_path / "spool.jsonl")
    caller = threading.get_ident()
    writes: list[int] = []
    real = SqliteLedger.record_many
    # submit() never writes: every batch reaches the disk from the writer's own thread.
    with mock.patch.object(SqliteLedger, "record_many",
                           lambda self, records: writes.append(threading.get_ident()) or real(self, records)):
        for i in range(2000):
            writer.submit(rec(f"c{i}"))
        assert writer.flush(30)
    writer.close()
    with SqliteLedger(path) as ledger:
        assert len(ledger.rows()) == 2000
    assert writes and caller not in writes


def test_a_writer_behind_takes_up_to_max_batch_rows_a_transaction(tmp_path: Path) -> None:
    """batch_size rows are enough to write; when more wait, one transaction takes up to max_batch."""
    path = tmp_path / "ledger.db"
    writer = LedgerWriter(lambda: SqliteLedger(path), spool_path=tmp_path / "spool.jsonl", batch_size=100, max_batch=1000)
    sizes: list[int] = []
    real = SqliteLedger.record_many

    def slow(self, records):
        sizes.append(len(records))
        time.sleep(0.05)  # a busy ledger: rows pile up meanwhile
        return real(self, records)

    with mock.patch.object(SqliteLedger, "record_many", slow):
        for i in range(5000):
            writer.submit(rec(f"c{i}"))
        assert writer.flush(60)
    writer.close()
    assert sum(sizes) == 5000 and max(sizes) == 1000, sizes
    with SqliteLedger(path) as ledger:
        assert len(ledger.rows()) == 5000


def _rows_in_the_database_file(path: Path) -> int:
    """Rows in the main file alone: immutable=1 reads no WAL, so only checkpointed rows count."""
    db = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    except sqlite3.OperationalError:  # not even the schema is in the file yet
        return 0
    finally:
        db.close()


def test_a_writers_checkpoints_run_on_a_thread_of_their_own(tmp_path: Path) -> None:
    """The writer's connection checkpoints only past 256 MiB of WAL; its checkpointer copies the rows
    into the database file within a second or two, and stops with the writer."""
    path = tmp_path / "ledger.db"
    writer = LedgerWriter(lambda: SqliteLedger(path), spool_path=tmp_path / "spool.jsonl")
    for i in range(300):
        writer.submit(rec(f"c{i}"))
    assert writer.flush(30)
    names = {t.name for t in threading.enumerate()}
    assert "backlog-ops-ledger-checkpoint" in names
    assert writer._ledger.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 65536
    deadline = time.monotonic() + 15
    while _rows_in_the_database_file(path) < 300 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _rows_in_the_database_file(path) == 300, "the checkpointer copied the committed rows into the file"
    writer.close()
    assert "backlog-ops-ledger-checkpoint" not in {t.name for t in threading.enumerate()}


def test_a_plain_connection_keeps_sqlites_own_checkpoints(tmp_path: Path) -> None:
    """Only the writer's connection is tuned: a CLI, the MCP server or an import starts no thread."""
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        ledger.record_many([rec("c1")])
        assert ledger.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        assert "backlog-ops-ledger-checkpoint" not in {t.name for t in threading.enumerate()}


def test_writer_survives_a_broken_ledger_and_spools_at_close(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "ledger.db"
    broken.mkdir()  # a directory where the ledger file should be
    spool = tmp_path / "spool.jsonl"
    writer = LedgerWriter(lambda: SqliteLedger(broken), spool_path=spool)
    for i in range(5):
        writer.submit(rec(f"s{i}"))
    assert not writer.flush(0.5)
    writer.close(timeout=0.5)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert 1 <= len(warnings) <= 2, [r.getMessage() for r in warnings]
    assert len(spool.read_text().splitlines()) == 5

    broken.rmdir()
    fresh = LedgerWriter(lambda: SqliteLedger(broken), spool_path=spool)
    fresh.submit(rec("after"))
    assert fresh.flush(10)
    fresh.close()
    with SqliteLedger(broken) as ledger:
        assert sorted(r["call_id"] for r in ledger.rows()) == ["after", "s0", "s1", "s2", "s3", "s4"]
    assert not spool.exists() and not list(tmp_path.glob("*.loading"))


def test_spend_cli_formats(tmp_path: Path, backlog_home: Path) -> None:
    import subprocess
    import sys

    with SqliteLedger(backlog_home / "ledger.db") as ledger:
        ledger.record_many([rec("a", gate="plan", cost_usd=0.1), rec("b", gate="review", cost_usd=0.3), rec("n", ticket_id=None, cost_usd=0.2)])
    bin_ = Path(sys.executable).parent / "backlog-ops"

    def run(*args):
        r = subprocess.run([str(bin_), "spend", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    all_json = json.loads(run("--json"))
    assert all_json["by"] == ["ticket"]
    assert all_json["rows"][0] == {"ticket": "FEAT-1", "calls": 2, "failed_calls": 0, "cache_hits": 0, "input_tokens": 200,
                                   "output_tokens": 20, "cache_write_tokens": 0, "cache_read_tokens": 0, "cost_usd": 0.4}
    assert all_json["rows"][1]["ticket"] is None
    assert all_json["totals"]["calls"] == 3 and all_json["totals"]["cost_usd"] == 0.6
    one = json.loads(run("FEAT-1", "--json"))
    assert one["ticket"] == "FEAT-1" and one["by"] == ["gate"]
    assert {k: one["totals"][k] for k in ("cost_usd", "calls", "input_tokens", "output_tokens")} == \
        {"cost_usd": 0.4, "calls": 2, "input_tokens": 200, "output_tokens": 20}
    assert [r["gate"] for r in one["rows"]] == ["review", "plan"]
    table = run()
    assert "(no ticket)" in table and "$0.4000" in table and "TOTAL" in table
    assert run("FEAT-1", "--csv").splitlines()[0] == \
        "gate,cost_usd,calls,failed_calls,cache_hits,input_tokens,output_tokens,cache_write_tokens,cache_read_tokens"
    assert "no calls recorded" in run("NOPE-1")
    assert json.loads(run("-", "--json"))["totals"]["calls"] == 1


def _sqlite_replica(path: str, index: int, n: int) -> None:
    writer = LedgerWriter(lambda: SqliteLedger(Path(path)), spool_path=Path(path).with_suffix(f".spool{index}"), batch_size=25)
    for i in range(n):
        writer.submit(rec(f"shared-{i}", cost_usd=0.001))
        writer.submit(rec(f"own-{index}-{i}", cost_usd=0.002))
    assert writer.flush(60)
    writer.close()


def test_several_processes_share_one_sqlite_ledger(tmp_path: Path) -> None:
    """Two proxies on one machine (or a proxy and an importer) write the same ledger file."""
    import multiprocessing as mp

    path = tmp_path / "ledger.db"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_sqlite_replica, args=(str(path), i, 200)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with SqliteLedger(path) as ledger:
        ids = [r["call_id"] for r in ledger.rows()]
    assert len(ids) == len(set(ids)) == 200 + 3 * 200


# -- bad spool lines, and messages about rows that are spooled or lost ----------------------------


def test_a_bad_spool_line_is_moved_aside_and_the_rest_is_loaded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, spool = tmp_path / "ledger.db", tmp_path / "spool.jsonl"
    bad = {**rec("bad").as_row(), "prompt_tokens": {"n": 1}}  # a dict where a number belongs
    lines = [json.dumps(rec("g0").as_row()), json.dumps(bad), json.dumps(rec("g1").as_row()), '{"call_id": "torn', json.dumps(rec("g2").as_row())]
    spool.write_text("\n".join(lines) + "\n")
    writer = LedgerWriter(lambda: SqliteLedger(path), spool_path=spool)
    writer.submit(rec("new"))
    assert writer.flush(10), "one bad line must not block the spool"
    writer.close()
    with SqliteLedger(path) as ledger:
        assert sorted(r["call_id"] for r in ledger.rows()) == ["g0", "g1", "g2", "new"]
    kept = (tmp_path / "spool.jsonl.bad").read_text().splitlines()
    assert [json.loads(kept[0])["prompt_tokens"], kept[1]] == [{"n": 1}, '{"call_id": "torn']
    assert stat.S_IMODE((tmp_path / "spool.jsonl.bad").stat().st_mode) == 0o600
    assert not spool.exists() and not list(tmp_path.glob("*.loading*"))
    assert any("2 unreadable ledger rows" in r.getMessage() and "spool.jsonl.bad" in r.getMessage() for r in caplog.records)


def test_spool_and_loss_messages_are_never_throttled_away(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "ledger.db"
    broken.mkdir()  # the ledger cannot be opened: every write fails, and says so (throttled)
    writer = LedgerWriter(lambda: SqliteLedger(broken), spool_path=tmp_path / "spool.jsonl")
    for i in range(5):
        writer.submit(rec(f"s{i}"))
    assert not writer.flush(0.3)
    writer.close(timeout=0.5)
    (tmp_path / "blocker").write_text("")  # a file where the spool's directory should be
    unspoolable = LedgerWriter(lambda: SqliteLedger(broken), spool_path=tmp_path / "blocker" / "spool.jsonl")
    for i in range(4):
        unspoolable.submit(rec(f"u{i}"))
    assert not unspoolable.flush(0.3)
    unspoolable.close(timeout=0.5)
    messages = [r.getMessage() for r in caplog.records]
    assert any("cannot write" in m for m in messages)
    assert any("5 rows kept in" in m and "spool.jsonl" in m for m in messages), messages
    assert any("cannot spool: 4 rows lost" in m for m in messages), messages


def test_a_full_queue_counts_what_it_loses_and_says_the_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "ledger.db"
    broken.mkdir()
    writer = LedgerWriter(lambda: SqliteLedger(broken), spool_path=tmp_path / "blocker" / "x.jsonl", max_pending=3)
    (tmp_path / "blocker").write_text("")
    for i in range(10):
        writer.submit(rec(f"q{i}"))
    writer.close(timeout=0.3)
    messages = [r.getMessage() for r in caplog.records]
    lost = [m for m in messages if "rows lost so far" in m]
    # The queue holds 3; what the writer thread had taken when the queue filled (one row, or a
    # batch on a busy machine) is lost at exit instead. Every row is counted, in one place or the other.
    at_exit = [int(m.split("cannot spool: ")[1].split(" rows lost")[0]) for m in messages if "cannot spool: " in m]
    assert writer.dropped >= 1 and writer.dropped + sum(at_exit) == 10, (writer.dropped, messages)
    assert lost and f"{writer.dropped} rows lost so far" in lost[-1], lost


# -- the journal: rows on disk until the ledger has them ------------------------------------------


def _killed_writer(ledger_path: str, journal: str, spool: str) -> None:
    """A writer whose ledger never answers, killed with -9 once its rows are journaled."""
    import os
    import signal

    def never():
        time.sleep(3600)

    writer = LedgerWriter(never, spool_path=Path(spool), journal_dir=Path(journal))
    for i in range(50):
        writer.submit(rec(f"k{i}"))
    writer.submit_early(rec("early-only", cost_usd=0.5))
    writer.submit_early(rec("k1", cost_usd=9.0))  # its own row came first: never needed
    os.kill(os.getpid(), signal.SIGKILL)


def test_rows_journaled_by_a_killed_writer_are_loaded_once_by_the_next(tmp_path: Path) -> None:
    import multiprocessing as mp

    path, journal, spool = tmp_path / "ledger.db", tmp_path / "journal", tmp_path / "spool.jsonl"
    with SqliteLedger(path) as ledger:
        ledger.record_many([rec("k0", cost_usd=0.01)])  # written before the crash
    proc = mp.get_context("spawn").Process(target=_killed_writer, args=(str(path), str(journal), str(spool)))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -9
    assert len(list(journal.glob("*.jsonl"))) == 1 and len(list(journal.glob("*.lock"))) == 1

    writer = LedgerWriter(lambda: SqliteLedger(path), spool_path=spool, journal_dir=journal)
    writer.start()
    assert writer.flush(10)
    time.sleep(0.2)
    writer.close()
    with SqliteLedger(path) as ledger:
        rows = {r["call_id"]: r for r in ledger.rows()}
    assert sorted(rows) == sorted([f"k{i}" for i in range(50)] + ["early-only"])
    assert rows["k1"]["cost_usd"] == 0.01 and rows["early-only"]["cost_usd"] == 0.5
    assert list(journal.iterdir()) == [], "nothing is loaded twice: the journal is gone"

    again = LedgerWriter(lambda: SqliteLedger(path), spool_path=spool, journal_dir=journal)
    again.start()
    assert again.flush(10)
    again.close()
    with SqliteLedger(path) as ledger:
        assert len(ledger.rows()) == 51


def test_the_journal_stays_small_and_early_rows_give_way_to_the_calls_own_row(tmp_path: Path) -> None:
    path, journal = tmp_path / "ledger.db", tmp_path / "journal"
    priced = []
    writer = LedgerWriter(lambda: SqliteLedger(path), spool_path=tmp_path / "spool.jsonl", journal_dir=journal,
                          early_ttl=0.3, price_early=lambda r: priced.append(r.call_id) or r)
    writer.submit_early(rec("a", cost_usd=0.0, prompt_tokens=5))
    writer.submit(rec("a", cost_usd=0.02))
    writer.submit_early(rec("never-logged", cost_usd=0.0))
    for i in range(3000):
        writer.submit(rec(f"r{i}"))
    assert writer.flush(30)
    deadline = time.monotonic() + 10
    while priced != ["never-logged"] and time.monotonic() < deadline:
        time.sleep(0.05)
    with SqliteLedger(path) as ledger:
        rows = {r["call_id"]: r for r in ledger.rows()}
    assert rows["a"]["cost_usd"] == 0.02 and rows["a"]["prompt_tokens"] == 100, "the call's own row wins"
    assert "never-logged" in rows and priced == ["never-logged"]
    segments = list(journal.glob("*.jsonl"))
    assert len(segments) <= 1 and sum(s.stat().st_size for s in segments) < 8 << 20
    writer.close()
    assert list(journal.iterdir()) == []


def test_rows_past_the_memory_bound_wait_in_the_journal_and_are_all_written(tmp_path: Path, caplog) -> None:
    path = tmp_path / "ledger.db"
    path.mkdir()  # down for now
    writer = LedgerWriter(lambda: SqliteLedger(path), spool_path=tmp_path / "spool.jsonl",
                          journal_dir=tmp_path / "journal", max_pending=5, interval=0.01)
    for i in range(40):
        writer.submit(rec(f"o{i}"))
    assert writer.dropped == 0
    assert any("wait in the journal" in r.getMessage() for r in caplog.records)
    path.rmdir()  # back
    deadline = time.monotonic() + 20
    count = 0
    while count < 40 and time.monotonic() < deadline:
        time.sleep(0.1)
        if path.exists():
            with SqliteLedger(path) as ledger:
                count = len(ledger.rows())
    writer.close()
    with SqliteLedger(path) as ledger:
        assert sorted(r["call_id"] for r in ledger.rows()) == sorted(f"o{i}" for i in range(40))
