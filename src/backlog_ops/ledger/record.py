"""One ledger row. Deliberately no prompt or response text: only who, what, how much."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = ["COLUMNS", "CallRecord"]


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
        return tuple(getattr(self, name) for name in COLUMNS)


COLUMNS = tuple(f.name for f in fields(CallRecord))
