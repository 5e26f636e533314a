"""The one reading of LiteLLM's logging object (StandardLoggingPayload) into a ledger row.

The spend ledger, the metrics and the quota events all read a finished call through
`record_from_logging_object`, so they agree on its cost, tokens and context.
"""

from __future__ import annotations

import time
from typing import Any

from backlog_ops.capture.rows import call_record
from backlog_ops.capture.usage import token_count
from backlog_ops.common.prices import cost_from_usage
from backlog_ops.context.fields import fields_from_tags, valid_id
from backlog_ops.context.identity import (
    SPEND_LOG_AGENT,
    SPEND_LOG_SESSION,
    request_identity,
)
from backlog_ops.ledger.record import CallRecord

__all__ = ["HEALTH_CHECK_TAG", "reached_provider", "record_from_logging_object"]

# LiteLLM tags its own deployment probes (GET /health) with this: nobody's work, never recorded.
HEALTH_CHECK_TAG = "litellm-internal-health-check"


def record_from_logging_object(slo: dict, *, status: str, source: str = "proxy") -> CallRecord:
    """Build a ledger row from LiteLLM's StandardLoggingPayload."""
    meta = slo.get("metadata") or {}
    # Only values that obey the field rules: a caller's `ticket:../../x` is not stored.
    context = fields_from_tags(slo.get("request_tags") or [])
    spend_meta = meta.get("spend_logs_metadata") or {}
    session_id = spend_meta.get(SPEND_LOG_SESSION)
    agent_id = spend_meta.get(SPEND_LOG_AGENT)
    if session_id is None:
        session_id, agent_id = request_identity(meta.get("requester_custom_headers"))
    # Ids come from the caller: one that is not an id (control characters, megabytes) is not stored.
    session_id, agent_id = valid_id(session_id), valid_id(agent_id)

    usage = meta.get("usage_object") or (slo.get("hidden_params") or {}).get("usage_object") or {}
    prompt = token_count(slo.get("prompt_tokens"))
    completion = token_count(slo.get("completion_tokens"))
    cache_read, cache_write = _cache_tokens(usage)
    cache_hit = bool(slo.get("cache_hit"))
    model = slo.get("model") or None
    provider = slo.get("custom_llm_provider") or None
    cost = _float(slo.get("response_cost"))
    if cost == 0.0 and not cache_hit and status == "success" and (prompt or completion):
        # Some paths (mock responses, custom deployments) report 0: price the usage ourselves.
        cost = cost_from_usage(model, provider, prompt, completion, cache_read, cache_write)

    started = _float(slo.get("startTime")) or time.time()
    ended = _float(slo.get("endTime"))
    error = slo.get("error_information") or {}
    return call_record(
        # litellm_call_id is the x-litellm-call-id a client sees; `id` is the provider's response id.
        call_id=str(slo.get("litellm_call_id") or slo.get("id") or f"unknown-{time.time_ns()}"),
        source=source, started=started, seconds=(ended - started) if ended else None, status=status,
        error_class=error.get("error_class") or None, context=context,
        session_id=session_id, agent_id=agent_id, key_alias=meta.get("user_api_key_alias") or None,
        team_id=meta.get("user_api_key_team_id") or None,
        model=model, model_group=slo.get("model_group") or None, provider=provider,
        prompt_tokens=prompt, completion_tokens=completion, cache_read_tokens=cache_read,
        cache_write_tokens=cache_write, cost_usd=cost, cache_hit=cache_hit,
        saved_cost_usd=_float(slo.get("saved_cache_cost")),
        guardrail_alerts=spend_meta.get("backlog_guardrail_alerts") or None,
    )


def _cache_tokens(usage: dict) -> tuple[int, int]:
    """(cache read, cache write) input tokens, whichever provider's names the usage carries."""
    read = token_count(usage.get("cache_read_input_tokens"))
    write = token_count(usage.get("cache_creation_input_tokens"))
    details = usage.get("prompt_tokens_details") or {}
    if not read and isinstance(details, dict):
        read = token_count(details.get("cached_tokens"))
    return read, write


def _float(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def reached_provider(slo: dict) -> bool:
    """Whether a failed call was sent to a provider: False for what the proxy refused before routing.

    A key check (401), an unknown model or a budget stop (402) fails before LiteLLM picks a
    deployment endpoint, so the logging object has no api_base; a provider's own error, a
    timeout or a refused connection carries the endpoint it was sent to.
    """
    if slo.get("api_base") or (slo.get("hidden_params") or {}).get("api_base"):
        return True
    return False
