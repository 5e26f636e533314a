"""Reading and writing one context file, and the scopes contexts live in.

A context file is a JSON object with the six context fields plus updated_at and expires_at, the
shape of the design's current-context.json. Files written by other tools (the design's shell
helper writes no expires_at) are accepted when their fields are valid.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

from backlog_ops.common import fastjson

from backlog_ops.errors import ContextFileError, InvalidContext
from backlog_ops.context.fields import check_id, normalize_context_fields

__all__ = [
    "DEFAULT_TTL",
    "MAX_CONTEXT_FILE_BYTES",
    "Scope",
    "default_ttl",
    "format_time",
    "parse_context",
    "parse_time",
    "read_context_file",
    "render_context",
]

# Long enough for a working day's session, short enough that a crashed skill's context does not
# tag tomorrow's calls.
DEFAULT_TTL = 8 * 3600
MAX_CONTEXT_FILE_BYTES = 64 * 1024


def default_ttl() -> int:
    """The TTL used when a set gives none: $BACKLOG_CONTEXT_TTL seconds, else 8 hours."""
    raw = os.environ.get("BACKLOG_CONTEXT_TTL")
    if not raw:
        return DEFAULT_TTL
    try:
        ttl = int(raw)
    except ValueError:
        raise InvalidContext(f"BACKLOG_CONTEXT_TTL={raw!r} is not a whole number of seconds") from None
    if ttl <= 0:
        raise InvalidContext(f"BACKLOG_CONTEXT_TTL={raw!r} must be a positive number of seconds")
    return ttl


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


def format_time(epoch: float) -> str:
    """UTC ISO 8601 with milliseconds: history is used to attribute usage by time."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def parse_time(value: object, field: str) -> float:
    """Parse an ISO 8601 timestamp to epoch seconds; naive times are UTC (the design writes `date -u`)."""
    if not isinstance(value, str):
        raise ContextFileError(f"{field} must be an ISO 8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ContextFileError(f"{field} {value[:40]!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def render_context(fields: dict, *, now: float, ttl: int) -> dict:
    """The on-disk form of a validated context set at `now` for `ttl` seconds."""
    ctx = normalize_context_fields(fields)
    ctx["updated_at"] = format_time(now)
    ctx["expires_at"] = format_time(now + ttl)
    return ctx


def parse_context(raw: bytes, *, path: object, mtime: float) -> tuple[dict, float] | None:
    """Parse a context file's bytes into (context, expires_epoch); None for an empty object.

    Raises ContextFileError naming the file and what is wrong with it.
    """
    if len(raw) > MAX_CONTEXT_FILE_BYTES:
        raise ContextFileError(
            f"{path} is {len(raw)} bytes; a context file is at most {MAX_CONTEXT_FILE_BYTES} bytes"
        )
    try:
        data = fastjson.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContextFileError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContextFileError(f"{path} must hold a JSON object, not {type(data).__name__}")
    if not data:
        return None
    try:
        ctx = normalize_context_fields(data)
        updated = parse_time(data["updated_at"], "updated_at") if data.get("updated_at") else mtime
        if data.get("expires_at"):
            expires = parse_time(data["expires_at"], "expires_at")
        else:
            expires = updated + default_ttl()
    except (InvalidContext, ContextFileError) as exc:
        raise ContextFileError(f"{path}: {exc}") from None
    ctx["updated_at"] = format_time(updated)
    ctx["expires_at"] = format_time(expires)
    return ctx, expires


def read_context_file(path, *, now: float | None = None) -> dict | None:
    """The unexpired context in `path`, or None when the file is absent, empty or expired."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            raw = fh.read(MAX_CONTEXT_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ContextFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    parsed = parse_context(raw, path=path, mtime=st.st_mtime)
    if parsed is None:
        return None
    ctx, expires = parsed
    return ctx if expires > (time.time() if now is None else now) else None
