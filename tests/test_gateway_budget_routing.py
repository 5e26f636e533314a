"""Gateway-wide budgets and LiteLLM tag routing in the real proxy, rendered from a backlog.config.json.

One proxy serves the module (`config render` output, only the upstream address and key replaced,
the mock provider behind it, the real Redis for the response cache and the router's counters):

- tag routing (llmOps.routing.tagRoutes): `cheap` requests tagged `offline` are served by their
  own model, every other `cheap` request by the main one. With tag filtering off, LiteLLM would
  shuffle both kinds over both deployments.
- per-provider budget (perProviderUSD, LiteLLM's provider_budget_config): once spent, the
  provider's deployments are skipped and the call is refused with our message.
- per-alias budget (perAliasUSD, LiteLLM's per-deployment max_budget): a spent `cheap` falls back to
  `balanced` (LiteLLM's behaviour); a spent `frontier` (no fallback) is refused with our message.
- the overall budget (monthlyUSD): enforced from the ledger by the ticket-policy callback
  (LiteLLM's max_budget needs its database, which cannot run here); last, since it stops all calls.
"""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
import yaml

from backlog_ops.ledger import SqliteLedger

from conftest import require_service
from proxy_support import admin_client, chat, ok, rendered_gateway, upstream_models, wait_for_rows

pytestmark = [pytest.mark.proxy, pytest.mark.services]

PROJECT = "gw-rows"
HAIKU, SONNET, OPUS, MINI = "claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-6", "gpt-4o-mini"
# LiteLLM's list prices for the mock's 1000 prompt + 200 completion tokens
COST = {HAIKU: 0.002, SONNET: 0.006, OPUS: 0.01, MINI: 1000 * 0.15e-6 + 200 * 0.6e-6}
CHEAP_BUDGET, FRONTIER_BUDGET, OPENAI_BUDGET, MONTHLY = 0.02, 0.01, 0.003, 0.12


def backlog_config(namespace: str) -> dict:
    return {
        "project": {"name": PROJECT},
        "llmOps": {
            "gateway": {"providers": ["anthropic", "openai"]},
            "routing": {"maxEscalationsPerTicket": None, "tagRoutes": {"offline": {"cheap": f"openai/{MINI}"}}},
            "cachePolicy": {"responseCache": {"enabled": True, "type": "redis", "ttlSeconds": 600, "namespace": namespace}},
            "budgets": {
                "perTicketUSD": None,
                "monthlyUSD": MONTHLY,
                "perAliasUSD": {"cheap": CHEAP_BUDGET, "frontier": FRONTIER_BUDGET},
                "perProviderUSD": {"openai": OPENAI_BUDGET},
                "period": "30d",
            },
        },
    }


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream):
    require_service("Redis", "127.0.0.1", 6379)
    with rendered_gateway(tmp_path_factory.mktemp("gwrows"), backlog_config, upstream.base_url) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(gateway):
    with admin_client(gateway) as c:
        yield c


def refusal(r: httpx.Response) -> str:
    assert r.status_code == 402, f"expected a budget refusal, got {r.status_code}: {r.text}"
    return r.json()["error"]["message"]


def until_refused(client, upstream, model: str, limit: int, **kwargs) -> tuple[httpx.Response, list[list[str]]]:
    """Send calls for `model` until one is refused (at most `limit`): the refusal, and what each call reached."""
    reached = []
    for _ in range(limit):
        before = len(upstream.requests)
        r = chat(client, model, **kwargs)
        reached.append(upstream_models(upstream, before))
        if r.status_code != 200:
            return r, reached
    raise AssertionError(f"{limit} calls to {model} and none refused: {reached}")


# -- tag routing -----------------------------------------------------------------------------------


def test_tagged_requests_go_to_their_own_deployment_and_the_rest_to_the_default(gateway, client, upstream) -> None:
    served = {"offline": [], "untagged": [], "interactive": []}
    for _ in range(5):
        for kind in served:
            headers = {} if kind == "untagged" else {"x-litellm-tags": kind}
            before = len(upstream.requests)
            ok(chat(client, "cheap", headers))
            served[kind] += upstream_models(upstream, before)
    # With enable_tag_filtering off, LiteLLM would shuffle these 15 calls over both deployments.
    assert served == {"offline": [MINI] * 5, "untagged": [HAIKU] * 5, "interactive": [HAIKU] * 5}
    # Body tags route the same way (what a skill's SDK call sends).
    before = len(upstream.requests)
    call_id = ok(chat(client, "cheap", metadata={"tags": ["offline"]}))
    assert upstream_models(upstream, before) == [MINI]
    row = wait_for_rows(gateway.ledger_path, [call_id])[call_id]
    assert (row["model_group"], row["model"].split("/")[-1]) == ("cheap", MINI)


# -- per-provider budget (LiteLLM's router) ---------------------------------------------------------


def test_a_provider_over_its_budget_is_refused_with_the_key_to_raise(gateway, client, upstream) -> None:
    r, reached = until_refused(client, upstream, MINI, limit=30)
    message = refusal(r)
    assert reached[-1] == [], "the refused call must not reach the provider"
    # Every openai call so far counts (the tag-routing test's too), and none past the budget.
    spent = COST[MINI] * upstream_models(upstream).count(MINI)
    assert OPENAI_BUDGET <= spent < OPENAI_BUDGET + COST[MINI], spent
    for part in ("provider openai has reached its budget", "$0.0030", "llmOps.budgets.perProviderUSD.openai",
                 str(gateway.project_config.resolve()), "restart the proxy"):
        assert part in message, f"{part!r} missing from: {message}"
    # The provider's other door is shut too: `cheap` tagged offline no longer reaches openai.
    before = len(upstream.requests)
    ok(chat(client, "cheap", {"x-litellm-tags": "offline"}))
    assert MINI not in upstream_models(upstream, before)


# -- per-alias budget (LiteLLM's router) -----------------------------------------------------------


def test_an_alias_over_its_budget_falls_back_and_one_without_fallbacks_is_refused(gateway, client, upstream) -> None:
    # cheap: once its $0.02 is spent, its deployment is skipped and the fallback (balanced) serves.
    reached = []
    for _ in range(int(CHEAP_BUDGET / COST[HAIKU]) + 3):
        before = len(upstream.requests)
        ok(chat(client, "cheap"))
        reached.append(upstream_models(upstream, before))
        if reached[-1] == [SONNET]:
            break
    assert reached[-1] == [SONNET], reached
    # (the earlier tests' untagged cheap calls count too: one budget for the deployment)
    assert all(x == [HAIKU] for x in reached[:-1])
    before = len(upstream.requests)
    ok(chat(client, "cheap"))
    assert upstream_models(upstream, before) == [SONNET], "a spent alias stays skipped"

    # frontier: $0.01 is one call; the next has no fallback and is refused, not sent.
    ok(chat(client, "frontier"))
    r, reached = until_refused(client, upstream, "frontier", limit=3)
    assert reached[-1] == []
    message = refusal(r)
    for part in (f"the frontier model (anthropic/{OPUS}) has used its budget of $0.0100", "llmOps.budgets.perAliasUSD.frontier",
                 str(gateway.project_config.resolve())):
        assert part in message, f"{part!r} missing from: {message}"


# -- fallback management (LiteLLM's /fallback API, `backlog-ops fallbacks`) ---------------------------


def fallbacks(monkeypatch, capsys, url: str, master: str, *args: str) -> tuple[int, str, str]:
    from backlog_ops.cli.main import main

    monkeypatch.setenv("LITELLM_MASTER_KEY", master)
    code = main(["fallbacks", *args, "--url", url])
    out, err = capsys.readouterr()
    return code, out, err


RENDERED_FALLBACKS = {
    "cheap": {"general": ["balanced", "frontier"], "context_window": ["balanced"], "content_policy": ["balanced"]},
    "balanced": {"general": ["frontier"], "context_window": ["frontier"], "content_policy": []},
    "frontier": {"general": [], "context_window": [], "content_policy": []},
}


def test_fallbacks_show_reads_the_running_router(gateway, monkeypatch, capsys) -> None:
    code, out, _ = fallbacks(monkeypatch, capsys, gateway.base_url, gateway.master_key, "show", "--json")
    assert code == 0 and json.loads(out) == RENDERED_FALLBACKS
    code, out, _ = fallbacks(monkeypatch, capsys, gateway.base_url, gateway.master_key, "show", "cheap", "--type", "general")
    assert out.split() == ["cheap", "general", "balanced", "->", "frontier"]
    assert gateway.master_key not in out


def test_fallbacks_set_without_a_database_says_where_to_change_them(gateway, monkeypatch, capsys) -> None:
    code, out, err = fallbacks(monkeypatch, capsys, gateway.base_url, gateway.master_key, "set", "frontier", "balanced")
    assert code == 1 and out == ""
    for part in (f"the proxy at {gateway.base_url} cannot change fallbacks while it runs", "STORE_MODEL_IN_DB=True",
                 "router_settings.fallbacks", "`backlog-ops config render`"):
        assert part in err, f"{part!r} missing from: {err}"
    assert len(err.strip().splitlines()) == 1 and gateway.master_key not in err
    code, _, err = fallbacks(monkeypatch, capsys, gateway.base_url, gateway.master_key, "remove", "cheap", "--type", "content_policy")
    assert code == 1 and "router_settings.content_policy_fallbacks" in err
    # Nothing changed in the running router.
    code, out, _ = fallbacks(monkeypatch, capsys, gateway.base_url, gateway.master_key, "show", "--json")
    assert json.loads(out) == RENDERED_FALLBACKS


def test_fallbacks_set_and_remove_with_a_database_stand_in(gateway, monkeypatch, capsys) -> None:
    """`set`/`remove` against a stand-in for a proxy WITH its database; every exchange checked
    against the running proxy's own /openapi.json, and its error envelope against the real one."""
    from fake_fallback_api import FakeFallbackAPI
    from test_keys import OpenAPICheck

    doc = httpx.get(f"{gateway.base_url}/openapi.json", timeout=120).json()
    check = OpenAPICheck(doc)
    master = "sk-fake-" + secrets.token_hex(8)
    fake = FakeFallbackAPI(master, models={"cheap", "balanced", "frontier"},
                           settings={"fallbacks": [{"cheap": ["balanced", "frontier"]}]}).start()
    try:
        run = lambda *args: fallbacks(monkeypatch, capsys, fake.url, master, *args)  # noqa: E731
        assert run("set", "frontier", "balanced")[:2] == (0, "frontier (general): falls back to balanced: Fallback configuration created successfully\n")
        assert run("set", "cheap", "frontier", "--type", "content_policy")[0] == 0
        code, out, _ = run("show", "--json")
        shown = json.loads(out)
        assert shown["frontier"]["general"] == ["balanced"] and shown["cheap"]["content_policy"] == ["frontier"]
        assert run("remove", "frontier")[0] == 0
        code, _, err = run("remove", "frontier")
        assert code == 1 and "No general fallbacks configured for model 'frontier'" in err
        code, _, err = run("set", "cheap", "gpt-5")
        assert code == 1 and "Invalid fallback models: ['gpt-5']" in err
        assert json.loads(run("show", "frontier", "--json")[1]) == {"frontier": {"general": [], "context_window": [], "content_policy": []}}
    finally:
        fake.stop()
    assert {(e.method, e.path) for e in fake.exchanges} == {("POST", "/fallback"), ("GET", "/fallback/{model}"), ("DELETE", "/fallback/{model}")}
    described = 0
    for ex in fake.exchanges:
        check.check_request(ex)
        described += check.check_response(ex)
    assert described >= 5
    # The stand-in's errors have the real proxy's envelope (a 404 for a model with no fallbacks).
    real = httpx.get(f"{gateway.base_url}/fallback/frontier", headers={"authorization": f"Bearer {gateway.master_key}"}, timeout=30)
    mine = next(e for e in fake.exchanges if e.status == 404)
    assert real.status_code == 404 and set(real.json()) == set(mine.response), (real.json(), mine.response)


# -- the overall budget (ledger) -------------------------------------------------------------------


def test_the_overall_budget_stops_every_call_and_a_raised_limit_lets_them_on(gateway, client, upstream) -> None:
    r, reached = until_refused(client, upstream, "balanced", limit=40)
    assert reached[-1] == [], "the refused call must not reach the provider"
    message = refusal(r)
    for part in ("the gateway has reached its overall budget", "of $0.1200 in the last 30d (all projects)",
                 "llmOps.budgets.monthlyUSD", str(gateway.project_config.resolve()), str(gateway.config_path)):
        assert part in message, f"{part!r} missing from: {message}"
    # It is the ledger's figure: what the proxy recorded is at or past the budget.
    with SqliteLedger(gateway.ledger_path) as ledger:
        recorded = sum(row["cost_usd"] for row in ledger.rows("WHERE source = 'proxy'"))
    assert recorded >= MONTHLY - COST[SONNET], recorded
    # Every alias, every ticket, Claude Code's route too.
    before = len(upstream.requests)
    assert chat(client, "cheap").status_code == 402
    r = client.post("/v1/messages", headers={"anthropic-version": "2023-06-01"},
                    json={"model": "cheap", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 402 and "overall budget" in r.json()["error"]["message"]
    assert len(upstream.requests) == before

    # Raising it as the message says takes effect without a restart (the policy file is re-read).
    config = yaml.safe_load(gateway.config_path.read_text())
    config["backlog_ops"]["gateway_budgets"]["monthly_usd"] = 10.0
    gateway.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    import time

    deadline = time.monotonic() + 10
    while (r := chat(client, "balanced")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert r.status_code == 200, r.text
