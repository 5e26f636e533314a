"""The PostgreSQL ledger (BACKLOG_LEDGER_URL) against the real PostgreSQL on 127.0.0.1:5432."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from backlog_ops.errors import LedgerError
from backlog_ops.ledger import CallRecord, LedgerWriter, open_ledger
from backlog_ops.ledger.migrations import MIGRATIONS, MigrationConnection

from conftest import run_spawned

pytestmark = pytest.mark.services


def rec(call_id: str, **kw) -> CallRecord:
    base = dict(started_at="2026-11-20T10:00:00.000+00:00", status="success", ticket_id="FEAT-1", gate="plan",
                project="p", agent_type="planner", model="m", prompt_tokens=100, completion_tokens=10, cost_usd=0.01)
    return CallRecord(call_id=call_id, **{**base, **kw})


def test_open_ledger_selects_postgres_and_migrates(pg) -> None:
    with open_ledger() as ledger:
        assert type(ledger).__name__ == "PostgresLedger"
        assert ledger.applied_migrations() == [name for name, _ in MIGRATIONS]
        assert "password" not in ledger.where


def test_costs_keep_double_precision(pg) -> None:
    with open_ledger() as ledger:
        ledger.record_many([rec("c1", cost_usd=0.0020925, saved_cost_usd=1e-9, cache_hit=True)])
        row = ledger.rows()[0]
    assert row["cost_usd"] == 0.0020925 and row["saved_cost_usd"] == 1e-9 and row["cache_hit"] == 1


def test_same_queries_and_upsert_rules_as_sqlite(pg, tmp_path: Path) -> None:
    from backlog_ops.ledger import SqliteLedger

    records = [
        rec("a", gate="plan", cost_usd=0.10),
        rec("b", gate="implement", cost_usd=0.50, model="big", started_at="2026-11-21T09:00:00.000+00:00"),
        rec("c", gate="implement", cost_usd=0.25, started_at="2026-11-22T09:00:00.000+00:00"),
        rec("d", ticket_id=None, gate=None, cost_usd=0.01),
        rec("c", status="failure", cost_usd=0, error_class="Late"),  # never overwrites a success
    ]
    with open_ledger() as pg_ledger, SqliteLedger(tmp_path / "l.db") as lite:
        for ledger in (pg_ledger, lite):
            ledger.record_many(records[:4])
            ledger.record_many(records[4:])
        for by in ("gate", "model", "day", "agent", "session"):
            assert pg_ledger.ticket("FEAT-1", by=by) == lite.ticket("FEAT-1", by=by), by
        assert pg_ledger.tickets() == lite.tickets()
        assert pg_ledger.ticket(None) == lite.ticket(None)
        assert pg_ledger.ticket("FEAT-1", since="2026-11-21T12:00") == lite.ticket("FEAT-1", since="2026-11-21T12:00")
        assert pg_ledger.ticket_usage("FEAT-1", call_ids=["a", "zz"]) == lite.ticket_usage("FEAT-1", call_ids=["a", "zz"])


def test_old_schema_is_upgraded_and_newer_is_refused(pg) -> None:
    import psycopg

    from backlog_ops.ledger.postgres import PostgresLedger

    url, schema = pg
    with psycopg.connect(url) as db:
        db.execute(f'CREATE SCHEMA "{schema}"')
        db.execute(f'SET search_path TO "{schema}"')
        db.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL, applied_seq BIGSERIAL)")
        name, first = MIGRATIONS[0]
        first(MigrationConnection(db, "postgres"))
        db.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (%s, 'then')", (name,))
    with PostgresLedger(url, schema=schema) as ledger:
        assert ledger.applied_migrations() == [n for n, _ in MIGRATIONS]
        ledger.db.execute("INSERT INTO schema_migrations (name, applied_at) VALUES ('m999_future', 'later')")
        ledger.db.commit()
    with pytest.raises(LedgerError, match="newer backlog-ops"):
        PostgresLedger(url, schema=schema)


def test_unreachable_server_is_a_clear_error() -> None:
    from backlog_ops.ledger.postgres import PostgresLedger

    with pytest.raises(LedgerError, match="cannot open ledger postgresql://127.0.0.1:1/x"):
        PostgresLedger("postgresql://user:secret@127.0.0.1:1/x", connect_timeout=2)


def _replica(url: str, schema: str, index: int, n: int) -> None:
    """One proxy replica: its own writer; call ids overlap with the other replicas' on purpose."""
    os.environ["BACKLOG_LEDGER_URL"], os.environ["BACKLOG_LEDGER_SCHEMA"] = url, schema
    writer = LedgerWriter(open_ledger, spool_path=Path(f"/tmp/never-{os.getpid()}.jsonl"), batch_size=50)
    for i in range(n):
        writer.submit(rec(f"shared-{i}", cost_usd=0.001))  # the same call seen by every replica
        writer.submit(rec(f"own-{index}-{i}", cost_usd=0.002))
    assert writer.flush(120)
    writer.close()


def test_several_replicas_writing_at_once_lose_and_duplicate_nothing(pg) -> None:
    url, schema = pg
    open_ledger().close()  # create the schema once, as the first replica would
    run_spawned(_replica, [(url, schema, i, 300) for i in range(4)], timeout=180)
    with open_ledger() as ledger:
        rows = ledger.rows()
    ids = [r["call_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 300 + 4 * 300
    assert ledger_total(rows) == pytest.approx(300 * 0.001 + 1200 * 0.002)


def ledger_total(rows: list[dict]) -> float:
    return sum(r["cost_usd"] for r in rows)


def test_migrations_race_from_fresh(pg) -> None:
    """Replicas starting at once on an empty database each see a fully migrated ledger."""
    url, schema = pg
    run_spawned(_replica, [(url, schema, i, 5) for i in range(4)], timeout=120)
    with open_ledger() as ledger:
        assert ledger.applied_migrations() == [n for n, _ in MIGRATIONS]


def test_spend_cli_reads_postgres(pg) -> None:
    with open_ledger() as ledger:
        ledger.record_many([rec("x", cost_usd=0.3), rec("y", gate="review", cost_usd=0.2)])
    out = subprocess.run([str(Path(sys.executable).parent / "backlog-ops"), "spend", "FEAT-1", "--json"],
                         capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["totals"]["cost_usd"] == 0.5 and [r["gate"] for r in report["rows"]] == ["plan", "review"]


@pytest.mark.proxy
def test_proxy_writes_its_ledger_to_postgres(pg, tmp_path: Path) -> None:
    import httpx

    from backlog_ops.context.scope import Scope
    from backlog_ops.testing.mock_upstream import MockUpstream
    from backlog_ops.gateway.process import ProxyProcess
    from backlog_ops.context.file_store import ContextStore
    from proxy_support import write_config

    url, schema = pg
    home = tmp_path / "home"
    sid = str(uuid.uuid4())
    ContextStore(home).set({"ticket_id": "FEAT-PG", "gate": "implement", "agent_type": "backend"}, Scope(sid))
    with MockUpstream() as up:
        env = {"LITELLM_MASTER_KEY": "sk-test-" + uuid.uuid4().hex, "BACKLOG_LEDGER_URL": url, "BACKLOG_LEDGER_SCHEMA": schema}
        with ProxyProcess(home, config=write_config(tmp_path / "cfg", up.base_url), env=env) as proxy:
            with httpx.Client(base_url=proxy.base_url, headers={"authorization": f"Bearer {proxy.master_key}"}, timeout=60) as c:
                for _ in range(3):
                    r = c.post("/v1/chat/completions", headers={"x-claude-code-session-id": sid},
                               json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
                    assert r.status_code == 200
    with open_ledger() as ledger:
        assert ledger.ticket("FEAT-PG")["calls"] == 3
    assert not (home / "ledger.db").exists()


def test_direct_sdk_calls_land_in_the_configured_postgres_ledger(pg) -> None:
    """track_llm_call writes to the same ledger as the proxy: PostgreSQL when it is configured."""
    from backlog_ops.capture import tracking
    from backlog_ops.context.file_store import ContextStore

    ContextStore().set({"ticket_id": "FEAT-PGD", "gate": "implement", "agent_type": "script"})
    with tracking.track_llm_call(model="gpt-4o-mini", provider="openai") as call:
        call.input_tokens = 1000
        call.output_tokens = 100
    assert tracking.flush(30)
    with open_ledger() as ledger:
        rows = ledger.rows("WHERE ticket_id = 'FEAT-PGD'")
    assert len(rows) == 1 and rows[0]["source"] == "direct" and rows[0]["cost_usd"] > 0
