"""Times and durations, in one grammar for every command, config and tool.

Timestamps are ISO 8601 in UTC with milliseconds (the ledger and the history sort them as text).
Durations are a whole number and a unit, the grammar LiteLLM itself reads in its configs
(`budget_duration: 30d`): s, m, h, d, w and mo (30 days). So `--ttl 8h`, `--since 24h`, a key's
`duration: 30d` and `ticket_spend(since="7d")` all mean the same thing.

No `re` and no pathlib: Claude Code hooks import this module.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

__all__ = [
    "DURATION_HELP",
    "MAX_DURATION",
    "duration_problem",
    "format_time",
    "iso_to_epoch",
    "parse_duration",
    "parse_since",
    "parse_time",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400}
# Far past any real use, near enough that time arithmetic never overflows (about 100 years).
MAX_DURATION = 100 * 365 * 86400
DURATION_HELP = "a number and a unit: s, m, h, d, w or mo (e.g. 90m, 8h, 7d, 1mo)"


def format_time(epoch: float) -> str:
    """UTC ISO 8601 with milliseconds: history is used to attribute usage by time."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def iso_to_epoch(text: str) -> float:
    """Epoch seconds of an ISO 8601 time; a time without a zone is UTC. Raises ValueError."""
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def parse_time(value: object, field: str, error=ValueError) -> float:
    """Epoch seconds of a stored ISO 8601 value; raises `error` naming `field` if it is not one."""
    if not isinstance(value, str):
        raise error(f"{field} must be an ISO 8601 string, got {type(value).__name__}")
    try:
        return iso_to_epoch(value)
    except ValueError:
        raise error(f"{field} {value[:40]!r} is not an ISO 8601 time") from None


def _split(text: str) -> tuple[str, str] | None:
    text = text.strip().lower()
    digits = 0
    while digits < len(text) and text[digits].isdigit():
        digits += 1
    number, unit = text[:digits], text[digits:].strip()
    if not number or not number.isascii() or unit not in _UNITS:
        return None
    return number, unit


def parse_duration(text: object, *, allow_bare_seconds: bool = True) -> int:
    """Seconds in '90m', '8h', '7d', '2w', '1mo' (or a bare number of seconds). Raises ValueError."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration: {DURATION_HELP}")
    if isinstance(text, int):
        seconds = text
    else:
        raw = str(text).strip()
        if allow_bare_seconds and raw.isdigit() and raw.isascii():
            seconds = int(raw[:20])  if len(raw) <= 20 else MAX_DURATION + 1
        else:
            parts = _split(raw)
            if parts is None:
                raise ValueError(f"{raw[:40]!r} is not a duration: {DURATION_HELP}")
            number, unit = parts
            seconds = int(number) * _UNITS[unit] if len(number) <= 20 else MAX_DURATION + 1
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration: {DURATION_HELP}")
    if seconds > MAX_DURATION:
        raise ValueError(f"{str(text)[:40]!r} is too long a duration (at most about 100 years)")
    return seconds


def duration_problem(value: object) -> str | None:
    """Why `value` is not a duration LiteLLM reads the same way, or None if it is fine.

    LiteLLM also takes 'hourly', 'daily', 'weekly' and 'monthly' for budget resets; '1m' and
    '12m' are minutes to it, which people writing budgets rarely mean.
    """
    if not isinstance(value, str):
        return f"{value!r} is not a duration such as 30d"
    text = value.strip().lower()
    if text in ("hourly", "daily", "weekly", "monthly"):
        return None
    parts = _split(text)
    if parts is None or parts[1] != text[len(parts[0]):]:
        return f"{value!r} is not a LiteLLM duration: write <n>s, <n>m, <n>h, <n>d, <n>w or <n>mo (e.g. 30d)"
    if parts[1] == "m" and int(parts[0]) in (1, 12):
        return f"{value!r} means {parts[0]} minute(s) to LiteLLM; for months write {parts[0]}mo (or 30d)"
    return None


def parse_since(text: str, *, now: float | None = None) -> str:
    """'2026-11-01', '2026-11-01T09:00', '2026-11-01T09:00+01:00', or relative '90m', '24h', '7d', '2w'."""
    raw = text.strip()
    now = time.time() if now is None else now
    if _split(raw) is not None:
        return format_time(now - parse_duration(raw, allow_bare_seconds=False))
    try:
        return format_time(iso_to_epoch(raw))
    except (ValueError, OverflowError):
        raise ValueError(f"{raw[:40]!r} is not a date: use YYYY-MM-DD, an ISO 8601 time, or {DURATION_HELP}") from None
