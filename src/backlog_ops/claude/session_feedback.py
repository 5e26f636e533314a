"""What a Claude Code session has not been told yet: its ticket's budget marks and its runaway alerts.

The UserPromptSubmit and PostToolUse hooks call `notices`; what it returns goes into the hook's
output, for the model (additionalContext) and the user (systemMessage). Each budget mark
(policy/thresholds.py) and each alert is told once per session; what a session has heard is
kept in BACKLOG_HOME/claude-code/feedback/<session>.json. Only when there is something new is
that file locked and written, so the hook after every tool call costs a few small reads.

Reads the ticket's totals file and the session's alerts file, never the ledger. Light: the
hooks import it.
"""

from __future__ import annotations

import os

from backlog_ops.claude.sessions import read_json, state_dir
from backlog_ops.common.state_files import file_stem

__all__ = ["forget", "notices", "state_path"]

_KEEP = 200  # remembered marks and alert ids per session


def state_path(session_id: object) -> str | None:
    """The session's file; None for an id that cannot be a file name."""
    stem = file_stem(session_id)
    return None if stem is None else os.path.join(state_dir(), "feedback", f"{stem}.json")


def notices(session_id: str, agent_id: str | None = None) -> list[str]:
    """Messages for the session's next hook output, each marked as heard; [] when nothing is new."""
    path = state_path(session_id)
    if path is None:
        return []
    # Imported here, not at the top: SessionEnd imports this module only to `forget`, and each
    # module is ~0.1 ms of every hook's start.
    from backlog_ops.claude.statusline import clean
    from backlog_ops.common import fastjson
    from backlog_ops.common.home import write_atomic
    from backlog_ops.policy.session_alerts import read_alerts
    from backlog_ops.policy.thresholds import ESCALATION_ONE_LEFT, heard_key, message

    marks, totals = _marks(session_id, agent_id)
    alerts = [a for a in ((read_alerts(session_id) or {}).get("alerts") or []) if isinstance(a, dict) and a.get("id")]
    if not marks and not alerts:
        return []
    heard = _heard(path)
    fresh_marks = [m for m in marks if heard_key(totals, m) not in heard["marks"]]
    fresh_alerts = [a for a in alerts if a["id"] not in heard["alerts"]]
    if not fresh_marks and not fresh_alerts:
        return []
    from backlog_ops.common.lock import ExclusiveLock

    with ExclusiveLock(path + ".lock", timeout=2.0):
        # Parallel subagents run hooks at once: decide again under the lock, so each is told once.
        heard = _heard(path)
        fresh_marks = [m for m in marks if heard_key(totals, m) not in heard["marks"]]
        fresh_alerts = [a for a in alerts if a["id"] not in heard["alerts"]]
        if not fresh_marks and not fresh_alerts:
            return []
        heard["marks"] = (heard["marks"] + [heard_key(totals, m) for m in fresh_marks])[-_KEEP:]
        heard["alerts"] = (heard["alerts"] + [a["id"] for a in fresh_alerts])[-_KEEP:]
        write_atomic(path, (fastjson.dumps(heard) + "\n").encode(), durable=False)
    out = []
    percents = [m for m in fresh_marks if m != ESCALATION_ONE_LEFT]
    if percents:  # passed 50 and 80 at once: the highest says it all
        out.append(message(totals, percents[-1]))
    if ESCALATION_ONE_LEFT in fresh_marks:
        out.append(message(totals, ESCALATION_ONE_LEFT))
    out += [str(a.get("message") or "") for a in fresh_alerts if a.get("message")]
    # Files under the home could have been edited: nothing reaches the screen as a control character.
    return [clean(text, 1000) for text in out]


def forget(session_id: str) -> None:
    """The session ended: drop what it heard."""
    path = state_path(session_id)
    for name in (path, path + ".lock") if path else ():
        try:
            os.unlink(name)
        except OSError:
            pass


def _marks(session_id: str, agent_id: str | None) -> tuple[list[str], dict]:
    from backlog_ops.claude.context_view import in_force
    from backlog_ops.policy.thresholds import crossed
    from backlog_ops.reports.totals_file import read_totals

    found = in_force(session_id, agent_id)
    ctx = found[0] if found else None
    if not ctx or not ctx.get("ticket_id"):
        return [], {}
    totals = read_totals(ctx.get("project"), ctx["ticket_id"])
    return crossed(totals), totals or {}


def _heard(path: str) -> dict:
    data = read_json(path) or {}
    return {
        "marks": [m for m in data.get("marks") or [] if isinstance(m, str)],
        "alerts": [a for a in data.get("alerts") or [] if isinstance(a, str)],
    }
