"""What the production config's tracing costs a call: OpenTelemetry (LiteLLM's `otel` callback and
backlog-ops' `otel_spans`) and Langfuse on vs. off, same run.

    .venv/bin/python bench/tracing_overhead.py [--rounds 4] [--requests 200] [--concurrency 8]

Two real LiteLLM proxies on 127.0.0.1 in front of one local mock provider, both with the tagger and
the spend ledger; one also lists `otel`, `otel_spans` and `langfuse`, exporting to local OTLP
receivers (tests/otlp_receiver.py: a collector's and Langfuse's endpoint). Rounds alternate
between them. Prints throughput and p50/p99 latency (medians over rounds), the ratios, and the
spans each receiver decoded. Bounded in count; every request must succeed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from backlog_ops.context.file_store import ContextStore  # noqa: E402
from backlog_ops.context.scope import Scope  # noqa: E402
from backlog_ops.gateway.process import ProxyProcess  # noqa: E402
from backlog_ops.testing.mock_upstream import MockUpstream  # noqa: E402
from otlp_receiver import OtlpReceiver  # noqa: E402
from proxy_overhead import one_round, pct  # noqa: E402
from proxy_support import OUR_CALLBACKS, write_config  # noqa: E402

TRACING = ["otel", "backlog_ops.callbacks.otel_spans.otel_spans"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, MockUpstream() as upstream, OtlpReceiver() as otel, \
            OtlpReceiver(auth=("pk-lf-bench", "sk-lf-bench")) as langfuse:
        tmp_path = Path(tmp)
        proxies = {}
        for name, traced in (("untraced", False), ("traced", True)):
            home = tmp_path / name / "home"
            ContextStore(home).set(
                {"ticket_id": "FEAT-001", "gate": "implement", "agent_type": "backend", "project": "bench"}, Scope("bench-session"))
            settings = {"success_callback": ["langfuse"], "failure_callback": ["langfuse"]} if traced else {}
            config = write_config(tmp_path / name / "cfg", upstream.base_url, ours=False,
                                  extra_callbacks=OUR_CALLBACKS + (TRACING if traced else []), **settings)
            env = {"LITELLM_MASTER_KEY": "sk-bench-" + name}
            if traced:
                env.update(OTEL_EXPORTER="otlp_http", OTEL_ENDPOINT=otel.url + "/v1/traces", LANGFUSE_HOST=langfuse.url,
                           LANGFUSE_PUBLIC_KEY="pk-lf-bench", LANGFUSE_SECRET_KEY="sk-lf-bench")
            proxies[name] = ProxyProcess(home, config=config, env=env).start()
        try:
            for proc in proxies.values():  # warm-up: first requests pay for lazy imports
                asyncio.run(one_round(proc.base_url, proc.master_key, 50, args.concurrency))
            results: dict[str, list] = {name: [] for name in proxies}
            for _ in range(args.rounds):
                for name, proc in proxies.items():
                    results[name].append(asyncio.run(one_round(proc.base_url, proc.master_key, args.requests, args.concurrency)))
            time.sleep(3)  # the exporters' last batches
        finally:
            for proc in proxies.values():
                proc.stop()
        ours = sum(1 for s in otel.spans if s["name"] == "backlog.llm_call")
        generations = sum(1 for s in langfuse.spans if s["attributes"].get("langfuse.observation.type") == "generation")

    summary = {}
    for name, rounds in results.items():
        summary[name] = (statistics.median(r[0] for r in rounds), statistics.median(pct(r[1], 0.50) for r in rounds) * 1000,
                         statistics.median(pct(r[1], 0.99) for r in rounds) * 1000)
    off, on = summary["untraced"], summary["traced"]
    print(f"tracing overhead: {args.rounds} alternating rounds x {args.requests} requests, concurrency {args.concurrency}, mock upstream")
    print(f"{'proxy':10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (rps, p50, p99) in summary.items():
        print(f"{name:10} {rps:8.1f} {p50:8.1f} {p99:8.1f}")
    print(f"throughput ratio (traced / untraced): {on[0] / off[0]:.3f}   p50 ratio: {on[1] / off[1]:.3f}   p99 ratio: {on[2] / off[2]:.3f}")
    sent = args.rounds * args.requests + 50
    print(f"decoded: {ours} backlog.llm_call spans, {len(otel.spans)} OTLP spans in all, {generations} Langfuse generations "
          f"(calls sent to the traced proxy: {sent})")


if __name__ == "__main__":
    main()
