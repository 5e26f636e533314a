"""Compress one text: code and diffs pass byte for byte, the rest goes through the line rules."""

from __future__ import annotations

import hashlib
import re

from backlog_ops.gateway.compression.folds import (
    dedupe_blocks,
    fold_blocks,
    fold_identical,
    fold_library_frames,
    fold_similar,
    is_important,
    marker,
    normalise,
    shorten,
)
from backlog_ops.gateway.compression.options import CompressionOptions, CompressionStats

__all__ = ["compress_text"]

_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+#.-]*)")
_LOG_LANGS = frozenset({"", "text", "txt", "log", "logs", "console", "shell-session", "output", "plaintext", "stdout", "stderr"})
_DIFF_START = re.compile(r"^(?:diff --git |--- a/|\+\+\+ b/|@@ -\d)")
_DIFF_LINE = re.compile(r"^(?:[ +\-\\]|@@ |diff |index |--- |\+\+\+ |new file mode|deleted file mode|similarity index|rename (?:from|to) |old mode|new mode|Binary files)")


def _segments(text: str) -> list[tuple[bool, str]]:
    """Split into (protected, text) runs. Protected: fenced code in a programming language and
    unified diffs — code is the subject of the request, not noise; it passes byte for byte."""
    if "```" not in text and "~~~" not in text and "@@ -" not in text and "diff --git" not in text:
        return [(False, text)]
    out: list[tuple[bool, list[str]]] = []

    def emit(protected: bool, line: str) -> None:
        if out and out[-1][0] == protected:
            out[-1][1].append(line)
        else:
            out.append((protected, [line]))

    lines = text.split("\n")
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        fence = _FENCE.match(line)
        if fence and fence.group(2).lower() not in _LOG_LANGS:
            marker = fence.group(1)
            emit(True, line)
            i += 1
            while i < n:
                emit(True, lines[i])
                i += 1
                if lines[i - 1].strip().startswith(marker[:3]):
                    break
            continue
        if _DIFF_START.match(line):
            while i < n and (_DIFF_LINE.match(lines[i]) or lines[i] == "" and i + 1 < n and _DIFF_LINE.match(lines[i + 1])):
                emit(True, lines[i])
                i += 1
            continue
        emit(False, line)
        i += 1
    return [(p, "\n".join(chunk)) for p, chunk in out]


def compress_text(text: str, opts: CompressionOptions | None = None, stats: CompressionStats | None = None,
                  seen_blocks: dict[str, int] | None = None) -> str:
    """Compress one text; deterministic (the same input always gives the same bytes)."""
    opts = opts or CompressionOptions()
    stats = stats if stats is not None else CompressionStats()
    stats.chars_before += len(text)
    if len(text) < opts.min_chars:
        stats.chars_after += len(text)
        return text
    stats.texts += 1
    cache: dict[str, bool] = {}

    def important(line: str) -> bool:
        hit = cache.get(line)
        if hit is None:
            hit = cache[line] = is_important(line)
        return hit

    seen = seen_blocks if seen_blocks is not None else {}
    whole = "text:" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
    if whole in seen:  # the same tool result / pasted text twice in the new turn
        result = marker(f"{text.count(chr(10)) + 1} lines identical to an earlier text of this turn, folded")
        stats.add("duplicate_texts")
        stats.chars_after += len(result)
        return result
    seen[whole] = 1
    parts: list[str] = []
    for protected, segment in _segments(text):
        if protected:
            parts.append(segment)
            stats.add("protected_code_lines", segment.count("\n") + 1)
            continue
        lines = normalise(segment, stats)
        if opts.dedupe_blocks:
            lines = dedupe_blocks(lines, seen, stats)
        lines = fold_identical(lines, opts, stats)
        lines = fold_blocks(lines, stats)
        if opts.fold_library_frames:
            lines = fold_library_frames(lines, stats)
        lines = fold_similar(lines, opts, stats, important)
        lines = shorten(lines, opts, stats, important)
        parts.append("\n".join(lines))
    result = "\n".join(parts)
    if len(result) >= len(text):  # never make it longer
        result = text
    stats.chars_after += len(result)
    return result
