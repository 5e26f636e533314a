"""MCP server: `set_context` round trip over stdio, and cold start to first answer.

    .venv/bin/python bench/mcp_roundtrip.py [--calls 300] [--starts 5]

Cold start: from spawning `backlog-ops mcp` (as Claude Code does, over stdio) to the answer of
the first tool call, which includes the initialize handshake and every import. Round trip: one
`tools/call set_context` request to its answer on a warm server, through the real `mcp` client
(JSON-RPC framing, validation, the store's locked atomic write with fsync, history, audit copy).
Tickets alternate so every call really writes. Times in milliseconds (goal: p50 <= 5 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters


def params(home: str, project: str) -> StdioServerParameters:
    env = {**os.environ, "BACKLOG_HOME": home, "CLAUDE_CODE_SESSION_ID": "bench-session"}
    return StdioServerParameters(command=str(Path(sys.executable).parent / "backlog-ops"), args=["mcp"], env=env, cwd=project)


async def cold_start(p: StdioServerParameters) -> float:
    start = time.perf_counter()
    async with Client(p, read_timeout_seconds=60) as client:
        result = await client.call_tool("get_context", {})
        elapsed = time.perf_counter() - start
        assert not result.is_error, result
    return elapsed * 1000


async def round_trips(p: StdioServerParameters, calls: int) -> list[float]:
    out = []
    async with Client(p, read_timeout_seconds=60) as client:
        for i in range(20):  # warm up
            await client.call_tool("set_context", {"ticket_id": f"WARM-{i % 2}", "gate": "plan", "agent_type": "backend"})
        for i in range(calls):
            args = {"ticket_id": f"FEAT-{i % 2 + 1}", "gate": "implement", "agent_type": "backend"}
            start = time.perf_counter()
            result = await client.call_tool("set_context", args)
            out.append((time.perf_counter() - start) * 1000)
            assert not result.is_error, result
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "my-api"
        project.mkdir()
        p = params(str(Path(tmp) / "home"), str(project))
        starts = [anyio.run(cold_start, p) for _ in range(args.starts)]
        trips = anyio.run(round_trips, p, args.calls)
    print(f"MCP server over stdio; {sys.executable} (Python {sys.version.split()[0]})")
    print(f"cold start to first answer ({args.starts} starts): median {statistics.median(starts):.0f} ms, "
          f"min {min(starts):.0f} ms, max {max(starts):.0f} ms")
    print(f"set_context round trip ({args.calls} calls): p50 {statistics.median(trips):.2f} ms, "
          f"p90 {pct(trips, 0.9):.2f} ms, p99 {pct(trips, 0.99):.2f} ms")


if __name__ == "__main__":
    main()
