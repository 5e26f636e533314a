"""Several processes set and clear contexts while others read without locks."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

WRITERS = 4
OPS_PER_WRITER = 60
READERS = 2


def _writer(home: str, index: int, ops: int) -> None:
    os.environ["BACKLOG_HOME"] = home
    from backlog_ops.context.scope import Scope
    from backlog_ops.context.file_store import ContextStore

    store = ContextStore()
    # Writers share the global scope and each have their own session and agent scope.
    scopes = [Scope(), Scope(f"sess-{index}"), Scope(f"sess-{index}", f"agent-{index}")]
    for i in range(ops):
        scope = scopes[i % len(scopes)]
        if i % 5 == 4:
            store.clear(scope)
        else:
            store.set({"ticket_id": f"T-{index}-{i}", "gate": "implement", "agent_type": "backend"}, scope)


def _reader(home: str, stop: "mp.Event", result: "mp.Queue") -> None:
    os.environ["BACKLOG_HOME"] = home
    from backlog_ops.context.resolver import ContextResolver

    paths = [Path(home) / "current-context.json"] + [Path(home) / "contexts" / f"sess-{i}.json" for i in range(WRITERS)]
    reads = torn = 0
    warnings: list[str] = []
    resolver = ContextResolver(warn=warnings.append)
    deadline = time.time() + 120  # bounded even if the test process dies
    while not stop.is_set() and time.time() < deadline:
        for path in paths:
            try:
                raw = path.read_bytes()  # no lock taken
            except FileNotFoundError:
                continue
            reads += 1
            try:
                json.loads(raw)
            except ValueError:
                torn += 1
        resolver.resolve("sess-0", "agent-0")
    result.put((reads, torn, warnings))


def test_concurrent_writers_and_lock_free_readers(backlog_home: Path) -> None:
    ctx = mp.get_context("spawn")
    result: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    readers = [ctx.Process(target=_reader, args=(str(backlog_home), stop, result)) for _ in range(READERS)]
    writers = [ctx.Process(target=_writer, args=(str(backlog_home), i, OPS_PER_WRITER)) for i in range(WRITERS)]
    for p in readers + writers:
        p.start()
    for p in writers:
        p.join(120)
        assert p.exitcode == 0
    stop.set()
    outcomes = [result.get(timeout=60) for _ in readers]
    for p in readers:
        p.join(10)

    assert sum(reads for reads, _, _ in outcomes) > 0
    assert all(torn == 0 for _, torn, _ in outcomes), "a lock-free reader saw a torn file"
    assert all(not warnings for _, _, warnings in outcomes), outcomes

    history = (backlog_home / "context-history.jsonl").read_text().splitlines()
    assert len(history) == WRITERS * OPS_PER_WRITER, "the history lost or duplicated entries"
    entries = [json.loads(line) for line in history]
    for i in range(WRITERS):
        mine = [e for e in entries if e["session_id"] == f"sess-{i}" or (e["new"] or {}).get("ticket_id", "").startswith(f"T-{i}-")]
        assert mine, f"writer {i} left no history"
    leftovers = [p for p in backlog_home.rglob("*.tmp")]
    assert leftovers == [], "temporary files were left behind"
