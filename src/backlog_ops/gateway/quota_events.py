"""The `quota.updated` event of one LLM call: the service brief's fields plus the ticket context.

The event (eventId, occurredAt, tenantId, platformId, correlationId, actor, payload with usage,
cost, model, provider, cached) is built from the same ledger row the spend ledger writes
(`record_from_logging_object`), so both agree on cost, tokens and context. Publishing it is
`backlog_ops.gateway.quota_publisher`'s job.

eventId is derived from LiteLLM's call id and the outcome (a call retried after a failure reports
one failure and one success under one call id), so a re-sent event keeps its id and JetStream's
duplicate window drops the copy.

Environment:
    BACKLOG_TENANT_ID     tenantId when the virtual key's metadata has no tenant_id and the key
                          no team (default "default")
    BACKLOG_PLATFORM_ID   platformId when the key's metadata has no platform_id (default "backlog-ops")
"""

from __future__ import annotations

import time
import uuid

from backlog_ops.capture.proxy_record import record_from_logging_object
from backlog_ops.common.settings import env_str
from backlog_ops.common.times import format_time

__all__ = ["ACTOR", "build_event"]

EVENT_NAMESPACE = uuid.UUID("5b0c6a9e-0f7e-4d57-9a53-6d1b3c1f4a11")  # eventId = uuid5(this, call id/outcome)
ACTOR = "litellm-proxy"
CONTEXT_FIELDS = ("ticket_id", "gate", "project", "agent_type", "skill", "component", "session_id", "agent_id")


def build_event(slo: dict, *, status: str) -> dict:
    """The quota.updated event of a finished call, from LiteLLM's standard logging object."""
    record = record_from_logging_object(slo, status=status)
    meta = slo.get("metadata") or {}
    # Only the key's (and its team's) metadata: the caller's own request metadata could claim any tenant.
    key_meta = meta.get("user_api_key_auth_metadata") or {}
    if not isinstance(key_meta, dict):
        key_meta = {}
    tenant = key_meta.get("tenant_id") or record.team_id or env_str("BACKLOG_TENANT_ID", "default")
    platform = key_meta.get("platform_id") or env_str("BACKLOG_PLATFORM_ID", "backlog-ops")
    ended = slo.get("endTime")
    try:
        occurred = format_time(float(ended)) if ended else format_time(time.time())
    except (TypeError, ValueError):
        occurred = format_time(time.time())
    return {
        "eventId": str(uuid.uuid5(EVENT_NAMESPACE, f"{record.call_id}/{status}")),
        "eventType": "quota.updated",
        "occurredAt": occurred,
        "tenantId": str(tenant),
        "platformId": str(platform),
        "correlationId": record.call_id,
        "actor": ACTOR,
        "payload": {
            "usage": {
                "prompt_tokens": record.prompt_tokens,
                "completion_tokens": record.completion_tokens,
                "total_tokens": record.prompt_tokens + record.completion_tokens,
                "cache_read_tokens": record.cache_read_tokens,
                "cache_write_tokens": record.cache_write_tokens,
                "cost_usd": record.cost_usd,
            },
            "model": record.model,
            "model_group": record.model_group,
            "provider": record.provider,
            "cached": record.cache_hit,
            "saved_cost_usd": record.saved_cost_usd,
            "status": status,
            "error_class": record.error_class,
            "latency_ms": record.latency_ms,
        },
        "context": {name: getattr(record, name) for name in CONTEXT_FIELDS},
        "key": {"alias": record.key_alias, "team_id": record.team_id},
    }
