"""A doctor's findings: one Check per thing looked at, each with what to run when it is wrong."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["INFO", "OK", "PROBLEM", "Check", "DoctorReport"]

OK = "ok"
PROBLEM = "problem"  # something to fix: doctor exits 1
INFO = "info"  # worth knowing, nothing to fix


@dataclass
class Check:
    """One finding: `summary` says what was found, `fix` what to run (problems always have one)."""

    area: str  # state | gateway | claude
    name: str
    status: str
    summary: str
    fix: str | None = None
    facts: dict = field(default_factory=dict)  # machine-readable details for --json


@dataclass
class DoctorReport:
    checks: list[Check]

    @property
    def healthy(self) -> bool:
        return not any(c.status == PROBLEM for c in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status == PROBLEM]

    def as_dict(self) -> dict:
        return {"healthy": self.healthy, "checks": [asdict(c) for c in self.checks]}
