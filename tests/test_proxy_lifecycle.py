"""Stopping the proxy loses no ledger rows; a broken home never breaks a call."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import httpx
import pytest

from backlog_ops.context.scope import Scope
from backlog_ops.ledger import CallRecord, LedgerWriter, SqliteLedger
from backlog_ops.testing.mock_upstream import MockUpstream
from backlog_ops.context.file_store import ContextStore

from proxy_support import start_proxy, write_config

pytestmark = pytest.mark.proxy


def _send(proxy, n: int, session: str) -> list[str]:
    ids = []
    with httpx.Client(base_url=proxy.base_url, headers={"authorization": f"Bearer {proxy.master_key}"}, timeout=60) as c:
        for i in range(n):
            r = c.post(
                "/v1/chat/completions",
                headers={"x-claude-code-session-id": session},
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"call {i}"}]},
            )
            assert r.status_code == 200, r.text
            ids.append(r.headers["x-litellm-call-id"])
    return ids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_the_proxy_right_after_calls_keeps_every_row(tmp_path: Path, sig: int) -> None:
    home = tmp_path / "home"
    sid = str(uuid.uuid4())
    ContextStore(home).set({"ticket_id": "FEAT-900", "gate": "implement", "agent_type": "backend"}, Scope(sid))
    with MockUpstream() as up:
        proxy = start_proxy(home, write_config(tmp_path / "cfg", up.base_url))
        ids = _send(proxy, 20, sid)
        assert proxy.stop(sig) == 0, proxy.log()[-2000:]
    with SqliteLedger(home / "ledger.db") as ledger:
        rows = ledger.rows()
    assert sorted(r["call_id"] for r in rows) == sorted(ids)
    assert {r["ticket_id"] for r in rows} == {"FEAT-900"}


def test_broken_home_lets_calls_through_and_spools_the_rows(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "ledger.db").mkdir()  # the ledger cannot be opened
    (home / "current-context.json").write_text("{torn")  # nor the global context read
    with MockUpstream() as up:
        proxy = start_proxy(home, write_config(tmp_path / "cfg", up.base_url))
        ids = _send(proxy, 5, str(uuid.uuid4()))  # every call succeeds
        assert proxy.stop(signal.SIGTERM) == 0
    log = proxy.log()
    assert log.count("ignoring context file") == 1, "one warning, not one per call"
    assert 1 <= log.count("backlog-ops: cannot write") <= 3
    spooled = (home / "ledger-spool.jsonl").read_text().splitlines()
    assert len(spooled) == 5

    (home / "ledger.db").rmdir()  # the operator fixes the home; the next writer loads the spool
    writer = LedgerWriter(lambda: SqliteLedger(home / "ledger.db"), spool_path=home / "ledger-spool.jsonl")
    writer.submit(CallRecord("probe", "2026-11-24T00:00:00.000+00:00", "success"))
    assert writer.flush(10)
    writer.close()
    with SqliteLedger(home / "ledger.db") as ledger:
        assert set(ids) <= {r["call_id"] for r in ledger.rows()}
