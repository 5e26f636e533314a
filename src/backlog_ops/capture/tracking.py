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
import threading
import time
import uuid
from typing import Any, Callable

from backlog_ops.capture import per_home
from backlog_ops.capture.gateway_detect import is_gateway_url
from backlog_ops.capture.per_home import flush
from backlog_ops.capture.streams import counted_stream, looks_like_stream
from backlog_ops.capture.tracking_log import warn
from backlog_ops.capture.usage import Usage, provider_of_client, read_usage, token_count
from backlog_ops.common.settings import settings

__all__ = ["TrackedCall", "current_call", "flush", "track_llm_call"]

_current: contextvars.ContextVar["TrackedCall | None"] = contextvars.ContextVar("backlog_ops_tracked_call", default=None)


def current_call() -> "TrackedCall | None":
    """The innermost tracked call in progress here (inside a decorated function, for instance)."""
    return _current.get()


class _Alias:
    """An attribute that reads and writes another attribute of the same object."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        return self if obj is None else getattr(obj, self.target)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj, self.target, value)


class TrackedCall:
    """One tracked direct LLM call, made by ``track_llm_call(...)``.

    ``with``/``async with`` it (the block gets this object), or decorate a def/async def with it.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
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
        self.provider = provider or provider_of_client(client)
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

    # OpenAI's names for the token counts.
    prompt_tokens = _Alias("input_tokens")
    completion_tokens = _Alias("output_tokens")

    @property
    def headers(self) -> dict[str, str]:
        """Headers that tell the gateway whose call this is (for ``extra_headers=`` on gateway calls)."""
        out = {}
        conf = settings()
        session = self.session_id or self._config["session_id"] or conf.session_id
        agent = self.agent_id or self._config["agent_id"] or conf.agent_id
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
        """`fn` with each of its calls tracked: its response recorded, its stream wrapped."""
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
                async with TrackedCall(**config) as call:
                    return call._adopt_result(await fn(*args, **kwargs))
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with TrackedCall(**config) as call:
                return call._adopt_result(fn(*args, **kwargs))
        return wrapper

    # -- capturing usage -----------------------------------------------------------------------

    def record(self, response: Any) -> Any:
        """Take model and usage from a response (or usage object, raw response, dict); returns it."""
        try:
            self._absorb(read_usage(response))
        except Exception as exc:  # noqa: BLE001 - tracking never breaks the caller
            warn("record", f"could not read usage from {type(response).__name__}: {type(exc).__name__}: {exc}")
        return response

    def wrap_stream(self, stream: Any) -> Any:
        """The same stream, counting its usage as the caller iterates it (sync or async)."""
        try:
            with self._lock:
                self._open_streams += 1
            return counted_stream(stream, self._stream_done)
        except Exception as exc:  # noqa: BLE001
            warn("wrap_stream", f"stream not tracked: {type(exc).__name__}: {exc}")
            return stream

    # -- internals -------------------------------------------------------------------------------

    def _start(self) -> None:
        try:
            if self._started:
                warn("reuse", "a track_llm_call object was entered twice: use one per call")
            self._started = time.time()
            self._started_mono = time.monotonic()
            try:
                self._token = _current.set(self)
            except Exception:  # noqa: BLE001
                self._token = None
            conf = settings()
            self.session_id = self._config["session_id"] or conf.session_id
            self.agent_id = self._config["agent_id"] or conf.agent_id
            if self._via_gateway is None and self._client is not None and is_gateway_url(getattr(self._client, "base_url", None)):
                self._via_gateway = True
            if self._via_gateway:
                self.skipped = "via_gateway"
                return
            resolved = per_home.resolver().resolve(self.session_id, self.agent_id)
            self.context = dict(resolved.context) if resolved is not None else None
        except Exception as exc:  # noqa: BLE001
            warn("start", f"context not resolved, call recorded without it: {type(exc).__name__}: {exc}")

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
            warn("end", f"call not recorded: {type(err).__name__}: {err}")

    def _stream_done(self, usage: Usage | None, exc: BaseException | None) -> None:
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
            warn("stream", f"stream usage not recorded: {type(err).__name__}: {err}")

    def _adopt_result(self, result: Any) -> Any:
        """A decorated function's return value: recorded if it is a response, wrapped if a stream."""
        try:
            if self.input_tokens is not None or self.output_tokens is not None or result is None:
                return result
            if looks_like_stream(result):
                return self.wrap_stream(result)
            usage = read_usage(result)
            if usage.found:
                self._absorb(usage)
        except Exception as exc:  # noqa: BLE001
            warn("result", f"could not read the function's result: {type(exc).__name__}: {exc}")
        return result

    def _absorb(self, usage: Usage) -> None:
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
        record = self._ledger_row()
        unpriced = self.cost_usd is None and (record.prompt_tokens or record.completion_tokens)
        # Priced on the writer thread (LiteLLM's import takes seconds): say which models to price it as.
        per_home.submit(record, [m for m in (self.model, self._declared_model) if m] if unpriced else None)

    def _ledger_row(self):
        from backlog_ops.capture.rows import call_record

        cache_read = token_count(self.cache_read_tokens)
        cache_write = token_count(self.cache_write_tokens)
        prompt = token_count(self.input_tokens)
        if self._input_excludes_cache or self.provider == "anthropic":
            prompt += cache_read + cache_write  # the ledger's prompt_tokens include every cached token
        context = dict(self.context or {})
        context["component"] = context.get("component") or _valid_component(self.component)
        ended = self._ended_mono or time.monotonic()
        return call_record(
            call_id=self.call_id, source="direct", started=self._started or time.time(),
            seconds=(ended - self._started_mono) if self._started_mono else None,
            status=self.status or "success", error_class=self.error_class, context=context,
            session_id=self.session_id, agent_id=self.agent_id if self.session_id else None,
            model=self.model, model_group=self._declared_model, provider=self.provider,
            prompt_tokens=prompt, completion_tokens=token_count(self.output_tokens),
            cache_read_tokens=cache_read, cache_write_tokens=cache_write,
            cost_usd=float(self.cost_usd) if self.cost_usd is not None else 0.0,
        )


# The public name: ``with track_llm_call(...)``, ``async with``, or ``@track_llm_call(...)``.
track_llm_call = TrackedCall


def _valid_component(value: str | None) -> str | None:
    if not value:
        return None
    from backlog_ops.context.fields import check_field

    try:
        return check_field("component", value)
    except ValueError:
        warn("component", f"component {value!r} is not a valid slug: recorded without it")
        return None
