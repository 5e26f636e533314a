"""Model and token usage read from what the OpenAI and Anthropic SDKs return.

`read_usage` takes a response in any shape track_llm_call understands: OpenAI ChatCompletion and
Responses objects, Anthropic Message objects, their ``usage`` objects, raw responses
(``.with_raw_response``) and plain dicts of the same shapes. `StreamUsage` adds up the usage
that stream items carry. Objects are read by attribute or key, never by type, so no SDK is
imported here.
"""

from __future__ import annotations

import logging
from typing import Any

from backlog_ops.capture.tracking_log import warn

__all__ = ["StreamUsage", "Usage", "field_of", "litellm_call_id", "provider_of_client", "read_usage", "token_count"]

# Headers LiteLLM adds to its responses: a response that carries one went through the gateway.
_LITELLM_HEADERS = ("x-litellm-call-id", "x-litellm-model-id", "x-litellm-version")


class Usage:
    """What one response (or stream) says about its model and tokens."""

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


def read_usage(obj: Any) -> Usage:
    """Model and usage of a response in any of the shapes track_llm_call understands."""
    out = Usage()
    if obj is None:
        return out
    # Raw responses (.with_raw_response.create): headers first, then the parsed body.
    headers = field_of(obj, "headers") if not isinstance(obj, dict) or "headers" in obj else None
    if headers is not None:
        out.litellm_call_id = litellm_call_id(headers)
        body = None
        if isinstance(obj, dict):
            body = obj.get("body") or obj.get("response")
        elif callable(getattr(obj, "parse", None)) and "json" in str(_header(headers, "content-type") or ""):
            body = obj.parse()
        if body is not None:
            inner = read_usage(body)
            inner.litellm_call_id = inner.litellm_call_id or out.litellm_call_id
            return inner
        if not isinstance(obj, dict):
            return out
    model = field_of(obj, "model")
    if isinstance(model, str):
        out.model = model
    usage = field_of(obj, "usage")
    if usage is None and (field_of(obj, "prompt_tokens") is not None or field_of(obj, "input_tokens") is not None):
        usage, obj = obj, None  # a bare usage object
    if usage is None:
        return out
    kind = field_of(obj, "type")
    if field_of(usage, "prompt_tokens") is not None or field_of(usage, "completion_tokens") is not None:
        _read_chat_usage(usage, out)
    elif field_of(usage, "input_tokens") is not None or field_of(usage, "output_tokens") is not None:
        _read_input_output_usage(usage, field_of(obj, "object") == "response", out)
    if kind == "message" and out.provider is None:
        out.provider = "anthropic"
    return out


def _read_chat_usage(usage: Any, out: Usage) -> None:
    # OpenAI chat completions: prompt_tokens includes cached tokens.
    details = field_of(usage, "prompt_tokens_details")
    out.input_tokens = token_count(field_of(usage, "prompt_tokens"))
    out.output_tokens = token_count(field_of(usage, "completion_tokens"))
    out.cache_read = token_count(field_of(details, "cached_tokens"))
    out.cache_write = token_count(field_of(details, "cache_creation_tokens"))
    out.provider = "openai"
    out.found = True


def _read_input_output_usage(usage: Any, is_response_object: bool, out: Usage) -> None:
    # OpenAI Responses and Anthropic Messages share the names input_tokens / output_tokens.
    responses_api = (
        is_response_object
        or field_of(usage, "input_tokens_details") is not None
        or field_of(usage, "total_tokens") is not None
    )
    out.input_tokens = token_count(field_of(usage, "input_tokens"))
    out.output_tokens = token_count(field_of(usage, "output_tokens"))
    if responses_api and field_of(usage, "cache_read_input_tokens") is None:
        # OpenAI Responses: input_tokens includes cached tokens.
        out.cache_read = token_count(field_of(field_of(usage, "input_tokens_details"), "cached_tokens"))
        out.provider = "openai"
    else:
        # Anthropic: input_tokens excludes cache reads and writes.
        out.cache_read = token_count(field_of(usage, "cache_read_input_tokens"))
        out.cache_write = token_count(field_of(usage, "cache_creation_input_tokens"))
        out.input_excludes_cache = True
        out.provider = "anthropic"
    out.found = True


class StreamUsage:
    """Usage from stream items: OpenAI chat chunks, Responses events, Anthropic events."""

    def __init__(self) -> None:
        self.usage = Usage()

    def feed(self, item: Any) -> None:
        try:
            kind = field_of(item, "type")
            if kind == "message_start":
                self._anthropic_start(field_of(item, "message"))
            elif kind == "message_delta":
                self._anthropic_delta(field_of(item, "usage"))
            elif kind in ("response.completed", "response.incomplete", "response.failed"):  # OpenAI Responses
                u = read_usage(field_of(item, "response"))
                if u.found:
                    self.usage = u
            elif kind is None or kind == "chat.completion.chunk" or field_of(item, "object") == "chat.completion.chunk":
                self._chat_chunk(item)
        except Exception as exc:  # noqa: BLE001 - tracking never breaks the caller
            warn("chunk", f"could not read a stream item ({type(item).__name__}): {type(exc).__name__}: {exc}")

    def _anthropic_start(self, message: Any) -> None:
        # Anthropic's message_start: the input side, and an output placeholder.
        u = read_usage(message)
        if u.found:
            self.usage = u
        elif u.model:
            self.usage.model = u.model
        self.usage.provider = "anthropic"
        self.usage.input_excludes_cache = True

    def _anthropic_delta(self, usage: Any) -> None:
        # Anthropic's message_delta: cumulative counts so far.
        if usage is None:
            return
        self.usage.found = True
        self.usage.input_excludes_cache = True
        for src, dst in (("output_tokens", "output_tokens"), ("input_tokens", "input_tokens"),
                         ("cache_read_input_tokens", "cache_read"), ("cache_creation_input_tokens", "cache_write")):
            value = field_of(usage, src)
            if value is not None:
                setattr(self.usage, dst, token_count(value))

    def _chat_chunk(self, item: Any) -> None:
        model = field_of(item, "model")
        if model and not self.usage.model:
            self.usage.model = model
        if field_of(item, "usage") is not None:  # OpenAI: the include_usage chunk
            u = read_usage(item)
            if u.found:
                u.model = u.model or self.usage.model
                self.usage = u

    def final(self, stream: Any) -> Usage:
        """The stream's usage once it ended (`stream`: what was iterated, for a last look)."""
        if not self.usage.found:
            # Anthropic's messages.stream() helper: iterated through .text_stream, not through us.
            snapshot = getattr(stream, "current_message_snapshot", None) if stream is not None else None
            if snapshot is not None:
                try:
                    u = read_usage(snapshot)
                    if u.found:
                        return u
                except Exception:  # noqa: BLE001
                    pass
            warn("no-usage", "a tracked stream ended without usage: for OpenAI pass "
                 "stream_options={'include_usage': True}; recorded with 0 tokens", level=logging.INFO)
        return self.usage


def field_of(obj: Any, name: str) -> Any:
    """obj.name or obj[name]; None when absent (or when reading it raises)."""
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


def litellm_call_id(headers: Any) -> str | None:
    """LiteLLM's call id when the headers show the response came through LiteLLM, else None."""
    for name in _LITELLM_HEADERS:
        value = _header(headers, name)
        if value:
            return str(_header(headers, "x-litellm-call-id") or value)
    return None


def provider_of_client(client: Any) -> str | None:
    """The provider an SDK client object belongs to, from its package name."""
    if client is None:
        return None
    module = type(client).__module__.split(".", 1)[0]
    return module if module in ("openai", "anthropic", "groq", "mistralai", "cohere") else None


def token_count(value: Any) -> int:
    """A token count as an SDK or LiteLLM reported it: 0 when missing or not a number."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
