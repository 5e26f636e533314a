"""`backlog-ops import transcripts`: Claude Code's own usage, from its JSONL transcripts, into the ledger.

Claude Code often talks to Anthropic directly, not through the gateway; its transcripts still
record every response's usage. This importer puts each API request in the ledger once, as
``source='transcript'``, attributed to the context that was in force for that session and agent
at that time, and priced with LiteLLM's prices (cache reads and writes included).

Where transcripts are
    ``~/.claude/projects/<project-dir>/<session-id>.jsonl`` for main sessions and
    ``<project-dir>/<session-id>/subagents/agent-<agent-id>.jsonl`` for subagents (older
    releases: ``agent-<id>.jsonl`` beside the sessions). Default root: ``$CLAUDE_CONFIG_DIR/projects``
    when set, else ``~/.claude/projects`` (and ``~/.config/claude/projects`` if it exists). Every
    ``*.jsonl`` below the root is read; lines that are not assistant messages are ignored.

What one request is
    An assistant line (``type: "assistant"``) has ``sessionId``, ``timestamp``, ``requestId``
    and ``message: {id, model, usage}``; subagent lines add ``isSidechain: true`` and ``agentId``.
    Claude Code writes one API response over several lines (one per content block, and
    streaming snapshots whose ``output_tokens`` grow): lines sharing ``message.id`` (else
    ``requestId``) are one request, each count taken at its maximum, the earliest timestamp
    kept. Its ledger id is ``transcript:<requestId or message.id>``: re-importing upserts.
    Synthetic messages (model ``<synthetic>``, or no tokens at all) are not requests.

Attribution
    The context history (``context-history.jsonl``) is replayed per scope: the context of the
    agent scope (session, agentId) at the request's time, else the session's, else the global
    one, each only until its ``expires_at``, exactly as the gateway resolves a live request.
    The transcript's ``agentId`` is the ``agent_id`` Claude Code gives hooks inside that subagent.

Nothing counted twice
    A request that went through the gateway already has a proxy row. Per session and in time
    order, a transcript request is matched one-to-one with an unclaimed proxy row of the same
    session whose start lies within 10 minutes before (2 after) the transcript line, with the
    same completion tokens and the same prompt tokens in one of the ways they are counted
    (input + cache read + cache write, as LiteLLM counts Anthropic; input + cache read; input).
    A matched request is skipped. An unmatched request of a session the proxy saw within
    15 minutes of it is skipped too: Claude Code sends all of a process's requests to one base
    URL, so it went through the gateway even if its counts differ (an unrecorded proxy row is
    the lesser harm than a double count). Proxy rows without a session id are matched on the
    counts alone, in the same window, when the model agrees. Everything else is imported.

Incremental
    BACKLOG_HOME/transcripts-import.json keeps each file's inode, size, mtime and the offset
    read so far, and a fingerprint of its first 4 KiB: unchanged files are skipped without being
    opened, grown files are read from the offset (only complete lines: a line being written is
    left for next time), replaced or truncated files are read again (upserts make that harmless). A request whose lines span two
    runs keeps the larger counts (the ledger row is merged, not overwritten).

Report
    What was imported and skipped, and what could not be attributed: requests with no context
    at their time (imported with no ticket: ``backlog-ops spend -`` shows them), requests whose
    model LiteLLM has no price for (imported with cost 0), and malformed lines (not imported),
    each with counts and examples.
"""

from __future__ import annotations

import bisect
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, TextIO

from backlog_ops.context.contextfile import default_ttl

from backlog_ops.common.times import format_time, parse_time
from backlog_ops.errors import BacklogOpsError, ContextFileError
from backlog_ops.common.home import home, write_atomic

__all__ = ["import_transcripts", "run_import", "default_roots"]

STATE_FILE = "transcripts-import.json"
MATCH_BEFORE = 600.0  # a proxy row starts at most this long before the transcript line
MATCH_AFTER = 120.0  # ... or this long after it (clock skew between processes)
SESSION_WINDOW = 900.0  # a session the proxy saw this close to a request was proxied
EXAMPLES = 5
_SYNTHETIC_MODELS = ("<synthetic>",)


# -- entry point -------------------------------------------------------------------------------


def run_import(path: str | None, dry_run: bool, as_json: bool) -> int:
    """The CLI command: import, print the report (text or JSON); 0 on success."""
    report = import_transcripts(path, dry_run=dry_run, progress=_Progress.for_stderr())
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(render_report(report))
    return 0


def default_roots() -> list[Path]:
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    if configured:
        return [Path(configured).expanduser() / "projects"]
    roots = [Path("~/.claude/projects").expanduser()]
    xdg = Path("~/.config/claude/projects").expanduser()
    if xdg.is_dir():
        roots.append(xdg)
    return roots


def import_transcripts(
    path: str | os.PathLike | None = None,
    *,
    dry_run: bool = False,
    progress: "_Progress | None" = None,
) -> dict:
    """Import transcripts under `path` (default: Claude Code's projects directory); returns the report."""
    if path is None:
        roots = [r for r in default_roots() if r.exists()]
        shown = ", ".join(str(r) for r in default_roots())
    else:
        root = Path(path).expanduser()
        if not root.exists():
            raise BacklogOpsError(f"no such file or directory: {root}")
        roots = [root]
        shown = str(root)
    report = _new_report(shown, dry_run)
    files = sorted({f for root in roots for f in _discover(root)})
    report["files"]["found"] = len(files)

    state_path = home() / STATE_FILE
    state = _load_state(state_path)
    new_state = dict(state)
    items: list[_Request] = []
    progress = progress or _Progress(None)
    progress.start(len(files))
    for i, file in enumerate(files):
        progress.update(i, file)
        key = str(file.resolve())
        try:
            st = file.stat()
        except OSError as exc:
            _example(report, "unreadable", f"{file}: {exc.strerror or exc}")
            continue
        prior = state.get(key)
        signature = {"inode": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if prior and all(prior.get(k) == v for k, v in signature.items()):
            report["files"]["unchanged"] += 1
            continue
        offset, line_no = 0, 0
        try:
            if (prior and prior.get("inode") == st.st_ino and prior.get("offset", 0) <= st.st_size
                    and prior.get("head") == _head(file, int(prior.get("offset", 0)))):
                offset, line_no = int(prior.get("offset", 0)), int(prior.get("lines", 0))
            file_items, consumed, lines = _read_file(file, offset, line_no, report)
            head = _head(file, offset + consumed)
        except OSError as exc:
            _example(report, "unreadable", f"{file}: {exc.strerror or exc}")
            continue
        report["files"]["read"] += 1
        items.extend(file_items)
        new_state[key] = {**signature, "offset": offset + consumed, "lines": lines, "head": head}
    progress.finish()

    requests = _group(items, report)
    ledger = _open_ledger(dry_run)
    try:
        records = _build(requests, ledger, report)
        if records and not dry_run:
            ledger.record_many(records)
        if not dry_run:
            _save_state(state_path, new_state)
    finally:
        if ledger is not None:
            ledger.close()
    report["imported"]["requests"] = len(records)
    report["imported"]["cost_usd"] = round(sum(r.cost_usd for r in records), 6)
    report["imported"]["tokens"] = sum(r.prompt_tokens + r.completion_tokens for r in records)
    return report


# -- reading files -----------------------------------------------------------------------------


@dataclass
class _Request:
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
    where: str
    lines: int = 1

    @property
    def prompt_tokens(self) -> int:
        # LiteLLM's convention (and the proxy rows'): prompt tokens include cache reads and writes.
        return self.input_tokens + self.cache_read + self.cache_write


def _discover(root: Path) -> Iterable[Path]:
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".jsonl"):
                yield Path(dirpath) / name


def _head(path: Path, upto: int) -> str:
    """A fingerprint of the part already read (its first 4 KiB): a file replaced in place differs."""
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.sha1(fh.read(min(upto, 4096))).hexdigest()[:16]


def _read_file(path: Path, offset: int, line_no: int, report: dict) -> tuple[list[_Request], int, int]:
    """Items from the complete lines after `offset`: (items, bytes consumed, line count so far)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n")
    if end < 0:
        return [], 0, line_no  # no complete line yet
    data = data[: end + 1]
    items: list[_Request] = []
    fallback_session, fallback_agent = _ids_from_path(path)
    for raw in data.split(b"\n")[:-1]:
        line_no += 1
        if not raw.strip():
            continue
        report["lines"] += 1
        where = f"{path}:{line_no}"
        try:
            entry = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            _malformed(report, where, "not JSON")
            continue
        if not isinstance(entry, dict):
            _malformed(report, where, "not a JSON object")
            continue
        if entry.get("type") != "assistant":
            continue
        item = _item(entry, where, fallback_session, fallback_agent, report)
        if item is not None:
            items.append(item)
    return items, len(data), line_no


def _item(entry: dict, where: str, fallback_session: str | None, fallback_agent: str | None, report: dict) -> _Request | None:
    message = entry.get("message")
    if not isinstance(message, dict):
        _malformed(report, where, "assistant entry without a message object")
        return None
    usage = message.get("usage")
    if not isinstance(usage, dict):
        _malformed(report, where, "assistant message without usage")
        return None
    counts = []
    for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        value = usage.get(name, 0)
        if value is None:
            value = 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            _malformed(report, where, f"usage.{name} is not a token count: {value!r}"[:120])
            return None
        counts.append(value)
    try:
        at = parse_time(entry.get("timestamp"), "timestamp", ContextFileError)
    except ContextFileError as exc:
        _malformed(report, where, str(exc))
        return None
    model = message.get("model") if isinstance(message.get("model"), str) else None
    if model in _SYNTHETIC_MODELS or not any(counts):
        report["skipped"]["synthetic"] += 1
        return None
    message_id = message.get("id") if isinstance(message.get("id"), str) and message.get("id") else None
    request_id = entry.get("requestId") if isinstance(entry.get("requestId"), str) and entry.get("requestId") else None
    session = entry.get("sessionId") if isinstance(entry.get("sessionId"), str) and entry.get("sessionId") else fallback_session
    if not (message_id or request_id):
        _malformed(report, where, "assistant message with neither message.id nor requestId")
        return None
    if not session:
        _malformed(report, where, "no sessionId")
        return None
    agent = entry.get("agentId") if isinstance(entry.get("agentId"), str) and entry.get("agentId") else fallback_agent
    return _Request(
        key=message_id or request_id,
        call_id=f"transcript:{request_id or message_id}",
        session_id=session,
        agent_id=agent,
        at=at,
        model=model,
        input_tokens=counts[0],
        output_tokens=counts[1],
        cache_read=counts[2],
        cache_write=counts[3],
        where=where,
    )


def _ids_from_path(path: Path) -> tuple[str | None, str | None]:
    """(session, agent) the path implies: <session>.jsonl, <session>/subagents/agent-<id>.jsonl."""
    stem = path.stem
    if stem.startswith("agent-"):
        agent = stem[len("agent-"):] or None
        session = path.parent.parent.name if path.parent.name == "subagents" else None
        return session, agent
    return stem, None


def _group(items: list[_Request], report: dict) -> list[_Request]:
    requests: dict[str, _Request] = {}
    files_of: dict[str, set[str]] = {}
    for item in items:
        found = requests.get(item.key)
        file = item.where.rsplit(":", 1)[0]
        seen_in = files_of.setdefault(item.key, set())
        if found is not None and file not in seen_in:
            report["skipped"]["duplicate"] += 1  # the request copied into another transcript (a resumed session)
        seen_in.add(file)
        if found is None:
            requests[item.key] = replace(item)
            continue
        found.lines += 1
        found.input_tokens = max(found.input_tokens, item.input_tokens)
        found.output_tokens = max(found.output_tokens, item.output_tokens)
        found.cache_read = max(found.cache_read, item.cache_read)
        found.cache_write = max(found.cache_write, item.cache_write)
        if item.at < found.at:
            found.at = item.at
        found.model = found.model or item.model
        if found.call_id == f"transcript:{item.key}" and item.call_id != found.call_id:
            found.call_id = item.call_id  # a requestId seen on a later line of the same message
    report["lines_merged"] = len(items) - len(requests)
    return sorted(requests.values(), key=lambda r: (r.at, r.call_id))


# -- attribution ---------------------------------------------------------------------------------


class _History:
    """The context history replayed: what each scope held at any time."""

    def __init__(self, entries: Iterable[dict]) -> None:
        events: dict[tuple[str | None, str | None], list[tuple[float, int, dict | None, float]]] = {}
        for seq, entry in enumerate(entries):
            try:
                at = float(entry["at_epoch"])
            except (KeyError, TypeError, ValueError):
                continue
            scope = (entry.get("session_id"), entry.get("agent_id") if entry.get("session_id") else None)
            new = entry.get("new") if entry.get("action") == "set" else None
            expires = 0.0
            if isinstance(new, dict):
                try:
                    expires = parse_time(new["expires_at"], "expires_at", ContextFileError) if new.get("expires_at") else at + default_ttl()
                except (ContextFileError, BacklogOpsError):
                    expires = at + default_ttl()
            else:
                new = None
            events.setdefault(scope, []).append((at, seq, new, expires))
        self._timelines = {}
        for scope, evs in events.items():
            evs.sort(key=lambda e: (e[0], e[1]))
            self._timelines[scope] = ([e[0] for e in evs], [(e[2], e[3]) for e in evs])

    def at(self, session_id: str | None, agent_id: str | None, t: float) -> tuple[dict | None, str | None]:
        """(context, scope kind) in force for (session, agent) at time t."""
        chain = []
        if session_id:
            if agent_id:
                chain.append(((session_id, agent_id), "agent"))
            chain.append(((session_id, None), "session"))
        chain.append(((None, None), "global"))
        for scope, kind in chain:
            timeline = self._timelines.get(scope)
            if not timeline:
                continue
            times, values = timeline
            i = bisect.bisect_right(times, t) - 1
            if i < 0:
                continue
            ctx, expires = values[i]
            if ctx is not None and expires > t:
                return ctx, kind
        return None, None


# -- matching proxy rows -------------------------------------------------------------------------


class _ProxyRows:
    def __init__(self, rows: list[dict]) -> None:
        self.by_session: dict[str, list[dict]] = {}
        self.anonymous: list[dict] = []
        self.claimed: set[str] = set()
        for row in rows:
            try:
                row["_at"] = parse_time(row["started_at"], "started_at", ContextFileError)
            except (ContextFileError, KeyError):
                continue
            (self.by_session.setdefault(row["session_id"], []) if row.get("session_id") else self.anonymous).append(row)
        for rows_ in self.by_session.values():
            rows_.sort(key=lambda r: r["_at"])
        self._times = {s: [r["_at"] for r in rs] for s, rs in self.by_session.items()}

    def match(self, req: _Request) -> str | None:
        """'matched', 'session' (the proxy saw the session then) or None (not proxied)."""
        rows = self.by_session.get(req.session_id)
        if rows:
            row = self._best(rows, req, require_model=False)
            if row is not None:
                self.claimed.add(row["call_id"])
                return "matched"
        if self.anonymous:
            row = self._best(self.anonymous, req, require_model=True)
            if row is not None:
                self.claimed.add(row["call_id"])
                return "matched"
        if rows:
            times = self._times[req.session_id]
            i = bisect.bisect_left(times, req.at - SESSION_WINDOW)
            if i < len(times) and times[i] <= req.at + SESSION_WINDOW:
                return "session"
        return None

    def _best(self, rows: list[dict], req: _Request, *, require_model: bool) -> dict | None:
        prompts = {req.input_tokens + req.cache_read + req.cache_write, req.input_tokens + req.cache_read, req.input_tokens}
        best, best_gap = None, None
        for row in rows:
            gap = req.at - row["_at"]
            if gap > MATCH_BEFORE or gap < -MATCH_AFTER or row["call_id"] in self.claimed:
                continue
            if row.get("status") != "success" or row.get("completion_tokens") != req.output_tokens:
                continue
            if row.get("prompt_tokens") not in prompts:
                continue
            if require_model and not _same_model(row.get("model"), req.model):
                continue
            if best_gap is None or abs(gap) < best_gap:
                best, best_gap = row, abs(gap)
        return best


def _same_model(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    a, b = a.rsplit("/", 1)[-1], b.rsplit("/", 1)[-1]
    return a == b or a.startswith(b) or b.startswith(a)


# -- building rows -------------------------------------------------------------------------------


def _open_ledger(dry_run: bool):
    from backlog_ops.ledger import open_ledger
    from backlog_ops.ledger.sqlite import default_ledger_path

    if dry_run and not default_ledger_path().exists():
        return None  # a dry run creates nothing
    return open_ledger()


def _build(requests: list[_Request], ledger, report: dict) -> list:
    from backlog_ops.capture.rows import call_record
    from backlog_ops.ledger import CallRecord
    from backlog_ops.context.backend import open_store

    if not requests:
        return []
    history = _History(open_store().history())
    proxy = _ProxyRows(_proxy_rows(ledger, requests))
    existing = _existing(ledger, [r.call_id for r in requests])
    records: list[CallRecord] = []
    seen: set[str] = set()
    for req in requests:
        if req.call_id in seen:
            report["skipped"]["duplicate"] += 1  # two message ids under one requestId
            continue
        seen.add(req.call_id)
        verdict = proxy.match(req)
        if verdict == "matched":
            report["skipped"]["proxied_matched"] += 1
            continue
        if verdict == "session":
            report["skipped"]["proxied_session"] += 1
            continue
        old = existing.get(req.call_id)
        if old is not None:
            # A request split over two runs: keep the larger counts.
            req.input_tokens = max(req.input_tokens, old["prompt_tokens"] - old["cache_read_tokens"] - old["cache_write_tokens"])
            req.output_tokens = max(req.output_tokens, old["completion_tokens"])
            req.cache_read = max(req.cache_read, old["cache_read_tokens"])
            req.cache_write = max(req.cache_write, old["cache_write_tokens"])
            try:
                req.at = min(req.at, parse_time(old["started_at"], "started_at", ContextFileError))
            except ContextFileError:
                pass
            report["updated"] += 1
        ctx, _ = history.at(req.session_id, req.agent_id, req.at)
        ctx = ctx or {}
        provider = "anthropic" if (req.model or "").startswith("claude") else None
        priced = _price(req, provider)
        cost = priced or 0.0
        record = call_record(
            call_id=req.call_id, source="transcript", started=req.at, context=ctx,
            session_id=req.session_id, agent_id=req.agent_id, model=req.model, provider=provider,
            prompt_tokens=req.prompt_tokens, completion_tokens=req.output_tokens,
            cache_read_tokens=req.cache_read, cache_write_tokens=req.cache_write, cost_usd=cost,
        )
        records.append(record)
        when = format_time(req.at)
        if not ctx:
            _count(report, "no_context", f"{req.where} (session {req.session_id}"
                   + (f", agent {req.agent_id}" if req.agent_id else "") + f", {when})", cost=cost)
        if priced is None:
            _count(report, "unknown_price", f"{req.where} (model {req.model or '(none)'})")
            models = report["unattributed"]["unknown_price"]["models"]
            models[req.model or "(none)"] = models.get(req.model or "(none)", 0) + 1
        if req.agent_id:
            report["imported"]["subagent_requests"] += 1
    return records


def _proxy_rows(ledger, requests: list[_Request]) -> list[dict]:
    if ledger is None:
        return []
    lo = format_time(min(r.at for r in requests) - SESSION_WINDOW - MATCH_BEFORE)
    hi = format_time(max(r.at for r in requests) + SESSION_WINDOW + MATCH_AFTER)
    return ledger.rows("WHERE source = 'proxy' AND started_at >= ? AND started_at <= ?", (lo, hi))


def _existing(ledger, call_ids: list[str]) -> dict[str, dict]:
    if ledger is None:
        return {}
    found: dict[str, dict] = {}
    ids = list(dict.fromkeys(call_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in ledger.rows(f"WHERE call_id IN ({marks})", tuple(chunk)):
            found[row["call_id"]] = row
    return found


def _price(req: _Request, provider: str | None) -> float | None:
    from backlog_ops.common.prices import price_usage

    return price_usage([req.model] if req.model else [], provider, req.prompt_tokens, req.output_tokens,
                       req.cache_read, req.cache_write)


# -- state ---------------------------------------------------------------------------------------


def _load_state(path: Path) -> dict:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # an unreadable state only costs a full re-read: the upserts keep it correct
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def _save_state(path: Path, files: dict) -> None:
    write_atomic(path, (json.dumps({"version": 1, "files": files}, indent=1, sort_keys=True) + "\n").encode())


# -- the report ----------------------------------------------------------------------------------


def _new_report(root: str, dry_run: bool) -> dict:
    return {
        "root": root,
        "dry_run": dry_run,
        "files": {"found": 0, "read": 0, "unchanged": 0},
        "lines": 0,
        "lines_merged": 0,
        "imported": {"requests": 0, "subagent_requests": 0, "tokens": 0, "cost_usd": 0.0},
        "updated": 0,
        "skipped": {"proxied_matched": 0, "proxied_session": 0, "duplicate": 0, "synthetic": 0},
        "unattributed": {
            "no_context": {"count": 0, "cost_usd": 0.0, "examples": []},
            "unknown_price": {"count": 0, "models": {}, "examples": []},
            "malformed": {"count": 0, "examples": []},
            "unreadable": {"count": 0, "examples": []},
        },
    }


def _count(report: dict, kind: str, example: str, cost: float = 0.0) -> None:
    bucket = report["unattributed"][kind]
    bucket["count"] += 1
    if "cost_usd" in bucket:
        bucket["cost_usd"] = round(bucket["cost_usd"] + cost, 6)
    if len(bucket["examples"]) < EXAMPLES:
        bucket["examples"].append(example)


def _malformed(report: dict, where: str, why: str) -> None:
    _count(report, "malformed", f"{where}: {why}")


def _example(report: dict, kind: str, example: str) -> None:
    _count(report, kind, example)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def render_report(report: dict) -> str:
    f, imp, skip, un = report["files"], report["imported"], report["skipped"], report["unattributed"]
    verb = "would import" if report["dry_run"] else "imported"
    out = [
        f"transcripts: {report['root']}",
        f"  files: {f['found']} found, {f['read']} read, {f['unchanged']} unchanged since the last import",
        f"  {verb} {_n(imp['requests'], 'request')} ({imp['subagent_requests']} from subagents), "
        f"{imp['tokens']:,} tokens, ${imp['cost_usd']:.4f}"
        + (f" ({report['updated']} updating rows of an earlier import)" if report["updated"] else ""),
    ]
    skipped = [
        (skip["proxied_matched"], "already recorded by the proxy (matched row by row)"),
        (skip["proxied_session"], "in sessions the proxy was recording at that time"),
        (skip["duplicate"], "copies of a request in another transcript"),
        (skip["synthetic"], "synthetic messages without usage"),
        (report["lines_merged"], "lines that were parts of a request already counted"),
    ]
    if any(n for n, _ in skipped):
        out.append("  not counted again:")
        out += [f"    {n:,} {why}" for n, why in skipped if n]
    problems = []
    if un["no_context"]["count"]:
        problems.append(f"  no context at that time: {_n(un['no_context']['count'], 'request')} "
                        f"(${un['no_context']['cost_usd']:.4f}), imported with no ticket (see `backlog-ops spend -`)")
        problems += [f"      e.g. {e}" for e in un["no_context"]["examples"]]
    if un["unknown_price"]["count"]:
        models = ", ".join(f"{m} ({n})" for m, n in sorted(un["unknown_price"]["models"].items()))
        problems.append(f"  unknown model price: {_n(un['unknown_price']['count'], 'request')}, imported with cost 0: {models}")
        problems += [f"      e.g. {e}" for e in un["unknown_price"]["examples"]]
    if un["malformed"]["count"]:
        problems.append(f"  malformed: {_n(un['malformed']['count'], 'line')}, not imported")
        problems += [f"      e.g. {e}" for e in un["malformed"]["examples"]]
    if un["unreadable"]["count"]:
        problems.append(f"  unreadable: {_n(un['unreadable']['count'], 'file')}")
        problems += [f"      e.g. {e}" for e in un["unreadable"]["examples"]]
    if problems:
        out.append("could not attribute:")
        out += problems
    elif f["read"]:
        out.append("everything read was attributed")
    if report["dry_run"]:
        out.append("dry run: nothing was written")
    return "\n".join(out) + "\n"


# -- progress ----------------------------------------------------------------------------------


class _Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise.

    Shown for 20 files or more on a terminal, 1000 or more elsewhere (CI logs stay short);
    BACKLOG_PROGRESS=0/1 forces it off/on.
    """

    def __init__(self, stream: TextIO | None, tty: bool = False, force: bool | None = None) -> None:
        self.stream = stream
        self.tty = tty
        self.force = force
        self.total = 0
        self.shown = False
        self._last = -1
        self._last_draw = 0.0

    @classmethod
    def for_stderr(cls) -> "_Progress":
        forced = os.environ.get("BACKLOG_PROGRESS")
        force = None if forced in (None, "") else forced not in ("0", "false", "no")
        try:
            tty = sys.stderr.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(sys.stderr, tty, force)

    def start(self, total: int) -> None:
        self.total = total
        if self.stream is None:
            return
        threshold = 20 if self.tty else 1000
        self.shown = self.force if self.force is not None else total >= threshold

    def update(self, done: int, current: Path | None = None) -> None:
        if not self.shown or not self.total:
            return
        pct = done * 100 // self.total
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw < 0.1 and done:
                return
            self._last_draw = now
            width = 30
            filled = width * done // self.total
            self.stream.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} files")
            self.stream.flush()
        elif pct // 10 != self._last // 10:
            self._last = pct
            self.stream.write(f"  {done}/{self.total} files ({pct}%)\n")
            self.stream.flush()

    def finish(self) -> None:
        if not self.shown or not self.total:
            return
        if self.tty:
            self.stream.write(f"\r  [{'#' * 30}] {self.total}/{self.total} files\n")
        else:
            self.stream.write(f"  {self.total}/{self.total} files (100%)\n")
        self.stream.flush()
