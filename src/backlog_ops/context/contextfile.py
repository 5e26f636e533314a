"""Reading and writing one context file, and the scopes contexts live in.

A context file is a JSON object with the six context fields plus updated_at and expires_at, the
shape of the design's current-context.json, and ticket_source when its ticket was inferred. Files written by other tools (the design's shell
helper writes no expires_at) are accepted when their fields are valid.
"""

from __future__ import annotations

import os
import time

from backlog_ops.common import fastjson
from backlog_ops.common.shape import not_an_object
from backlog_ops.common.times import format_time, parse_duration
from backlog_ops.common.times import parse_time as _parse_time
from backlog_ops.context.fields import TICKET_SOURCE, normalize_context_fields, ticket_source
from backlog_ops.errors import ContextFileError, InvalidContext

__all__ = [
    "DEFAULT_TTL",
    "MAX_CONTEXT_FILE_BYTES",
    "default_ttl",
    "parse_context",
    "read_context_file",
    "render_context",
]

# Long enough for a working day's session, short enough that a crashed skill's context does not
# tag tomorrow's calls.
DEFAULT_TTL = 8 * 3600
MAX_CONTEXT_FILE_BYTES = 64 * 1024


def default_ttl() -> int:
    """The TTL used when a set gives none: $BACKLOG_CONTEXT_TTL (8h, 90m, or seconds), else 8 hours."""
    raw = os.environ.get("BACKLOG_CONTEXT_TTL")
    if not raw:
        return DEFAULT_TTL
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise InvalidContext(f"BACKLOG_CONTEXT_TTL: {exc}") from None


def render_context(fields: dict, *, now: float, ttl: int) -> dict:
    """The on-disk form of a validated context set at `now` for `ttl` seconds."""
    ctx = normalize_context_fields(fields)
    _keep_ticket_source(ctx, fields)
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
    if (problem := not_an_object(path, data, "fix: set the context again (backlog-ops context set) or delete the file")) is not None:
        raise ContextFileError(problem)
    if not data:
        return None
    try:
        ctx = normalize_context_fields(data)
        updated = _parse_time(data["updated_at"], "updated_at", ContextFileError) if data.get("updated_at") else mtime
        if data.get("expires_at"):
            expires = _parse_time(data["expires_at"], "expires_at", ContextFileError)
        else:
            expires = updated + default_ttl()
    except (InvalidContext, ContextFileError) as exc:
        raise ContextFileError(f"{path}: {exc}") from None
    _keep_ticket_source(ctx, data)
    ctx["updated_at"] = format_time(updated)
    ctx["expires_at"] = format_time(expires)
    return ctx, expires


def _keep_ticket_source(ctx: dict, given: dict) -> None:
    """An inferred context stays marked as inferred (fields.TICKET_SOURCE); a set one has no mark."""
    source = ticket_source(given.get(TICKET_SOURCE))
    if source and ctx.get("ticket_id"):
        ctx[TICKET_SOURCE] = source


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
