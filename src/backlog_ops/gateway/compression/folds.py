"""The line rules of the compressor: each fold leaves a marker the model can read, and no rule
folds or elides a line that looks like an error."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from backlog_ops.gateway.compression.options import CompressionOptions, CompressionStats

__all__ = ["IMPORTANT", "MARK_CLOSE", "MARK_OPEN", "dedupe_blocks", "fold_blocks", "fold_identical", "fold_library_frames",
           "fold_similar", "is_important", "marker", "normalise", "shorten"]

MARK_OPEN, MARK_CLOSE = "[… ", " …]"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
# Lines that look like a problem: never folded into a "similar" run, never elided. Plain
# substrings on the lower-cased line (fast): matching a little too much only means folding less.
_IMPORTANT_WORDS = ("error", "exception", "traceback", "fail", "fatal", "panic", "assert", "warn", "denied", "refused",
                    "not found", "cannot", "can't", "undefined", "segmentation", "timed out", "timeout", "killed",
                    "caused by", "err!")
# ... and lines that are a location with a line number (grep -n, compilers, linters): the location is the information.
IMPORTANT = re.compile(r"^E\s{2,}|^>\s|exit (?:code|status):? [1-9]|^\s*[\w./\\-]+\.\w{1,6}:\d+[:\s]")


def is_important(line: str) -> bool:
    """Whether a line looks like an error, a warning or a file:line location: never folded or elided."""
    low = line.lower()
    for word in _IMPORTANT_WORDS:
        if word in low:
            return True
    return IMPORTANT.search(line) is not None


_FRAME = re.compile(r'^\s*(?:File "[^"]+", line \d+|at [\w$.<>\[\]/]+.*\(.*\)|at (?:async )?[\w$.<>/\\:-]+(?::\d+){1,2}$|at .+\(.+:\d+(?::\d+)?\)|#\d+\s+0x[0-9a-f]+)')
_LIBRARY = re.compile(r"site-packages|dist-packages|/lib/python\d|node_modules|node:internal|\(internal/|\bat (?:java|javax|jdk|sun|kotlin|scala)\.|org\.springframework|org\.apache|io\.netty|org\.junit|org\.gradle|/usr/lib/|<frozen |\bat (?:async )?Promise\.|\bat processTicksAndRejections|\bat Module\.|\bat Object\.<anonymous> \(node:")
_SHAPE_WORD = re.compile(r"[A-Za-z_][A-Za-z_]*")
_SHAPE_NUM = re.compile(r"\d+(?:\.\d+)*")
_SHAPE_HEX = re.compile(r"\b[0-9a-f]{6,}\b")
_KEEP_WORDS = frozenset({"PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS", "OK", "WARN", "INFO", "DEBUG", "TRACE", "GET", "POST", "PUT", "DELETE"})


def _shape(line: str) -> str:
    s = _SHAPE_HEX.sub("h", line)
    s = _SHAPE_NUM.sub("0", s)
    return _SHAPE_WORD.sub(lambda m: m.group(0) if m.group(0) in _KEEP_WORDS else "a", s)


def marker(text: str) -> str:
    """A fold's note, bracketed so the model reads it as the compressor's, not the text's."""
    return f"{MARK_OPEN}{text}{MARK_CLOSE}"


def normalise(text: str, stats: CompressionStats) -> list[str]:
    """Lines without ANSI colours, progress redraws, trailing spaces or runs of blank lines."""
    if "\x1b" in text:
        cleaned = _ANSI.sub("", text)
        if cleaned != text:
            stats.add("ansi")
        text = cleaned
    text = text.replace("\r\n", "\n")
    out: list[str] = []
    blank = 0
    for line in text.split("\n"):
        if "\r" in line:
            line = line.rsplit("\r", 1)[-1] or line.replace("\r", "")
            stats.add("progress_redraw")
        line = line.rstrip()
        if not line:
            blank += 1
            if blank > 1:
                continue
        else:
            blank = 0
        out.append(line)
    return out


def fold_identical(lines: list[str], opts: CompressionOptions, stats: CompressionStats) -> list[str]:
    """Runs of identical lines: the first line and a count."""
    out: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        j = i + 1
        while j < n and lines[j] == lines[i]:
            j += 1
        run = j - i
        if run >= opts.identical_run and lines[i].strip():
            out.append(lines[i])
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            out.append(indent + marker(f"{run - 1} identical lines folded"))
            stats.add("identical_lines", run - 1)
        else:
            out.extend(lines[i:j])
        i = j
    return out


def fold_blocks(lines: list[str], stats: CompressionStats, max_period: int = 10, min_repeats: int = 3) -> list[str]:
    """Fold consecutive repetitions of a block of 2..max_period lines."""
    out: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        best = None
        for p in range(2, max_period + 1):
            if i + p * min_repeats > n:
                break
            reps = 1
            while i + (reps + 1) * p <= n and lines[i + reps * p: i + (reps + 1) * p] == lines[i: i + p]:
                reps += 1
            if reps >= min_repeats and any(l.strip() for l in lines[i: i + p]):
                best = (p, reps)
                break
        if best:
            p, reps = best
            out.extend(lines[i: i + p])
            out.append(marker(f"the {p} lines above repeat {reps - 1} more times, folded"))
            stats.add("repeated_blocks", reps - 1)
            i += p * reps
        else:
            out.append(lines[i])
            i += 1
    return out


def fold_library_frames(lines: list[str], stats: CompressionStats) -> list[str]:
    """Runs of ≥ 3 library stack frames (a Python frame is its File line + its source line)."""
    out: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        if _FRAME.match(lines[i]) and _LIBRARY.search(lines[i]):
            j, frames = i, 0
            while j < n and _FRAME.match(lines[j]) and _LIBRARY.search(lines[j]):
                j += 1
                frames += 1
                # Python: the frame's source line follows, indented deeper, not itself a frame
                if j < n and lines[j].startswith("    ") and not _FRAME.match(lines[j]) and lines[j - 1].lstrip().startswith("File "):
                    j += 1
            if frames >= 3:
                first = lines[i]
                out.append(first)
                if i + 1 < n and lines[i + 1].startswith("    ") and not _FRAME.match(lines[i + 1]) and first.lstrip().startswith("File "):
                    out.append(lines[i + 1])
                indent = first[: len(first) - len(first.lstrip())]
                out.append(indent + marker(f"{frames - 1} more library frames folded"))
                stats.add("library_frames", frames - 1)
                i = j
                continue
            out.extend(lines[i:j])
            i = j
            continue
        out.append(lines[i])
        i += 1
    return out


def fold_similar(lines: list[str], opts: CompressionOptions, stats: CompressionStats, important: Any) -> list[str]:
    """Runs of lines of one shape (numbers, hashes and words masked): the first two, a count, the last."""
    out: list[str] = []
    i, n = 0, len(lines)
    shapes = [_shape(l) for l in lines]
    while i < n:
        if not lines[i].strip() or important(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        j = i + 1
        while j < n and shapes[j] == shapes[i] and lines[j].strip() and not important(lines[j]):
            j += 1
        run = j - i
        if run >= opts.similar_run:
            out.extend(lines[i: i + 2])
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            out.append(indent + marker(f"{run - 3} similar lines folded"))
            out.append(lines[j - 1])
            stats.add("similar_lines", run - 3)
        else:
            out.extend(lines[i:j])
        i = j
    return out


def shorten(lines: list[str], opts: CompressionOptions, stats: CompressionStats, important: Any) -> list[str]:
    """Over max_lines: the head, the tail and every important line between."""
    n = len(lines)
    if n <= opts.max_lines:
        return lines
    head, tail = opts.head_lines, opts.tail_lines
    out = lines[:head]
    gap = 0
    for line in lines[head: n - tail]:
        if important(line) or line.lstrip().startswith(MARK_OPEN):
            if gap:
                out.append(marker(f"{gap} lines elided"))
                stats.add("elided_lines", gap)
                gap = 0
            out.append(line)
        else:
            gap += 1
    if gap:
        out.append(marker(f"{gap} lines elided"))
        stats.add("elided_lines", gap)
    out.extend(lines[n - tail:])
    return out


def dedupe_blocks(lines: list[str], seen: dict[str, int], stats: CompressionStats) -> list[str]:
    """Blocks between blank lines, ≥ 4 lines and ≥ 200 chars, already seen in this region."""
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if len(block) >= 4 and sum(len(l) for l in block) >= 200:
            digest = hashlib.blake2b("\n".join(block).encode(), digest_size=12).hexdigest()
            if digest in seen:
                out.append(marker(f"block of {len(block)} lines identical to one above, folded"))
                stats.add("duplicate_blocks")
                block.clear()
                return
            seen[digest] = 1
        out.extend(block)
        block.clear()

    for line in lines:
        if line.strip():
            block.append(line)
        else:
            flush()
            out.append(line)
    flush()
    return out
