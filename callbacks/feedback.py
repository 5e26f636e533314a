"""What the proxy does when a ticket passes a budget mark or a runaway alert is raised.

Not a LiteLLM callback itself: the spend ledger (budget marks, through the totals keeper) and the
ticket policy (runaway alerts) call it. Each is said, at once:

    a log line       WARNING "backlog-ops: ticket FEAT-1 has used 80% of its budget ..."
    a metric         backlog_budget_marks_total / backlog_runaway_alerts_total, when
                     prometheus_client is installed (gateway/observability.py)
    a NATS event     quota.threshold / spend.runaway, when NATS is configured: the quota_events
                     callback is loaded (its publisher is shared), or BACKLOG_NATS_URL is set

The message in the session's next hook output is read from the files under BACKLOG_HOME (the
ticket's totals, the session's alerts), not sent from here. Nothing here raises.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading

from backlog_ops.common.settings import env_str
from backlog_ops.common.warnings import Warnings
from backlog_ops.gateway.feedback_events import runaway_event, threshold_event
from backlog_ops.policy.runaway import Alert
from backlog_ops.policy.thresholds import message

__all__ = ["announce_mark", "announce_runaway", "totals_keeper"]

log = logging.getLogger("backlog_ops.feedback")
_warn = Warnings(log, interval=30)
_lock = threading.Lock()
_own_publisher = None


def totals_keeper(open_ledger):
    """The keeper of the ticket totals files for this proxy's ledger writer, announcing budget marks.

    The limits are the ones the ticket policy enforces, when that callback is loaded; without it
    no call is refused, so no budget is shown either.
    """
    from backlog_ops.reports.totals_keeper import TotalsKeeper

    keeper = TotalsKeeper(open_ledger, limits=_enforced_limits)
    keeper.on_threshold.append(announce_mark)
    return keeper


def _enforced_limits(project: str | None):
    module = sys.modules.get("backlog_ops.callbacks.ticket_policy")
    policy = getattr(module, "ticket_policy", None) if module is not None else None
    return policy.limits.policy_for(project) if policy is not None else None


def announce_mark(totals: dict, mark: str) -> None:
    """A ticket reached `mark` (policy/thresholds.py): log, metric, event."""
    log.warning("%s", message(totals, mark))
    context = {"project": totals.get("project"), "ticket": totals.get("ticket_id")}
    _count(lambda metrics: metrics.record_budget_mark(context, mark))
    _publish(lambda: threshold_event(totals, mark))


def announce_runaway(alert: Alert) -> None:
    """A runaway alert: log, metric, event."""
    log.warning("%s", alert.message())
    context = {"project": alert.project, "ticket": alert.ticket_id}
    _count(lambda metrics: metrics.record_runaway(context, alert.kind, alert.scope))
    _publish(lambda: runaway_event(alert))


def _count(record) -> None:
    try:
        if importlib.util.find_spec("prometheus_client") is None:
            return
        from backlog_ops.gateway.observability import get_metrics

        metrics = get_metrics()
        if metrics is not None:
            record(metrics)
    except Exception as exc:  # noqa: BLE001 - a metric never breaks anything
        _warn(f"feedback metric skipped: {type(exc).__name__}: {exc}", key="metric")


def _publish(build) -> None:
    try:
        publisher = _publisher()
        if publisher is not None:
            publisher.enqueue(build())
    except Exception as exc:  # noqa: BLE001 - an event never breaks anything
        _warn(f"feedback event skipped: {type(exc).__name__}: {exc}", key="event")


def _publisher():
    """The quota_events callback's publisher when it is loaded; our own when BACKLOG_NATS_URL is set; else None."""
    global _own_publisher
    module = sys.modules.get("backlog_ops.callbacks.quota_events")
    callback = getattr(module, "quota_events", None) if module is not None else None
    if callback is not None:
        return callback.publisher
    if env_str("BACKLOG_NATS_URL") is None:
        return None
    with _lock:
        if _own_publisher is None:
            from backlog_ops.gateway.quota_publisher import QuotaEventPublisher

            _own_publisher = QuotaEventPublisher()
        return _own_publisher
