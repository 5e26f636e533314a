"""Context lookup cost per LLM call: backlog-ops' cached resolver vs. the design's read-and-parse.

    .venv/bin/python bench/context_lookup.py [--calls 100000] [--repeats 5]

The design's TicketTagger read and parsed ~/.backlog-toolkit/current-context.json on every call.
Ours stats the file and reuses the parsed context while (inode, mtime, size) are unchanged.
Both run in this process on the same files, alternating, and the median of the repeats is
reported in microseconds per call, with the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def design_read(path: Path) -> list[str]:
    """The design document's _read_context + tag building, verbatim in behaviour."""
    try:
        ctx = json.loads(path.read_text()) if path.exists() else {}
    except Exception:
        ctx = {}
    tags = []
    for key, prefix in [("ticket_id", "ticket"), ("gate", "gate"), ("project", "project"), ("agent_type", "agent"), ("skill", "skill")]:
        if ctx.get(key):
            tags.append(f"{prefix}:{ctx[key]}")
    return tags


def per_call_us(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BACKLOG_HOME"] = tmp
        os.environ.pop("BACKLOG_CONTEXT_FILE", None)
        from backlog_ops.context.scope import Scope
        from backlog_ops.context.resolver import ContextResolver
        from backlog_ops.context.file_store import ContextStore

        store = ContextStore()
        ctx = {"ticket_id": "FEAT-001", "gate": "implement", "agent_type": "backend", "project": "my-api", "skill": "backlog-implementer"}
        store.set(ctx)
        store.set(ctx, Scope("session-1"))
        time.sleep(0.2)  # past the racy window: a steady state, as between two context changes
        resolver = ContextResolver(store)
        assert resolver.resolve("session-1").tags == tuple(design_read(store.path(Scope("session-1"))))

        cases = {
            "design: read+parse every call": lambda: design_read(store.global_path),
            "ours: session context": lambda: resolver.resolve("session-1"),
            "ours: global via agent+session miss": lambda: resolver.resolve("session-2", "agent-9"),
        }
        results: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, fn in cases.items():
                results[name].append(per_call_us(fn, args.calls))

    baseline = statistics.median(results["design: read+parse every call"])
    print(f"context lookup, {args.calls} calls x {args.repeats} repeats, median us/call (python {sys.version.split()[0]})")
    print(f"{'case':40} {'us/call':>9} {'vs design':>10}")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"{name:40} {med:9.2f} {baseline / med:9.1f}x")


if __name__ == "__main__":
    main()
