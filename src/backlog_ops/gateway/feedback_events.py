"""The NATS events of a ticket passing a budget mark and of a runaway-spend alert.

Same envelope as `quota.updated` (gateway/quota_events.py), on the same subject, told apart by
eventType:

    quota.threshold   payload: mark ("50", "80", "100", "escalations-1"), spent_usd, budget_usd,
                      used_percent, escalations, max_escalations, message
    spend.runaway     payload: kind, scope, observed, limit, window_seconds, policy, message

eventId is derived from what happened (the ticket, the mark and the limit; the alert's id), so
an event published twice is dropped by JetStream's duplicate window.
"""

from __future__ import annotations

import time
import uuid

from backlog_ops.common.settings import env_str
from backlog_ops.common.times import format_time
from backlog_ops.gateway.quota_events import ACTOR, EVENT_NAMESPACE
from backlog_ops.policy.runaway import Alert
from backlog_ops.policy.thresholds import heard_key, message, used_percent

__all__ = ["runaway_event", "threshold_event"]


def threshold_event(totals: dict, mark: str, *, at: float | None = None) -> dict:
    """quota.threshold: `totals` (reports/totals_file.py) has just reached `mark`."""
    percent = used_percent(totals)
    return _envelope(
        "quota.threshold",
        f"threshold/{heard_key(totals, mark)}",
        at,
        correlation=f"{totals.get('project') or '-'}~{totals.get('ticket_id')}",
        context={"ticket_id": totals.get("ticket_id"), "project": totals.get("project")},
        payload={
            "mark": mark,
            "spent_usd": totals.get("spent_usd"),
            "budget_usd": totals.get("budget_usd"),
            "used_percent": None if percent is None else round(percent, 2),
            "escalations": totals.get("escalations"),
            "max_escalations": totals.get("max_escalations"),
            "message": message(totals, mark),
        },
    )


def runaway_event(alert: Alert) -> dict:
    """spend.runaway: one runaway alert."""
    return _envelope(
        "spend.runaway",
        f"runaway/{alert.id}",
        alert.at,
        correlation=alert.id,
        context={"ticket_id": alert.ticket_id, "project": alert.project, "session_id": alert.session_id,
                 "agent_id": alert.agent_id},
        payload={
            "kind": alert.kind,
            "scope": alert.scope,
            "observed": alert.observed,
            "limit": alert.limit,
            "window_seconds": alert.window_seconds,
            "policy": alert.policy,
            "message": alert.message(),
        },
    )


def _envelope(event_type: str, identity: str, at: float | None, *, correlation: str, context: dict, payload: dict) -> dict:
    return {
        "eventId": str(uuid.uuid5(EVENT_NAMESPACE, identity)),
        "eventType": event_type,
        "occurredAt": format_time(time.time() if at is None else at),
        "tenantId": env_str("BACKLOG_TENANT_ID", "default"),
        "platformId": env_str("BACKLOG_PLATFORM_ID", "backlog-ops"),
        "correlationId": correlation,
        "actor": ACTOR,
        "payload": payload,
        "context": context,
    }
