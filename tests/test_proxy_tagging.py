"""The real LiteLLM proxy, our callbacks, and the mock provider: tags and ledger rows end to end."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import httpx
import pytest

from backlog_ops.context.scope import Scope
from backlog_ops.ledger import SqliteLedger
from backlog_ops.testing.mock_upstream import MockUpstream, Reply
from backlog_ops.context.file_store import ContextStore

from proxy_support import start_proxy, wait_for_probe, wait_for_rows, write_config

pytestmark = pytest.mark.proxy

PROMPT, COMPLETION, CACHE_READ, CACHE_WRITE = 1000, 200, 300, 50


def _prices(model: str) -> dict:
    # Read LiteLLM's own shipped price map, without importing litellm into the test process.
    path = resources.files("litellm") / "model_prices_and_context_window_backup.json"
    return json.loads(path.read_text())[model]


def expected_openai_cost() -> float:
    p = _prices("gpt-4o-mini")
    # OpenAI counts cached tokens inside prompt_tokens and bills them at the cache-read price.
    return (PROMPT - CACHE_READ) * p["input_cost_per_token"] + CACHE_READ * p["cache_read_input_token_cost"] + COMPLETION * p["output_cost_per_token"]


def expected_anthropic_cost() -> float:
    p = _prices("claude-haiku-4-5")
    return (
        PROMPT * p["input_cost_per_token"]
        + CACHE_READ * p["cache_read_input_token_cost"]
        + CACHE_WRITE * p["cache_creation_input_token_cost"]
        + COMPLETION * p["output_cost_per_token"]
    )


@pytest.fixture(scope="module")
def upstream():
    with MockUpstream(prompt_tokens=PROMPT, completion_tokens=COMPLETION, cache_read_tokens=CACHE_READ, cache_creation_tokens=CACHE_WRITE) as up:
        yield up


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, upstream):
    root = tmp_path_factory.mktemp("proxy")
    home = root / "home"
    config = write_config(root / "config", upstream.base_url, extra_callbacks=["slo_probe.probe"])
    proc = start_proxy(home, config, probe_file=root / "probe.jsonl")
    proc.probe_file = root / "probe.jsonl"
    proc.store = ContextStore(home)
    proc.ledger_path = home / "ledger.db"
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(proxy):
    with httpx.Client(base_url=proxy.base_url, headers={"authorization": f"Bearer {proxy.master_key}"}, timeout=60) as c:
        yield c


def ctx(ticket: str, gate: str, agent: str, **more) -> dict:
    return {"ticket_id": ticket, "gate": gate, "agent_type": agent, "project": "my-api", "skill": "backlog-implementer", **more}


def chat(client: httpx.Client, headers: dict | None = None, **body) -> httpx.Response:
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], **body}
    r = client.post("/v1/chat/completions", headers=headers or {}, json=payload)
    assert r.status_code == 200, r.text
    return r


def messages(client: httpx.Client, headers: dict | None = None, stream: bool = False, **body) -> str:
    payload = {"model": "claude-haiku", "max_tokens": 256, "stream": stream, "messages": [{"role": "user", "content": "hello"}], **body}
    hdrs = {"anthropic-version": "2023-06-01", **(headers or {})}
    with client.stream("POST", "/v1/messages", headers=hdrs, json=payload) as r:
        r.read()
        assert r.status_code == 200, r.text
        if stream:
            assert "message_stop" in r.text
        return r.headers["x-litellm-call-id"]


def session() -> str:
    return str(uuid.uuid4())


def test_chat_completion_is_tagged_and_ledgered(proxy, client) -> None:
    sid = session()
    proxy.store.set(ctx("FEAT-101", "implement", "backend"), Scope(sid))
    call_id = chat(client, {"x-claude-code-session-id": sid}).headers["x-litellm-call-id"]

    logged = wait_for_probe(proxy.probe_file, [call_id])[call_id]
    assert {"ticket:FEAT-101", "gate:implement", "project:my-api", "agent:backend", "skill:backlog-implementer"} <= set(logged["request_tags"])

    row = wait_for_rows(proxy.ledger_path, [call_id])[call_id]
    assert (row["ticket_id"], row["gate"], row["agent_type"], row["skill"], row["project"]) == (
        "FEAT-101", "implement", "backend", "backlog-implementer", "my-api",
    )
    assert row["session_id"] == sid and row["agent_id"] is None
    assert (row["prompt_tokens"], row["completion_tokens"], row["cache_read_tokens"]) == (PROMPT, COMPLETION, CACHE_READ)
    assert row["cost_usd"] == pytest.approx(expected_openai_cost(), rel=1e-9)
    assert row["cost_usd"] == pytest.approx(logged["response_cost"], rel=1e-9)
    assert (row["model"], row["model_group"], row["provider"]) == ("openai/gpt-4o-mini", "gpt-4o-mini", "openai")
    assert row["status"] == "success" and row["source"] == "proxy" and row["latency_ms"] > 0


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_messages_are_tagged_and_ledgered(proxy, client, stream: bool) -> None:
    sid = session()
    proxy.store.set(ctx("FEAT-102", "review", "reviewer"), Scope(sid))
    call_id = messages(client, {"x-claude-code-session-id": sid}, stream=stream)

    logged = wait_for_probe(proxy.probe_file, [call_id])[call_id]
    assert {"ticket:FEAT-102", "gate:review", "agent:reviewer"} <= set(logged["request_tags"])
    row = wait_for_rows(proxy.ledger_path, [call_id])[call_id]
    assert (row["ticket_id"], row["gate"], row["agent_type"], row["session_id"]) == ("FEAT-102", "review", "reviewer", sid)
    assert (row["cache_read_tokens"], row["cache_write_tokens"], row["completion_tokens"]) == (CACHE_READ, CACHE_WRITE, COMPLETION)
    assert row["cost_usd"] == pytest.approx(expected_anthropic_cost(), rel=1e-9)
    assert row["provider"] == "anthropic"


def test_two_sessions_interleaved_land_on_their_own_tickets(proxy, client) -> None:
    a, b = session(), session()
    proxy.store.set(ctx("FEAT-201", "implement", "backend"), Scope(a))
    proxy.store.set(ctx("FEAT-202", "plan", "planner"), Scope(b))
    plan = [(a if i % 2 == 0 else b, i % 3 == 0) for i in range(12)]

    def send(item):
        sid, anthropic = item
        if anthropic:
            return sid, messages(client, {"x-claude-code-session-id": sid}, stream=True)
        return sid, chat(client, {"x-claude-code-session-id": sid}).headers["x-litellm-call-id"]

    with ThreadPoolExecutor(4) as pool:
        sent = list(pool.map(send, plan))
    rows = wait_for_rows(proxy.ledger_path, [cid for _, cid in sent])
    for sid, cid in sent:
        expected = ("FEAT-201", "implement") if sid == a else ("FEAT-202", "plan")
        assert (rows[cid]["ticket_id"], rows[cid]["gate"], rows[cid]["session_id"]) == (*expected, sid)


def test_subagent_requests_carry_the_agents_own_context(proxy, client) -> None:
    sid, agent = session(), "a" + uuid.uuid4().hex[:12]
    proxy.store.set(ctx("FEAT-301", "implement", "backend"), Scope(sid))
    proxy.store.set(ctx("FEAT-301", "review", "security-reviewer"), Scope(sid, agent))
    main_call = messages(client, {"x-claude-code-session-id": sid})
    sub_call = messages(client, {"x-claude-code-session-id": sid, "x-claude-code-agent-id": agent}, stream=True)
    other_agent = messages(client, {"x-claude-code-session-id": sid, "x-claude-code-agent-id": "a-unknown"})
    rows = wait_for_rows(proxy.ledger_path, [main_call, sub_call, other_agent])
    assert (rows[main_call]["agent_type"], rows[main_call]["gate"]) == ("backend", "implement")
    assert (rows[sub_call]["agent_type"], rows[sub_call]["gate"], rows[sub_call]["agent_id"]) == ("security-reviewer", "review", agent)
    assert rows[other_agent]["agent_type"] == "backend", "an agent with no context of its own inherits the session's"


def test_session_from_claude_code_user_id_metadata(proxy, client) -> None:
    sid = session()
    proxy.store.set(ctx("FEAT-401", "lint", "linter"), Scope(sid))
    user_id = json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": sid})
    call_id = messages(client, metadata={"user_id": user_id})
    row = wait_for_rows(proxy.ledger_path, [call_id])[call_id]
    assert (row["ticket_id"], row["session_id"]) == ("FEAT-401", sid)


def test_generic_clients_name_their_session_with_a_header(proxy, client) -> None:
    sid = "ci-job-" + uuid.uuid4().hex[:8]
    proxy.store.set(ctx("FEAT-402", "implement", "crew"), Scope(sid))
    call_id = chat(client, {"x-backlog-session": sid}).headers["x-litellm-call-id"]
    assert wait_for_rows(proxy.ledger_path, [call_id])[call_id]["ticket_id"] == "FEAT-402"


def test_no_context_means_an_untagged_successful_call(proxy, client) -> None:
    proxy.store.clear()
    call_id = chat(client, {"x-claude-code-session-id": session()}).headers["x-litellm-call-id"]
    logged = wait_for_probe(proxy.probe_file, [call_id])[call_id]
    assert not [t for t in logged["request_tags"] if t.split(":")[0] in ("ticket", "gate", "agent", "project", "skill")]
    row = wait_for_rows(proxy.ledger_path, [call_id])[call_id]
    assert row["ticket_id"] is None and row["status"] == "success" and row["cost_usd"] > 0


def test_global_context_applies_to_requests_without_a_session(proxy, client) -> None:
    proxy.store.set(ctx("FEAT-403", "implement", "backend"))
    try:
        call_id = chat(client).headers["x-litellm-call-id"]
    finally:
        proxy.store.clear()
    assert wait_for_rows(proxy.ledger_path, [call_id])[call_id]["ticket_id"] == "FEAT-403"


def test_caller_tags_are_kept_and_an_explicit_ticket_wins(proxy, client) -> None:
    sid = session()
    proxy.store.set(ctx("FEAT-501", "implement", "backend"), Scope(sid))
    r = chat(
        client,
        {"x-claude-code-session-id": sid, "x-litellm-tags": "team-a"},
        metadata={"tags": ["ticket:OPS-9", "experiment", "gate:implement"]},
    )
    call_id = r.headers["x-litellm-call-id"]
    tags = wait_for_probe(proxy.probe_file, [call_id])[call_id]["request_tags"]
    assert "team-a" in tags and "experiment" in tags
    assert "ticket:OPS-9" in tags and "ticket:FEAT-501" not in tags
    assert tags.count("gate:implement") == 1
    assert "agent:backend" in tags
    row = wait_for_rows(proxy.ledger_path, [call_id])[call_id]
    assert row["ticket_id"] == "OPS-9"


def test_component_from_request_metadata(proxy, client) -> None:
    sid = session()
    proxy.store.set(ctx("FEAT-502", "implement", "backend"), Scope(sid))
    call_id = chat(client, {"x-claude-code-session-id": sid}, metadata={"component": "reasoning-agent"}).headers["x-litellm-call-id"]
    row = wait_for_rows(proxy.ledger_path, [call_id])[call_id]
    assert (row["ticket_id"], row["component"]) == ("FEAT-502", "reasoning-agent")


def test_upstream_failures_are_ledgered_with_their_error_class(proxy, client, upstream) -> None:
    sid = session()
    proxy.store.set(ctx("FEAT-601", "implement", "backend"), Scope(sid))
    upstream.script(Reply.server_error(), model="gpt-4o-mini")
    r = client.post(
        "/v1/chat/completions",
        headers={"x-claude-code-session-id": sid},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "boom"}]},
    )
    assert r.status_code >= 500
    with_failures: list[dict] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not with_failures:
        with SqliteLedger(proxy.ledger_path) as ledger:
            with_failures = ledger.rows("WHERE ticket_id = ? AND status = 'failure'", ("FEAT-601",))
        time.sleep(0.1)
    assert len(with_failures) == 1
    assert with_failures[0]["error_class"] and with_failures[0]["cost_usd"] == 0
    assert with_failures[0]["session_id"] == sid


def test_corrupt_context_file_lets_calls_through_with_one_warning(proxy, client) -> None:
    sid = session()
    proxy.store.set(ctx("FEAT-701", "implement", "backend"), Scope(sid))
    path = proxy.store.path(Scope(sid))
    path.write_text('{"ticket_id": "FEAT-701", "gate": ')  # torn by some other writer
    call_ids = [chat(client, {"x-claude-code-session-id": sid}).headers["x-litellm-call-id"] for _ in range(4)]
    rows = wait_for_rows(proxy.ledger_path, call_ids)
    assert all(r["status"] == "success" and r["ticket_id"] is None for r in rows.values())
    assert proxy.log().count(f"ignoring context file: {path}") == 1
