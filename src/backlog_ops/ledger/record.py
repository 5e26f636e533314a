"""One ledger row. Deliberately no prompt or response text: only who, what, how much."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from operator import attrgetter

__all__ = ["COLUMNS", "CallRecord"]

_REQUIRED_TEXT = ("call_id", "started_at", "status", "source")
_COUNTS = ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens")
_AMOUNTS = ("cost_usd", "saved_cost_usd")


@dataclass
class CallRecord:
    call_id: str
    started_at: str  # ISO 8601 UTC, milliseconds
    status: str  # "success" | "failure"
    source: str = "proxy"  # proxy | sdk | direct | transcript
    session_id: str | None = None
    agent_id: str | None = None
    ticket_id: str | None = None
    gate: str | None = None
    project: str | None = None
    agent_type: str | None = None
    skill: str | None = None
    component: str | None = None
    model: str | None = None
    model_group: str | None = None
    provider: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    cache_hit: bool = False
    saved_cost_usd: float = 0.0
    latency_ms: float | None = None
    error_class: str | None = None
    key_alias: str | None = None
    team_id: str | None = None
    guardrail_alerts: str | None = None  # comma-separated alert kinds (alert-only guardrails)
    ticket_source: str | None = None  # "branch": the ticket was inferred from the git branch; None: set

    def as_row(self) -> dict:
        return asdict(self)

    def as_tuple(self) -> tuple:
        """Column values in COLUMNS order (cheap: no deep copy, unlike dataclasses.astuple)."""
        return _COLUMN_VALUES(self)

    @classmethod
    def from_row(cls, row: object) -> "CallRecord":
        """A record from a stored row (a spool or journal line); ValueError names the first bad column.

        Every column is checked against its type, so a row that would fail in the database is
        refused here, on its own, instead of failing the batch it would have been written with.
        """
        if not isinstance(row, dict):
            raise ValueError(f"a ledger row must be a JSON object, not {type(row).__name__}")
        unknown = [name for name in row if name not in _KINDS]
        if unknown:
            raise ValueError(f"unknown column {unknown[0]!r}")
        for name, value in row.items():
            _check(name, _KINDS[name], value)
        for name in _REQUIRED_TEXT[:3]:
            if not row.get(name):
                raise ValueError(f"{name} is missing")
        return cls(**row)


COLUMNS = tuple(f.name for f in fields(CallRecord))
_COLUMN_VALUES = attrgetter(*COLUMNS)  # one C call for the whole row (a transcript import writes ~100k)


def _kind(name: str) -> str:
    if name in _COUNTS:
        return "count"
    if name in _AMOUNTS:
        return "amount"
    if name == "cache_hit":
        return "flag"
    if name == "latency_ms":
        return "number-or-null"
    return "text" if name in _REQUIRED_TEXT else "text-or-null"


_KINDS = {name: _kind(name) for name in COLUMNS}


def _check(name: str, kind: str, value: object) -> None:
    if value is None and kind.endswith("-or-null"):
        return
    if kind.startswith("text"):
        ok = isinstance(value, str) and "\x00" not in value  # PostgreSQL text cannot hold NUL
    elif kind == "flag":
        ok = isinstance(value, bool) or value in (0, 1)
    elif kind == "count":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ValueError(f"column {name}: {shown} is not {kind.replace('-', ' ')}")
