"""Budget warnings and runaway alerts through the REAL LiteLLM proxy (tagger, ticket policy, spend
ledger, quota events, metrics) in front of the mock provider, heard the way a session hears them:
the real `backlog-ops hook` command, the real status line command, a real NATS consumer.

    a ticket at 50%, 80%, 100% of its budget   each mark once in the next hook output, once on NATS,
                                               on the status line; the 402 stays the only refusal
    a scripted loop                            one runaway alert (log, metric, NATS, hook); under
                                               policy pause its calls are refused until
                                               `backlog-ops context resume`
    ordinary traffic                           no alert at all
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
pytest.importorskip("litellm")

from backlog_ops.claude.install_statusline import STATUSLINE_CODE  # noqa: E402
from backlog_ops.context.file_store import ContextStore  # noqa: E402
from backlog_ops.context.scope import Scope  # noqa: E402
from backlog_ops.gateway.process import ProxyProcess  # noqa: E402
from backlog_ops.ledger import SqliteLedger  # noqa: E402

from conftest import in_ci  # noqa: E402
from proxy_support import admin_client  # noqa: E402
from test_quota_events import SHARED_NATS, delete_stream, unique  # noqa: E402

pytestmark = pytest.mark.proxy

BIN = Path(sys.executable).parent
PROMPT, COMPLETION = 1000, 200  # what the mock provider (conftest's `upstream`) reports for each call
CALLBACKS = [
    "backlog_ops.callbacks.ticket_tagger.ticket_tagger",
    "backlog_ops.callbacks.ticket_policy.ticket_policy",
    "backlog_ops.callbacks.spend_ledger.spend_ledger",
    "backlog_ops.callbacks.quota_events.quota_events",
    "backlog_ops.callbacks.metrics.metrics",
]


def call_cost() -> float:
    import litellm

    p = litellm.model_cost["claude-haiku-4-5"]
    return PROMPT * p["input_cost_per_token"] + COMPLETION * p["output_cost_per_token"]


def nats_up() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=1).close()
        return True
    except OSError:
        return False


def require_nats() -> None:
    """The NATS checks come last in their tests: without NATS (locally) the rest still ran."""
    if not nats_up():
        if in_ci():
            pytest.fail("NATS is required under CI")
        pytest.skip("NATS is not reachable on 127.0.0.1:4222: the events were not checked")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, upstream):
    root = tmp_path_factory.mktemp("feedback")
    stream, subject = unique()
    budget = 5.5 * call_cost()  # marks after the 3rd (50%), 5th (80%) and 6th call (100%); the 7th is refused
    projects = {
        "shop": {"ticket_budget_usd": budget, "max_escalations_per_ticket": 3, "source": str(root / "backlog.config.json")},
        "loopy": {"runaway": {"policy": "pause", "repeated_requests": 4, "pause_seconds": "10m"}},
        "calm": {},  # the defaults: alert on 8 repeats, 60 calls a minute, $5 in 10 minutes
    }
    config = root / "proxy.yaml"
    config.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "claude-haiku", "litellm_params": {
            "model": "anthropic/claude-haiku-4-5", "api_base": upstream.base_url, "api_key": "mock"}}],
        "litellm_settings": {"callbacks": CALLBACKS, "num_retries": 0, "disable_add_user_agent_to_request_tags": True},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "backlog_ops": {"policy": {"projects": projects}},
    }, sort_keys=False))
    proc = ProxyProcess(root / "home", config=config, env={
        "LITELLM_MASTER_KEY": "sk-test-" + secrets.token_hex(16),
        "BACKLOG_NATS_URL": SHARED_NATS, "BACKLOG_NATS_SUBJECT": subject, "BACKLOG_NATS_STREAM": stream,
    })
    proc.env.pop("BACKLOG_POLICY_FILE", None)
    proc.start()
    proc.budget, proc.stream, proc.subject = budget, stream, subject
    yield proc
    proc.stop()
    if nats_up():
        delete_stream(SHARED_NATS, stream)


@pytest.fixture(scope="module")
def client(proxy):
    with admin_client(proxy) as c:
        yield c


def env(proxy) -> dict:
    return {**os.environ, "BACKLOG_HOME": str(proxy.home)}


def working_on(proxy, ticket: str, project: str) -> str:
    sid = str(uuid.uuid4())
    ContextStore(proxy.home).set({"ticket_id": ticket, "gate": "implement", "agent_type": "backend", "project": project}, Scope(sid))
    return sid


def send(client, sid: str, messages: list[dict] | None = None) -> httpx.Response:
    body = {"model": "claude-haiku", "max_tokens": 256, "messages": messages or [{"role": "user", "content": f"step {uuid.uuid4()}"}]}
    return client.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01", "x-claude-code-session-id": sid})


def hook(proxy, event: str, sid: str) -> str:
    """What the real hook command prints for `event` in session `sid` ('' when it has nothing to say)."""
    data = {"session_id": sid, "transcript_path": f"/tmp/{sid}.jsonl", "cwd": str(proxy.home), "hook_event_name": event}
    r = subprocess.run([str(BIN / "backlog-ops"), "hook"], input=json.dumps(data), capture_output=True, text=True,
                       timeout=30, env=env(proxy))
    assert r.returncode == 0, r.stderr
    if not r.stdout.strip():
        return ""
    out = json.loads(r.stdout)
    assert out["systemMessage"] == out["hookSpecificOutput"]["additionalContext"]
    return out["systemMessage"]


def statusline(proxy, sid: str) -> str:
    data = {"session_id": sid, "cwd": str(proxy.home), "model": {"id": "claude-haiku-4-5", "display_name": "Haiku 4.5"},
            "workspace": {"current_dir": str(proxy.home), "project_dir": str(proxy.home), "added_dirs": []}}
    r = subprocess.run([sys.executable, "-c", STATUSLINE_CODE], input=json.dumps(data), capture_output=True, text=True,
                       timeout=30, env=env(proxy))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def consume(url: str, stream: str, subject: str, event_type: str, *, expect: int, timeout: float = 15.0) -> list[dict]:
    """The events of `event_type` a fresh pull consumer receives (waits, bounded, for `expect` of them)."""
    import asyncio

    import nats

    async def run() -> list[dict]:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + timeout
            while True:
                sub = await js.pull_subscribe(subject, stream=stream)
                found: list[dict] = []
                while True:
                    try:
                        msgs = await sub.fetch(100, timeout=1.0)
                    except (nats.errors.TimeoutError, asyncio.TimeoutError):
                        break
                    for msg in msgs:
                        event = json.loads(msg.data)
                        if event.get("eventType") == event_type:
                            found.append(event)
                        await msg.ack()
                await sub.unsubscribe()
                if len(found) >= expect or time.monotonic() > deadline:
                    return found
                await asyncio.sleep(0.2)
        finally:
            await nc.close()

    return asyncio.run(run())


def metric(client, name: str, **labels) -> float | None:
    """A sample's value on the proxy's own /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics", follow_redirects=True).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def wait_for_spend(proxy, project: str, ticket: str, calls: int, timeout: float = 20.0) -> dict:
    """The ticket's totals file once it counts `calls` calls' cost (the keeper runs after the ledger writer)."""
    path = proxy.home / "ticket-totals" / f"{project}~{ticket}.json"
    deadline = time.monotonic() + timeout
    totals: dict = {}
    while time.monotonic() < deadline:
        if path.exists():
            totals = json.loads(path.read_text())
            if totals["spent_usd"] >= calls * call_cost() * 0.999:
                return totals
        time.sleep(0.05)
    raise AssertionError(f"totals of {ticket} after {timeout} s: {totals}")


def test_a_ticket_hears_50_80_and_100_percent_once_before_the_402(proxy, client) -> None:
    sid = working_on(proxy, "FEAT-1", "shop")
    assert statusline(proxy, sid) == "FEAT-1 · implement · backend · no spend yet"
    heard: dict[int, str] = {}
    statuses = []
    for n in range(1, 8):
        r = send(client, sid)
        statuses.append(r.status_code)
        if r.status_code != 200:
            break
        wait_for_spend(proxy, "shop", "FEAT-1", n)
        heard[n] = hook(proxy, "PostToolUse", sid)
        if n == 5:
            line = statusline(proxy, sid)
            assert line.startswith("FEAT-1 · implement · backend · $0.0") and ", 90% ⚠" in line, line
    assert statuses == [200] * 6 + [402], "the budget's 402 is the only refusal"
    said = {n: text for n, text in heard.items() if text}
    assert sorted(said) == [3, 5, 6], heard
    assert "used 50% of its budget" in said[3]
    assert "used 80% of its budget" in said[5] and "HTTP 402" in said[5], "warned at 80%, before the wall"
    assert "reached its budget" in said[6]
    assert hook(proxy, "UserPromptSubmit", sid) == "", "each mark is told once"
    assert statusline(proxy, sid).endswith("⛔")
    log = proxy.log()
    for part in ("has used 50% of its budget", "has used 80% of its budget", "has reached its budget ("):
        assert log.count(part) == 1, part
    assert metric(client, "backlog_budget_marks_total", project="shop", ticket="FEAT-1", mark="80") == 1.0
    require_nats()
    events = [e for e in consume(SHARED_NATS, proxy.stream, proxy.subject, "quota.threshold", expect=3)
              if e["context"]["ticket_id"] == "FEAT-1"]
    assert [e["payload"]["mark"] for e in events] == ["50", "80", "100"]
    assert events[1]["payload"]["budget_usd"] == pytest.approx(proxy.budget) and events[1]["actor"] == "litellm-proxy"


def loop_step(i: int) -> list[dict]:
    """An agent stuck in a loop: the same command, the same failure, a fresh tool id and timing each time."""
    return [
        {"role": "user", "content": "make the build pass"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:12]}", "name": "Bash",
                                           "input": {"command": "make"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}",
                                      "content": f"cc: error: undefined symbol foo (0.{i}s)"}]},
    ]


def test_a_scripted_loop_is_paused_until_resumed(proxy, client) -> None:
    sid = working_on(proxy, "LOOP-1", "loopy")
    statuses = [send(client, sid, loop_step(i)).status_code for i in range(6)]
    assert statuses == [200, 200, 200, 402, 402, 402], "the 4th near-identical request raises the alert and pauses"
    refusal = send(client, sid, loop_step(9))
    text = refusal.json()["error"]["message"]
    assert refusal.status_code == 402 and "is paused after a runaway spend alert (repeated requests)" in text
    assert f"backlog-ops context resume --session {sid}" in text
    heard = hook(proxy, "PostToolUse", sid)
    assert "runaway spend alert" in heard and "4 near-identical requests" in heard and "paused for 10 min" in heard
    assert statusline(proxy, sid).endswith("⏸ paused: backlog-ops context resume")
    assert proxy.log().count("runaway spend alert: session") == 1
    assert metric(client, "backlog_runaway_alerts_total", project="loopy", ticket="LOOP-1", kind="repeated_requests",
                  scope="session") == 1.0
    with SqliteLedger(proxy.home / "ledger.db") as ledger:
        time.sleep(0.5)
        refused = ledger.rows("WHERE session_id = ? AND status = 'failure'", (sid,))
    # A paused call never reached a provider: like every refusal, it is not a call in the ledger.
    assert refused == [], "a refused call was recorded as a call"
    r = subprocess.run([str(BIN / "backlog-ops"), "context", "resume", "--session", sid], capture_output=True, text=True,
                       timeout=30, env=env(proxy))
    assert r.returncode == 0 and f"resumed: session {sid}" in r.stdout
    assert send(client, sid, [{"role": "user", "content": "a new plan"}]).status_code == 200
    require_nats()
    events = consume(SHARED_NATS, proxy.stream, proxy.subject, "spend.runaway", expect=1)
    assert [(e["payload"]["kind"], e["context"]["session_id"]) for e in events] == [("repeated_requests", sid)]


def test_ordinary_sessions_raise_no_alert(proxy, client) -> None:
    """Three sessions doing varied work, with a few retries of the same step: no alert, no pause."""
    sessions = [working_on(proxy, f"CALM-{i}", "calm") for i in range(3)]
    for step in range(12):
        for i, sid in enumerate(sessions):
            history = [{"role": "user", "content": f"task {i}"},
                       {"role": "assistant", "content": [{"type": "tool_use", "id": f"t{step}", "name": "Read",
                                                          "input": {"file_path": f"src/module_{step % 5}.py"}}]},
                       {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{step}",
                                                     "content": f"contents of module {step % 5}, line count {100 + step}"}]}]
            assert send(client, sid, history).status_code == 200
    for sid in sessions:
        assert not (proxy.home / "session-alerts" / f"{sid}.json").exists()
        assert hook(proxy, "PostToolUse", sid) == ""
    assert "runaway spend alert: session" not in "".join(
        line for line in proxy.log().splitlines() if any(sid in line for sid in sessions))
