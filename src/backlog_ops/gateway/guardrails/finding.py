"""What the detector reports: a kind, a position and a masked preview, never the matched text."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Finding", "family"]


@dataclass(frozen=True)
class Finding:
    kind: str  # e.g. "pii.email", "secret.aws", "injection.override"
    start: int
    end: int
    masked: str  # safe to log: never the matched text

    @property
    def family(self) -> str:
        return family(self.kind)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "start": self.start, "end": self.end, "masked": self.masked}


def family(kind: str) -> str:
    """'pii.email' -> 'pii.email'; 'secret.aws' -> 'secret'; 'injection.override' -> 'injection'."""
    head = kind.split(".", 1)[0]
    return kind if head == "pii" else head
