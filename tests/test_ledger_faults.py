"""The ledger writer and the budget reader across a restart of their own PostgreSQL, under load.

Each test runs against a throwaway PostgreSQL (tests/fault_support.py) that it restarts; the
shared server on 5432 is never touched.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from backlog_ops.ledger import CallRecord, LedgerWriter, open_ledger
from backlog_ops.policy.engine import PolicyEngine, ledger_usage_reader
from backlog_ops.policy.limits import TicketPolicy

from fault_support import eventually, own_pg_ledger, own_postgres  # noqa: F401 - fixtures

pytestmark = pytest.mark.services


def rec(call_id: str, ticket: str = "FEAT-1", cost: float = 0.01) -> CallRecord:
    return CallRecord(call_id=call_id, started_at="2026-11-20T10:00:00.000+00:00", status="success",
                      ticket_id=ticket, project="p", model="m", prompt_tokens=100, completion_tokens=10, cost_usd=cost)


def ledger_ids() -> list[str]:
    with open_ledger() as ledger:
        return [r["call_id"] for r in ledger.rows()]


def test_the_writer_reconnects_after_a_postgres_restart_under_load(own_pg_ledger, tmp_path: Path) -> None:
    writer = LedgerWriter(open_ledger, spool_path=tmp_path / "spool.jsonl", journal_dir=tmp_path / "journal")
    for i in range(100):
        writer.submit(rec(f"before-{i}"))
    assert writer.flush(30)

    stop = threading.Event()
    sent: list[str] = []

    def load() -> None:  # ~100 rows/s, bounded: at most 1,500 rows
        for i in range(1500):
            if stop.is_set():
                return
            writer.submit(rec(f"during-{i}"))
            sent.append(f"during-{i}")
            time.sleep(0.01)

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(0.5)
    own_pg_ledger.restart()  # every connection is cut; the server is back a moment later
    time.sleep(1.0)
    stop.set()
    thread.join(30)
    assert writer.flush(30), f"{writer.pending()} rows still queued 30 s after PostgreSQL came back"
    writer.close()
    ids = ledger_ids()
    assert len(ids) == len(set(ids)) == 100 + len(sent)
    assert set(ids) == {f"before-{i}" for i in range(100)} | set(sent)
    assert not list((tmp_path / "journal").glob("*.jsonl")), "the journal is emptied once the ledger has every row"


def test_the_budget_reader_reads_again_after_a_postgres_restart(own_pg_ledger) -> None:
    with open_ledger() as ledger:
        ledger.record_many([rec("a", ticket="FEAT-9", cost=0.4)])
    policy = TicketPolicy(project="p", ticket_budget_usd=1.0)
    engine = PolicyEngine(ledger_usage_reader(), refresh_seconds=0)
    assert engine.check("c1", "FEAT-9", policy, escalation=False, estimate_usd=0) is None
    engine.release("c1")

    own_pg_ledger.restart()
    with open_ledger() as ledger:  # spend made elsewhere (another replica) while this one's connection died
        ledger.record_many([rec("b", ticket="FEAT-9", cost=0.8)])

    def refused():
        refusal = engine.check("c2", "FEAT-9", policy, escalation=False, estimate_usd=0)
        engine.release("c2")
        return refusal

    refusal = eventually(refused, timeout=15)
    assert refusal is not None and refusal.kind == "budget" and "$1.2000 of $1.0000" in refusal.message
