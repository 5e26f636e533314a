"""SpendLedger: record every LLM call, success or failure, with its ticket context.

Loaded by `litellm --config` through `litellm_settings.callbacks:
backlog_ops.callbacks.spend_ledger.spend_ledger`. It reads LiteLLM's standard logging object,
builds a row and hands it to a background writer: nothing here touches the disk on the request
path, and nothing here can fail the call.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from backlog_ops.context.contextfile import format_time
from backlog_ops.context.fields import TAG_PREFIXES
from backlog_ops.common.home import home
from backlog_ops.context.identity import request_identity
from backlog_ops.ledger import CallRecord, LedgerWriter, open_ledger
from backlog_ops.capture.pricing import cost_from_usage

from .ticket_tagger import SPEND_LOG_AGENT, SPEND_LOG_SESSION

__all__ = ["SpendLedger", "record_from_logging_object", "spend_ledger"]

log = logging.getLogger("backlog_ops.ledger")

_PREFIX_TO_FIELD = {prefix: key for key, prefix in TAG_PREFIXES}
HEALTH_CHECK_TAG = "litellm-internal-health-check"


class SpendLedger(CustomLogger):
    """Writes one ledger row per call id; both the sync and async events may fire, rows are upserts."""

    def __init__(self, writer: LedgerWriter | None = None, *, source: str | None = None) -> None:
        super().__init__()
        self._writer = writer
        self._source = source
        self._resolver = None
        self._warned_at = 0.0

    @property
    def writer(self) -> LedgerWriter:
        if self._writer is None:
            root = home()
            self._writer = LedgerWriter(open_ledger, spool_path=root / "ledger-spool.jsonl")
        return self._writer

    async def async_log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, "success")

    async def async_log_failure_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, "failure")

    def log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, "success")

    def log_failure_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, "failure")

    def _attribute(self, record: CallRecord) -> None:
        if self._resolver is None:
            from backlog_ops.context.resolver import make_resolver

            self._resolver = make_resolver(warn=lambda m: log.warning("backlog-ops: %s", m))
        found = self._resolver.resolve(record.session_id, record.agent_id)
        if found is not None:
            for field in ("ticket_id", "gate", "project", "agent_type", "skill", "component"):
                setattr(record, field, found.context.get(field))

    def _record(self, kwargs: dict, status: str) -> None:
        try:
            slo = kwargs.get("standard_logging_object")
            if not isinstance(slo, dict):
                return  # LiteLLM builds it for every completed call; without it there is nothing to record
            if HEALTH_CHECK_TAG in (slo.get("request_tags") or ()):
                return  # the proxy probing its deployments (GET /health), not anybody's work
            source = self._source or ("proxy" if (kwargs.get("litellm_params") or {}).get("proxy_server_request") else "sdk")
            record = record_from_logging_object(slo, status=status, source=source)
            if status == "failure" and record.gate is None:
                # A call refused in a pre-call hook (a budget stop) is logged without the tags
                # the tagger added: attribute it to the context in force now, milliseconds later.
                self._attribute(record)
            self.writer.submit(record)
        except Exception as exc:  # noqa: BLE001 - the ledger must never break the user's call
            now = time.monotonic()
            if now - self._warned_at >= 30 or self._warned_at == 0:
                self._warned_at = now
                log.warning("backlog-ops: ledger row skipped: %s: %s", type(exc).__name__, exc)


def record_from_logging_object(slo: dict, *, status: str, source: str = "proxy") -> CallRecord:
    """Build a ledger row from LiteLLM's StandardLoggingPayload."""
    meta = slo.get("metadata") or {}
    context = _context_from_tags(slo.get("request_tags") or [])
    spend_meta = meta.get("spend_logs_metadata") or {}
    session_id = spend_meta.get(SPEND_LOG_SESSION)
    agent_id = spend_meta.get(SPEND_LOG_AGENT)
    if session_id is None:
        session_id, agent_id = request_identity(meta.get("requester_custom_headers"))

    usage = meta.get("usage_object") or (slo.get("hidden_params") or {}).get("usage_object") or {}
    prompt = _int(slo.get("prompt_tokens"))
    completion = _int(slo.get("completion_tokens"))
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
    return CallRecord(
        # litellm_call_id is the x-litellm-call-id a client sees; `id` is the provider's response id.
        call_id=str(slo.get("litellm_call_id") or slo.get("id") or f"unknown-{time.time_ns()}"),
        started_at=format_time(started),
        status=status,
        source=source,
        session_id=session_id,
        agent_id=agent_id,
        model=model,
        model_group=slo.get("model_group") or None,
        provider=provider,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cost_usd=cost,
        cache_hit=cache_hit,
        saved_cost_usd=_float(slo.get("saved_cache_cost")),
        latency_ms=round((ended - started) * 1000, 3) if ended else None,
        error_class=(error.get("error_class") or None) if status == "failure" else None,
        key_alias=meta.get("user_api_key_alias") or None,
        team_id=meta.get("user_api_key_team_id") or None,
        guardrail_alerts=spend_meta.get("backlog_guardrail_alerts") or None,
        **context,
    )


def _context_from_tags(tags: list) -> dict:
    context: dict = {}
    for tag in tags:
        if not isinstance(tag, str) or ":" not in tag:
            continue
        prefix, value = tag.split(":", 1)
        field = _PREFIX_TO_FIELD.get(prefix)
        if field and value and field not in context:
            context[field] = value
    return context


def _cache_tokens(usage: dict) -> tuple[int, int]:
    """(cache read, cache write) input tokens, whichever provider's names the usage carries."""
    read = _int(usage.get("cache_read_input_tokens"))
    write = _int(usage.get("cache_creation_input_tokens"))
    details = usage.get("prompt_tokens_details") or {}
    if not read and isinstance(details, dict):
        read = _int(details.get("cached_tokens"))
    return read, write


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


spend_ledger = SpendLedger()
