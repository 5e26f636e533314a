"""Turning the user's --since values into the ledger's ISO 8601 UTC timestamps."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from backlog_ops.context.contextfile import format_time

__all__ = ["iso_to_epoch", "parse_since"]

_RELATIVE = re.compile(r"(\d+)\s*([mhdw])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, *, now: float | None = None) -> str:
    """'2026-11-01', '2026-11-01T09:00', '2026-11-01T09:00+01:00', or relative '90m', '24h', '7d', '2w'."""
    text = text.strip()
    now = time.time() if now is None else now
    rel = _RELATIVE.fullmatch(text)
    if rel:
        return format_time(now - int(rel.group(1)) * _UNIT_SECONDS[rel.group(2)])
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date: use YYYY-MM-DD, an ISO 8601 time, or 90m / 24h / 7d / 2w") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return format_time(parsed.timestamp())


def iso_to_epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
