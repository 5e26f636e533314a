"""QuotaEvents: publish a `quota.updated` event on NATS JetStream after every LLM call.

Loaded by `litellm --config` through `litellm_settings.callbacks:
backlog_ops.callbacks.quota_events.quota_events`. The event is the service brief's (eventId,
occurredAt, tenantId, platformId, correlationId, actor, payload with usage, cost, model, provider,
cached) plus the ticket context backlog-ops attributes the call to
(`backlog_ops.gateway.quota_events`).

Off the request path: the success/failure events only build the event and hand it to a bounded
buffer; a thread of its own publishes it (`backlog_ops.gateway.quota_publisher`, which also lists
the BACKLOG_NATS_* settings). A slow or down NATS server never slows or fails a call; events
still unpublished when the proxy stops are spooled and published after the next start.
"""

from __future__ import annotations

import logging

from backlog_ops.gateway.quota_events import build_event
from backlog_ops.gateway.quota_publisher import QuotaEventPublisher

from .base import FinishedCallCallback

__all__ = ["QuotaEvents", "quota_events"]

log = logging.getLogger("backlog_ops.quota_events")


class QuotaEvents(FinishedCallCallback):
    """Builds the event on the request path (microseconds); `publisher` publishes it from its own thread."""

    skipped = "quota event"

    def __init__(self, publisher: QuotaEventPublisher | None = None, **publisher_settings) -> None:
        # One warning per 30 s at most: a malformed logging object repeats on every call.
        super().__init__(log, interval=30)
        self.publisher = publisher or QuotaEventPublisher(**publisher_settings)

    def _handle(self, slo: dict, status: str, kwargs: dict) -> None:
        self.publisher.enqueue(build_event(slo, status=status))


quota_events = QuotaEvents()
