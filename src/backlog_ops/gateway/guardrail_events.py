"""guardrail.alert events on NATS JetStream: the design's `custom_alert_callback` role.

The alert-only guardrails (backlog_ops.callbacks.guardrail_alerts) hand each alert to
`GuardrailAlertPublisher.enqueue`, which only appends it to a bounded buffer; the publisher
machinery the quota events use too (gateway/jetstream_publisher.py: own asyncio loop, reconnects,
capped back-off, Nats-Msg-Id de-duplication, a spool for what is unpublished at exit) publishes it.
A slow or down NATS never slows or fails a call.

The event says who and what, never the matched text:

    {"eventId", "type": "guardrail.alert", "occurredAt", "callId", "model",
     "ticket", "gate", "agent", "project",            # the ticket context of the call
     "rules": ["injection.override", "pii.email"],     # the rules (detector kinds) that fired
     "counts": {"injection.override": 1, ...}, "masked": ["ig***ns", ...]}   # masked previews

Enabled by the guardrails config (`backlog_guardrails.nats`, see the callback) or by
BACKLOG_GUARDRAIL_NATS_SUBJECT. Environment:
    BACKLOG_NATS_URL                  nats://127.0.0.1:4222 (shared with the quota events)
    BACKLOG_GUARDRAIL_NATS_SUBJECT    guardrail.alert
    BACKLOG_GUARDRAIL_NATS_STREAM     LLM_GUARDRAILS (created on first connect if absent; "" = never)
    BACKLOG_GUARDRAIL_NATS_SPOOL      BACKLOG_HOME/guardrail-alerts-spool.jsonl
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

from backlog_ops.common.home import home_dir
from backlog_ops.common.settings import env_str
from backlog_ops.gateway.jetstream_publisher import JetStreamPublisher

__all__ = ["DEFAULT_STREAM", "DEFAULT_SUBJECT", "GuardrailAlertPublisher", "build_alert_event"]

DEFAULT_SUBJECT = "guardrail.alert"
DEFAULT_STREAM = "LLM_GUARDRAILS"
EVENT_NAMESPACE = uuid.UUID("0d5f3c2e-7a41-4a8e-9f0b-2c6e1d9b7a53")  # eventId = uuid5(this, call id)


def build_alert_event(alert: dict) -> dict:
    """The JetStream event of one alert (`Alert.as_dict()` of the callback)."""
    context = alert.get("context") or {}
    call_id = alert.get("call_id")
    at = alert.get("at")
    occurred = datetime.fromtimestamp(at, timezone.utc) if isinstance(at, (int, float)) else datetime.now(timezone.utc)
    return {
        # One alert per call: a retried publish (or a re-scan of the same call) keeps its id.
        "eventId": str(uuid.uuid5(EVENT_NAMESPACE, str(call_id))) if call_id else str(uuid.uuid4()),
        "type": "guardrail.alert",
        "occurredAt": occurred.isoformat().replace("+00:00", "Z"),
        "callId": call_id,
        "model": alert.get("model"),
        "ticket": context.get("ticket"),
        "gate": context.get("gate"),
        "agent": context.get("agent"),
        "project": context.get("project"),
        "rules": list(alert.get("kinds") or []),
        "counts": dict(alert.get("counts") or {}),
        "masked": list(alert.get("masked") or []),
    }


class GuardrailAlertPublisher(JetStreamPublisher):
    """guardrail.alert events: the shared publisher on the guardrail subject, stream and spool."""

    noun = "guardrail alert"
    purpose = "guardrail.alert events on NATS"
    logger_name = "backlog_ops.guardrail_events"
    thread_name = "backlog-guardrail-alerts"
    subject_env = "BACKLOG_GUARDRAIL_NATS_SUBJECT"

    def _configure(self) -> None:
        s = self._settings
        self.url = s["url"] or env_str("BACKLOG_NATS_URL", "nats://127.0.0.1:4222")
        self.subject = env_str("BACKLOG_GUARDRAIL_NATS_SUBJECT") or s["subject"] or DEFAULT_SUBJECT
        stream = os.environ.get("BACKLOG_GUARDRAIL_NATS_STREAM")
        if stream is None:
            stream = s["stream"] if s["stream"] is not None else DEFAULT_STREAM
        self.stream = stream or None
        self.capacity = s["buffer"] or 10000
        self.duplicate_window = s["duplicate_window"] or 120.0
        self._configured = True

    def spool_path(self) -> str:
        return env_str("BACKLOG_GUARDRAIL_NATS_SPOOL") or os.path.join(home_dir(), "guardrail-alerts-spool.jsonl")
