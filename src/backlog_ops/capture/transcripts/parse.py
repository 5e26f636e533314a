"""Transcript lines into API requests.

An assistant line (``type: "assistant"``) has ``sessionId``, ``timestamp``, ``requestId``,
``gitBranch``, ``cwd`` and ``message: {id, model, usage}``; subagent lines add
``isSidechain: true`` and ``agentId``.
Claude Code writes one API response over several lines (one per content block, and
streaming snapshots whose ``output_tokens`` grow): lines sharing ``message.id`` (else
``requestId``) are one request, each count taken at its maximum, the earliest timestamp
kept. Its ledger id is ``transcript:<requestId or message.id>``: re-importing upserts.
Synthetic messages (model ``<synthetic>``, or no tokens at all) are not requests. Lines that
are not assistant messages are ignored.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from backlog_ops.capture.transcripts import files
from backlog_ops.capture.transcripts.report import ImportReport
try:  # ~2x faster on transcript lines than the standard library's parser
    from orjson import loads
except ImportError:  # pragma: no cover - without it, the C scanner of the standard library
    from backlog_ops.common.fastjson import loads
from backlog_ops.common.times import parse_time

__all__ = ["Request", "RequestGroups", "group_requests", "parse_lines"]

SYNTHETIC_MODELS = ("<synthetic>",)
# The usage counts of a request, in the order Request takes them.
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
TOKEN_COUNTS = ("input_tokens", "output_tokens", "cache_read", "cache_write")
# What a line must contain to be worth parsing, and how a whole JSON object line ends.
_USAGE, _ASSISTANT = b'"usage"', b'"assistant"'
_OBJECT_ENDS = (b"}\n", b"}\r\n", b"}")


@dataclass(slots=True)
class Request:
    """One API request: an assistant line's usage, then the merge of the lines sharing its message id."""

    key: str
    call_id: str
    session_id: str
    agent_id: str | None
    at: float
    model: str | None
    input_tokens: int
    output_tokens: int
    cache_read: int
    cache_write: int
    path: str  # the file of its first line (one string object per file)
    line: int  # ... and that line's number
    lines: int = 1  # how many lines it was merged from
    git_branch: str | None = None  # the line's gitBranch: the ticket when no context applied
    cwd: str | None = None  # the line's cwd: whose backlog.config.json says how to read the branch

    @property
    def where(self) -> str:
        """file:line of its first line, as the report names it."""
        return f"{self.path}:{self.line}"

    @property
    def prompt_tokens(self) -> int:
        # LiteLLM's convention (and the proxy rows'): prompt tokens include cache reads and writes.
        return self.input_tokens + self.cache_read + self.cache_write


def parse_lines(path: Path, lines: Iterable[bytes | None], line_no: int, report: ImportReport) -> Iterator[Request]:
    """One Request per usable assistant line of `lines`, the whole lines of `path` after line `line_no`.

    Lines are parsed one at a time as they are read; None stands for a line too long to read
    (files.MAX_LINE_BYTES), reported as malformed. Most lines (user prompts, tool results,
    progress) carry no usage: a line that names neither "usage" nor "assistant" is not parsed,
    only checked to look like one JSON object (a line torn by a crash is still reported).
    """
    fallback_session, fallback_agent = _ids_from_path(path)
    shown = str(path)
    counted = 0
    try:
        for raw in lines:
            line_no += 1
            if raw is None:
                counted += 1
                limit = files.MAX_LINE_BYTES
                limit_shown = f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit:,} bytes"
                report.malformed(f"{path}:{line_no}", f"longer than {limit_shown}, not read")
                continue
            if _USAGE not in raw and _ASSISTANT not in raw and raw[:1] == b"{" and raw.endswith(_OBJECT_ENDS):
                counted += 1  # no usage in it: nothing to read
                continue
            if not raw.strip():
                continue
            counted += 1
            try:
                entry = loads(raw)
            except (ValueError, UnicodeDecodeError):
                report.malformed(f"{path}:{line_no}", "not JSON")
                continue
            if not isinstance(entry, dict):
                report.malformed(f"{path}:{line_no}", "not a JSON object")
                continue
            if entry.get("type") != "assistant":
                continue
            request = _request(entry, shown, line_no, fallback_session, fallback_agent, report)
            if request is not None:
                yield request
    finally:
        report["lines"] += counted


def _text(mapping: dict, key: str) -> str | None:
    """mapping[key] if it is a non-empty string, interned: the few sessions, agents, branches and
    directories of a file are each kept (and sent from a worker process) once, not once per line."""
    value = mapping.get(key)
    return sys.intern(value) if isinstance(value, str) and value else None


def _request(entry: dict, path: str, line_no: int, fallback_session: str | None, fallback_agent: str | None,
             report: ImportReport) -> Request | None:
    message = entry.get("message")
    if not isinstance(message, dict):
        report.malformed(f"{path}:{line_no}", "assistant entry without a message object")
        return None
    usage = message.get("usage")
    if not isinstance(usage, dict):
        report.malformed(f"{path}:{line_no}", "assistant message without usage")
        return None
    counts = [usage.get(name) for name in USAGE_FIELDS]
    if not all(type(value) is int and value >= 0 for value in counts):  # the usual case, at C speed
        for i, name in enumerate(USAGE_FIELDS):
            value = counts[i]
            if value is None:
                counts[i] = value = 0
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                report.malformed(f"{path}:{line_no}", f"usage.{name} is not a token count: {value!r}"[:120])
                return None
    try:
        at = _line_time(entry.get("timestamp"))
    except ValueError as exc:
        report.malformed(f"{path}:{line_no}", str(exc))
        return None
    model = message.get("model")
    model = sys.intern(model) if type(model) is str else None
    if model in SYNTHETIC_MODELS or not any(counts):
        report["skipped"]["synthetic"] += 1
        return None
    message_id, request_id = message.get("id"), entry.get("requestId")
    message_id = message_id if type(message_id) is str and message_id else None
    request_id = request_id if type(request_id) is str and request_id else None
    session = _text(entry, "sessionId") or fallback_session
    if not (message_id or request_id):
        report.malformed(f"{path}:{line_no}", "assistant message with neither message.id nor requestId")
        return None
    if not session:
        report.malformed(f"{path}:{line_no}", "no sessionId")
        return None
    return Request(
        key=message_id or request_id,
        call_id=f"transcript:{request_id or message_id}",
        session_id=session,
        agent_id=_text(entry, "agentId") or fallback_agent,
        at=at,
        model=model,
        path=path,
        line=line_no,
        git_branch=_text(entry, "gitBranch"),
        cwd=_text(entry, "cwd"),
        input_tokens=counts[0], output_tokens=counts[1], cache_read=counts[2], cache_write=counts[3],
    )


_MINUTES: dict[str, float] = {}  # 'YYYY-MM-DDTHH:MM' -> its epoch seconds


def _line_time(value: object) -> float:
    """parse_time(value, 'timestamp'), with the minute of Claude Code's 'YYYY-MM-DDTHH:MM:SS.mmmZ' read once."""
    if isinstance(value, str) and len(value) == 24 and value[16] == ":" and value[19] == "." and value[23] == "Z":
        seconds, millis = value[17:19], value[20:23]
        if seconds.isdigit() and millis.isdigit() and seconds.isascii() and millis.isascii() and seconds < "60":
            minute = _MINUTES.get(value[:16])
            if minute is None:
                minute = parse_time(value[:16] + ":00.000Z", "timestamp")
                if len(_MINUTES) > 65536:
                    _MINUTES.clear()
                _MINUTES[value[:16]] = minute
            return minute + int(seconds) + int(millis) / 1000
    return parse_time(value, "timestamp")


def _ids_from_path(path: Path) -> tuple[str | None, str | None]:
    """(session, agent) the path implies: <session>.jsonl, <session>/subagents/agent-<id>.jsonl."""
    stem = path.stem
    if stem.startswith("agent-"):
        agent = stem[len("agent-"):] or None
        session = path.parent.parent.name if path.parent.name == "subagents" else None
        return session, agent
    return stem, None


class RequestGroups:
    """The lines of each request merged into one (largest counts, earliest time), as they are read.

    Memory grows with the number of requests, not with the number of lines or their size. The
    items added may be lines (parse_lines) or requests already merged within one file (a file's
    own groups, `in_file_order`): adding a file's merged requests, file after file, gives what
    adding their lines would.
    """

    def __init__(self, report: ImportReport) -> None:
        self._report = report
        self._requests: dict[str, Request] = {}
        self._other_files: dict[str, set[str]] = {}  # key -> files it was copied into, besides its first one
        self._items = 0

    def add(self, item: Request) -> None:
        self._items += item.lines
        found = self._requests.get(item.key)
        if found is None:
            self._requests[item.key] = item  # taken over: parse_lines makes a new one per line
            return
        if item.path != found.path:
            others = self._other_files.setdefault(item.key, set())
            if item.path not in others:
                others.add(item.path)
                self._report["skipped"]["duplicate"] += 1  # the request copied into another transcript (a resumed session)
        found.lines += item.lines
        found.input_tokens = max(found.input_tokens, item.input_tokens)
        found.output_tokens = max(found.output_tokens, item.output_tokens)
        found.cache_read = max(found.cache_read, item.cache_read)
        found.cache_write = max(found.cache_write, item.cache_write)
        found.at = min(found.at, item.at)
        found.model = found.model or item.model
        found.git_branch = found.git_branch or item.git_branch
        found.cwd = found.cwd or item.cwd
        if found.call_id == f"transcript:{item.key}" and item.call_id != found.call_id:
            found.call_id = item.call_id  # a requestId seen on a later line of the same message

    def in_file_order(self) -> list[Request]:
        """The merged requests in the order their first lines were read."""
        return list(self._requests.values())

    def requests(self) -> list[Request]:
        """The merged requests, in time order (and the count of merged lines in the report)."""
        self._report["lines_merged"] = self._items - len(self._requests)
        return sorted(self._requests.values(), key=lambda r: (r.at, r.call_id))


def group_requests(items: Iterable[Request], report: ImportReport) -> list[Request]:
    """The lines of each request merged into one (largest counts, earliest time), in time order."""
    groups = RequestGroups(report)
    for item in items:
        groups.add(item)
    return groups.requests()
