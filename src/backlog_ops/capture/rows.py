"""The one way a captured call becomes a ledger row, whichever way it was captured.

Proxy events, direct SDK calls and imported transcripts all build their rows here, so the
three agree on the time format, the context columns, latency and when an error class is kept.
"""

from __future__ import annotations

from typing import Any, Mapping

from backlog_ops.common.times import format_time
from backlog_ops.context.fields import CONTEXT_FIELDS, TICKET_SOURCE, ticket_source
from backlog_ops.ledger.record import CallRecord

__all__ = ["call_record"]


def call_record(*, call_id: str, source: str, started: float, context: Mapping | None = None,
                status: str = "success", seconds: float | None = None, error_class: str | None = None,
                **columns: Any) -> CallRecord:
    """A ledger row for one call.

    `started` is when it started (epoch seconds) and `seconds` how long it took; `context` gives
    the six context columns and ticket_source (other keys are ignored); `error_class` is kept for
    a failure only; `columns` are the other CallRecord columns (session, model, tokens, cost...).
    """
    context = context or {}
    return CallRecord(
        call_id=call_id, started_at=format_time(started), status=status, source=source,
        latency_ms=None if seconds is None else round(seconds * 1000, 3),
        error_class=error_class if status == "failure" else None,
        **{name: context.get(name) for name in CONTEXT_FIELDS},
        ticket_source=ticket_source(context.get(TICKET_SOURCE)) if context.get("ticket_id") else None,
        **columns,
    )
