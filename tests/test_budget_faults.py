"""Per-ticket limits through the real proxy while its own PostgreSQL ledger restarts or is down.

Before: after a PostgreSQL restart the budget reader kept its dead connection and every call of
a ticket over its limit was served. Now the reader reconnects; while the ledger cannot be read,
`llmOps.budgets.onLedgerUnavailable` decides (allow: on the last figures read, with a loud alert;
deny: HTTP 503) and a ticket known to be over its limit is refused either way.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from backlog_ops.context.file_store import ContextStore
from backlog_ops.context.scope import Scope
from backlog_ops.gateway.process import ProxyProcess
from backlog_ops.testing.mock_upstream import MockUpstream

from fault_support import eventually, own_pg_ledger, own_postgres  # noqa: F401 - fixtures
from proxy_support import write_config

pytestmark = [pytest.mark.proxy, pytest.mark.services]

POLICY = "backlog_ops.callbacks.ticket_policy.ticket_policy"
# gpt-4o-mini on the mock: 1000 prompt + 200 completion tokens = $0.00027 a call.
LIMITED = {"ticket_budget_usd": 0.001}


def start(tmp_path: Path, upstream: MockUpstream, on_unavailable: str) -> ProxyProcess:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"backlog_ops": {"policy": {"projects": {
        "my-api": {**LIMITED, "on_ledger_unavailable": on_unavailable}}}}}))
    env = {"LITELLM_MASTER_KEY": "sk-test-" + uuid.uuid4().hex, "BACKLOG_POLICY_FILE": str(policy),
           "BACKLOG_LEDGER_URL": os.environ["BACKLOG_LEDGER_URL"], "BACKLOG_LEDGER_SCHEMA": os.environ["BACKLOG_LEDGER_SCHEMA"]}
    home = tmp_path / "home"
    proxy = ProxyProcess(home, config=write_config(tmp_path / "cfg", upstream.base_url, extra_callbacks=[POLICY]), env=env).start()
    return proxy


def working_on(proxy: ProxyProcess, ticket: str) -> dict:
    session = str(uuid.uuid4())
    ContextStore(proxy.home).set({"ticket_id": ticket, "gate": "implement", "agent_type": "backend", "project": "my-api"}, Scope(session))
    return {"authorization": f"Bearer {proxy.master_key}", "x-claude-code-session-id": session}


def chat(proxy: ProxyProcess, headers: dict) -> httpx.Response:
    return httpx.post(f"{proxy.base_url}/v1/chat/completions", headers=headers, timeout=60,
                      json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def test_a_ticket_over_its_limit_stays_refused_across_a_postgres_restart(own_pg_ledger, tmp_path: Path) -> None:
    with MockUpstream(prompt_tokens=1000, completion_tokens=200) as upstream:
        proxy = start(tmp_path, upstream, "allow")
        try:
            over = working_on(proxy, "FEAT-OVER")
            served = 0
            while chat(proxy, over).status_code == 200:  # spend past $0.001 (bounded: 4 calls pass)
                served += 1
                assert served <= 10
            assert 3 <= served <= 5
            time.sleep(2.5)  # every row in the ledger, and the cached figures older than a refresh
            assert chat(proxy, over).status_code == 402

            own_pg_ledger.restart()
            statuses = [chat(proxy, over).status_code for _ in range(15)]
            assert statuses == [402] * 15, statuses
            time.sleep(2.5)  # past a refresh: the reader has to read the restarted server
            assert chat(proxy, over).status_code == 402
            fresh = working_on(proxy, "FEAT-FRESH")
            assert chat(proxy, fresh).status_code == 200, "the reader reads the restarted server"

            # Down for a while under allow (the default): calls go on, the over-limit ticket stays refused.
            own_pg_ledger.stop()
            time.sleep(2.5)
            assert chat(proxy, fresh).status_code == 200
            assert chat(proxy, over).status_code == 402
            own_pg_ledger.start()
        finally:
            proxy.stop()
    log = proxy.log()
    assert "calls of limited tickets were let through so far" in log and "onLedgerUnavailable: allow" in log


def test_deny_answers_503_while_the_ledger_is_down_and_serves_again_after(own_pg_ledger, tmp_path: Path) -> None:
    with MockUpstream(prompt_tokens=1000, completion_tokens=200) as upstream:
        proxy = start(tmp_path, upstream, "deny")
        try:
            headers = working_on(proxy, "FEAT-DENY")
            assert chat(proxy, headers).status_code == 200
            unlimited = {**working_on(proxy, "FEAT-X"), "x-litellm-tags": "project:other"}
            own_pg_ledger.stop()
            time.sleep(2.5)  # past the figures' refresh interval
            refused = chat(proxy, headers)
            assert refused.status_code == 503, refused.text
            message = refused.json()["error"]["message"]
            assert "FEAT-DENY" in message and "cannot be read" in message and "onLedgerUnavailable" in message
            assert "127.0.0.1" not in message and "postgres" not in message.lower()
            assert chat(proxy, unlimited).status_code == 200, "a project with no limit is never refused for it"
            own_pg_ledger.start()
            assert eventually(lambda: chat(proxy, headers).status_code == 200, timeout=20)
        finally:
            proxy.stop()
    log = proxy.log()
    assert "refused with HTTP 503" in log and "can be read again" in log
