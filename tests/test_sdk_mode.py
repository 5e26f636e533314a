"""In-process SDK use (litellm.acompletion with our callbacks registered, as CrewAI does)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from backlog_ops.context.scope import Scope
from backlog_ops.ledger import LedgerWriter, SqliteLedger
from backlog_ops.testing.mock_upstream import MockUpstream
from backlog_ops.context.file_store import ContextStore


@pytest.fixture
def litellm_sdk(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    from backlog_ops.callbacks.spend_ledger import SpendLedger
    from backlog_ops.callbacks.ticket_tagger import TicketTagger

    home = Path(os.environ["BACKLOG_HOME"])
    writer = LedgerWriter(lambda: SqliteLedger(home / "ledger.db"), spool_path=home / "spool.jsonl")
    callbacks = [TicketTagger(), SpendLedger(writer)]
    monkeypatch.setattr(litellm, "callbacks", callbacks)
    yield litellm, writer
    writer.close()


def test_acompletion_is_tagged_and_ledgered(litellm_sdk, backlog_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    litellm, writer = litellm_sdk
    store = ContextStore()
    store.set({"ticket_id": "FEAT-800", "gate": "implement", "agent_type": "crew-dev", "skill": "crewai"})
    store.set({"ticket_id": "FEAT-801", "gate": "review", "agent_type": "crew-reviewer"}, Scope("crew-run-1"))

    async def run() -> None:
        with MockUpstream(prompt_tokens=400, completion_tokens=80) as up:
            await litellm.acompletion(model="openai/gpt-4o-mini", api_base=f"{up.base_url}/v1", api_key="mock",
                                      messages=[{"role": "user", "content": "hi"}], metadata={"tags": ["crew"]})
            monkeypatch.setenv("BACKLOG_SESSION_ID", "crew-run-1")
            await litellm.acompletion(model="openai/gpt-4o-mini", api_base=f"{up.base_url}/v1", api_key="mock",
                                      messages=[{"role": "user", "content": "hi again"}])
            await asyncio.sleep(0.5)  # success callbacks run on this loop just after each call returns

    asyncio.run(run())
    assert writer.flush(10)
    with SqliteLedger(backlog_home / "ledger.db") as ledger:
        rows = sorted(ledger.rows(), key=lambda r: r["started_at"])
    assert [(r["ticket_id"], r["gate"], r["agent_type"], r["source"]) for r in rows] == [
        ("FEAT-800", "implement", "crew-dev", "sdk"),
        ("FEAT-801", "review", "crew-reviewer", "sdk"),
    ]
    assert rows[1]["session_id"] == "crew-run-1"
    assert all(r["prompt_tokens"] == 400 and r["completion_tokens"] == 80 and r["cost_usd"] > 0 for r in rows)
