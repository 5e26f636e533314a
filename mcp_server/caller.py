"""Who is calling a tool: which Claude Code session, which agent of it, in which directory.

The MCP server cannot trust what it was told at spawn time: Claude Code spawns it once per
process with CLAUDE_CODE_SESSION_ID fixed, and after /clear the process runs a new session.
Nor does a tool call say which subagent made it. So, most reliable first:

1. the claim the PreToolUse hook left under this call's tool_use_id (Claude Code sends it to
   the server as ``_meta["claudecode/toolUseId"]``): the current session and the agent, exactly;
2. the session the SessionStart and PreToolUse hooks last recorded for this Claude Code process
   (right after /clear too; no agent);
3. CLAUDE_CODE_SESSION_ID as the server was spawned with it (right until the first /clear);
4. BACKLOG_SESSION_ID / BACKLOG_AGENT_ID (any other MCP client naming its session);
5. none: the global context.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from backlog_ops.claude import sessions
from backlog_ops.common.settings import Settings
from backlog_ops.context.scope import Scope
from backlog_ops.errors import InvalidContext

__all__ = ["TOOL_USE_ID_META", "Caller", "CallerResolver"]

TOOL_USE_ID_META = "claudecode/toolUseId"

VIA_HOOK = "tool-call hook"
VIA_PROCESS = "Claude Code process (hooks)"
VIA_SPAWN = "CLAUDE_CODE_SESSION_ID at server start"
VIA_ENV = "BACKLOG_SESSION_ID"
VIA_NONE = "no session: global context"


@dataclass(frozen=True)
class Caller:
    session_id: str | None
    agent_id: str | None
    cwd: str
    via: str
    agent_type: str | None = None

    @property
    def scope(self) -> Scope:
        """Where the caller's own context lives: its agent, else its session, else global."""
        return Scope(self.session_id, self.agent_id if self.session_id else None)

    @property
    def project_dir(self) -> str:
        return self.cwd


class CallerResolver:
    """Resolves the caller of each tool call; one per server process."""

    def __init__(self, env: Mapping[str, str] | None = None, process_key: str | None = None, cwd: str | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.process_key = sessions.claude_process_key() if process_key is None else process_key
        self.cwd = cwd or self.env.get("CLAUDE_PROJECT_DIR") or os.getcwd()
        named = Settings(self.env)  # BACKLOG_SESSION_ID / BACKLOG_AGENT_ID, read once like the rest of env
        self.named_session, self.named_agent = named.session_id, named.agent_id

    def resolve(self, meta: Mapping | None = None) -> Caller:
        tool_use_id = meta.get(TOOL_USE_ID_META) if isinstance(meta, Mapping) else None
        claim = sessions.claim_call(tool_use_id) if isinstance(tool_use_id, str) else None
        if claim is not None and _valid(claim.get("session_id"), claim.get("agent_id")):
            return Caller(claim["session_id"], claim.get("agent_id") or None, self._cwd(claim), VIA_HOOK, claim.get("agent_type"))
        process = sessions.process_record(self.process_key)
        if process is not None and _valid(process.get("session_id")):
            return Caller(process["session_id"], None, self._cwd(process), VIA_PROCESS)
        spawned = self.env.get("CLAUDE_CODE_SESSION_ID")
        if _valid(spawned):
            return Caller(spawned, None, self._cwd(sessions.session_record(spawned)), VIA_SPAWN)
        if _valid(self.named_session, self.named_agent):
            return Caller(self.named_session, self.named_agent, self.cwd, VIA_ENV)
        return Caller(None, None, self.cwd, VIA_NONE)

    def _cwd(self, record: Mapping | None) -> str:
        cwd = record.get("cwd") if record else None
        return cwd if isinstance(cwd, str) and cwd else self.cwd


def _valid(session_id: object, agent_id: object = None) -> bool:
    if not isinstance(session_id, str) or not session_id:
        return False
    try:
        Scope(session_id, agent_id if isinstance(agent_id, str) and agent_id else None)
    except InvalidContext:
        return False
    return True
