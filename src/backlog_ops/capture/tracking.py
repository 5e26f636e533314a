"""track_llm_call: put LLM calls made straight through the OpenAI or Anthropic SDKs in the ledger.

LiteLLM's callbacks only see calls that go through LiteLLM (the gateway, or litellm.completion in
process). Code that calls ``openai.OpenAI().chat.completions.create`` or
``anthropic.Anthropic().messages.create`` itself is invisible to them
(llm-tracking-learnings.md, insight 1). Wrap such a call and it gets a ledger row like every
other call: model, tokens, cost at LiteLLM's prices, the ticket context in force, and
``source='direct'``::

    from backlog_ops.capture.tracking import track_llm_call

    with track_llm_call(model="gpt-4o-mini") as call:          # also: async with
        response = call.record(client.chat.completions.create(model="gpt-4o-mini", messages=...))

    @track_llm_call(model="claude-sonnet-4-5")                 # def or async def
    def summarize(text):
        return client.messages.create(...)                     # the returned response is recorded

    with track_llm_call() as call:                             # streaming, either SDK
        for chunk in call.wrap_stream(client.chat.completions.create(
                ..., stream=True, stream_options={"include_usage": True})):
            ...                                                # the caller sees the same chunks

    with track_llm_call(model="gemma-3", provider="deepinfra") as call:   # as in the design
        completion = client.chat.completions.create(...)
        call.input_tokens = completion.usage.prompt_tokens
        call.output_tokens = completion.usage.completion_tokens

What is recorded
    One ledger row per block (or decorated call). ``call.record(obj)`` understands OpenAI
    ChatCompletion and Responses objects, Anthropic Message objects, their ``usage`` objects,
    raw responses (``.with_raw_response``) and plain dicts of the same shapes; several record()
    calls in one block add up. Set the counts by hand as the provider's SDK reports them:
    ``input_tokens`` is OpenAI's ``prompt_tokens`` (cached tokens included) or Anthropic's
    ``input_tokens`` (cache reads and writes excluded: say ``provider="anthropic"``).
    ``cache_read_tokens`` / ``cache_write_tokens`` are priced at the cache rates. The ledger
    stores LiteLLM's convention: prompt_tokens includes every cached token.
    ``wrap_stream`` accumulates usage from OpenAI chat chunks (the last chunk's ``usage``, sent
    when ``stream_options={"include_usage": True}``), Responses events (``response.completed``)
    and Anthropic events (``message_start`` usage, then ``message_delta`` usage); it is
    transparent (same items, same attributes, usable as a context manager) and also takes
    Anthropic's ``client.messages.stream(...)`` manager. A block whose wrapped stream is still
    open when the block ends is recorded when the stream ends or is closed.
    The context is resolved when the block starts, exactly as the gateway would: the agent
    scope of (BACKLOG_SESSION_ID, BACKLOG_AGENT_ID), then the session, then the global
    context; ``session_id=`` / ``agent_id=`` override the environment. An exception in the
    block records a ``failure`` row with the exception's class and propagates unchanged.

Never in the way
    Nothing here raises into the caller's code and nothing blocks it: any internal error logs
    one warning (logger ``backlog_ops.capture.tracking``) and the call goes on. Rows are handed to a
    LedgerWriter (a queue and a background thread, flushed at interpreter exit; see
    ``flush()``); even the price is computed on that thread, so LiteLLM's ~3 s import never
    lands on the caller's path. When LITELLM_LOCAL_MODEL_COST_MAP is unset and LiteLLM is not
    imported yet, it is set to True before that import (the local price map: no network fetch
    at start; set it to False yourself to keep LiteLLM's remote map).

Calls that went through the gateway are not recorded again
    The gateway's own row is the record of such a call (with its tags and LiteLLM's price), so
    a tracked call is skipped, and ``call.skipped`` says why, when any of these holds:

    * ``via_gateway=True`` was passed (``via_gateway=False`` forces recording);
    * ``client=`` was passed and its ``base_url`` is the gateway: same scheme, host (localhost
      and 127.0.0.1 are one) and port as ``$BACKLOG_GATEWAY_URL`` (comma-separated) or
      ``llmOps.gateway.baseURL`` of ./backlog.config.json;
    * a recorded object carries LiteLLM's ``x-litellm-call-id`` header (a raw response from
      ``.with_raw_response``, or a dict with ``headers``); ``call.litellm_call_id`` keeps it.

    A base_url that is merely not the provider's (DeepInfra, Together, a vLLM server...) is NOT
    the gateway: that is exactly the traffic the gateway never sees. To have the gateway
    attribute a call to this process's session, send ``extra_headers=call.headers``.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

__all__ = ["TrackedCall", "current_call", "flush", "track_llm_call"]

log = logging.getLogger("backlog_ops.capture.tracking")

_current: contextvars.ContextVar["TrackedCall | None"] = contextvars.ContextVar("backlog_ops_tracked_call", default=None)
_LITELLM_HEADERS = ("x-litellm-call-id", "x-litellm-model-id", "x-litellm-version")


def track_llm_call(
    model: str | None = None,
    *,
    provider: str | None = None,
    component: str | None = None,
    via_gateway: bool | None = None,
    client: Any = None,
    session_id: str | None = None,
    agent_id: str | None = None,
) -> "TrackedCall":
    """Track one direct LLM call: ``with``/``async with`` it, or decorate a def/async def with it."""
    return TrackedCall(
        model=model, provider=provider, component=component, via_gateway=via_gateway, client=client,
        session_id=session_id, agent_id=agent_id,
    )


def current_call() -> "TrackedCall | None":
    """The innermost tracked call in progress here (inside a decorated function, for instance)."""
    return _current.get()


def flush(timeout: float = 10.0) -> bool:
    """Wait until every row handed over so far is in the ledger (tests, short scripts)."""
    ok = True
    for writer in _writers():
        ok = writer.flush(timeout) and ok
    return ok


def _writers() -> list:
    with _per_home_lock:
        return [obj for (kind, _), obj in _per_home.items() if kind == "writer"]


def _close_all() -> None:
    """Close every writer and forget every per-home object (tests switch homes)."""
    for writer in _writers():
        writer.close()
    with _per_home_lock:
        _per_home.clear()


class TrackedCall:
    """One tracked call: the object a ``with track_llm_call(...) as call`` block gets."""

    def __init__(
        self,
        *,
        model: str | None = None,
        provider: str | None = None,
        component: str | None = None,
        via_gateway: bool | None = None,
        client: Any = None,
        session_id: str | None = None,
        agent_id: str | None = None,
    ) -> None:
        self._config = dict(
            model=model, provider=provider, component=component, via_gateway=via_gateway, client=client,
            session_id=session_id, agent_id=agent_id,
        )
        self._declared_model = model
        self.model = model
        self.provider = provider or _provider_of_client(client)
        self.component = component
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read_tokens: int | None = None
        self.cache_write_tokens: int | None = None
        self.cost_usd: float | None = None
        self.call_id = f"direct:{uuid.uuid4().hex}"
        self.skipped: str | None = None
        self.litellm_call_id: str | None = None
        self.session_id: str | None = None
        self.agent_id: str | None = None
        self.context: dict | None = None
        self.status: str | None = None
        self.error_class: str | None = None
        self._input_excludes_cache = provider == "anthropic"
        self._via_gateway = via_gateway
        self._client = client
        self._started = 0.0
        self._started_mono = 0.0
        self._ended_mono: float | None = None
        self._block_done = False
        self._open_streams = 0
        self._finalized = False
        self._token: contextvars.Token | None = None
        self._lock = threading.Lock()

    # -- token aliases (OpenAI's names) ------------------------------------------------------

    @property
    def prompt_tokens(self) -> int | None:
        return self.input_tokens

    @prompt_tokens.setter
    def prompt_tokens(self, value: int | None) -> None:
        self.input_tokens = value

    @property
    def completion_tokens(self) -> int | None:
        return self.output_tokens

    @completion_tokens.setter
    def completion_tokens(self, value: int | None) -> None:
        self.output_tokens = value

    @property
    def headers(self) -> dict[str, str]:
        """Headers that tell the gateway whose call this is (for ``extra_headers=`` on gateway calls)."""
        out = {}
        session = self.session_id or self._config["session_id"] or os.environ.get("BACKLOG_SESSION_ID")
        agent = self.agent_id or self._config["agent_id"] or os.environ.get("BACKLOG_AGENT_ID")
        if session:
            out["x-backlog-session"] = session
            if agent:
                out["x-backlog-agent-id"] = agent
        return out

    # -- context manager -----------------------------------------------------------------------

    def __enter__(self) -> "TrackedCall":
        self._start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self._end_block(exc)
        return False  # the caller's exception, if any, propagates unchanged

    async def __aenter__(self) -> "TrackedCall":
        self._start()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self._end_block(exc)
        return False

    # -- decorator -----------------------------------------------------------------------------

    def __call__(self, fn: Callable) -> Callable:
        config = self._config

        if inspect.isasyncgenfunction(fn):
            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with TrackedCall(**config):
                    async for item in fn(*args, **kwargs):
                        yield item
            return agen_wrapper

        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                with TrackedCall(**config):
                    return (yield from fn(*args, **kwargs))
            return gen_wrapper

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                call = TrackedCall(**config)
                call._start()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    call._end_block(exc)
                    raise
                result = call._adopt_result(result)
                call._end_block(None)
                return result
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = TrackedCall(**config)
            call._start()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                call._end_block(exc)
                raise
            result = call._adopt_result(result)
            call._end_block(None)
            return result
        return wrapper

    # -- capturing usage -----------------------------------------------------------------------

    def record(self, response: Any) -> Any:
        """Take model and usage from a response (or usage object, raw response, dict); returns it."""
        try:
            self._absorb(_extract(response))
        except Exception as exc:  # noqa: BLE001 - tracking never breaks the caller
            _warn("record", f"could not read usage from {type(response).__name__}: {type(exc).__name__}: {exc}")
        return response

    def wrap_stream(self, stream: Any) -> Any:
        """The same stream, counting its usage as the caller iterates it (sync or async)."""
        try:
            with self._lock:
                self._open_streams += 1
            if hasattr(stream, "__aiter__") or hasattr(stream, "__aenter__") and not hasattr(stream, "__enter__"):
                return _AsyncStreamProxy(stream, self)
            return _StreamProxy(stream, self)
        except Exception as exc:  # noqa: BLE001
            _warn("wrap_stream", f"stream not tracked: {type(exc).__name__}: {exc}")
            return stream

    # -- internals -------------------------------------------------------------------------------

    def _start(self) -> None:
        try:
            if self._started:
                _warn("reuse", "a track_llm_call object was entered twice: use one per call")
            self._started = time.time()
            self._started_mono = time.monotonic()
            try:
                self._token = _current.set(self)
            except Exception:  # noqa: BLE001
                self._token = None
            self.session_id = self._config["session_id"] or os.environ.get("BACKLOG_SESSION_ID") or None
            self.agent_id = self._config["agent_id"] or os.environ.get("BACKLOG_AGENT_ID") or None
            if self._via_gateway is None and self._client is not None and _is_gateway_url(getattr(self._client, "base_url", None)):
                self._via_gateway = True
            if self._via_gateway:
                self.skipped = "via_gateway"
                return
            resolved = _resolver().resolve(self.session_id, self.agent_id)
            self.context = dict(resolved.context) if resolved is not None else None
        except Exception as exc:  # noqa: BLE001
            _warn("start", f"context not resolved, call recorded without it: {type(exc).__name__}: {exc}")

    def _end_block(self, exc: BaseException | None) -> None:
        try:
            if self._token is not None:
                try:
                    _current.reset(self._token)
                except (ValueError, RuntimeError):
                    pass  # exited in another context (a generator moved between tasks)
                self._token = None
            self._block_done = True
            if exc is not None:
                self.status = "failure"
                self.error_class = type(exc).__name__
                self._finalize()
            elif self._open_streams == 0:
                self._finalize()
        except Exception as err:  # noqa: BLE001
            _warn("end", f"call not recorded: {type(err).__name__}: {err}")

    def _stream_done(self, usage: "_Usage | None", exc: BaseException | None) -> None:
        try:
            if usage is not None:
                self._absorb(usage)
            with self._lock:
                self._open_streams = max(0, self._open_streams - 1)
                remaining = self._open_streams
            if exc is not None and not isinstance(exc, (StopIteration, StopAsyncIteration, GeneratorExit)):
                self.status = "failure"
                self.error_class = type(exc).__name__
            if self._block_done and (remaining == 0 or exc is not None):
                self._finalize()
        except Exception as err:  # noqa: BLE001
            _warn("stream", f"stream usage not recorded: {type(err).__name__}: {err}")

    def _adopt_result(self, result: Any) -> Any:
        """A decorated function's return value: recorded if it is a response, wrapped if a stream."""
        try:
            if self.input_tokens is not None or self.output_tokens is not None or result is None:
                return result
            if _looks_like_stream(result):
                return self.wrap_stream(result)
            usage = _extract(result)
            if usage.found:
                self._absorb(usage)
        except Exception as exc:  # noqa: BLE001
            _warn("result", f"could not read the function's result: {type(exc).__name__}: {exc}")
        return result

    def _absorb(self, usage: "_Usage") -> None:
        if usage.litellm_call_id:
            self.litellm_call_id = usage.litellm_call_id
            if self._via_gateway is None:
                self._via_gateway = True
                self.skipped = "litellm_response"
        if usage.model:
            self.model = usage.model
        if usage.provider and not self._config["provider"]:
            self.provider = usage.provider
        if not usage.found:
            return
        if usage.input_excludes_cache:
            self._input_excludes_cache = True
        self.input_tokens = (self.input_tokens or 0) + usage.input_tokens
        self.output_tokens = (self.output_tokens or 0) + usage.output_tokens
        self.cache_read_tokens = (self.cache_read_tokens or 0) + usage.cache_read
        self.cache_write_tokens = (self.cache_write_tokens or 0) + usage.cache_write

    def _finalize(self) -> None:
        with self._lock:
            if self._finalized:
                return
            self._finalized = True
        self._ended_mono = time.monotonic()
        if self.status is None:
            self.status = "success"
        if self._via_gateway:
            self.skipped = self.skipped or "via_gateway"
            return
        record = self._build_record()
        _writer().submit(record)

    def _build_record(self):
        from backlog_ops.capture.rows import call_record

        cache_read = _int(self.cache_read_tokens)
        cache_write = _int(self.cache_write_tokens)
        prompt = _int(self.input_tokens)
        if self._input_excludes_cache or self.provider == "anthropic":
            prompt += cache_read + cache_write
        context = dict(self.context or {})
        context["component"] = context.get("component") or _valid_component(self.component)
        ended = self._ended_mono or time.monotonic()
        record = call_record(
            call_id=self.call_id, source="direct", started=self._started or time.time(),
            seconds=(ended - self._started_mono) if self._started_mono else None,
            status=self.status or "success", error_class=self.error_class, context=context,
            session_id=self.session_id, agent_id=self.agent_id if self.session_id else None,
            model=self.model, model_group=self._declared_model, provider=self.provider,
            prompt_tokens=prompt, completion_tokens=_int(self.output_tokens),
            cache_read_tokens=cache_read, cache_write_tokens=cache_write,
            cost_usd=float(self.cost_usd) if self.cost_usd is not None else 0.0,
        )
        if self.cost_usd is None and (prompt or record.completion_tokens):
            # Priced on the writer thread (LiteLLM's import is seconds): remember what to price.
            record._price_with = [m for m in (self.model, self._declared_model) if m]  # type: ignore[attr-defined]
        return record


# -- streams ---------------------------------------------------------------------------------


class _StreamAccumulator:
    """Usage from stream items: OpenAI chat chunks, Responses events, Anthropic events."""

    def __init__(self) -> None:
        self.usage = _Usage()

    def feed(self, item: Any) -> None:
        try:
            kind = _get(item, "type")
            if kind == "message_start":  # Anthropic: input side, output placeholder
                message = _get(item, "message")
                u = _extract(message)
                if u.found:
                    self.usage = u
                elif u.model:
                    self.usage.model = u.model
                self.usage.provider = "anthropic"
                self.usage.input_excludes_cache = True
            elif kind == "message_delta":  # Anthropic: cumulative counts so far
                usage = _get(item, "usage")
                if usage is not None:
                    self.usage.found = True
                    self.usage.input_excludes_cache = True
                    out = _get(usage, "output_tokens")
                    if out is not None:
                        self.usage.output_tokens = _int(out)
                    for src, dst in (("input_tokens", "input_tokens"), ("cache_read_input_tokens", "cache_read"),
                                     ("cache_creation_input_tokens", "cache_write")):
                        value = _get(usage, src)
                        if value is not None:
                            setattr(self.usage, dst, _int(value))
            elif kind in ("response.completed", "response.incomplete", "response.failed"):  # OpenAI Responses
                u = _extract(_get(item, "response"))
                if u.found:
                    self.usage = u
            elif kind is None or kind == "chat.completion.chunk" or _get(item, "object") == "chat.completion.chunk":
                model = _get(item, "model")
                if model and not self.usage.model:
                    self.usage.model = model
                if _get(item, "usage") is not None:  # OpenAI: the include_usage chunk
                    u = _extract(item)
                    if u.found:
                        u.model = u.model or self.usage.model
                        self.usage = u
        except Exception as exc:  # noqa: BLE001
            _warn("chunk", f"could not read a stream item ({type(item).__name__}): {type(exc).__name__}: {exc}")

    def final(self, stream: Any) -> "_Usage":
        if not self.usage.found:
            # Anthropic's messages.stream() helper: iterated through .text_stream, not through us.
            snapshot = getattr(stream, "current_message_snapshot", None) if stream is not None else None
            if snapshot is not None:
                try:
                    u = _extract(snapshot)
                    if u.found:
                        return u
                except Exception:  # noqa: BLE001
                    pass
            _warn("no-usage", "a tracked stream ended without usage: for OpenAI pass "
                  "stream_options={'include_usage': True}; recorded with 0 tokens", level=logging.INFO)
        return self.usage


class _StreamProxyBase:
    """What the sync and async stream stand-ins share: state, attribute pass-through, finishing."""

    def __init__(self, stream: Any, call: TrackedCall, acc: _StreamAccumulator | None = None, owner: bool = True) -> None:
        self._stream = stream
        self._call = call
        self._acc = acc or _StreamAccumulator()
        self._owner = owner
        self._done = False
        self._iter = None
        self._inner: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __del__(self) -> None:
        try:
            self._finish(None)
        except Exception:  # noqa: BLE001
            pass

    def _finish(self, exc: BaseException | None) -> None:
        if self._done or not self._owner:
            self._done = True
            return
        self._done = True
        self._call._stream_done(self._acc.final(self._inner if self._inner is not None else self._stream), exc)


class _StreamProxy(_StreamProxyBase):
    """A transparent stand-in for a sync stream (or stream manager) that counts its usage."""

    def __iter__(self) -> "_StreamProxy":
        return self

    def __next__(self) -> Any:
        if self._iter is None:
            self._iter = iter(self._stream)
        try:
            item = next(self._iter)
        except StopIteration:
            self._finish(None)
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        self._acc.feed(item)
        return item

    def __enter__(self) -> Any:
        inner = self._stream.__enter__()
        if inner is self._stream:
            return self
        # A manager (anthropic's messages.stream()) handing out the real stream.
        self._inner = inner
        return _StreamProxy(inner, self._call, self._acc, owner=False)

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._stream.__exit__(*exc_info)
        finally:
            self._finish(exc_info[1])

    def close(self) -> Any:
        try:
            closer = getattr(self._stream, "close", None)
            return closer() if closer is not None else None
        finally:
            self._finish(None)


class _AsyncStreamProxy(_StreamProxyBase):
    """The async twin of _StreamProxy."""

    def __aiter__(self) -> "_AsyncStreamProxy":
        return self

    async def __anext__(self) -> Any:
        if self._iter is None:
            self._iter = self._stream.__aiter__()
        try:
            item = await self._iter.__anext__()
        except StopAsyncIteration:
            self._finish(None)
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        self._acc.feed(item)
        return item

    async def __aenter__(self) -> Any:
        inner = await self._stream.__aenter__()
        if inner is self._stream:
            return self
        self._inner = inner
        return _AsyncStreamProxy(inner, self._call, self._acc, owner=False)

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._stream.__aexit__(*exc_info)
        finally:
            self._finish(exc_info[1])

    async def close(self) -> Any:
        try:
            closer = getattr(self._stream, "close", None) or getattr(self._stream, "aclose", None)
            if closer is not None:
                result = closer()
                if inspect.isawaitable(result):
                    return await result
                return result
        finally:
            self._finish(None)


def _looks_like_stream(obj: Any) -> bool:
    if isinstance(obj, (str, bytes, dict, list, tuple)):
        return False
    name = type(obj).__name__
    return name.endswith(("Stream", "StreamManager")) and (
        hasattr(obj, "__iter__") or hasattr(obj, "__aiter__") or hasattr(obj, "__enter__") or hasattr(obj, "__aenter__")
    )


# -- reading responses -----------------------------------------------------------------------


class _Usage:
    __slots__ = ("found", "input_tokens", "output_tokens", "cache_read", "cache_write", "input_excludes_cache",
                 "model", "provider", "litellm_call_id")

    def __init__(self) -> None:
        self.found = False
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read = 0
        self.cache_write = 0
        self.input_excludes_cache = False
        self.model: str | None = None
        self.provider: str | None = None
        self.litellm_call_id: str | None = None


def _extract(obj: Any) -> _Usage:
    """Model and usage of a response in any of the shapes track_llm_call understands."""
    out = _Usage()
    if obj is None:
        return out
    # Raw responses (.with_raw_response.create): headers first, then the parsed body.
    headers = _get(obj, "headers") if not isinstance(obj, dict) or "headers" in obj else None
    if headers is not None:
        out.litellm_call_id = _litellm_id(headers)
        body = None
        if isinstance(obj, dict):
            body = obj.get("body") or obj.get("response")
        elif callable(getattr(obj, "parse", None)) and "json" in str(_header(headers, "content-type") or ""):
            body = obj.parse()
        if body is not None:
            inner = _extract(body)
            inner.litellm_call_id = inner.litellm_call_id or out.litellm_call_id
            return inner
        if not isinstance(obj, dict):
            return out
    model = _get(obj, "model")
    if isinstance(model, str):
        out.model = model
    usage = _get(obj, "usage")
    if usage is None and (_get(obj, "prompt_tokens") is not None or _get(obj, "input_tokens") is not None):
        usage, obj = obj, None  # a bare usage object
    if usage is None:
        return out
    kind = _get(obj, "type") if obj is not None else None
    kind_object = _get(obj, "object") if obj is not None else None
    if _get(usage, "prompt_tokens") is not None or _get(usage, "completion_tokens") is not None:
        # OpenAI chat completions: prompt_tokens includes cached tokens.
        out.input_tokens = _int(_get(usage, "prompt_tokens"))
        out.output_tokens = _int(_get(usage, "completion_tokens"))
        out.cache_read = _int(_get(_get(usage, "prompt_tokens_details"), "cached_tokens"))
        out.cache_write = _int(_get(_get(usage, "prompt_tokens_details"), "cache_creation_tokens"))
        out.provider = "openai"
        out.found = True
    elif _get(usage, "input_tokens") is not None or _get(usage, "output_tokens") is not None:
        responses_api = (
            kind_object == "response"
            or _get(usage, "input_tokens_details") is not None
            or _get(usage, "total_tokens") is not None
        )
        out.input_tokens = _int(_get(usage, "input_tokens"))
        out.output_tokens = _int(_get(usage, "output_tokens"))
        if responses_api and _get(usage, "cache_read_input_tokens") is None:
            # OpenAI Responses: input_tokens includes cached tokens.
            out.cache_read = _int(_get(_get(usage, "input_tokens_details"), "cached_tokens"))
            out.provider = "openai"
        else:
            # Anthropic: input_tokens excludes cache reads and writes.
            out.cache_read = _int(_get(usage, "cache_read_input_tokens"))
            out.cache_write = _int(_get(usage, "cache_creation_input_tokens"))
            out.input_excludes_cache = True
            out.provider = "anthropic"
        out.found = True
    if kind == "message" and out.provider is None:
        out.provider = "anthropic"
    return out


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:  # noqa: BLE001 - a property that raises is simply absent
        return None


def _header(headers: Any, name: str) -> Any:
    try:
        value = headers.get(name)
        if value is None and isinstance(headers, dict):
            lowered = {str(k).lower(): v for k, v in headers.items()}
            value = lowered.get(name)
        return value
    except Exception:  # noqa: BLE001
        return None


def _litellm_id(headers: Any) -> str | None:
    for name in _LITELLM_HEADERS:
        value = _header(headers, name)
        if value:
            return str(_header(headers, "x-litellm-call-id") or value)
    return None


def _provider_of_client(client: Any) -> str | None:
    if client is None:
        return None
    module = type(client).__module__.split(".", 1)[0]
    return module if module in ("openai", "anthropic", "groq", "mistralai", "cohere") else None


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _valid_component(value: str | None) -> str | None:
    if not value:
        return None
    from backlog_ops.context.fields import check_field

    try:
        return check_field("component", value)
    except ValueError:
        _warn("component", f"component {value!r} is not a valid slug: recorded without it")
        return None


# -- the gateway -------------------------------------------------------------------------------


def _is_gateway_url(url: Any) -> bool:
    if not url:
        return False
    target = _url_key(str(url))
    return target is not None and target in _gateway_keys()


def _gateway_keys() -> set[tuple[str, str, int]]:
    urls = [u.strip() for u in os.environ.get("BACKLOG_GATEWAY_URL", "").split(",") if u.strip()]
    try:
        config = json.loads(Path("backlog.config.json").read_text())
        base = (((config.get("llmOps") or {}).get("gateway") or {}).get("baseURL"))
        if isinstance(base, str):
            urls.append(base)
    except (OSError, ValueError, AttributeError):
        pass
    return {key for key in (_url_key(u) for u in urls) if key is not None}


def _url_key(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            return None
        if host in ("localhost", "::1", "0.0.0.0") or host.startswith("127."):
            host = "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.scheme.lower(), host, port
    except ValueError:
        return None


# -- where rows go -----------------------------------------------------------------------------

_per_home: dict[tuple[str, Path], Any] = {}
_per_home_lock = threading.Lock()


def _for_home(kind: str, make: Callable[[Path], Any]) -> Any:
    """One `kind` object per BACKLOG_HOME (tests and tools switch homes within one process)."""
    from backlog_ops.common.home import home

    key = (kind, home())
    found = _per_home.get(key)
    if found is None:
        with _per_home_lock:
            found = _per_home.get(key)
            if found is None:
                found = _per_home[key] = make(key[1])
    return found


def _resolver():
    from backlog_ops.context.backend import make_resolver

    # The configured store: files, or Redis when BACKLOG_CONTEXT_URL is set.
    return _for_home("resolver", lambda root: make_resolver(warn=lambda m: _warn("context", m)))


def _writer():
    from backlog_ops.ledger import LedgerWriter, open_ledger

    def make(root: Path) -> LedgerWriter:
        # Import LiteLLM (~3 s, for its prices) in the background now, not when the writer first
        # prices a row: that may be at interpreter exit, when LiteLLM can no longer be imported.
        threading.Thread(target=_import_litellm, name="backlog-ops-pricing-warmup", daemon=True).start()
        # The configured ledger: SQLite under this home, or PostgreSQL (BACKLOG_LEDGER_URL).
        return LedgerWriter(lambda: _PricingLedger(open_ledger()), spool_path=root / "ledger-spool.jsonl")

    return _for_home("writer", make)


def _import_litellm() -> None:
    from backlog_ops.common.prices import import_litellm

    try:
        import_litellm()
    except Exception:  # noqa: BLE001 - pricing will warn when it needs it
        pass


class _PricingLedger:
    """The ledger as the writer thread sees it: prices rows just before writing them."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger

    def record_many(self, records: list) -> int:
        for record in records:
            models = getattr(record, "_price_with", None)
            if models:
                try:
                    record.cost_usd = _price(models, record.provider, record)
                except Exception as exc:  # noqa: BLE001
                    _warn("price", f"could not price {models[0]}: {type(exc).__name__}: {exc}")
                record._price_with = None
        return self._ledger.record_many(records)

    def close(self) -> None:
        self._ledger.close()


def _price(models: list[str], provider: str | None, record: Any) -> float:
    from backlog_ops.common.prices import price_usage

    cost = price_usage(models, provider, record.prompt_tokens, record.completion_tokens,
                       record.cache_read_tokens, record.cache_write_tokens)
    if cost is None:
        _warn(f"price:{models[0]}", f"LiteLLM has no price for model {models[0]!r}: recorded with cost 0", level=logging.INFO)
        return 0.0
    return cost


# -- warnings ----------------------------------------------------------------------------------

_warned: dict[str, float] = {}


def _warn(key: str, message: str, level: int = logging.WARNING) -> None:
    """One log line per kind of problem a minute at most: tracking must never flood a log."""
    now = time.monotonic()
    last = _warned.get(key)
    if last is not None and now - last < 60:
        return
    if len(_warned) > 1000:
        _warned.clear()
    _warned[key] = now
    log.log(level, "backlog-ops: track_llm_call: %s", message)
