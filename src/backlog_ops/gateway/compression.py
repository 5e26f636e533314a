"""Offline prompt compression for coding-agent requests: no model, no download, deterministic.

What it does to the compressible text (each fold leaves an explicit marker the model can read):

  * strips ANSI colour codes and carriage-return progress redraws, trailing whitespace, and runs
    of blank lines (leading indentation is never touched: code keeps its meaning);
  * folds runs of identical lines   -> "[… 37 identical lines folded …]";
  * folds repeated multi-line blocks (a recursion traceback, a retry loop's 4-line stanza);
  * folds runs of similar lines (same shape once numbers, hashes and words are masked: pytest
    PASSED lines, download progress, "Compiling x v1.2") keeping the first two and the last;
  * folds library frames of stack traces (site-packages, node_modules, java.*, …) keeping the
    project's own frames and every exception / "Caused by" line;
  * shortens what is still long (> max_lines): head and tail kept, and every line that looks like
    an error, warning, failure, assertion or exception in between;
  * replaces a block (≥ 4 lines) already seen earlier in the same compressible region by a marker.

Lines that look like errors are never folded into "similar" runs or elided. Code is not
compressed: fenced blocks in a programming language (```python, ```ts, …; a bare ``` or
```text/```log fence counts as a log) and unified diffs pass byte for byte.

What it never touches: the cacheable prefix. Provider prompt caching needs byte-identical
prefixes, so only the newest part of the conversation is compressed — the messages after the
last assistant turn — and within it nothing up to and including the last `cache_control`
breakpoint. System prompt, tools and earlier turns go through byte for byte.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CompressionOptions", "CompressionStats", "compress_request", "compress_text", "compressible_region", "is_important"]

MARK_OPEN, MARK_CLOSE = "[… ", " …]"


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


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
# Lines that look like a problem: never folded into a "similar" run, never elided. Plain
# substrings on the lower-cased line (fast): matching a little too much only means folding less.
_IMPORTANT_WORDS = ("error", "exception", "traceback", "fail", "fatal", "panic", "assert", "warn", "denied", "refused",
                    "not found", "cannot", "can't", "undefined", "segmentation", "timed out", "timeout", "killed",
                    "caused by", "err!")
# ... and lines that are a location with a line number (grep -n, compilers, linters): the location is the information.
IMPORTANT = re.compile(r"^E\s{2,}|^>\s|exit (?:code|status):? [1-9]|^\s*[\w./\\-]+\.\w{1,6}:\d+[:\s]")


def is_important(line: str) -> bool:
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


def _marker(text: str) -> str:
    return f"{MARK_OPEN}{text}{MARK_CLOSE}"


def _normalise(text: str, stats: CompressionStats) -> list[str]:
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


def _fold_identical(lines: list[str], opts: CompressionOptions, stats: CompressionStats) -> list[str]:
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
            out.append(indent + _marker(f"{run - 1} identical lines folded"))
            stats.add("identical_lines", run - 1)
        else:
            out.extend(lines[i:j])
        i = j
    return out


def _fold_blocks(lines: list[str], stats: CompressionStats, max_period: int = 10, min_repeats: int = 3) -> list[str]:
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
            out.append(_marker(f"the {p} lines above repeat {reps - 1} more times, folded"))
            stats.add("repeated_blocks", reps - 1)
            i += p * reps
        else:
            out.append(lines[i])
            i += 1
    return out


def _fold_library_frames(lines: list[str], stats: CompressionStats) -> list[str]:
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
                out.append(indent + _marker(f"{frames - 1} more library frames folded"))
                stats.add("library_frames", frames - 1)
                i = j
                continue
            out.extend(lines[i:j])
            i = j
            continue
        out.append(lines[i])
        i += 1
    return out


def _fold_similar(lines: list[str], opts: CompressionOptions, stats: CompressionStats, important: Any) -> list[str]:
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
            out.append(indent + _marker(f"{run - 3} similar lines folded"))
            out.append(lines[j - 1])
            stats.add("similar_lines", run - 3)
        else:
            out.extend(lines[i:j])
        i = j
    return out


def _shorten(lines: list[str], opts: CompressionOptions, stats: CompressionStats, important: Any) -> list[str]:
    n = len(lines)
    if n <= opts.max_lines:
        return lines
    head, tail = opts.head_lines, opts.tail_lines
    out = lines[:head]
    gap = 0
    for line in lines[head: n - tail]:
        if important(line) or line.lstrip().startswith(MARK_OPEN):
            if gap:
                out.append(_marker(f"{gap} lines elided"))
                stats.add("elided_lines", gap)
                gap = 0
            out.append(line)
        else:
            gap += 1
    if gap:
        out.append(_marker(f"{gap} lines elided"))
        stats.add("elided_lines", gap)
    out.extend(lines[n - tail:])
    return out


def _dedupe_blocks(lines: list[str], seen: dict[str, int], stats: CompressionStats) -> list[str]:
    """Blocks between blank lines, ≥ 4 lines and ≥ 200 chars, already seen in this region."""
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if len(block) >= 4 and sum(len(l) for l in block) >= 200:
            digest = hashlib.blake2b("\n".join(block).encode(), digest_size=12).hexdigest()
            if digest in seen:
                out.append(_marker(f"block of {len(block)} lines identical to one above, folded"))
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
        result = _marker(f"{text.count(chr(10)) + 1} lines identical to an earlier text of this turn, folded")
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
        lines = _normalise(segment, stats)
        if opts.dedupe_blocks:
            lines = _dedupe_blocks(lines, seen, stats)
        lines = _fold_identical(lines, opts, stats)
        lines = _fold_blocks(lines, stats)
        if opts.fold_library_frames:
            lines = _fold_library_frames(lines, stats)
        lines = _fold_similar(lines, opts, stats, important)
        lines = _shorten(lines, opts, stats, important)
        parts.append("\n".join(lines))
    result = "\n".join(parts)
    if len(result) >= len(text):  # never make it longer
        result = text
    stats.chars_after += len(result)
    return result


# -- requests -------------------------------------------------------------------------------------

def compressible_region(messages: list, respect_cache_control: bool = True) -> tuple[int, int]:
    """(first message index, first block index in that message) from which content may change.

    Everything before stays byte-identical: messages up to the last assistant turn, and anything
    up to and including the last cache_control breakpoint. (len(messages), 0) means nothing."""
    start = 0
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if isinstance(m, dict) and m.get("role") == "assistant":
            start = i + 1
            break
    block = 0
    if respect_cache_control:
        for i in range(len(messages) - 1, start - 1, -1):
            m = messages[i]
            if not isinstance(m, dict):
                continue
            if m.get("cache_control"):
                return i + 1, 0
            content = m.get("content")
            if isinstance(content, list):
                for b in range(len(content) - 1, -1, -1):
                    if isinstance(content[b], dict) and content[b].get("cache_control"):
                        return (i, b + 1) if b + 1 < len(content) else (i + 1, 0)
    return start, block


def compress_request(data: dict, opts: CompressionOptions | None = None) -> CompressionStats:
    """Compress, in place, the user/tool text of a chat-completions or Anthropic-messages body
    after its cacheable prefix. `system` and `tools` are never read or written."""
    opts = opts or CompressionOptions()
    stats = CompressionStats()
    messages = data.get("messages")
    if not isinstance(messages, list):
        return stats
    first, first_block = compressible_region(messages, opts.respect_cache_control)
    seen: dict[str, int] = {}
    for i in range(first, len(messages)):
        m = messages[i]
        if not isinstance(m, dict) or m.get("role") not in ("user", "tool"):
            continue
        content = m.get("content")
        if isinstance(content, str):
            m["content"] = compress_text(content, opts, stats, seen)
        elif isinstance(content, list):
            start_block = first_block if i == first else 0
            for b in range(start_block, len(content)):
                _compress_block(content[b], opts, stats, seen)
    return stats


def _compress_block(block: Any, opts: CompressionOptions, stats: CompressionStats, seen: dict[str, int]) -> None:
    if not isinstance(block, dict) or block.get("cache_control"):
        return
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        block["text"] = compress_text(block["text"], opts, stats, seen)
    elif kind == "tool_result":
        inner = block.get("content")
        if isinstance(inner, str):
            block["content"] = compress_text(inner, opts, stats, seen)
        elif isinstance(inner, list):
            for sub in inner:
                _compress_block(sub, opts, stats, seen)
