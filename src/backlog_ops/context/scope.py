"""Where a context applies, and the one order in which scopes are looked up.

Three scopes, most specific first: one agent of a Claude Code session, the session, and the
global context. Every reader (the file and Redis resolvers, transcript import, the hooks) asks
`scope_chain` for that order, and `in_force` which of the contexts found applies.
"""

from __future__ import annotations

from backlog_ops.context.fields import check_id, is_inferred
from backlog_ops.errors import InvalidContext

__all__ = ["Scope", "in_force", "scope_chain"]


class Scope:
    """Where a context applies: everywhere, one Claude Code session, or one agent of a session.

    A plain class, not a dataclass: Claude Code hooks import this module and importing
    dataclasses (and inspect with it) costs them ~10 ms.
    """

    __slots__ = ("session_id", "agent_id")

    def __init__(self, session_id: str | None = None, agent_id: str | None = None) -> None:
        if agent_id is not None and session_id is None:
            raise InvalidContext("an agent id needs a session id: pass --session with --agent-id")
        if session_id is not None:
            check_id("session id", session_id)
        if agent_id is not None:
            check_id("agent id", agent_id)
        object.__setattr__(self, "session_id", session_id)
        object.__setattr__(self, "agent_id", agent_id)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Scope is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scope) and (self.session_id, self.agent_id) == (other.session_id, other.agent_id)

    def __hash__(self) -> int:
        return hash((self.session_id, self.agent_id))

    def __repr__(self) -> str:
        return f"Scope(session_id={self.session_id!r}, agent_id={self.agent_id!r})"

    @property
    def kind(self) -> str:
        if self.agent_id is not None:
            return "agent"
        return "session" if self.session_id is not None else "global"

    def describe(self) -> str:
        if self.agent_id is not None:
            return f"agent {self.agent_id} of session {self.session_id}"
        return f"session {self.session_id}" if self.session_id is not None else "global"

    def as_dict(self) -> dict:
        return {"scope": self.kind, "session_id": self.session_id, "agent_id": self.agent_id}


def scope_chain(session_id: str | None, agent_id: str | None = None) -> list[Scope]:
    """Agent, session, global: the scopes whose context applies to a call, most specific first.

    Ids that are not valid ids (they come from request headers and transcripts) are left out,
    so a crafted header can never name a file outside the store.
    """
    chain: list[Scope] = []
    if session_id:
        if agent_id:
            try:
                chain.append(Scope(session_id, agent_id))
            except InvalidContext:
                pass
        try:
            chain.append(Scope(session_id))
        except InvalidContext:
            pass
    chain.append(Scope())
    return chain


def in_force(found, context_of=None):
    """Which of the contexts found along scope_chain applies (None where a scope holds none).

    The first one that was set; a context inferred from the git branch only when no scope holds
    a set one, so an inference never hides a context someone set, even a global one set later.
    `found` may be lazy: it is read only up to the first set context. `context_of` maps an item
    to its context dict (default: the item is one).
    """
    fallback = None
    for item in found:
        if item is None:
            continue
        if not is_inferred(item if context_of is None else context_of(item)):
            return item
        if fallback is None:
            fallback = item
    return fallback
