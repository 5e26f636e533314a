"""The status line of a Claude Code session: which ticket it bills and how close the ticket is to its limit.

    FEAT-001 · implement · backend · $1.2300 / $5.00, 25%
    FEAT-001 (from branch) · plan · implementer · + subagent reviewer · $4.10 / $5.00, 82% ⚠
    FEAT-001 · review · reviewer · $5.01 / $5.00, 100% ⛔ · ⏸ paused: backlog-ops context resume
    backlog-ops: no ticket set

Built from Claude Code's status-line JSON (session_id, cwd, model, workspace, …; agent_id when
a subagent's view is asked for), the context in force (claude/context_view.py), the ticket's
totals file (reports/totals_file.py) and the session's alerts file (policy/session_alerts.py):
a few small reads, no ledger, no network. Stored values are validated slugs and our own
messages; control characters are dropped anyway before anything reaches the terminal.
"""

from __future__ import annotations

import time

from backlog_ops.claude.context_view import in_force, is_inferred, live_agents
from backlog_ops.policy.session_alerts import paused_until, read_alerts
from backlog_ops.policy.thresholds import ESCALATION_ONE_LEFT, crossed, short_usd, used_percent
from backlog_ops.reports.totals_file import read_totals

__all__ = ["FALLBACK", "NOTHING_SET", "status_line"]

FALLBACK = "backlog-ops: status unavailable"
NOTHING_SET = "backlog-ops: no ticket set"
SEP = " · "
MAX_WIDTH = 240
_RECENT_ALERT = 600  # seconds an alert stays on the line


def status_line(data: dict, *, now: float | None = None) -> str:
    """One line for the session `data` describes (Claude Code's status-line JSON)."""
    now = time.time() if now is None else now
    session = _text(data.get("session_id"))
    agent = _text(data.get("agent_id"))
    found = in_force(session, agent)
    if found is None:
        parts = [NOTHING_SET]
    else:
        ctx, scope = found
        parts = _context_parts(ctx, scope, session)
        if ctx.get("ticket_id"):
            parts.append(_spend(read_totals(ctx.get("project"), ctx["ticket_id"])))
    alert = _alert_part(read_alerts(session) if session else None, now)
    if alert:
        parts.append(alert)
    return clean(SEP.join(p for p in parts if p))


def clean(line: str, width: int = MAX_WIDTH) -> str:
    """The line without control characters (stored data never drives the terminal), cut to `width`."""
    kept = "".join(c if c >= " " and not ("\x7f" <= c <= "\x9f") else " " for c in line)
    return kept if len(kept) <= width else kept[: width - 1] + "…"


def _context_parts(ctx: dict, scope: str, session: str | None) -> list[str]:
    ticket = ctx.get("ticket_id") or "no ticket"
    if is_inferred(ctx):
        ticket += " (from branch)"
    agent = ctx.get("agent_type") or "?"
    if scope == "agent":
        agent += " (subagent)"
    parts = [ticket, ctx.get("gate") or "?", agent]
    if scope != "agent":
        running = live_agents(session)
        if len(running) == 1:
            sub = running[0]
            where = sub.get("gate") if sub.get("ticket_id") == ctx.get("ticket_id") else f"{sub.get('ticket_id') or 'no ticket'} {sub.get('gate')}"
            parts.append(f"+ subagent {sub.get('agent_type')} on {where}")
        elif running:
            parts.append(f"+ {len(running)} subagents")
    return parts


def _spend(totals: dict | None) -> str:
    if not totals:
        return "no spend yet"
    spent = totals.get("spent_usd") if isinstance(totals.get("spent_usd"), (int, float)) else 0.0
    text = short_usd(float(spent))
    percent = used_percent(totals)
    marks = crossed(totals)
    if percent is not None:
        text += f" / {short_usd(float(totals['budget_usd']))}, {int(percent + 1e-6)}%"
        if "100" in marks:
            text += " ⛔"
        elif "80" in marks:
            text += " ⚠"
    if ESCALATION_ONE_LEFT in marks:
        text += " (1 escalation left)"
    return text


def _alert_part(alerts: dict | None, now: float) -> str | None:
    if not alerts:
        return None
    if paused_until(alerts, now) is not None:
        return "⏸ paused: backlog-ops context resume"
    recent = [a for a in alerts.get("alerts") or [] if isinstance(a, dict) and isinstance(a.get("at"), (int, float))
              and now - a["at"] < _RECENT_ALERT]
    if recent:
        kind = str(recent[-1].get("kind") or "runaway").replace("_", " ")
        return f"⚠ runaway: {kind}"
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
