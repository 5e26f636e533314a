"""Proxy throughput and latency with the backlog-ops callbacks vs. the bare proxy, same run.

    .venv/bin/python bench/proxy_overhead.py [--rounds 6] [--requests 300] [--concurrency 8]

Two real LiteLLM proxies on 127.0.0.1 in front of one local mock provider: one with the tagger
and the spend ledger, one with no callbacks. Rounds alternate between them so drift on the
machine hits both alike. Each round sends a fixed number of /v1/chat/completions requests with a
session header whose context is set, at fixed concurrency. Prints per-proxy throughput and
p50/p99 latency (medians over rounds) and the ratios. Bounded in count; every request must
succeed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from backlog_ops.context.scope import Scope  # noqa: E402
from backlog_ops.testing.mock_upstream import MockUpstream  # noqa: E402
from backlog_ops.context.file_store import ContextStore
from proxy_support import start_proxy, write_config  # noqa: E402


async def one_round(base: str, key: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                r = await client.post(
                    "/v1/chat/completions",
                    headers={"x-claude-code-session-id": "bench-session"},
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"request {i}"}]},
                )
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"request failed: {r.status_code} {r.text[:200]}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return requests / elapsed, latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, MockUpstream() as upstream:
        tmp_path = Path(tmp)
        proxies = {}
        for name, ours in (("bare", False), ("backlog-ops", True)):
            home = tmp_path / name / "home"
            ContextStore(home).set(
                {"ticket_id": "FEAT-001", "gate": "implement", "agent_type": "backend", "project": "bench"}, Scope("bench-session")
            )
            proxies[name] = start_proxy(home, write_config(tmp_path / name / "cfg", upstream.base_url, ours=ours))
        try:
            for proc in proxies.values():  # warm-up: first requests pay for lazy imports
                asyncio.run(one_round(proc.base_url, proc.master_key, 50, args.concurrency))
            results: dict[str, list[tuple[float, list[float]]]] = {name: [] for name in proxies}
            for _ in range(args.rounds):
                for name, proc in proxies.items():
                    results[name].append(asyncio.run(one_round(proc.base_url, proc.master_key, args.requests, args.concurrency)))
        finally:
            for proc in proxies.values():
                proc.stop()
        ledger_rows = None
        try:
            from backlog_ops.ledger import SqliteLedger

            with SqliteLedger(tmp_path / "backlog-ops" / "home" / "ledger.db") as ledger:
                ledger_rows = len(ledger.rows("WHERE ticket_id = 'FEAT-001'"))
        except Exception as exc:  # noqa: BLE001 - report, do not hide
            ledger_rows = f"unreadable: {exc}"

    summary = {}
    for name, rounds in results.items():
        summary[name] = (
            statistics.median(r[0] for r in rounds),
            statistics.median(pct(r[1], 0.50) for r in rounds) * 1000,
            statistics.median(pct(r[1], 0.99) for r in rounds) * 1000,
        )
    bare, ours = summary["bare"], summary["backlog-ops"]
    print(f"proxy overhead: {args.rounds} alternating rounds x {args.requests} requests, concurrency {args.concurrency}, mock upstream")
    print(f"{'proxy':12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (rps, p50, p99) in summary.items():
        print(f"{name:12} {rps:8.1f} {p50:8.1f} {p99:8.1f}")
    print(f"throughput ratio (backlog-ops / bare): {ours[0] / bare[0]:.3f}   p50 ratio: {ours[1] / bare[1]:.3f}   p99 ratio: {ours[2] / bare[2]:.3f}")
    expected = (args.rounds * args.requests) + 50
    print(f"ledger rows tagged FEAT-001: {ledger_rows} (expected {expected})")


if __name__ == "__main__":
    main()
