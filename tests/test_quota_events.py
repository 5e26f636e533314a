"""quota.updated events on NATS JetStream: real nats-server, real proxy, real consumer.

- the machine's NATS on 127.0.0.1:4222 (require_service): the publisher end to end with a pull
  consumer, and JetStream's de-duplication by Nats-Msg-Id (a re-sent event is stored once);
- our OWN nats-server on a free port (stopped and restarted; the shared one is never touched),
  behind a real proxy: calls succeed while NATS is down, and every event arrives exactly once
  when it is back.
Every stream and subject is unique to its test and deleted afterwards.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from backlog_ops.context.scope import Scope
from backlog_ops.testing.mock_upstream import MockUpstream, Reply
from backlog_ops.gateway.process import free_port
from backlog_ops.context.file_store import ContextStore

from conftest import require_service
from proxy_support import start_proxy, write_config

pytestmark = pytest.mark.services

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
SHARED_NATS = "nats://127.0.0.1:4222"
CALLBACK = "backlog_ops.callbacks.quota_events.quota_events"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def unique() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"TEST_QUOTA_{tag}", f"test.quota.{tag}"


def consume(url: str, stream: str, subject: str, *, expect: int, timeout: float = 15.0) -> list[dict]:
    """Every message a fresh pull consumer receives from the stream (waits, bounded, for `expect`)."""
    import json

    import nats

    async def run() -> list[dict]:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + timeout
            while True:  # wait until the stream holds `expect` messages (or the deadline)
                try:
                    info = await js.stream_info(stream)
                    if info.state.messages >= expect or time.monotonic() > deadline:
                        break
                except Exception:  # noqa: BLE001 - not created yet
                    if time.monotonic() > deadline:
                        return []
                await asyncio.sleep(0.1)
            sub = await js.pull_subscribe(subject, stream=stream)
            received: list[dict] = []
            while True:
                try:
                    msgs = await sub.fetch(100, timeout=1.0)
                except (nats.errors.TimeoutError, asyncio.TimeoutError):  # nats-py raises either
                    break
                for msg in msgs:
                    event = json.loads(msg.data)
                    event["_msg_id"] = (msg.headers or {}).get("Nats-Msg-Id")
                    received.append(event)
                    await msg.ack()
            return received
        finally:
            await nc.close()

    return asyncio.run(run())


def delete_stream(url: str, stream: str) -> None:
    import nats

    async def run() -> None:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=1)
        try:
            await nc.jetstream().delete_stream(stream)
        except Exception:  # noqa: BLE001
            pass
        finally:
            await nc.close()

    asyncio.run(run())


class OwnNats:
    """A nats-server of this test's own on 127.0.0.1:<free port>, with JetStream on a tmp dir."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.store = store
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> "OwnNats":
        self.process = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("our nats-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def slo(call_id: str, *, status: str = "success", tags=(), key_meta=None, team=None) -> dict:
    """A minimal standard_logging_object, as LiteLLM hands it to callbacks."""
    return {
        "litellm_call_id": call_id,
        "id": "chatcmpl-1",
        "startTime": 1_700_000_000.0,
        "endTime": 1_700_000_000.5,
        "model": "openai/gpt-4o-mini",
        "model_group": "gpt-4o-mini",
        "custom_llm_provider": "openai",
        "prompt_tokens": 1000 if status == "success" else 0,
        "completion_tokens": 200 if status == "success" else 0,
        "response_cost": 0.00027 if status == "success" else 0.0,
        "cache_hit": None,
        "request_tags": list(tags),
        "error_information": {"error_class": "InternalServerError"} if status == "failure" else {},
        "metadata": {
            "user_api_key_alias": "tenant-123-key" if key_meta else None,
            "user_api_key_team_id": team,
            "user_api_key_auth_metadata": key_meta or {},
            "spend_logs_metadata": {"backlog_session_id": "sess-1"},
        },
    }


# --------------------------------------------------------------------------------------------
# In-process: the event, the buffer
# --------------------------------------------------------------------------------------------


def test_the_event_has_the_briefs_fields_and_the_ticket_context(monkeypatch):
    from backlog_ops.gateway.quota_events import build_event

    tags = ["ticket:FEAT-7", "gate:implement", "project:my-api", "agent:backend", "skill:backlog-implementer"]
    event = build_event(slo("call-1", tags=tags, key_meta={"tenant_id": "tenant-123-uuid", "platform_id": "dcoder-main"}, team="tenant-123"), status="success")
    assert event["eventId"] == build_event(slo("call-1"), status="success")["eventId"]  # stable: from the call id
    assert event["eventId"] != build_event(slo("call-1"), status="failure")["eventId"]  # failed, then retried OK
    uuid.UUID(event["eventId"])
    assert event["occurredAt"] == "2023-11-14T22:13:20.500+00:00"
    assert (event["tenantId"], event["platformId"], event["correlationId"], event["actor"]) == ("tenant-123-uuid", "dcoder-main", "call-1", "litellm-proxy")
    assert event["payload"]["usage"] == {
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "total_tokens": 1200,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": 0.00027,
    }
    assert (event["payload"]["model"], event["payload"]["provider"], event["payload"]["cached"]) == ("openai/gpt-4o-mini", "openai", False)
    assert event["context"]["ticket_id"] == "FEAT-7" and event["context"]["gate"] == "implement"
    assert event["context"]["session_id"] == "sess-1"
    assert event["context"]["skill"] == "backlog-implementer" and event["key"] == {"alias": "tenant-123-key", "team_id": "tenant-123"}
    # no tenant in the key's metadata: its team, then the environment's default
    assert build_event(slo("c", team="team-9"), status="success")["tenantId"] == "team-9"
    monkeypatch.setenv("BACKLOG_TENANT_ID", "acme")
    monkeypatch.setenv("BACKLOG_PLATFORM_ID", "plat")
    e = build_event(slo("c"), status="success")
    assert (e["tenantId"], e["platformId"]) == ("acme", "plat")


def test_the_buffer_is_bounded_and_never_blocks():
    from backlog_ops.gateway.quota_events import build_event
    from backlog_ops.gateway.quota_publisher import QuotaEventPublisher

    dead = f"nats://127.0.0.1:{free_port()}"  # nothing listens
    events = QuotaEventPublisher(url=dead, subject="test.quota.none", stream="", buffer=100)
    try:
        for i in range(1000):
            events.enqueue(build_event(slo(f"call-{i}"), status="success"))
        assert events.pending() <= 101  # the bound, plus at most one event in hand
        assert events.dropped >= 899
        assert events.published == 0
    finally:
        events.close(timeout=0.1)


def test_a_broken_logging_object_is_skipped_not_raised():
    from backlog_ops.callbacks.quota_events import QuotaEvents

    events = QuotaEvents(url="nats://127.0.0.1:1", stream="")
    asyncio.run(events.async_log_success_event({"standard_logging_object": {"metadata": "not a dict"}}, None, None, None))
    asyncio.run(events.async_log_success_event({}, None, None, None))
    asyncio.run(events.async_log_success_event({"standard_logging_object": {"request_tags": ["litellm-internal-health-check"]}}, None, None, None))
    assert events.publisher.pending() == 0


# --------------------------------------------------------------------------------------------
# The machine's NATS (4222)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def shared_nats():
    require_service("NATS", "127.0.0.1", 4222)
    stream, subject = unique()
    yield stream, subject
    delete_stream(SHARED_NATS, stream)


def test_events_reach_a_jetstream_consumer_once_each(shared_nats):
    from backlog_ops.gateway.quota_events import build_event
    from backlog_ops.gateway.quota_publisher import QuotaEventPublisher

    stream, subject = shared_nats
    events = QuotaEventPublisher(url=SHARED_NATS, subject=subject, stream=stream)
    try:
        sent = [build_event(slo(f"call-{i}", tags=[f"ticket:FEAT-{i}"]), status="success") for i in range(5)]
        for event in sent:
            events.enqueue(event)
        events.enqueue(dict(sent[0]))  # re-sent (a lost ack): JetStream keeps one
        events.enqueue(dict(sent[3]))
        assert events.flush(10)
        assert events.published == 7
    finally:
        events.close()
    received = consume(SHARED_NATS, stream, subject, expect=5)
    assert [e["eventId"] for e in received] == [e["eventId"] for e in sent]
    assert [e["_msg_id"] for e in received] == [e["eventId"] for e in sent]
    assert [e["context"]["ticket_id"] for e in received] == [f"FEAT-{i}" for i in range(5)]


# --------------------------------------------------------------------------------------------
# Through the real proxy, with our own nats-server going down and coming back
# --------------------------------------------------------------------------------------------


def test_through_the_proxy_exactly_once_and_across_a_nats_outage(tmp_path, monkeypatch):
    require_service("NATS", "127.0.0.1", 4222)  # the same binary CI starts; we run our own copy
    stream, subject = unique()
    nats_server = OwnNats(tmp_path / "nats-store").start()
    monkeypatch.setenv("BACKLOG_NATS_URL", nats_server.url)
    monkeypatch.setenv("BACKLOG_NATS_SUBJECT", subject)
    monkeypatch.setenv("BACKLOG_NATS_STREAM", stream)
    monkeypatch.setenv("BACKLOG_NATS_BUFFER", "1000")
    home = tmp_path / "home"
    try:
        with MockUpstream(prompt_tokens=1000, completion_tokens=200) as upstream:
            config = write_config(tmp_path / "cfg", upstream.base_url, extra_callbacks=[CALLBACK])
            proxy = start_proxy(home, config)
            try:
                sid = str(uuid.uuid4())
                ContextStore(home).set(
                    {"ticket_id": "FEAT-301", "gate": "implement", "agent_type": "backend", "project": "my-api", "skill": "backlog-implementer"},
                    Scope(sid),
                )
                with httpx.Client(base_url=proxy.base_url, headers={"authorization": f"Bearer {proxy.master_key}", "x-claude-code-session-id": sid}, timeout=30) as client:

                    def chat() -> httpx.Response:
                        return client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})

                    def messages() -> httpx.Response:
                        return client.post("/v1/messages", json={"model": "claude-haiku", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})

                    # 1. NATS up: a success on each API and a failure
                    ok = [chat(), messages()]
                    upstream.script(Reply.server_error(), model="gpt-4o-mini")
                    failed = chat()
                    assert [r.status_code for r in ok] == [200, 200] and failed.status_code == 500
                    first = [r.headers["x-litellm-call-id"] for r in ok + [failed]]
                    received = consume(nats_server.url, stream, subject, expect=3)
                    assert [e["correlationId"] for e in received] == first

                    by_call = {e["correlationId"]: e for e in received}
                    chat_event, messages_event, failure_event = (by_call[c] for c in first)
                    assert chat_event["payload"]["usage"]["prompt_tokens"] == 1000
                    assert chat_event["payload"]["usage"]["completion_tokens"] == 200
                    assert chat_event["payload"]["usage"]["cost_usd"] > 0
                    assert chat_event["payload"]["provider"] == "openai" and chat_event["payload"]["model"] == "openai/gpt-4o-mini"
                    assert messages_event["payload"]["provider"] == "anthropic"
                    assert failure_event["payload"]["status"] == "failure"
                    assert failure_event["payload"]["error_class"] == "InternalServerError"
                    for event in received:
                        assert event["actor"] == "litellm-proxy" and event["tenantId"] == "default" and event["platformId"] == "backlog-ops"
                        assert event["context"]["ticket_id"] == "FEAT-301" and event["context"]["gate"] == "implement"
                        assert event["context"]["session_id"] == sid
                        assert event["_msg_id"] == event["eventId"]

                    # 2. NATS down: calls still succeed (what it costs them: bench/callback_costs.py)
                    nats_server.stop()
                    during = []
                    for _ in range(4):
                        r = chat()
                        assert r.status_code == 200
                        during.append(r.headers["x-litellm-call-id"])

                    # 3. NATS back (same port, same store): the buffered events arrive, once each.
                    # Down longer than a publish's 3 s ack timeout, so the publisher retries while
                    # nats-py still holds the first attempt: both copies reach the server, and the
                    # Nats-Msg-Id de-duplication is what keeps them to one.
                    time.sleep(4.0)
                    nats_server.start()
                    received = consume(nats_server.url, stream, subject, expect=7, timeout=30)
                    ids = [e["correlationId"] for e in received]
                    assert sorted(ids) == sorted(first + during)  # all seven, none twice
                    assert len({e["eventId"] for e in received}) == 7
                    # the publisher did see the outage (and retried), and said so once, not per call
                    assert proxy.log().count("quota event not published yet") >= 1
            finally:
                proxy.stop()
    finally:
        delete_stream(nats_server.url, stream) if nats_server.process and nats_server.process.poll() is None else None
        nats_server.stop()


def next_start_publishes_first(stream: str, subject: str, left: list[dict]) -> list[str]:
    """The next start, NATS back: one new event; the ids of what came before it (what was left, in order)."""
    from backlog_ops.gateway.quota_events import build_event
    from backlog_ops.gateway.quota_publisher import QuotaEventPublisher

    publisher = QuotaEventPublisher(url=SHARED_NATS, subject=subject, stream=stream)
    try:
        later = build_event(slo(f"after-{uuid.uuid4().hex[:8]}", tags=["ticket:FEAT-9"]), status="success")
        publisher.enqueue(later)
        assert publisher.flush(15)
    finally:
        publisher.close()
    received = [e["eventId"] for e in consume(SHARED_NATS, stream, subject, expect=len(left) + 1)]
    assert received[-1:] == [later["eventId"]]
    return received[:-1]


def test_events_unpublished_at_exit_are_spooled_and_published_after_the_next_start(shared_nats, backlog_home):
    """NATS down until the proxy stops: nothing is lost, nothing is published twice."""
    from backlog_ops.gateway.quota_events import build_event
    from backlog_ops.gateway.quota_publisher import QuotaEventPublisher

    stream, subject = shared_nats
    dead = f"nats://127.0.0.1:{free_port()}"
    first = QuotaEventPublisher(url=dead, subject=subject, stream=stream)
    sent = [build_event(slo(f"spooled-{i}", tags=["ticket:FEAT-9"]), status="success") for i in range(3)]
    for event in sent:
        first.enqueue(event)
    first.close(timeout=0.5)  # the proxy stopping while NATS is unreachable
    spool = backlog_home / "quota-events-spool.jsonl"
    assert len(spool.read_text().splitlines()) == 3
    assert oct(spool.stat().st_mode & 0o777) == "0o600"

    assert next_start_publishes_first(stream, subject, sent) == [e["eventId"] for e in sent]
    assert not spool.exists() and not list(backlog_home.glob("quota-events-spool.jsonl.*"))


def test_events_of_a_process_killed_with_9_are_published_after_the_next_start(shared_nats, backlog_home):
    """No orderly exit, no spool: the journal keeps what the killed process had not published."""
    import json
    import os
    import signal
    import sys

    from backlog_ops.gateway.quota_events import build_event

    stream, subject = shared_nats
    dead = f"nats://127.0.0.1:{free_port()}"  # NATS away: the events wait in the buffer
    sent = [build_event(slo(f"killed-{i}", tags=["ticket:FEAT-9"]), status="success") for i in range(3)]
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import json, sys, time\n"
         "from backlog_ops.gateway.quota_publisher import QuotaEventPublisher\n"
         f"p = QuotaEventPublisher(url={dead!r}, subject={subject!r}, stream={stream!r})\n"
         "for line in sys.stdin:\n"
         "    p.enqueue(json.loads(line))\n"
         "print('queued', p.pending(), flush=True)\n"
         "time.sleep(60)\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "BACKLOG_HOME": str(backlog_home)})
    try:
        child.stdin.write("".join(json.dumps(e) + "\n" for e in sent))
        child.stdin.close()
        assert child.stdout.readline().split() == ["queued", "3"]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    journal = backlog_home / "quota-events-journal"
    segments = list(journal.glob("*.jsonl"))
    assert sum(len(f.read_text().splitlines()) for f in segments) == 3
    assert oct(journal.stat().st_mode & 0o777) == "0o700"
    assert all(oct(f.stat().st_mode & 0o777) == "0o600" for f in segments)

    assert next_start_publishes_first(stream, subject, sent) == [e["eventId"] for e in sent]
    assert not list(journal.glob("*.jsonl")) and not list(backlog_home.glob("quota-events-spool.jsonl*"))


# --------------------------------------------------------------------------------------------
# A quick restart of our own nats-server while events flow
# --------------------------------------------------------------------------------------------

from fault_support import own_nats  # noqa: E402,F401 - fixture


def test_a_nats_restart_under_load_loses_and_duplicates_no_event(own_nats):
    import threading

    from backlog_ops.gateway.quota_events import build_event
    from backlog_ops.gateway.quota_publisher import QuotaEventPublisher

    stream, subject = unique()
    publisher = QuotaEventPublisher(url=own_nats.url, subject=subject, stream=stream)
    sent: list[str] = []
    stop = threading.Event()

    def load() -> None:  # ~100 events/s, bounded: at most 1,000
        for i in range(1000):
            if stop.is_set():
                return
            event = build_event(slo(f"restart-{i}", tags=["ticket:FEAT-N"]), status="success")
            publisher.enqueue(event)
            sent.append(event["eventId"])
            time.sleep(0.01)

    thread = threading.Thread(target=load)
    try:
        thread.start()
        time.sleep(0.7)
        own_nats.restart()  # same port, same JetStream store
        time.sleep(1.0)
        stop.set()
        thread.join(30)
        assert publisher.flush(30), f"{publisher.pending()} events still waiting 30 s after NATS came back"
    finally:
        stop.set()
        publisher.close()
    received = consume(own_nats.url, stream, subject, expect=len(sent), timeout=30)
    ids = [e["eventId"] for e in received]
    assert len(ids) == len(set(ids)) == len(sent) and set(ids) == set(sent)


# --------------------------------------------------------------------------------------------
# The service brief's subject by default
# --------------------------------------------------------------------------------------------


def test_by_default_events_go_out_on_the_briefs_subject_quota_updated(own_nats, monkeypatch, caplog):
    """No BACKLOG_NATS_SUBJECT / _STREAM: subject `quota.updated`, in a stream LLM_QUOTA made for it.

    Our own nats-server: the defaults would otherwise claim a stream name on the shared one. A
    stream left over for another subject (llm.quota.updated, the old default) is named in the log
    with the one setting that fixes it.
    """
    import logging

    from backlog_ops.gateway.quota_events import build_event
    from backlog_ops.gateway.quota_publisher import QuotaEventPublisher

    for name in ("BACKLOG_NATS_SUBJECT", "BACKLOG_NATS_STREAM"):
        monkeypatch.delenv(name, raising=False)
    publisher = QuotaEventPublisher(url=own_nats.url)
    event = build_event(slo("default-subject", tags=["ticket:FEAT-7"]), status="success")
    try:
        publisher.enqueue(event)
        assert publisher.flush(15)
    finally:
        publisher.close()
    assert publisher.subject == "quota.updated"
    received = consume(own_nats.url, "LLM_QUOTA", "quota.updated", expect=1)
    assert [(e["eventId"], e["eventType"]) for e in received] == [(event["eventId"], "quota.updated")]

    # A stream of the old subject: not silently fed nothing; the log says which setting fixes it.
    delete_stream(own_nats.url, "LLM_QUOTA")
    old = QuotaEventPublisher(url=own_nats.url, subject="llm.quota.updated")
    try:
        old.enqueue(build_event(slo("old-subject"), status="success"))
        assert old.flush(15)
    finally:
        old.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="backlog_ops.quota_events"):
        stale = QuotaEventPublisher(url=own_nats.url)
        try:
            stale.enqueue(build_event(slo("new-subject"), status="success"))
            stale.flush(3)
        finally:
            stale.close(timeout=0.5)
    assert "stream LLM_QUOTA does not take subject quota.updated (it takes llm.quota.updated); set BACKLOG_NATS_SUBJECT" in caplog.text
