"""The rendered production gateway config in the real LiteLLM proxy (`backlog-ops proxy`), with the
mock provider upstream and the real Redis on 127.0.0.1:6379.

One proxy serves the whole module: it is started from `backlog-ops config render` of a test
backlog.config.json, with only the upstream address and key replaced, so what runs is the
production routing, fallbacks, cooldowns, tag routing, Redis cache, callbacks and ticket policy.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from backlog_ops.context.scope import Scope
from backlog_ops.ledger import SqliteLedger
from backlog_ops.testing.mock_upstream import Reply
from backlog_ops.context.file_store import ContextStore

from conftest import require_service
from proxy_support import admin_client, chat, ok, rendered_gateway, upstream_models, wait_for_rows

pytestmark = [pytest.mark.proxy, pytest.mark.services]

PROJECT = "gw-test"
HAIKU, SONNET, OPUS = "claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-6"
PROMPT, COMPLETION = 1000, 200  # what the mock provider (conftest's `upstream`) reports for each call
# LiteLLM's list prices for 1000 prompt + 200 completion tokens
COST = {HAIKU: 1000 * 1e-6 + 200 * 5e-6, SONNET: 1000 * 3e-6 + 200 * 15e-6, OPUS: 1000 * 5e-6 + 200 * 25e-6}
MAX_ESCALATIONS = 2


def backlog_config(namespace: str) -> dict:
    return {
        "project": {"name": PROJECT},
        "llmOps": {
            "gateway": {"providers": ["anthropic"]},
            "routing": {"maxEscalationsPerTicket": MAX_ESCALATIONS, "criticalTags": ["critical"]},
            "cachePolicy": {"responseCache": {"enabled": True, "type": "redis", "ttlSeconds": 600, "namespace": namespace}},
            "budgets": {"perTicketUSD": 1.0, "tickets": {"BUD-1": 0.003}},
        },
    }


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream):
    require_service("Redis", "127.0.0.1", 6379)
    with rendered_gateway(tmp_path_factory.mktemp("gateway"), backlog_config, upstream.base_url,
                          config_name="proxy.yaml") as proc:
        proc.store = ContextStore(proc.home)
        yield proc


@pytest.fixture(scope="module")
def client(gateway):
    with admin_client(gateway) as c:
        yield c


def working_on(gateway, ticket: str) -> dict:
    """A fresh Claude Code session working on `ticket`; returns its request headers."""
    sid = str(uuid.uuid4())
    gateway.store.set(
        {"ticket_id": ticket, "gate": "implement", "agent_type": "backend", "project": PROJECT}, Scope(sid)
    )
    return {"x-claude-code-session-id": sid}


def wait_for_success(ledger_path: Path, call_ids: list[str], timeout: float = 15.0) -> dict[str, dict]:
    """Rows once each is a success: after a fallback, LiteLLM logs the failed attempt first."""
    deadline = time.monotonic() + timeout
    while True:
        rows = wait_for_rows(ledger_path, call_ids, timeout=timeout)
        if all(r["status"] == "success" for r in rows.values()) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


# -- routing, fallbacks, tag routing -----------------------------------------------------------------


def test_each_alias_routes_to_its_configured_model(gateway, client, upstream) -> None:
    headers = working_on(gateway, "GW-ROUTE")
    calls = {}
    for alias, model in (("cheap", HAIKU), ("balanced", SONNET), ("frontier", OPUS)):
        before = len(upstream.requests)
        calls[alias] = ok(chat(client, alias, headers))
        assert upstream_models(upstream, before) == [model], f"{alias} should be served by {model}"
    rows = wait_for_rows(gateway.ledger_path, list(calls.values()))
    for alias, call_id in calls.items():
        row = rows[call_id]
        assert (row["model_group"], row["ticket_id"], row["project"]) == (alias, "GW-ROUTE", PROJECT)
        served = {"cheap": HAIKU, "balanced": SONNET, "frontier": OPUS}[alias]
        assert row["cost_usd"] == pytest.approx(COST[served], rel=1e-6)


def test_claude_code_messages_stream_through_an_alias(gateway, client, upstream) -> None:
    headers = {**working_on(gateway, "GW-MSG"), "anthropic-version": "2023-06-01"}
    before = len(upstream.requests)
    payload = {"model": "cheap", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": f"x {uuid.uuid4()}"}]}
    with client.stream("POST", "/v1/messages", headers=headers, json=payload) as r:
        r.read()
        assert r.status_code == 200, r.text
        assert "message_stop" in r.text
        call_id = r.headers["x-litellm-call-id"]
    assert upstream_models(upstream, before) == [HAIKU]
    row = wait_for_rows(gateway.ledger_path, [call_id])[call_id]
    assert (row["model_group"], row["ticket_id"]) == ("cheap", "GW-MSG")


def test_failing_cheap_deployment_falls_back_to_balanced(gateway, client, upstream) -> None:
    headers = working_on(gateway, "GW-FALLBACK")
    # Enough failures to exhaust num_retries (2) on the cheap deployment: 3 attempts, which
    # stays within allowed_fails (3), so the deployment is not cooled down by this test.
    upstream.script(Reply.server_error(), model=HAIKU, times=3)
    before = len(upstream.requests)
    call_id = ok(chat(client, "cheap", headers))
    assert upstream_models(upstream, before) == [HAIKU, HAIKU, HAIKU, SONNET]
    row = wait_for_success(gateway.ledger_path, [call_id])[call_id]
    assert (row["status"], row["model_group"]) == ("success", "balanced")
    assert row["cost_usd"] == pytest.approx(COST[SONNET], rel=1e-6)


@pytest.mark.parametrize(("alias", "first", "then", "group"), [("cheap", HAIKU, SONNET, "balanced"), ("balanced", SONNET, OPUS, "frontier")])
def test_context_window_error_falls_back_per_context_window_fallbacks(gateway, client, upstream, alias, first, then, group) -> None:
    headers = working_on(gateway, "GW-CONTEXT")
    upstream.script(Reply.context_window_exceeded(), model=first)
    before = len(upstream.requests)
    call_id = ok(chat(client, alias, headers))
    # An overflow is not retried on the same model: straight to the bigger context window.
    assert upstream_models(upstream, before) == [first, then]
    assert wait_for_success(gateway.ledger_path, [call_id])[call_id]["model_group"] == group


def test_content_policy_refusal_falls_back_per_content_policy_fallbacks_and_never_to_frontier(gateway, client, upstream) -> None:
    headers = working_on(gateway, "GW-POLICY")
    # The provider refuses the content on cheap: content_policy_fallbacks (cheap: [balanced])
    # sends it to balanced at once, no retry of the same model.
    upstream.script(Reply.content_policy_violation(), model=HAIKU)
    before = len(upstream.requests)
    call_id = ok(chat(client, "cheap", headers))
    assert upstream_models(upstream, before) == [HAIKU, SONNET]
    assert wait_for_success(gateway.ledger_path, [call_id])[call_id]["model_group"] == "balanced"

    # Refused on balanced too: the client gets the refusal. The general fallbacks (cheap:
    # [balanced, frontier]) would have gone on to frontier; with content_policy_fallbacks in
    # the config, a refused prompt never escalates to the dearest model.
    upstream.script(Reply.content_policy_violation(), model=HAIKU)
    upstream.script(Reply.content_policy_violation(), model=SONNET)
    before = len(upstream.requests)
    r = chat(client, "cheap", headers)
    assert upstream_models(upstream, before) == [HAIKU, SONNET]
    assert r.status_code == 400, r.text
    assert "content filtering policy" in r.json()["error"]["message"]


def test_critical_traffic_stays_on_frontier(gateway, client, upstream) -> None:
    headers = working_on(gateway, "GW-CRITICAL")
    before = len(upstream.requests)
    critical = ok(chat(client, "cheap", {**headers, "x-litellm-tags": "critical"}))
    assert upstream_models(upstream, before) == [OPUS]
    before = len(upstream.requests)
    in_body = ok(chat(client, "balanced", headers, metadata={"tags": ["critical"]}))
    assert upstream_models(upstream, before) == [OPUS]
    before = len(upstream.requests)
    ordinary = ok(chat(client, "cheap", {**headers, "x-litellm-tags": "interactive"}))
    assert upstream_models(upstream, before) == [HAIKU]
    rows = wait_for_rows(gateway.ledger_path, [critical, in_body, ordinary])
    assert [rows[c]["model_group"] for c in (critical, in_body, ordinary)] == ["frontier", "frontier", "cheap"]


# -- the Redis response cache --------------------------------------------------------------------------


def test_repeated_request_is_a_redis_cache_hit_recorded_at_zero_cost(gateway, client, upstream) -> None:
    import redis

    headers = working_on(gateway, "GW-CACHE")
    content = f"cache me {uuid.uuid4()}"
    before = len(upstream.requests)
    first = chat(client, "cheap", headers, content=content)
    second = chat(client, "cheap", headers, content=content)
    first_id, second_id = ok(first), ok(second)
    assert upstream_models(upstream, before) == [HAIKU], "the repeat must not reach the provider"
    assert second.headers.get("x-litellm-cache-key")
    assert second.json()["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
    keys = list(redis.Redis(host="127.0.0.1", port=6379).scan_iter(match=f"{gateway.namespace}*", count=1000))
    assert keys, f"no key under the configured namespace {gateway.namespace} in Redis"

    rows = wait_for_rows(gateway.ledger_path, [first_id, second_id])
    assert (rows[first_id]["cache_hit"], rows[first_id]["cost_usd"]) == (0, pytest.approx(COST[HAIKU], rel=1e-6))
    hit = rows[second_id]
    assert (hit["cache_hit"], hit["cost_usd"], hit["ticket_id"]) == (1, 0.0, "GW-CACHE")
    assert hit["saved_cost_usd"] == pytest.approx(COST[HAIKU], rel=1e-6)


# -- per-ticket policy ---------------------------------------------------------------------------------


def refusal_message(r: httpx.Response) -> str:
    assert r.status_code == 402, f"expected a budget refusal, got {r.status_code}: {r.text}"
    body = r.json()
    return body["error"]["message"]


def test_ticket_over_budget_is_refused_and_one_under_budget_is_not(gateway, client, upstream) -> None:
    over, under = working_on(gateway, "BUD-1"), working_on(gateway, "BUD-2")
    done = [ok(chat(client, "cheap", over)), ok(chat(client, "cheap", over))]  # $0.002 each, budget $0.003
    wait_for_rows(gateway.ledger_path, done)
    before = len(upstream.requests)
    refused = chat(client, "cheap", over)
    message = refusal_message(refused)
    assert len(upstream.requests) == before, "a refused call must not reach the provider"
    for part in ("BUD-1", "gw-test", "$0.0040", "$0.0030", 'llmOps.budgets.tickets["BUD-1"]', "backlog.config.json", "config render"):
        assert part in message, f"{part!r} missing from: {message}"
    # The refusal never reached a provider: it is not a call, so the ledger has no row for it.
    refused_id = refused.headers.get("x-litellm-call-id")
    # The writer keeps order: once a later call's row is in, a row for the refusal would be too.
    wait_for_rows(gateway.ledger_path, [ok(chat(client, "cheap", working_on(gateway, "BUD-4")))])
    with SqliteLedger(gateway.ledger_path) as ledger:
        assert ledger.rows("WHERE ticket_id = 'BUD-1' AND status = 'failure'") == []
        if refused_id:
            assert ledger.rows("WHERE call_id = ?", (refused_id,)) == []

    # Claude Code's route gets the same message in Anthropic's error shape.
    r = client.post(
        "/v1/messages",
        headers={**over, "anthropic-version": "2023-06-01"},
        json={"model": "cheap", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 402 and r.json()["error"]["message"] == message.replace("$0.0040", "$0.0040")

    ok(chat(client, "cheap", under))  # another ticket of the project is not affected
    ok(chat(client, "cheap", working_on(gateway, "BUD-3")))

    # Raising the limit as the message says takes effect without restarting the proxy.
    config = yaml.safe_load(gateway.config_path.read_text())
    config["backlog_ops"]["policy"]["projects"][PROJECT]["ticket_budgets_usd"]["BUD-1"] = 0.05
    gateway.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = chat(client, "cheap", over)
        if r.status_code == 200:
            break
        time.sleep(0.3)
    assert r.status_code == 200, r.text


def test_escalations_are_capped_when_requests_arrive_at_once(gateway, client, upstream) -> None:
    headers = working_on(gateway, "ESC-1")
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: chat(client, "frontier", headers), range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * MAX_ESCALATIONS + [402] * (6 - MAX_ESCALATIONS), [r.text for r in responses]
    message = next(refusal_message(r) for r in responses if r.status_code == 402)
    for part in ("ESC-1", f"{MAX_ESCALATIONS} escalation", "frontier", "llmOps.routing.maxEscalationsPerTicket"):
        assert part in message, f"{part!r} missing from: {message}"
    # Cheaper aliases stay open to the ticket, and critical-tagged calls count as escalations.
    ok(chat(client, "cheap", headers))
    assert chat(client, "cheap", {**headers, "x-litellm-tags": "critical"}).status_code == 402
    # After a restart the count comes from the ledger: every success was recorded as frontier.
    ids = [r.headers["x-litellm-call-id"] for r in responses if r.status_code == 200]
    rows = wait_for_rows(gateway.ledger_path, ids)
    assert {r["model_group"] for r in rows.values()} == {"frontier"}


def test_calls_without_a_ticket_are_never_limited(gateway, client) -> None:
    gateway.store.clear()
    for _ in range(MAX_ESCALATIONS + 1):
        ok(chat(client, "frontier"))


# -- cooldown: last, since it takes the balanced deployment out of rotation for cooldown_time ----------


def test_deployment_that_keeps_failing_is_cooled_down_after_allowed_fails(gateway, client, upstream) -> None:
    headers = working_on(gateway, "GW-COOLDOWN")
    upstream.script(Reply.server_error(), model=SONNET, times=50)
    allowed_fails, retries = 3, 2  # router_settings of config/production.yaml
    try:
        per_request = []
        for _ in range(allowed_fails + 3):
            before = len(upstream.requests)
            ok(chat(client, "balanced", headers))  # every request is still answered, by the fallback
            per_request.append(upstream_models(upstream, before))
        # In the proxy a request counts as one failure of the deployment however many retries it
        # made: allowed_fails failed requests are tolerated, the next failure cools it down...
        for attempts in per_request[:allowed_fails]:
            assert attempts == [SONNET] * (retries + 1) + [OPUS], per_request
        assert per_request[allowed_fails] == [SONNET, OPUS], per_request
        # ...and from then on requests go straight to the fallback without touching it.
        for attempts in per_request[allowed_fails + 1:]:
            assert attempts == [OPUS], per_request
    finally:
        upstream.clear()


def test_policy_ran_without_internal_errors(gateway) -> None:
    log = gateway.log()
    for bad in ("ticket policy skipped", "no price for", "ignoring the policy", "could not settle", "could not release"):
        assert bad not in log, f"proxy log has {bad!r}"
    assert "ticket policy for gw-test" in log or "refused" in log
