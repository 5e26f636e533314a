"""The import: read what is new in the transcripts, group it into requests, attribute and price
each one and write the ones the proxy has not recorded to the ledger, as ``source='transcript'``.
A request no context applied to takes the ticket its line's git branch names, marked inferred.

A request whose lines span two runs keeps the larger counts (its ledger row is merged, not
overwritten).
"""

from __future__ import annotations

import os
from contextlib import closing, nullcontext
from pathlib import Path
from typing import Callable, Iterable, Iterator

from backlog_ops.capture.transcripts.attribution import ContextHistory
from backlog_ops.capture.transcripts.branches import BranchTickets
from backlog_ops.capture.transcripts.files import (
    bytes_to_read,
    default_roots,
    find_transcripts,
    load_state,
    save_state,
    special_kind,
    state_path,
)
from backlog_ops.capture.transcripts.matching import (
    MATCHED,
    SAME_SESSION,
    ProxyRows,
    proxy_rows_near,
)
from backlog_ops.capture.transcripts.parse import Request, RequestGroups
from backlog_ops.capture.transcripts.reading import read_files, worker_count
from backlog_ops.capture.transcripts.report import ImportReport
from backlog_ops.common.prices import price_usage  # light: litellm is imported only for a model it alone prices
from backlog_ops.common.times import format_time, parse_time
from backlog_ops.context.fields import is_inferred
from backlog_ops.errors import BacklogOpsError

__all__ = ["import_transcripts"]

WRITE_BATCH = 5000  # ledger rows per transaction

# The importer's progress hook: given the files, it yields them (a progress bar wraps the list).
Progress = Callable[[list[Path]], Iterable[Path]]


def import_transcripts(
    path: str | os.PathLike | None = None,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    jobs: int | None = None,
) -> ImportReport:
    """Import transcripts under `path` (default: Claude Code's projects directory); returns the report.

    `jobs`: how many processes read the files (reading.worker_count: None chooses, 1 reads them here).
    """
    if jobs is not None and jobs < 1:
        raise BacklogOpsError(f"jobs must be 1 or more, not {jobs}")
    if path is None:
        roots = [r for r in default_roots() if r.exists()]
        shown = ", ".join(str(r) for r in default_roots())
    else:
        root = Path(path).expanduser()
        if not root.exists():
            raise BacklogOpsError(f"no such file or directory: {root}")
        kind = None if root.is_dir() else special_kind(root.stat().st_mode)
        if kind:
            raise BacklogOpsError(f"{root} is {kind}, not a transcript: give a .jsonl file or a directory of them")
        roots = [root]
        shown = str(root)
    report = ImportReport(shown, dry_run)
    files = sorted({f for root in roots for f in find_transcripts(root)})
    report["files"]["found"] = len(files)

    state_file = state_path()
    state = load_state(state_file)
    new_state = dict(state)
    # Unchanged files are told by their size and time alone, before anything is opened or started.
    tasks, keys, total = [], [], 0
    for file in files:
        key = str(file.resolve())
        size = bytes_to_read(file, state.get(key))
        if size is None:
            report["files"]["unchanged"] += 1
            continue
        tasks.append((file, state.get(key)))
        keys.append(key)
        total += size
    groups = RequestGroups(report)
    workers = worker_count(jobs, len(tasks), total)
    report["reading_processes"] = workers or 1
    done = read_files(tasks, workers)
    with closing(done):  # stopped early (an error, Ctrl-C): the workers stop too
        for key, read in zip(keys, _ticking(done, progress, [file for file, _ in tasks])):
            report.absorb(read.report)
            if read.unchanged:
                report["files"]["unchanged"] += 1
                continue
            if read.opened:
                report["files"]["read"] += 1
            for request in read.requests:
                groups.add(request)
            if read.state is not None:
                new_state[key] = read.state

    requests = groups.requests()
    del groups
    ledger = _open_ledger(dry_run)
    imported, cost, tokens = 0, 0.0, 0
    try:
        # Written WRITE_BATCH rows at a time (one transaction each): the rows of a large import are
        # never all in memory at once, and a rerun after a failure upserts the same rows again.
        # In this thread: the database releases Python's GIL for each row it writes and waits to get it
        # back, so a writer thread beside a busy builder mostly waits (measured: no faster, under load).
        batch: list = []
        with ledger.bulk_writes() if ledger is not None else nullcontext():
            for record in _build(requests, ledger, report):
                imported += 1
                cost += record.cost_usd
                tokens += record.prompt_tokens + record.completion_tokens
                if not dry_run:
                    batch.append(record)
                    if len(batch) >= WRITE_BATCH:
                        ledger.record_many(batch)
                        batch = []
            if batch:
                ledger.record_many(batch)
        if not dry_run:
            save_state(state_file, new_state)
    finally:
        if ledger is not None:
            ledger.close()
    report["imported"]["requests"] = imported
    report["imported"]["cost_usd"] = round(cost, 6)
    report["imported"]["tokens"] = tokens
    return report


def _ticking(done: Iterable, progress: Progress | None, files: list[Path]) -> Iterator:
    """`done`, with the progress hook's bar (if any) moving one file per item."""
    if progress is None:
        yield from done
        return
    ticks = iter(progress(files))
    for item in done:
        next(ticks, None)
        yield item
    for _ in ticks:
        pass  # the bar ends (and closes) with the last file


def _open_ledger(dry_run: bool):
    from backlog_ops.ledger import open_ledger
    from backlog_ops.ledger.sqlite import default_ledger_path

    if dry_run and not default_ledger_path().exists():
        return None  # a dry run creates nothing
    return open_ledger()


def _build(requests: list[Request], ledger, report: ImportReport) -> Iterator:
    """The ledger rows of the requests the proxy has not recorded, attributed and priced, one at a time."""
    from backlog_ops.capture.rows import call_record
    from backlog_ops.context.backend import open_store

    if not requests:
        return
    history = ContextHistory(open_store().history())
    branches = BranchTickets(report)
    proxy = ProxyRows(proxy_rows_near(ledger, requests))
    existing = _existing(ledger, [r.call_id for r in requests])
    seen: set[str] = set()
    for req in requests:
        if req.call_id in seen:
            report["skipped"]["duplicate"] += 1  # two message ids under one requestId
            continue
        seen.add(req.call_id)
        verdict = proxy.match(req)
        if verdict == MATCHED:
            report["skipped"]["proxied_matched"] += 1
            continue
        if verdict == SAME_SESSION:
            report["skipped"]["proxied_session"] += 1
            continue
        old = existing.get(req.call_id)
        if old is not None:
            _merge_earlier_row(req, old)
            report["updated"] += 1
        # A context set (or inferred by the SessionStart hook) at the time wins; else the branch.
        ctx = history.at(req.session_id, req.agent_id, req.at) or branches.context(req) or {}
        provider = "anthropic" if (req.model or "").startswith("claude") else None
        priced = _price(req, provider)
        cost = priced or 0.0
        record = call_record(
            call_id=req.call_id, source="transcript", started=req.at, context=ctx,
            session_id=req.session_id, agent_id=req.agent_id, model=req.model, provider=provider,
            prompt_tokens=req.prompt_tokens, completion_tokens=req.output_tokens,
            cache_read_tokens=req.cache_read, cache_write_tokens=req.cache_write, cost_usd=cost,
        )
        yield record
        if is_inferred(ctx):
            report["imported"]["inferred_from_branch"] += 1
        if not ctx:
            report.problem("no_context", lambda req=req: _no_context_example(req), cost=cost)
        if priced is None:
            report.unknown_price(req.where, req.model)
        if req.agent_id:
            report["imported"]["subagent_requests"] += 1


def _no_context_example(req: Request) -> str:
    agent = f", agent {req.agent_id}" if req.agent_id else ""
    return f"{req.where} (session {req.session_id}{agent}, {format_time(req.at)})"


def _merge_earlier_row(req: Request, old: dict) -> None:
    """A request split over two runs: keep the larger counts and the earlier start."""
    req.input_tokens = max(req.input_tokens, old["prompt_tokens"] - old["cache_read_tokens"] - old["cache_write_tokens"])
    req.output_tokens = max(req.output_tokens, old["completion_tokens"])
    req.cache_read = max(req.cache_read, old["cache_read_tokens"])
    req.cache_write = max(req.cache_write, old["cache_write_tokens"])
    try:
        req.at = min(req.at, parse_time(old["started_at"], "started_at"))
    except ValueError:
        pass


def _existing(ledger, call_ids: list[str]) -> dict[str, dict]:
    """The ledger rows an earlier import wrote for these call ids."""
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


def _price(req: Request, provider: str | None) -> float | None:
    return price_usage([req.model] if req.model else [], provider, req.prompt_tokens, req.output_tokens,
                       req.cache_read, req.cache_write)
