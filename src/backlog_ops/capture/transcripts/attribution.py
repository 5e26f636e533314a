"""Which context applied to a request at its time, from the context history.

The history (``context-history.jsonl``) is replayed per scope: the context of the agent scope
(session, agentId) at the request's time, else the session's, else the global one, each only
until its ``expires_at``, in the order `scope_chain` gives and with `in_force` choosing, as the
gateway resolves a live request. The transcript's ``agentId`` is the ``agent_id`` Claude Code gives hooks inside that
subagent.
"""

from __future__ import annotations

import bisect
from typing import Iterable

from backlog_ops.common.times import parse_time
from backlog_ops.context.contextfile import default_ttl
from backlog_ops.context.scope import in_force, scope_chain
from backlog_ops.errors import BacklogOpsError

__all__ = ["ContextHistory"]


class ContextHistory:
    """The context history replayed: what each scope held at any time."""

    def __init__(self, entries: Iterable[dict]) -> None:
        # (session, agent) -> [(time, order in the history, context or None when cleared, expiry)]
        events: dict[tuple[str | None, str | None], list[tuple[float, int, dict | None, float]]] = {}
        for seq, entry in enumerate(entries):
            try:
                at = float(entry["at_epoch"])
            except (KeyError, TypeError, ValueError):
                continue
            session = entry.get("session_id")
            scope = (session, entry.get("agent_id") if session else None)
            new = entry.get("new") if entry.get("action") == "set" else None
            if isinstance(new, dict):
                expires = _expiry(new, at)
            else:
                new, expires = None, 0.0
            events.setdefault(scope, []).append((at, seq, new, expires))
        self._timelines: dict[tuple[str | None, str | None], tuple[list[float], list[tuple[dict | None, float]]]] = {}
        for scope, evs in events.items():
            evs.sort(key=lambda e: (e[0], e[1]))
            self._timelines[scope] = ([e[0] for e in evs], [(e[2], e[3]) for e in evs])

    def at(self, session_id: str | None, agent_id: str | None, t: float) -> dict | None:
        """The context in force for (session, agent) at time t, or None."""
        if not self._timelines:
            return None  # no context was ever set
        return in_force(self._held(scope, t) for scope in scope_chain(session_id, agent_id))

    def _held(self, scope, t: float) -> dict | None:
        """The unexpired context `scope` held at time t, or None."""
        timeline = self._timelines.get((scope.session_id, scope.agent_id))
        if not timeline:
            return None
        times, values = timeline
        i = bisect.bisect_right(times, t) - 1
        if i < 0:
            return None
        ctx, expires = values[i]
        return ctx if ctx is not None and expires > t else None


def _expiry(context: dict, set_at: float) -> float:
    """When a context set at `set_at` expires: its expires_at, else the default TTL after it was set."""
    try:
        if context.get("expires_at"):
            return parse_time(context["expires_at"], "expires_at")
        return set_at + default_ttl()
    except (ValueError, BacklogOpsError):
        return set_at + default_ttl()
