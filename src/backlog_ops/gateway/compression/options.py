"""What the compressor may do (CompressionOptions) and what it did (CompressionStats)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CompressionOptions", "CompressionStats"]


@dataclass
class CompressionOptions:
    min_chars: int = 600  # texts shorter than this are left alone
    max_lines: int = 160  # longer texts keep head + tail + important lines
    head_lines: int = 50
    tail_lines: int = 70
    similar_run: int = 6  # fold runs of at least this many similar lines
    identical_run: int = 3
    fold_library_frames: bool = True
    dedupe_blocks: bool = True
    respect_cache_control: bool = True


@dataclass
class CompressionStats:
    chars_before: int = 0
    chars_after: int = 0
    texts: int = 0
    folds: dict[str, int] = field(default_factory=dict)

    def add(self, rule: str, n: int = 1) -> None:
        self.folds[rule] = self.folds.get(rule, 0) + n

    @property
    def saved_chars(self) -> int:
        return self.chars_before - self.chars_after

    @property
    def ratio(self) -> float:
        return self.chars_before / self.chars_after if self.chars_after else 1.0
