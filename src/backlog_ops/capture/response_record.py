"""A ledger row from a request and its response, as the response completes.

LiteLLM runs its success callbacks in a background worker, some milliseconds after the client got
its response: a proxy killed with -9 in between would lose the call. So the spend ledger journals
this early row from what the proxy has at that moment (the request as the tagger left it, the
usage in the response) — LiteLLM's own logging object does not exist yet. It is written only if
the call's own row never comes (ledger/writer.py `submit_early`); pricing it is left until then.
"""

from __future__ import annotations

import json
import time
from typing import Any

from backlog_ops.capture.rows import call_record
from backlog_ops.capture.usage import token_count
from backlog_ops.common.prices import cost_from_usage
from backlog_ops.context.fields import fields_from_tags, valid_id
from backlog_ops.context.identity import SPEND_LOG_AGENT, SPEND_LOG_SESSION, request_identity
from backlog_ops.ledger.record import CallRecord

__all__ = ["StreamUsage", "price_early_record", "record_from_response", "response_usage"]

_MAX_CARRY = 1 << 20  # an SSE line longer than this is not a usage line


def response_usage(response: Any) -> dict:
    """{prompt, completion, cache_read, cache_write, cost} from a chat response or an Anthropic message."""
    if isinstance(response, dict):
        return _usage_fields(response.get("usage"))
    usage = _usage_fields(getattr(response, "usage", None))
    hidden = getattr(response, "_hidden_params", None) or {}
    if isinstance(hidden, dict) and hidden.get("response_cost") is not None:
        usage["cost"] = hidden["response_cost"]
    return usage


class StreamUsage:
    """The usage a streamed response reports, read from its chunks as they pass.

    Chat chunks (LiteLLM's objects) carry `usage` on the last one; an Anthropic stream (SSE bytes)
    reports it in `message_start` and `message_delta` events.
    """

    def __init__(self) -> None:
        self.usage: dict = {}
        self._carry = b""

    def feed(self, chunk: Any) -> None:
        if isinstance(chunk, (bytes, str)):
            self._feed_sse(chunk.encode() if isinstance(chunk, str) else chunk)
            return
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage.update({k: v for k, v in _usage_fields(usage).items() if v})

    def _feed_sse(self, data: bytes) -> None:
        lines = (self._carry + data).split(b"\n")
        self._carry = lines.pop()
        if len(self._carry) > _MAX_CARRY:
            self._carry = b""
        for line in lines:
            if b'"usage"' not in line or not line.startswith(b"data:"):
                continue
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            usage = (event.get("message") or {}).get("usage") if event.get("type") == "message_start" else event.get("usage")
            self.usage.update({k: v for k, v in _usage_fields(usage).items() if v})


def record_from_response(data: dict, usage: dict, *, key_alias: Any = None, team_id: Any = None) -> CallRecord:
    """The early row of a completed call: `data` is the request as the pre-call hooks left it."""
    tags: list[str] = []
    spend_meta: dict = {}
    for key in ("litellm_metadata", "metadata"):
        meta = data.get(key)
        if isinstance(meta, dict):
            if isinstance(meta.get("tags"), list):
                tags.extend(t for t in meta["tags"] if isinstance(t, str))
            if isinstance(meta.get("spend_logs_metadata"), dict):
                spend_meta = meta["spend_logs_metadata"]
    if isinstance(data.get("tags"), list):
        tags.extend(t for t in data["tags"] if isinstance(t, str))
    session_id, agent_id = spend_meta.get(SPEND_LOG_SESSION), spend_meta.get(SPEND_LOG_AGENT)
    if session_id is None:
        headers = (data.get("proxy_server_request") or {}).get("headers")
        session_id, agent_id = request_identity(headers if isinstance(headers, dict) else None)
    # Ids come from the request: store only real ids, as the logged row does (proxy_record).
    session_id, agent_id = valid_id(session_id), valid_id(agent_id)
    details = getattr(data.get("litellm_logging_obj"), "model_call_details", None) or {}
    started = details.get("start_time")
    started = started.timestamp() if hasattr(started, "timestamp") else time.time()
    prompt = usage.get("prompt", 0)
    return call_record(
        call_id=str(data.get("litellm_call_id") or f"unknown-{time.time_ns()}"), source="proxy",
        started=started, seconds=max(0.0, time.time() - started), status="success",
        context=fields_from_tags(tags), session_id=session_id, agent_id=agent_id,
        key_alias=key_alias if isinstance(key_alias, str) and key_alias else None,
        team_id=team_id if isinstance(team_id, str) and team_id else None,
        model=_text(details.get("model")), model_group=_text(data.get("model")),
        provider=_text(details.get("custom_llm_provider")),
        prompt_tokens=prompt, completion_tokens=usage.get("completion", 0),
        cache_read_tokens=usage.get("cache_read", 0), cache_write_tokens=usage.get("cache_write", 0),
        cost_usd=_cost(usage.get("cost")),
    )


def price_early_record(record: CallRecord) -> CallRecord:
    """Price an early row that carries usage but no cost (done only when it is about to be written)."""
    if record.cost_usd == 0.0 and (record.prompt_tokens or record.completion_tokens):
        record.cost_usd = cost_from_usage(record.model, record.provider, record.prompt_tokens,
                                          record.completion_tokens, record.cache_read_tokens, record.cache_write_tokens)
    return record


def _usage_fields(usage: Any) -> dict:
    """Token counts under either API's names; Anthropic's input_tokens leave cache tokens out."""
    if usage is None:
        return {}
    get = usage.get if isinstance(usage, dict) else (lambda name: getattr(usage, name, None))
    cache_read = token_count(get("cache_read_input_tokens"))
    cache_write = token_count(get("cache_creation_input_tokens"))
    if get("input_tokens") is not None or get("output_tokens") is not None:
        return {"prompt": token_count(get("input_tokens")) + cache_read + cache_write,
                "completion": token_count(get("output_tokens")), "cache_read": cache_read, "cache_write": cache_write}
    details = get("prompt_tokens_details")
    if not cache_read and details is not None:
        cached = details.get("cached_tokens") if isinstance(details, dict) else getattr(details, "cached_tokens", None)
        cache_read = token_count(cached)
    return {"prompt": token_count(get("prompt_tokens")), "completion": token_count(get("completion_tokens")),
            "cache_read": cache_read, "cache_write": cache_write}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _cost(value: Any) -> float:
    try:
        return max(0.0, float(value or 0.0))
    except (TypeError, ValueError):
        return 0.0
