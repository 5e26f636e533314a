"""`backlog-ops proxy` with no --config: the offline aliases, ./backlog.config.json's budgets, its banner and keys."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from backlog_ops.context.scope import Scope
from backlog_ops.gateway.process import ProxyProcess
from backlog_ops.ledger import SqliteLedger
from backlog_ops.context.file_store import ContextStore

from proxy_support import wait_for_rows

pytestmark = pytest.mark.proxy


def test_offline_proxy_prices_aliases_and_enforces_the_project_budget(tmp_path: Path) -> None:
    project = tmp_path / "shop-api"
    project.mkdir()
    (project / "backlog.config.json").write_text(json.dumps({
        "project": {"name": "shop-api"},
        "llmOps": {"budgets": {"perTicketUSD": 0.01}, "routing": {"maxEscalationsPerTicket": 1}},
    }))
    home = tmp_path / "home"
    sid = str(uuid.uuid4())
    ContextStore(home).set({"ticket_id": "SHOP-1", "gate": "implement", "agent_type": "backend", "project": "shop-api"}, Scope(sid))
    with ProxyProcess(home, cwd=project) as proxy:
        headers = {"authorization": f"Bearer {proxy.master_key}", "x-claude-code-session-id": sid}
        with httpx.Client(base_url=proxy.base_url, headers=headers, timeout=60) as client:
            def ask(model: str) -> httpx.Response:
                return client.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "design " * 400}]})

            first = ask("frontier")
            assert first.status_code == 200, first.text
            second = ask("frontier")
            assert second.status_code == 402 and "SHOP-1" in second.json()["error"]["message"]
            assert "maxEscalationsPerTicket" in second.json()["error"]["message"]
            statuses = []
            for _ in range(12):  # each cheap call costs ~$0.0006: the $0.01 budget runs out
                r = ask("balanced")
                statuses.append(r.status_code)
                if r.status_code == 402:
                    assert "has reached its budget" in r.json()["error"]["message"]
                    break
            assert statuses[-1] == 402 and 200 in statuses
        # Without the key: 401 naming where the key is kept, never the key; not a call in the ledger.
        bare = httpx.post(f"{proxy.base_url}/v1/chat/completions", timeout=60,
                          json={"model": "cheap", "messages": [{"role": "user", "content": "hi"}]})
        assert bare.status_code == 401 and str(home / "master-key") in bare.json()["error"]["message"]
        assert proxy.master_key not in bare.text
        log = proxy.log()
    # The start-up text says the answers are fake, and where the ledger is.
    assert "backlog-ops: LiteLLM proxy on " in log and "in OFFLINE MOCK mode: answers are fake" in log
    assert f"backlog-ops: ledger: SQLite at {home / 'ledger.db'}" in log
    row = wait_for_rows(home / "ledger.db", [first.headers["x-litellm-call-id"]])[first.headers["x-litellm-call-id"]]
    assert row["model"] == "anthropic/claude-opus-4-6" and row["cost_usd"] > 0 and row["project"] == "shop-api"
    with SqliteLedger(home / "ledger.db") as ledger:  # refusals (402, 401) never reached a provider
        assert {r["status"] for r in ledger.rows()} == {"success"}
