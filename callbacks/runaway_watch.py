"""Runaway-spend alerts on the proxy: the ticket policy's watch over sessions spending too fast.

Not a LiteLLM callback of its own: `ticket_policy` calls `before_call` in its pre-call hook and
`after_call` on each success, so the configs that enforce budgets watch for runaways too.

    before_call   a paused session's call is refused (HTTP 402, saying how to resume); every
                  other call of a session is counted, with how its request ends (policy/runaway.py)
    after_call    its cost goes into the session's and the ticket's spend window

An alert is said once (callbacks/feedback.py: log, metric, NATS) and written to the session's
alerts file (policy/session_alerts.py), which the session's next hook output reads. Under policy
"pause" that file also holds the pause, which `backlog-ops context resume` lifts; a pause is
enforced by the proxy that raised it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from backlog_ops.capture.proxy_record import record_from_logging_object
from backlog_ops.common.times import format_time
from backlog_ops.common.warnings import Warnings
from backlog_ops.context.fields import check_field, check_id, fields_from_tags
from backlog_ops.context.identity import SPEND_LOG_AGENT, SPEND_LOG_SESSION, request_identity
from backlog_ops.errors import InvalidContext
from backlog_ops.policy.runaway import Alert, RunawayDetector, request_fingerprint
from backlog_ops.policy.session_alerts import paused_until, read_alerts, record_alert

from .base import logging_object
from .feedback import announce_runaway

__all__ = ["PauseRefusal", "RunawayWatch"]

log = logging.getLogger("backlog_ops.feedback")


class PauseRefusal:
    """The refusal of a paused session's call: what the client is told (HTTP 402, not retried)."""

    status = 402

    def __init__(self, session_id: str, until: float, reason: str | None) -> None:
        self.session_id = session_id
        self.until = until
        minutes = max(1, round((until - time.time()) / 60))
        because = f" ({reason})" if reason else ""
        self.message = (
            f"backlog-ops: session {session_id} is paused after a runaway spend alert{because}. "
            f"Its LLM calls are refused until you run `backlog-ops context resume --session {session_id}`, "
            f"or for about {minutes} more minute(s) (until {format_time(until)[:16].replace('T', ' ')} UTC). "
            "To turn pausing off, set llmOps.alerts.runaway.policy to \"alert\" in backlog.config.json."
        )

    def detail(self) -> dict:
        return {"error": self.message, "type": "session_paused", "session": self.session_id,
                "paused_until": format_time(self.until)}


class RunawayWatch:
    """Counts each session's calls and spend against `settings_for(project)`; thread-safe."""

    def __init__(self, settings_for: Callable[[str | None], Any], *, detector: RunawayDetector | None = None,
                 warn: Callable[[str], object] | None = None) -> None:
        self._settings_for = settings_for
        self.detector = detector or RunawayDetector()
        self._warn = warn or Warnings(log, interval=30)
        self._pauses: dict[str, float] = {}  # session -> paused until (epoch), raised by this process

    def before_call(self, data: dict, tags: list[str]) -> PauseRefusal | None:
        session, agent = _identity(data)
        if session is None:
            return None
        refusal = self._refusal(session)
        if refusal is not None:
            return refusal
        fields = fields_from_tags(tags)
        ticket, project = _field("ticket_id", fields.get("ticket_id")), _field("project", fields.get("project"))
        alerts = self.detector.on_request(
            session=session, agent=agent, ticket=ticket, project=project,
            fingerprint=request_fingerprint(data), settings=self._settings_for(project),
        )
        self._raise(alerts)
        return self._refusal(session) if alerts else None

    def after_call(self, kwargs: dict) -> None:
        slo = logging_object(kwargs)
        if slo is None:
            return
        record = record_from_logging_object(slo, status="success")
        project = _field("project", record.project)
        self._raise(self.detector.on_cost(
            session=_id("session id", record.session_id), agent=_id("agent id", record.agent_id),
            ticket=_field("ticket_id", record.ticket_id), project=project,
            cost=record.cost_usd, settings=self._settings_for(project),
        ))

    def _raise(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            announce_runaway(alert)
            if alert.session_id is None:
                continue
            until = alert.at + alert.pause_seconds if alert.policy == "pause" else None
            if until is not None:
                self._pauses[alert.session_id] = until
            try:
                record_alert(alert.session_id, alert.as_dict(), pause_until=until)
            except Exception as exc:  # noqa: BLE001 - the session hears less; the pause still holds here
                self._warn(f"cannot record a runaway alert for session {alert.session_id}: {type(exc).__name__}: {exc}")

    def _refusal(self, session: str) -> PauseRefusal | None:
        until = self._pauses.get(session)
        if until is None:
            return None
        data = read_alerts(session)
        # The file says whether `context resume` lifted the pause; unreadable, the pause holds.
        still = paused_until(data) if data is not None else (until if until > time.time() else None)
        if still is None:
            del self._pauses[session]
            self.detector.forget_session(session)
            return None
        return PauseRefusal(session, still, _reason(data))


def _identity(data: dict) -> tuple[str | None, str | None]:
    """The session and agent the tagger found (spend_logs_metadata), else from the headers; ids
    that break the id rules count as none (they end up in logs and file names)."""
    session = agent = None
    for key in ("litellm_metadata", "metadata"):
        spend = (data.get(key) or {}).get("spend_logs_metadata") if isinstance(data.get(key), dict) else None
        if isinstance(spend, dict) and spend.get(SPEND_LOG_SESSION):
            session, agent = spend.get(SPEND_LOG_SESSION), spend.get(SPEND_LOG_AGENT)
            break
    else:
        headers = (data.get("proxy_server_request") or {}).get("headers") or {}
        meta = data.get("metadata")
        session, agent = request_identity(headers, meta.get("user_id") if isinstance(meta, dict) else None)
    session = _id("session id", session)
    return session, _id("agent id", agent) if session else None


def _id(kind: str, value: object) -> str | None:
    try:
        return check_id(kind, value) if value else None
    except InvalidContext:
        return None


def _field(name: str, value: object) -> str | None:
    try:
        return check_field(name, value)
    except InvalidContext:
        return None


def _reason(data: dict | None) -> str | None:
    by = (data or {}).get("paused_by")
    for alert in reversed((data or {}).get("alerts") or []):
        if isinstance(alert, dict) and alert.get("id") == by and alert.get("kind"):
            return str(alert["kind"]).replace("_", " ")
    return None
