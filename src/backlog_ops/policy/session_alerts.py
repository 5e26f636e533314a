"""A session's runaway alerts and pause, kept where the hooks, the status line and the CLI read them.

    BACKLOG_HOME/session-alerts/<session>.json
    {"session_id": "...", "alerts": [{"id", "at", "kind", "scope", "ticket_id", "project",
      "policy", "message"}, ...the last 20], "paused_until": 1796300000.0, "paused_by": "<alert id>"}

The proxy (callbacks/runaway_watch.py) records alerts and pauses; the session's next hook output
says each alert once (claude/session_feedback.py); `backlog-ops context resume` lifts a pause
early. Writers take one lock and replace the file atomically, so readers take none. A pause
lives under the home of the proxy that enforces it. Light: os, time and fastjson (the hooks and
the status line import it).
"""

from __future__ import annotations

import os
import time

from backlog_ops.common import fastjson
from backlog_ops.common.home import home_dir, write_atomic
from backlog_ops.common.state_files import file_stem, read_small_json

__all__ = ["KEEP_ALERTS", "alerts_dir", "alerts_path", "paused_sessions", "paused_until", "read_alerts", "record_alert", "resume"]

KEEP_ALERTS = 20
MAX_BYTES = 64 * 1024
_STALE = 7 * 86400  # files of sessions untouched for a week are removed on the next record


def alerts_dir() -> str:
    return os.path.join(home_dir(), "session-alerts")


def alerts_path(session_id: object) -> str | None:
    """The session's file; None for an id that cannot be a file name (ids come from headers)."""
    stem = file_stem(session_id)
    return None if stem is None else os.path.join(alerts_dir(), f"{stem}.json")


def read_alerts(session_id: object) -> dict | None:
    """The session's alerts and pause, or None (absent or unreadable: never raises)."""
    path = alerts_path(session_id)
    if path is None:
        return None
    data = read_small_json(path, MAX_BYTES)
    if data is None or not isinstance(data.get("alerts", []), list):
        return None
    return data


def paused_until(data: dict | None, now: float | None = None) -> float | None:
    """When the session's pause ends, if it is paused now."""
    until = (data or {}).get("paused_until")
    if isinstance(until, bool) or not isinstance(until, (int, float)):
        return None
    return float(until) if until > (time.time() if now is None else now) else None


def record_alert(session_id: str, alert: dict, *, pause_until: float | None = None) -> None:
    """Add an alert to the session's file (and pause it until `pause_until`); raises HomeError/OSError."""
    path = alerts_path(session_id)
    if path is None:
        return
    from backlog_ops.common.lock import ExclusiveLock  # writers only: readers (the status line) take no lock

    # The proxy records on its request path: a stuck lock holder costs one second, not ten.
    with ExclusiveLock(os.path.join(alerts_dir(), ".lock"), timeout=1.0):
        data = read_alerts(session_id) or {"session_id": session_id, "alerts": []}
        data["alerts"] = [*data.get("alerts", []), alert][-KEEP_ALERTS:]
        if pause_until is not None:
            data["paused_until"] = pause_until
            data["paused_by"] = alert.get("id")
        write_atomic(path, (fastjson.dumps(data) + "\n").encode(), durable=False)
        _prune(time.time())


def resume(session_id: str | None = None) -> list[str]:
    """Lift the pause of one session (None: of every paused session); the sessions resumed."""
    from backlog_ops.common.lock import ExclusiveLock

    resumed = []
    with ExclusiveLock(os.path.join(alerts_dir(), ".lock")):
        for sid in [session_id] if session_id is not None else paused_sessions():
            data = read_alerts(sid)
            if data is None or paused_until(data) is None:
                continue
            data["paused_until"] = None
            data["resumed_at"] = time.time()
            write_atomic(alerts_path(sid), (fastjson.dumps(data) + "\n").encode(), durable=False)
            resumed.append(sid)
    return resumed


def paused_sessions() -> list[str]:
    """Sessions paused now."""
    try:
        names = sorted(os.listdir(alerts_dir()))
    except OSError:
        return []
    now = time.time()
    out = []
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            sid = name[: -len(".json")]
            if paused_until(read_alerts(sid), now) is not None:
                out.append(sid)
    return out


def _prune(now: float) -> None:
    try:
        entries = list(os.scandir(alerts_dir()))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.name.endswith(".json") and now - entry.stat().st_mtime > _STALE:
                os.unlink(entry.path)
        except OSError:
            continue
