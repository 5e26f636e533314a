"""Publish quota.updated events on NATS JetStream, off the request path.

The buffer, the publisher thread, the de-duplication and the spool are gateway/jetstream_publisher's
(`enqueue` never blocks; a slow or down NATS never slows or fails a call); this is their settings.

Environment:
    BACKLOG_NATS_URL          nats://127.0.0.1:4222
    BACKLOG_NATS_SUBJECT      quota.updated (the service brief's subject; set llm.quota.updated to keep
                              the subject releases before this one used)
    BACKLOG_NATS_STREAM       LLM_QUOTA (created on first connect if absent; "" = never create)
    BACKLOG_NATS_BUFFER       10000 events held while NATS is unreachable; past it the oldest go
    BACKLOG_NATS_DUP_WINDOW   120 seconds (the stream's duplicate window, when this creates it)
    BACKLOG_NATS_SPOOL        BACKLOG_HOME/quota-events-spool.jsonl: events still unpublished when
                              the process stops (after a 3 s drain) are kept there and published,
                              first, once the next process publishes its first event
"""

from __future__ import annotations

import os

from backlog_ops.common.home import home_dir
from backlog_ops.common.settings import env_int, env_str
from backlog_ops.errors import ConfigError
from backlog_ops.gateway.jetstream_publisher import JetStreamPublisher

__all__ = ["DEFAULT_SUBJECT", "QuotaEventPublisher"]

# The subject the service brief names (litellm-proxy-service-brief.md: "emit quota.updated events").
DEFAULT_SUBJECT = "quota.updated"


def _positive_setting(name: str, default: int) -> int:
    # A value that is not a whole number falls back to the default: a typo must not stop the events.
    try:
        return max(1, env_int(name, default))
    except ConfigError:
        return default


class QuotaEventPublisher(JetStreamPublisher):
    """quota.updated events: the shared publisher on the quota subject, stream and spool."""

    noun = "quota event"
    purpose = "quota.updated events on NATS"
    logger_name = "backlog_ops.quota_events"
    thread_name = "backlog-quota-events"

    def _configure(self) -> None:
        s = self._settings
        self.url = s["url"] or env_str("BACKLOG_NATS_URL", "nats://127.0.0.1:4222")
        self.subject = s["subject"] or env_str("BACKLOG_NATS_SUBJECT", DEFAULT_SUBJECT)
        # Read directly: set but empty means "never create a stream", which env_str treats as unset.
        stream = s["stream"] if s["stream"] is not None else os.environ.get("BACKLOG_NATS_STREAM", "LLM_QUOTA")
        self.stream = stream or None
        self.capacity = s["buffer"] or _positive_setting("BACKLOG_NATS_BUFFER", 10000)
        self.duplicate_window = s["duplicate_window"] or float(_positive_setting("BACKLOG_NATS_DUP_WINDOW", 120))
        self._configured = True

    def spool_path(self) -> str:
        return env_str("BACKLOG_NATS_SPOOL") or os.path.join(home_dir(), "quota-events-spool.jsonl")
