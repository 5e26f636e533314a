"""One direct LLM call the check reports."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Finding"]


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    provider: str
    pattern: str  # the call as written, shortened: "client.chat.completions.create()"
    reason: str  # why it is not through the gateway: "client built at line 3 without a base_url"
