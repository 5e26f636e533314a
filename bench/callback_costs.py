"""Per-call CPU cost of two proxy-side callbacks, each against a baseline measured in the same run.

    .venv/bin/python bench/callback_costs.py [--calls 20000]

- Ticket policy: `PolicyEngine.check` + `settle` for a ticket with a budget and an escalation
  limit, against a real SQLite ledger of 20,000 rows over 50 tickets (re-read at most every
  2 s per ticket, as in the proxy). Baseline: the same call for a project with no limits (the
  path every unlimited request takes).
- Gateway overall budget (llmOps.budgets.monthlyUSD): `GatewaySpendGuard.check` + `settle`
  against the same ledger (the sum of the period's proxy rows, re-read at most every 10 s, as in
  the proxy). Baseline: the unlimited-project policy call above.
- Quota events: building a `quota.updated` event and appending it to the buffer (NATS is not
  reachable, so nothing is published and the buffer is what is measured). Baseline: building the
  ledger row the event is made from (`record_from_logging_object`), which the spend ledger pays
  anyway.
Medians of 5 repeats, microseconds per call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def per_call_us(fn, calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    os.environ["BACKLOG_HOME"] = tmp
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ["BACKLOG_NATS_URL"] = "nats://127.0.0.1:1"  # unreachable: measure the buffer, not a publish

    from backlog_ops.gateway.quota_events import build_event
    from backlog_ops.gateway.quota_publisher import QuotaEventPublisher
    from backlog_ops.common.times import format_time
    from backlog_ops.policy.engine import PolicyEngine, ledger_query_reader, ledger_usage_reader
    from backlog_ops.policy.gateway_budget import GatewayBudgets, GatewaySpendGuard
    from backlog_ops.policy.limits import parse_policy_section
    from backlog_ops.capture.proxy_record import record_from_logging_object
    from backlog_ops.ledger import CallRecord, SqliteLedger

    ledger_path = Path(tmp) / "ledger.db"
    with SqliteLedger(ledger_path) as ledger:
        ledger.record_many(
            CallRecord(f"c{i}", format_time(time.time() - i), "success", ticket_id=f"FEAT-{i % 50}", project="bench",
                       model_group="balanced", cost_usd=0.001, prompt_tokens=100, completion_tokens=10)
            for i in range(20_000)
        )
    policies = parse_policy_section({"policy": {"projects": {
        "bench": {"ticket_budget_usd": 1000.0, "max_escalations_per_ticket": 10_000_000},
        "open": {},
    }}})
    engine = PolicyEngine(ledger_usage_reader(lambda: SqliteLedger(ledger_path)))
    limited, unlimited = policies["bench"], policies["open"]

    def policy_limited(i: int) -> None:
        call_id = f"p{i}"
        engine.check(call_id, f"FEAT-{i % 50}", limited, escalation=i % 10 == 0, estimate_usd=0.002)
        engine.settle(call_id, 0.002, model_group="balanced")

    def policy_unlimited(i: int) -> None:
        engine.check(f"u{i}", f"FEAT-{i % 50}", unlimited, escalation=False, estimate_usd=0.002)

    guard = GatewaySpendGuard(ledger_query_reader(lambda led, since, ids: led.gateway_spend(since, ids),
                                                  lambda: SqliteLedger(ledger_path)))
    monthly = GatewayBudgets(monthly_usd=1_000_000.0, period="30d")

    def gateway_budget(i: int) -> None:
        guard.check(monthly, None)
        guard.settle(f"g{i}", 0.002)

    slo = {
        "litellm_call_id": "x", "startTime": 1.7e9, "endTime": 1.7e9 + 0.5, "model": "openai/gpt-4o-mini",
        "model_group": "gpt-4o-mini", "custom_llm_provider": "openai", "prompt_tokens": 1000, "completion_tokens": 200,
        "response_cost": 0.00027, "request_tags": ["ticket:FEAT-1", "gate:implement", "agent:backend"],
        "metadata": {"spend_logs_metadata": {"backlog_session_id": "s1"}},
    }
    events = QuotaEventPublisher(buffer=10_000_000)

    def quota_event(i: int) -> None:
        events.enqueue(build_event({**slo, "litellm_call_id": f"q{i}"}, status="success"))

    def ledger_row(i: int) -> None:
        record_from_logging_object({**slo, "litellm_call_id": f"r{i}"}, status="success")

    cases = {"policy: unlimited project (baseline)": policy_unlimited, "policy: budget + escalation limit": policy_limited,
             "gateway overall budget: check + settle": gateway_budget,
             "ledger row only (baseline)": ledger_row, "quota event: build + enqueue": quota_event}
    results = {name: [] for name in cases}
    for _ in range(5):
        for name, fn in cases.items():
            results[name].append(per_call_us(fn, args.calls))
    medians = {name: statistics.median(v) for name, v in results.items()}
    print(f"callback costs, {args.calls} calls x 5 repeats, median us per call")
    for name, value in medians.items():
        print(f"  {name:42} {value:8.1f}")
    print(f"policy check over its baseline: +{medians['policy: budget + escalation limit'] - medians['policy: unlimited project (baseline)']:.1f} us")
    print(f"gateway budget over its baseline: +{medians['gateway overall budget: check + settle'] - medians['policy: unlimited project (baseline)']:.1f} us")
    print(f"quota event over the ledger row: +{medians['quota event: build + enqueue'] - medians['ledger row only (baseline)']:.1f} us")
    events.close(timeout=0)


if __name__ == "__main__":
    main()
