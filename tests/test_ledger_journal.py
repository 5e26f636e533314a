"""kill -9 of the proxy loses no completed call: the ledger journal, through the real proxy.

A call is complete when its client has read the whole response. Its row must survive a kill -9
at any moment after that: while LiteLLM has not yet run its logging callbacks (they run in a
background worker after the response went out), while the row waits in the writer's queue, and
while the ledger database is down. The restarted proxy loads what the killed one journaled.
"""

from __future__ import annotations

import shutil
import signal
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from backlog_ops.context.file_store import ContextStore
from backlog_ops.context.scope import Scope
from backlog_ops.gateway.process import ProxyProcess
from backlog_ops.ledger import SqliteLedger, open_ledger
from backlog_ops.testing.mock_upstream import MockUpstream

from fault_support import eventually, own_pg_ledger, own_postgres  # noqa: F401 - fixtures
from proxy_support import TESTS, start_proxy, write_config

pytestmark = pytest.mark.proxy

CONTEXT = {"ticket_id": "FEAT-K9", "gate": "implement", "agent_type": "backend", "project": "my-api"}


def call(client: httpx.Client, kind: str) -> str:
    """One call of `kind` (chat, chat-stream, messages, messages-stream), read to its end; its call id."""
    api, stream = kind.split("-")[0], kind.endswith("stream")
    if api == "chat":
        body = {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
        path = "/v1/chat/completions"
    else:
        body = {"model": "claude-haiku", "stream": stream, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
        path = "/v1/messages"
    with client.stream("POST", path, json=body) as response:
        response.read()
        assert response.status_code == 200, response.text
        return response.headers["x-litellm-call-id"]


def client_for(proxy: ProxyProcess, session: str) -> httpx.Client:
    return httpx.Client(base_url=proxy.base_url, timeout=60,
                        headers={"authorization": f"Bearer {proxy.master_key}", "x-claude-code-session-id": session})


def sqlite_rows(home: Path, ids: list[str]) -> dict[str, dict]:
    if not (home / "ledger.db").exists():
        return {}
    with SqliteLedger(home / "ledger.db") as ledger:
        return {r["call_id"]: r for r in ledger.rows() if r["call_id"] in ids}


def all_rows(home: Path, ids: list[str]) -> dict[str, dict] | None:
    found = sqlite_rows(home, ids)
    return found if len(found) == len(set(ids)) else None


def test_calls_answered_before_litellm_logged_them_survive_a_kill9(tmp_path: Path) -> None:
    home, session = tmp_path / "home", str(uuid.uuid4())
    ContextStore(home).set(CONTEXT, Scope(session))
    with MockUpstream(prompt_tokens=1000, completion_tokens=200) as upstream:
        config = write_config(tmp_path / "cfg", upstream.base_url)
        slow = yaml.safe_load(config.read_text())
        # LiteLLM runs one call's callbacks in turn: this one, first, holds the ledger's back for 10 s.
        slow["litellm_settings"]["callbacks"].insert(0, "slow_logger.slow")
        shutil.copy(TESTS / "slow_logger.py", config.parent / "slow_logger.py")
        slow_config = config.parent / "slow.yaml"
        slow_config.write_text(yaml.safe_dump(slow, sort_keys=False))

        proxy = start_proxy(home, slow_config)
        kinds = ["chat", "chat-stream", "messages", "messages-stream"] * 2
        with client_for(proxy, session) as client:
            ids = [call(client, kind) for kind in kinds]
        proxy.stop(signal.SIGKILL)
        assert sqlite_rows(home, ids) == {}, "the kill came before LiteLLM logged these calls"

        proxy = start_proxy(home, config)  # the next start, without the slow callback
        try:
            with client_for(proxy, session) as client:
                ids.append(call(client, "chat"))
            rows = eventually(lambda: all_rows(home, ids), timeout=30)
        finally:
            proxy.stop()
    assert rows, f"ledger has {len(sqlite_rows(home, ids))} of {len(ids)} rows"
    for call_id in ids:
        row = rows[call_id]
        assert (row["ticket_id"], row["gate"], row["session_id"]) == ("FEAT-K9", "implement", session)
        assert (row["prompt_tokens"], row["completion_tokens"]) == (1000, 200), row
        assert row["cost_usd"] > 0 and row["status"] == "success"
    assert not list((home / "ledger-journal").glob("*.jsonl")), "loaded once, then gone"


def test_a_kill9_while_the_ledger_database_is_down_loses_nothing(own_pg_ledger, tmp_path: Path) -> None:
    import os

    home, session = tmp_path / "home", str(uuid.uuid4())
    ContextStore(home).set(CONTEXT, Scope(session))
    env = {"LITELLM_MASTER_KEY": "sk-test-" + uuid.uuid4().hex, "BACKLOG_LEDGER_URL": os.environ["BACKLOG_LEDGER_URL"],
           "BACKLOG_LEDGER_SCHEMA": os.environ["BACKLOG_LEDGER_SCHEMA"]}
    with MockUpstream() as upstream:
        config = write_config(tmp_path / "cfg", upstream.base_url)
        proxy = ProxyProcess(home, config=config, env=env).start()
        with client_for(proxy, session) as client:
            ids = [call(client, "chat")]
            assert eventually(lambda: ids[0] in ledger_ids(), timeout=15)
            own_pg_ledger.stop()  # the database goes away; calls go on
            ids += [call(client, "chat-stream" if i % 2 else "chat") for i in range(40)]
        proxy.stop(signal.SIGKILL)
        own_pg_ledger.start()
        proxy = ProxyProcess(home, config=config, env=env).start()
        try:
            with client_for(proxy, session) as client:
                ids.append(call(client, "chat"))
            present = eventually(lambda: set(ids) <= set(ledger_ids()), timeout=30)
        finally:
            proxy.stop()
    rows = [i for i in ledger_ids() if i in set(ids)]
    assert present and len(rows) == len(set(rows)) == len(ids)


def ledger_ids() -> list[str]:
    try:
        with open_ledger() as ledger:
            return [r["call_id"] for r in ledger.rows()]
    except Exception:  # noqa: BLE001 - the database may be down
        return []


def test_no_answered_call_is_lost_to_a_kill9_under_concurrent_load(tmp_path: Path) -> None:
    home, session = tmp_path / "home", str(uuid.uuid4())
    ContextStore(home).set(CONTEXT, Scope(session))
    answered: list[str] = []
    lock = threading.Lock()
    with MockUpstream() as upstream:
        config = write_config(tmp_path / "cfg", upstream.base_url)
        proxy = start_proxy(home, config)
        with client_for(proxy, session) as client:

            def one(i: int) -> None:
                try:
                    call_id = call(client, ["chat", "chat-stream", "messages", "messages-stream"][i % 4])
                except (httpx.HTTPError, AssertionError):
                    return  # cut by the kill: not a completed call
                with lock:
                    answered.append(call_id)

            with ThreadPoolExecutor(16) as pool:
                futures = [pool.submit(one, i) for i in range(400)]
                eventually(lambda: len(answered) >= 150, timeout=60, interval=0.01)
                proxy.stop(signal.SIGKILL)  # in the middle of the load
                for future in futures:
                    future.result()
        with lock:
            completed = list(answered)
        proxy = start_proxy(home, config)
        try:
            with client_for(proxy, session) as client:
                completed.append(call(client, "chat"))
            rows = eventually(lambda: all_rows(home, completed), timeout=30)
        finally:
            proxy.stop()
    assert 150 <= len(completed) < 401
    assert rows, f"{len(completed) - len(sqlite_rows(home, completed))} of {len(completed)} answered calls lost"
    with SqliteLedger(home / "ledger.db") as ledger:
        ids = [r["call_id"] for r in ledger.rows()]
    assert len(ids) == len(set(ids))
