"""Who sent a request: the Claude Code session and agent, read from headers or body metadata."""

from __future__ import annotations

import json
import re
from typing import Mapping

__all__ = ["AGENT_HEADERS", "SESSION_HEADERS", "SPEND_LOG_AGENT", "SPEND_LOG_SESSION", "request_identity"]

# Where the tagger puts the session and agent ids on a request (spend_logs_metadata), for the
# ledger and LiteLLM's own spend logs.
SPEND_LOG_SESSION = "backlog_session_id"
SPEND_LOG_AGENT = "backlog_agent_id"

# Most specific first. Claude Code sends x-claude-code-session-id on every request and
# x-claude-code-agent-id from subagents; x-backlog-* lets any other client name its session.
SESSION_HEADERS = ("x-claude-code-session-id", "x-backlog-session")
AGENT_HEADERS = ("x-claude-code-agent-id", "x-backlog-agent-id")

# Older Claude Code releases put the session at the end of metadata.user_id:
# "user_<hash>_account_<uuid>_session_<uuid>".
_LEGACY_USER_ID = re.compile(r"_session_([A-Za-z0-9-]{8,128})$")


def request_identity(headers: Mapping[str, str] | None, user_id: object = None) -> tuple[str | None, str | None]:
    """(session_id, agent_id) from request headers (any case) and Anthropic's metadata.user_id."""
    lowered = {str(k).lower(): v for k, v in headers.items()} if headers else {}
    session = _first(lowered, SESSION_HEADERS)
    agent = _first(lowered, AGENT_HEADERS)
    if session is None and isinstance(user_id, str) and user_id:
        session = _session_from_user_id(user_id)
    return session, agent


def _first(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = headers.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _session_from_user_id(user_id: str) -> str | None:
    if user_id.startswith("{"):
        try:
            data = json.loads(user_id)
        except ValueError:
            return None
        session = data.get("session_id") if isinstance(data, dict) else None
        return session if isinstance(session, str) and session else None
    match = _LEGACY_USER_ID.search(user_id)
    return match.group(1) if match else None
