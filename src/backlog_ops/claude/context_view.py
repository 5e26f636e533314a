"""The context a Claude Code session works under, read the light way (the status line, the hooks).

`in_force` walks the scope chain (agent, session, global) like the tagger does, and keeps what the
tagger drops: whether the ticket was inferred (`ticket_source`, set by branch inference) rather
than set. `live_agents` lists the session's subagents that have a context of their own now.
With contexts in files this reads at most three small files; with Redis it asks the store.
Never raises: a status line and a hook must go on whatever is on disk.
"""

from __future__ import annotations

import os
import time

from backlog_ops.common import fastjson
from backlog_ops.common.settings import settings
from backlog_ops.context.contextfile import MAX_CONTEXT_FILE_BYTES, parse_context
from backlog_ops.context.scope import scope_chain

__all__ = ["INFERRED", "TICKET_SOURCE", "in_force", "is_inferred", "live_agents"]

TICKET_SOURCE = "ticket_source"  # "branch" when the ticket was inferred from the git branch


INFERRED = "branch"


def is_inferred(ctx: dict | None) -> bool:
    """Whether the context's ticket was inferred from the branch; any other ticket_source counts as set."""
    return bool(ctx) and bool(ctx.get("ticket_id")) and ctx.get(TICKET_SOURCE) == INFERRED


def in_force(session_id: str | None, agent_id: str | None = None) -> tuple[dict, str] | None:
    """(context, 'agent' | 'session' | 'global') for the session and agent, or None when none is set."""
    try:
        chain = scope_chain(session_id, agent_id)
        if settings().context_url:
            return _from_store(chain)
        from backlog_ops.context.file_store import ContextStore

        store, now = ContextStore(), time.time()
        for scope in chain:
            ctx = _read(store.file_for(scope), now)
            if ctx is not None:
                return ctx, scope.kind
    except Exception:  # noqa: BLE001 - nothing readable is "nothing set"
        return None
    return None


def live_agents(session_id: str | None) -> list[dict]:
    """The contexts of the session's subagents that are running now (files only: [] with Redis)."""
    if not session_id or settings().context_url:
        return []
    try:
        from backlog_ops.context.file_store import ContextStore
        from backlog_ops.context.scope import Scope

        directory = os.path.dirname(ContextStore().file_for(Scope(session_id)))
        prefix, now = f"{session_id}~", time.time()
        found = []
        for name in sorted(os.listdir(directory)):
            if name.startswith(prefix) and name.endswith(".json"):
                ctx = _read(os.path.join(directory, name), now)
                if ctx is not None:
                    found.append(ctx)
        return found
    except Exception:  # noqa: BLE001
        return []


def _read(path: str, now: float) -> dict | None:
    """The unexpired context in `path` with its ticket_source, or None (absent, expired, unreadable)."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            raw = fh.read(MAX_CONTEXT_FILE_BYTES + 1)
        parsed = parse_context(raw, path=path, mtime=st.st_mtime)
    except Exception:  # noqa: BLE001 - absent or unreadable: the next scope decides
        return None
    if parsed is None or parsed[1] <= now:
        return None
    ctx = dict(parsed[0])
    if TICKET_SOURCE not in ctx:
        source = fastjson.loads(raw).get(TICKET_SOURCE)
        if isinstance(source, str) and source:
            ctx[TICKET_SOURCE] = source[:32]
    return ctx


def _from_store(chain) -> tuple[dict, str] | None:
    from backlog_ops.context.backend import open_store

    store = open_store()
    for scope in chain:
        try:
            ctx = store.get(scope)
        except Exception:  # noqa: BLE001
            ctx = None
        if ctx is not None:
            return ctx, scope.kind
    return None
