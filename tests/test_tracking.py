"""track_llm_call with the real OpenAI and Anthropic SDKs against the local mock provider."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic", reason="pip install anthropic (see the dependency note in the README)")

from backlog_ops.capture import per_home, tracking, tracking_log  # noqa: E402
from backlog_ops.context.scope import Scope  # noqa: E402
from backlog_ops.ledger import SqliteLedger  # noqa: E402
from backlog_ops.testing.mock_upstream import MockUpstream, Reply  # noqa: E402
from backlog_ops.common.prices import cost_from_usage  # noqa: E402
from backlog_ops.common.warnings import Warnings  # noqa: E402
from backlog_ops.context.file_store import ContextStore
from backlog_ops.capture.tracking import current_call, track_llm_call  # noqa: E402

PROMPT, COMPLETION, CACHE_READ, CACHE_WRITE = 1000, 200, 300, 50


@pytest.fixture
def up():
    with MockUpstream(prompt_tokens=PROMPT, completion_tokens=COMPLETION, cache_read_tokens=CACHE_READ,
                      cache_creation_tokens=CACHE_WRITE, text="one two three four") as server:
        yield server


@pytest.fixture(autouse=True)
def _writers():
    yield
    per_home.close_all()


@pytest.fixture
def context(monkeypatch: pytest.MonkeyPatch) -> None:
    """A global context, and a session context for the session this process says it works for."""
    store = ContextStore()
    store.set({"ticket_id": "FEAT-100", "gate": "plan", "agent_type": "planner", "project": "my-api"})
    store.set({"ticket_id": "FEAT-200", "gate": "implement", "agent_type": "backend", "project": "my-api",
               "skill": "implementer"}, Scope("sess-1"))
    store.set({"ticket_id": "FEAT-200", "gate": "review", "agent_type": "reviewer", "project": "my-api"},
              Scope("sess-1", "agent-7"))
    monkeypatch.setenv("BACKLOG_SESSION_ID", "sess-1")


def rows(home: Path) -> list[dict]:
    assert tracking.flush(15)
    path = home / "ledger.db"
    if not path.exists():
        return []
    with SqliteLedger(path) as ledger:
        return sorted(ledger.rows(), key=lambda r: r["started_at"])


def oai(up, **kw):
    return openai.OpenAI(base_url=f"{up.base_url}/v1", api_key="mock", max_retries=0, **kw)


def anth(up, **kw):
    return anthropic.Anthropic(base_url=up.base_url, api_key="mock", max_retries=0, **kw)


OPENAI_COST = cost_from_usage("gpt-4o-mini", "openai", PROMPT, COMPLETION, CACHE_READ, 0)
# Anthropic's input_tokens excludes the cache: the ledger's prompt_tokens includes it.
ANTHROPIC_PROMPT = PROMPT + CACHE_READ + CACHE_WRITE
ANTHROPIC_COST = cost_from_usage("claude-sonnet-4-6", "anthropic", ANTHROPIC_PROMPT, COMPLETION, CACHE_READ, CACHE_WRITE)


def test_prices_are_real() -> None:
    # The expected costs below are LiteLLM's, with the cache discount: not zero, not list price.
    assert 0 < OPENAI_COST < cost_from_usage("gpt-4o-mini", "openai", PROMPT, COMPLETION)
    assert ANTHROPIC_COST > 0


def test_sync_openai_record_carries_session_context(up, context, backlog_home: Path) -> None:
    client = oai(up)
    with track_llm_call(model="gpt-4o-mini", component="search") as call:
        response = call.record(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]))
    assert response.choices[0].message.content == "one two three four"  # the caller's object, untouched
    [row] = rows(backlog_home)
    assert row["source"] == "direct" and row["status"] == "success" and row["call_id"] == call.call_id
    assert (row["ticket_id"], row["gate"], row["agent_type"], row["project"], row["skill"], row["component"]) == (
        "FEAT-200", "implement", "backend", "my-api", "implementer", "search")
    assert (row["session_id"], row["agent_id"]) == ("sess-1", None)
    assert (row["model"], row["provider"]) == ("gpt-4o-mini", "openai")
    assert (row["prompt_tokens"], row["completion_tokens"], row["cache_read_tokens"]) == (PROMPT, COMPLETION, CACHE_READ)
    assert row["cost_usd"] == pytest.approx(OPENAI_COST)
    assert row["latency_ms"] > 0


def test_agent_scope_and_global_fallback(up, context, backlog_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = anth(up)
    monkeypatch.setenv("BACKLOG_AGENT_ID", "agent-7")
    with track_llm_call() as call:
        call.record(client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "hi"}]))
    monkeypatch.delenv("BACKLOG_SESSION_ID")
    monkeypatch.delenv("BACKLOG_AGENT_ID")
    with track_llm_call() as call:
        call.record(client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=[{"role": "user", "content": "hi"}]))
    first, second = rows(backlog_home)
    assert (first["ticket_id"], first["gate"], first["session_id"], first["agent_id"]) == ("FEAT-200", "review", "sess-1", "agent-7")
    assert (second["ticket_id"], second["gate"], second["session_id"]) == ("FEAT-100", "plan", None)


def test_async_anthropic_counts_cache_tokens(up, context, backlog_home: Path) -> None:
    async def run():
        client = anthropic.AsyncAnthropic(base_url=up.base_url, api_key="mock", max_retries=0)
        async with track_llm_call(model="claude-sonnet-4-6") as call:
            message = await client.messages.create(model="claude-sonnet-4-6", max_tokens=50,
                                                   messages=[{"role": "user", "content": "hi"}])
            call.record(message)
        return message

    message = asyncio.run(run())
    assert message.usage.input_tokens == PROMPT
    [row] = rows(backlog_home)
    assert (row["provider"], row["prompt_tokens"], row["completion_tokens"]) == ("anthropic", ANTHROPIC_PROMPT, COMPLETION)
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (CACHE_READ, CACHE_WRITE)
    assert row["cost_usd"] == pytest.approx(ANTHROPIC_COST)
    assert row["ticket_id"] == "FEAT-200"


def test_openai_stream_is_transparent_and_counted(up, context, backlog_home: Path) -> None:
    client = oai(up)
    kwargs = dict(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
                  stream_options={"include_usage": True})
    plain = [c.model_dump() for c in client.chat.completions.create(**kwargs)]
    with track_llm_call() as call:
        stream = call.wrap_stream(client.chat.completions.create(**kwargs))
        assert stream.response.status_code == 200  # the SDK stream's own attributes still work
        seen = [c for c in stream]
    assert [type(c).__name__ for c in seen] == ["ChatCompletionChunk"] * len(plain)
    strip = lambda d: {k: v for k, v in d.items() if k not in ("id", "created")}  # noqa: E731
    assert [strip(c.model_dump()) for c in seen] == [strip(c) for c in plain]
    [row] = rows(backlog_home)
    assert (row["prompt_tokens"], row["completion_tokens"], row["cache_read_tokens"]) == (PROMPT, COMPLETION, CACHE_READ)
    assert row["cost_usd"] == pytest.approx(OPENAI_COST)


def test_stream_outliving_its_block_is_recorded_when_it_ends(up, backlog_home: Path) -> None:
    client = oai(up)
    with track_llm_call() as call:
        stream = call.wrap_stream(client.chat.completions.create(
            model="gpt-4o-mini", messages=[], stream=True, stream_options={"include_usage": True}))
    assert rows(backlog_home) == []  # not yet: the stream is still open
    with stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "one two three four"
    [row] = rows(backlog_home)
    assert row["completion_tokens"] == COMPLETION


def test_async_anthropic_event_stream(up, context, backlog_home: Path) -> None:
    async def run():
        client = anthropic.AsyncAnthropic(base_url=up.base_url, api_key="mock", max_retries=0)
        async with track_llm_call() as call:
            events = [e.type async for e in call.wrap_stream(await client.messages.create(
                model="claude-sonnet-4-6", max_tokens=50, stream=True, messages=[{"role": "user", "content": "hi"}]))]
        return events

    events = asyncio.run(run())
    assert events[0] == "message_start" and "message_delta" in events and events[-1] == "message_stop"
    [row] = rows(backlog_home)
    # message_start said output_tokens=1; message_delta's final count wins.
    assert (row["prompt_tokens"], row["completion_tokens"], row["cache_write_tokens"]) == (ANTHROPIC_PROMPT, COMPLETION, CACHE_WRITE)
    assert row["model"] == "claude-sonnet-4-6" and row["cost_usd"] == pytest.approx(ANTHROPIC_COST)


def test_anthropic_stream_helper_text_stream(up, backlog_home: Path) -> None:
    client = anth(up)
    with track_llm_call() as call:
        with call.wrap_stream(client.messages.stream(model="claude-sonnet-4-6", max_tokens=50,
                                                     messages=[{"role": "user", "content": "hi"}])) as stream:
            text = "".join(stream.text_stream)
    assert text == "one two three four"
    [row] = rows(backlog_home)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (ANTHROPIC_PROMPT, COMPLETION)


def test_decorators_sync_async_and_streaming(up, context, backlog_home: Path) -> None:
    client = oai(up)
    aclient = openai.AsyncOpenAI(base_url=f"{up.base_url}/v1", api_key="mock", max_retries=0)

    @track_llm_call(model="gpt-4o-mini", component="summarize")
    def summarize(text: str):
        assert current_call() is not None
        return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])

    @track_llm_call(model="gpt-4o-mini")
    async def asummarize(text: str):
        return await aclient.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])

    @track_llm_call()
    def streamed(text: str):
        return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}],
                                              stream=True, stream_options={"include_usage": True})

    @track_llm_call()
    def manual():
        # The design's way: the function fills the call in itself.
        r = client.chat.completions.create(model="gpt-4o-mini", messages=[])
        call = current_call()
        call.input_tokens = r.usage.prompt_tokens
        call.output_tokens = r.usage.completion_tokens
        call.model = "gpt-4o-mini"
        return "done"

    assert summarize("a").choices[0].message.content == "one two three four"
    assert summarize.__name__ == "summarize"
    assert asyncio.run(asummarize("b")).usage.completion_tokens == COMPLETION
    assert "".join(c.choices[0].delta.content or "" for c in streamed("c") if c.choices) == "one two three four"
    assert manual() == "done"
    assert current_call() is None
    got = rows(backlog_home)
    assert len(got) == 4
    assert all(r["completion_tokens"] == COMPLETION and r["ticket_id"] == "FEAT-200" and r["source"] == "direct" for r in got)
    assert sorted(r["component"] or "" for r in got) == ["", "", "", "summarize"]
    manual_row = [r for r in got if r["cache_read_tokens"] == 0]
    assert len(manual_row) == 1 and manual_row[0]["prompt_tokens"] == PROMPT and manual_row[0]["cost_usd"] > 0


def test_failure_is_recorded_and_the_exception_propagates(up, context, backlog_home: Path) -> None:
    up.script(Reply.server_error(), times=2)
    client = oai(up)
    with pytest.raises(openai.InternalServerError) as raised:
        with track_llm_call(model="gpt-4o-mini"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[])

    async def run():
        aclient = anthropic.AsyncAnthropic(base_url=up.base_url, api_key="mock", max_retries=0)

        @track_llm_call(model="claude-sonnet-4-6")
        async def ask():
            return await aclient.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=[])

        await ask()

    with pytest.raises(anthropic.InternalServerError):
        asyncio.run(run())
    assert raised.value.status_code == 500
    got = rows(backlog_home)
    assert [(r["status"], r["error_class"], r["model"], r["cost_usd"]) for r in got] == [
        ("failure", "InternalServerError", "gpt-4o-mini", 0.0),
        ("failure", "InternalServerError", "claude-sonnet-4-6", 0.0),
    ]
    assert all(r["ticket_id"] == "FEAT-200" for r in got)


def test_gateway_calls_are_not_counted_twice(up, backlog_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = oai(up)
    # 1. The caller says so.
    with track_llm_call(via_gateway=True) as call:
        call.record(client.chat.completions.create(model="gpt-4o-mini", messages=[]))
    assert call.skipped == "via_gateway"
    # 2. The client's base_url is the gateway (localhost and 127.0.0.1 are the same host).
    monkeypatch.setenv("BACKLOG_GATEWAY_URL", f"http://localhost:{up.port}")
    with track_llm_call(client=client) as call:
        call.record(client.chat.completions.create(model="gpt-4o-mini", messages=[]))
    assert call.skipped == "via_gateway"
    monkeypatch.delenv("BACKLOG_GATEWAY_URL")
    # 3. The response carries LiteLLM's call id header.
    with track_llm_call() as call:
        call.record({"headers": {"X-LiteLLM-Call-Id": "abc-123"}, "body": {"model": "gpt-4o-mini",
                     "usage": {"prompt_tokens": 5, "completion_tokens": 1}}})
    assert (call.skipped, call.litellm_call_id) == ("litellm_response", "abc-123")
    assert rows(backlog_home) == []
    # A raw response from a provider that is not the gateway is recorded.
    with track_llm_call(client=client, via_gateway=None) as call:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[])
        call.record(raw)
    assert raw.parse().usage.prompt_tokens == PROMPT
    [row] = rows(backlog_home)
    assert row["prompt_tokens"] == PROMPT and call.skipped is None
    # The headers that let the gateway attribute a call to this process's session.
    monkeypatch.setenv("BACKLOG_SESSION_ID", "sess-9")
    assert track_llm_call(agent_id="a1").headers == {"x-backlog-session": "sess-9", "x-backlog-agent-id": "a1"}


def test_internal_errors_never_reach_the_caller(up, backlog_home: Path, caplog: pytest.LogCaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    class Hostile:
        @property
        def usage(self):
            raise RuntimeError("boom")

        def __getattr__(self, name):
            raise RuntimeError("boom")

    caplog.set_level(logging.WARNING, logger="backlog_ops.capture.tracking")
    # Fresh rate limits: an earlier test may have logged the same kinds of problem.
    monkeypatch.setattr(tracking_log, "WARNINGS", Warnings(tracking_log.LOGGER, interval=60))
    with track_llm_call(component="not a slug!") as call:
        assert call.record(Hostile()) is not None
        call.wrap_stream(object())  # not iterable: the caller sees its own error when it iterates
    with track_llm_call() as call:
        call.record(12345)
    # A broken ledger (BACKLOG_HOME is a file): the caller goes on, the writer warns and spools.
    broken = backlog_home.parent / "not-a-dir"
    broken.write_text("x")
    os.environ["BACKLOG_HOME"] = str(broken)
    try:
        with track_llm_call(model="gpt-4o-mini") as call:
            call.record(oai(up).chat.completions.create(model="gpt-4o-mini", messages=[]))
    finally:
        os.environ["BACKLOG_HOME"] = str(backlog_home)
    messages = [r.getMessage() for r in caplog.records]
    assert any("component" in m for m in messages)
    assert len([m for m in messages if "component" in m]) == 1


def test_many_tracked_blocks_each_leave_one_row(backlog_home: Path) -> None:
    # The cost per block is measured by bench/callback_costs.py, not asserted here.
    for _ in range(301):
        with track_llm_call(model="gpt-4o-mini") as call:
            call.record({"model": "gpt-4o-mini", "usage": {"prompt_tokens": 10, "completion_tokens": 2}})
    assert len(rows(backlog_home)) == 301


def test_responses_api_and_dict_shapes(backlog_home: Path) -> None:
    with track_llm_call() as call:
        call.record({"object": "response", "model": "gpt-4o-mini",
                     "usage": {"input_tokens": 500, "output_tokens": 40, "total_tokens": 540,
                               "input_tokens_details": {"cached_tokens": 100}}})
    with track_llm_call() as call:  # a Responses stream's events
        for _ in call.wrap_stream(iter([{"type": "response.created"}, {"type": "response.output_text.delta"},
                                        {"type": "response.completed", "response": {"object": "response", "model": "gpt-4o-mini",
                                         "usage": {"input_tokens": 70, "output_tokens": 7, "total_tokens": 77}}}])):
            pass
    first, second = rows(backlog_home)
    assert (first["prompt_tokens"], first["completion_tokens"], first["cache_read_tokens"], first["provider"]) == (500, 40, 100, "openai")
    assert (second["prompt_tokens"], second["completion_tokens"]) == (70, 7)
    assert first["cost_usd"] == pytest.approx(cost_from_usage("gpt-4o-mini", "openai", 500, 40, 100, 0))
