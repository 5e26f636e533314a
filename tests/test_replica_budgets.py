"""Per-ticket budgets shared exactly by several proxy processes: replicas, and `--workers N`.

Before: in-flight reservations lived in each process and the ledger was read every 2 s, so two
proxies behind one address each let a ticket spend its whole remaining budget. Now, with the
team's Redis configured (BACKLOG_CONTEXT_URL), every check and reservation is one script in
Redis shared by all of them.

Real processes, the way a user runs them: `backlog-ops proxy` (twice, or once with --workers 2)
in front of the mock provider, the shared Redis on 6379 under a key prefix of the test's own,
and a PostgreSQL ledger in a schema of its own on the shared server.
"""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from backlog_ops.context.redis_store import RedisContextStore
from backlog_ops.context.scope import Scope
from backlog_ops.gateway.process import ProxyProcess
from backlog_ops.ledger import CallRecord
from backlog_ops.testing.mock_upstream import MockUpstream
from proxy_support import worker_pids, write_config

pytestmark = [pytest.mark.proxy, pytest.mark.services]

POLICY = "backlog_ops.callbacks.ticket_policy.ticket_policy"
CALL_COST = 0.00027  # gpt-4o-mini on the mock: 1000 prompt + 200 completion tokens
BUDGET = 0.004
SPENT_BEFORE = 0.00265  # five calls' worth left
CALLS = 40


@pytest.fixture
def shared(redis_url: str, postgres_url: str, tmp_path: Path):
    """(env for the proxies, the context store, the ledger schema): Redis prefix and schema of this test's own."""
    from backlog_ops.ledger.postgres import PostgresLedger

    prefix = f"backlog-test-{uuid.uuid4().hex[:8]}:"
    schema = f"replicas_{uuid.uuid4().hex[:10]}"
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"backlog_ops": {"policy": {"projects": {"my-api": {"ticket_budget_usd": BUDGET}}}}}))
    env = {"LITELLM_MASTER_KEY": "sk-test-" + uuid.uuid4().hex, "BACKLOG_POLICY_FILE": str(policy),
           "BACKLOG_CONTEXT_URL": redis_url, "BACKLOG_CONTEXT_PREFIX": prefix,
           "BACKLOG_LEDGER_URL": postgres_url, "BACKLOG_LEDGER_SCHEMA": schema}
    with PostgresLedger(postgres_url, schema=schema) as ledger:  # creates and migrates the schema
        ledger.record_many([CallRecord(call_id=f"before-{uuid.uuid4().hex}", started_at="2026-12-01T10:00:00.000+00:00",
                                       status="success", ticket_id="FEAT-9", project="my-api", model="gpt-4o-mini",
                                       cost_usd=SPENT_BEFORE)])
    store = RedisContextStore(redis_url, prefix=prefix)
    try:
        yield env, store, (postgres_url, schema)
    finally:
        for key in store.redis.scan_iter(match=f"{prefix}*"):
            store.redis.delete(key)
        PostgresLedger.drop_schema(postgres_url, schema)


def working_on(store: RedisContextStore, ticket: str, project: str = "my-api") -> str:
    session = str(uuid.uuid4())
    store.set({"ticket_id": ticket, "gate": "implement", "agent_type": "backend", "project": project}, Scope(session))
    return session


def fire(urls: list[str], key: str, session: str) -> list[httpx.Response]:
    """CALLS chat calls at once, spread over `urls` in turn."""
    headers = {"authorization": f"Bearer {key}", "x-claude-code-session-id": session}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

    def one(i: int) -> httpx.Response:
        return httpx.post(f"{urls[i % len(urls)]}/v1/chat/completions", headers=headers, json=body, timeout=120)

    with ThreadPoolExecutor(CALLS) as pool:
        return list(pool.map(one, range(CALLS)))


def ledger_rows(pg: tuple[str, str], ticket: str, expected: int, timeout: float = 30.0) -> list[dict]:
    """The ticket's rows once `expected` are there (bounded wait for the background writers)."""
    from backlog_ops.ledger.postgres import PostgresLedger

    deadline = time.monotonic() + timeout
    while True:
        with PostgresLedger(pg[0], schema=pg[1]) as ledger:
            rows = ledger.rows("WHERE ticket_id = ?", (ticket,))
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def check_outcome(responses: list[httpx.Response], pg: tuple[str, str]) -> list[str]:
    """The budget held to one call's cost, every answered call in the ledger once; the answered ids."""
    statuses = sorted(r.status_code for r in responses)
    answered = [r.headers["x-litellm-call-id"] for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert answered and refused, statuses
    assert {r.status_code for r in refused} == {402}, statuses
    for r in refused:
        message = r.json()["error"]["message"]
        assert "FEAT-9" in message and "has reached its budget" in message and "$0.0040" in message, message
    rows = ledger_rows(pg, "FEAT-9", len(answered) + 1)
    time.sleep(1.0)  # a row written twice, or one no call answered, would show up by now
    rows = ledger_rows(pg, "FEAT-9", len(answered) + 1)
    ids = [r["call_id"] for r in rows if not r["call_id"].startswith("before-")]
    assert sorted(ids) == sorted(answered), "every answered call in the ledger exactly once, and nothing else"
    spent = sum(r["cost_usd"] for r in rows)
    # Five calls' worth was left: a budget checked per process would let each proxy spend it.
    assert spent <= BUDGET + CALL_COST + 1e-9, (spent, len(answered))
    assert len(answered) <= 6, len(answered)
    return answered


def test_two_proxies_on_one_redis_and_ledger_share_a_ticket_budget_exactly(shared, tmp_path: Path) -> None:
    env, store, pg = shared
    with MockUpstream(prompt_tokens=1000, completion_tokens=200) as upstream:
        config = write_config(tmp_path / "cfg", upstream.base_url, extra_callbacks=[POLICY])
        a = ProxyProcess(tmp_path / "home-a", config=config, env=env)
        b = ProxyProcess(tmp_path / "home-b", config=config, env=env)
        try:
            a.start()
            b.start()
            session = working_on(store, "FEAT-9")
            responses = fire([a.base_url, b.base_url], a.master_key, session)
            check_outcome(responses, pg)
            # Both proxies took part, and each refused its share once the shared budget was reached.
            for half in (responses[0::2], responses[1::2]):
                assert len(half) == CALLS // 2 and any(r.status_code == 402 for r in half)
        finally:
            a.stop()
            b.stop()


def test_two_workers_serve_one_port_share_the_budget_and_flush_on_stop(shared, tmp_path: Path) -> None:
    env, store, pg = shared
    with MockUpstream(prompt_tokens=1000, completion_tokens=200) as upstream:
        config = write_config(tmp_path / "cfg", upstream.base_url, extra_callbacks=[POLICY])
        proxy = ProxyProcess(tmp_path / "home", config=config, env=env, workers=2)
        journal = proxy.home / "ledger-journal"
        try:
            proxy.start(timeout=400)  # the parent, then each worker, imports LiteLLM: slow on a busy machine
            session = working_on(store, "FEAT-9")
            answered = check_outcome(fire([proxy.base_url], proxy.master_key, session), pg)
            # Calls of a project with no limits too, so that both workers surely write rows.
            free = working_on(store, "FREE-1", project="other-app")
            headers = {"authorization": f"Bearer {proxy.master_key}", "x-claude-code-session-id": free}
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            with ThreadPoolExecutor(16) as pool:
                frees = list(pool.map(lambda _: httpx.post(f"{proxy.base_url}/v1/chat/completions", headers=headers,
                                                           json=body, timeout=120), range(CALLS)))
            assert [r.status_code for r in frees] == [200] * CALLS
            free_rows = ledger_rows(pg, "FREE-1", CALLS)
            assert sorted(r["call_id"] for r in free_rows) == sorted(r.headers["x-litellm-call-id"] for r in frees)
            # Each worker journals its rows under its own pid: two writers, both children of the proxy.
            owners = {name.split("-", 1)[0] for name in os.listdir(journal) if name.endswith(".lock")}
            assert len(owners) == 2, sorted(os.listdir(journal))
            assert str(proxy.process.pid) not in owners
            assert answered
        finally:
            status = proxy.stop()
    assert status == 0, proxy.log()[-2000:]
    # Stopped gracefully, each worker wrote its last rows and removed its journal.
    left = [n for n in os.listdir(journal) if n.endswith((".jsonl", ".lock"))]
    assert left == [], left


def test_a_worker_killed_with_kill9_loses_no_answered_call(tmp_path: Path) -> None:
    import signal
    import threading

    from backlog_ops.context.file_store import ContextStore
    from backlog_ops.ledger import SqliteLedger

    home, session = tmp_path / "home", str(uuid.uuid4())
    ContextStore(home).set({"ticket_id": "FEAT-K9", "gate": "implement", "agent_type": "backend", "project": "my-api"},
                           Scope(session))
    with MockUpstream() as upstream:
        proxy = ProxyProcess(home, config=write_config(tmp_path / "cfg", upstream.base_url), workers=2,
                             env={"LITELLM_MASTER_KEY": "sk-test-" + uuid.uuid4().hex})
        try:
            proxy.start(timeout=400)
            headers = {"authorization": f"Bearer {proxy.master_key}", "x-claude-code-session-id": session}
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            answered: list[str] = []
            lock = threading.Lock()

            def one(_: int) -> None:
                try:
                    r = httpx.post(f"{proxy.base_url}/v1/chat/completions", headers=headers, json=body, timeout=120)
                except httpx.HTTPError:
                    return  # its worker was killed mid-call: never answered, nothing to keep
                if r.status_code == 200:
                    with lock:
                        answered.append(r.headers["x-litellm-call-id"])

            workers = worker_pids(proxy.process.pid)
            assert len(workers) == 2, workers
            with ThreadPoolExecutor(8) as pool:
                futures = [pool.submit(one, i) for i in range(60)]
                while len(answered) < 20:  # bounded: 60 calls
                    time.sleep(0.05)
                    if all(f.done() for f in futures):
                        break
                os.kill(workers[0], signal.SIGKILL)  # in the middle of the load
                for f in futures:
                    f.result()
            # The proxy starts a new worker; its ledger writer takes over the killed one's journal.
            journal = home / "ledger-journal"
            killed = f"{workers[0]}-"
            deadline = time.monotonic() + 300
            present: set[str] = set()
            while time.monotonic() < deadline:
                one(0)
                with SqliteLedger(home / "ledger.db") as ledger:
                    present = {r["call_id"] for r in ledger.rows("WHERE ticket_id = 'FEAT-K9'")}
                left = [n for n in os.listdir(journal) if n.startswith(killed)]
                if set(answered) <= present and not left:
                    break
                time.sleep(0.5)
            assert f"worker process {workers[0]} ended (signal SIGKILL) after serving; starting another" in proxy.log()
            assert len(answered) >= 20
            missing = set(answered) - present
            assert not missing, f"{len(missing)} answered calls missing from the ledger"
            assert not left, f"the killed worker's journal was not taken over: {left}"
        finally:
            proxy.stop(timeout=120)
