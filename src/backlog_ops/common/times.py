"""Times and durations, in one grammar for every command, config and tool.

Timestamps are ISO 8601 in UTC with milliseconds (the ledger and the history sort them as text).
Durations are a whole number and a unit, the grammar LiteLLM itself reads in its configs
(`budget_duration: 30d`): s, m, h, d, w and mo (30 days). So `--ttl 8h`, `--since 24h`, a key's
`duration: 30d` and `ticket_spend(since="7d")` all mean the same thing.

No `re`, no pathlib and no datetime on the common path: Claude Code hooks import this module,
and datetime (with the math and operator modules it pulls in) costs each hook about a
millisecond. Our own timestamps have one fixed shape, so they are written and read by hand;
anything else goes through datetime, imported when needed.
"""

from __future__ import annotations

import time

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


_MINUTE_PREFIXES: dict[int, str] = {}  # minutes since the epoch -> 'YYYY-MM-DDTHH:MM:'


def format_time(epoch: float) -> str:
    """UTC ISO 8601 with milliseconds, '2026-12-03T07:05:01.123+00:00' (what datetime's
    isoformat(timespec="milliseconds") gives): history is used to attribute usage by time."""
    whole = int(epoch // 1)
    micro = round((epoch - whole) * 1_000_000)  # datetime.fromtimestamp rounds half to even, as round() does
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    # The date and the minute are made once per minute: an import formats ~100k times of a few thousand minutes.
    minute, second = divmod(whole, 60)
    prefix = _MINUTE_PREFIXES.get(minute)
    if prefix is None:
        t = time.gmtime(minute * 60)
        if not 1 <= t.tm_year <= 9999:
            raise OverflowError(f"{epoch!r} is outside the years 1 to 9999")
        prefix = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
        if len(_MINUTE_PREFIXES) >= 65536:
            _MINUTE_PREFIXES.clear()
        _MINUTE_PREFIXES[minute] = prefix
    return f"{prefix}{second:02d}.{micro // 1000:03d}+00:00"


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _fixed_shape_epoch(text: str) -> float | None:
    """Epoch seconds of 'YYYY-MM-DDTHH:MM:SS.mmm+00:00' (our own shape) or '...mmmZ', else None."""
    # Also Claude Code's 'YYYY-MM-DDTHH:MM:SS.mmmZ', the shape of every transcript line.
    if not ((len(text) == 29 and text.endswith("+00:00")) or (len(text) == 24 and text[23] == "Z")) \
            or text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" \
            or text[16] != ":" or text[19] != ".":
        return None
    digits = text[0:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:19] + text[20:23]
    if not (digits.isdigit() and digits.isascii()):
        return None
    y, mo, d = int(text[0:4]), int(text[5:7]), int(text[8:10])
    h, mi, s, ms = int(text[11:13]), int(text[14:16]), int(text[17:19]), int(text[20:23])
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 60):
        return None
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if d > (29 if leap else 28) if mo == 2 else d > 30 + ((mo + (mo > 7)) % 2):
        return None  # no such day: datetime says so, in its words
    return _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s + ms / 1000


def iso_to_epoch(text: str) -> float:
    """Epoch seconds of an ISO 8601 time; a time without a zone is UTC. Raises ValueError."""
    text = text.strip()
    fast = _fixed_shape_epoch(text)
    if fast is not None:
        return fast
    from datetime import datetime, timezone

    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
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
