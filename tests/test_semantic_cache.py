"""The semantic cache through the real proxy: a paraphrase is answered from the cache, offline.

Two proxies, each started once for the module (the embedding model loads once in each):

- `offline`: `backlog-ops proxy` with no --config, in a project directory whose
  backlog.config.json turns the semantic cache on (the default SQLite + sqlite-vec index, the
  bundled static embedding model). Its own mock provider is asked how many requests reached it.
- `team`: `backlog-ops proxy --config` of a rendered config serving two projects, with the
  PostgreSQL index a team's proxies share and an exact in-memory response cache in front; a
  short TTL for one project.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from backlog_ops.context.file_store import ContextStore
from backlog_ops.context.scope import Scope
from backlog_ops.gateway.process import ProxyProcess
from backlog_ops.gateway.render import render_proxy_config
from backlog_ops.project.schema import load_backlog_config, policy_section
from backlog_ops.testing.mock_upstream import REQUESTS_PATH, MockUpstream

from conftest import require_service
from proxy_support import wait_for_rows

pytestmark = [pytest.mark.proxy]

PROJECT = "shop-api"
# Cosine similarities under the bundled model (bench/semantic_cache_eval.py): 0.92 and 0.30.
ASKED = "Explain what a Python decorator does."
PARAPHRASE = "Explain what Python decorators do."
UNRELATED = ("How do I rotate the API signing keys?", "What time zone are the nightly backups scheduled in?")


def semantic(**extra) -> dict:
    return {"enabled": True, "similarityThreshold": 0.8, **extra}


def session(store: ContextStore, project: str, ticket: str) -> dict:
    sid = str(uuid.uuid4())
    store.set({"ticket_id": ticket, "gate": "implement", "agent_type": "backend", "project": project}, Scope(sid))
    return {"x-claude-code-session-id": sid}


def chat(client: httpx.Client, headers: dict, content: str, **body) -> httpx.Response:
    r = client.post("/v1/chat/completions", headers=headers,
                    json={"model": "cheap", "max_tokens": 100, "messages": [{"role": "user", "content": content}], **body})
    assert r.status_code == 200, r.text
    return r


def wait_until(count, at_least: int, timeout: float = 15.0) -> None:
    """Responses are stored after they went out: wait (bounded) until the index holds `at_least` entries."""
    deadline = time.monotonic() + timeout
    while count() < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"the semantic cache holds {count()} entries after {timeout} s, expected {at_least}")
        time.sleep(0.05)


# -- the offline proxy, from ./backlog.config.json ---------------------------------------------------


class Offline:
    def __init__(self, proxy: ProxyProcess, store: ContextStore) -> None:
        self.proxy = proxy
        self.store = store
        line = next(l for l in proxy.log().splitlines() if "backlog-ops: mock provider at " in l)
        self.mock_url = line.rsplit(" ", 1)[-1]
        self.client = httpx.Client(base_url=proxy.base_url, headers={"authorization": f"Bearer {proxy.master_key}"},
                                   timeout=60)

    def upstream(self) -> int:
        return httpx.get(self.mock_url + REQUESTS_PATH, timeout=10).json()["count"]

    def entries(self) -> int:
        path = self.proxy.home / "semantic-cache.db"
        if not path.exists():
            return 0
        with sqlite3.connect(path) as db:
            try:
                return db.execute("SELECT count(*) FROM semantic_cache").fetchone()[0]
            except sqlite3.OperationalError:
                return 0

    def ask(self, headers: dict, content: str, **body) -> httpx.Response:
        """One request, waiting until a response that went upstream is stored."""
        before_up, before_stored = self.upstream(), self.entries()
        r = chat(self.client, headers, content, **body)
        if self.upstream() > before_up and not body:
            wait_until(self.entries, before_stored + 1)
        return r


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    root = tmp_path_factory.mktemp("semantic-offline")
    project = root / PROJECT
    project.mkdir()
    (project / "backlog.config.json").write_text(json.dumps({
        "project": {"name": PROJECT},
        "llmOps": {"cachePolicy": {"semanticCache": semantic()}},
    }))
    home = root / "home"
    proxy = ProxyProcess(home, cwd=project)
    proxy.env.pop("BACKLOG_POLICY_FILE", None)
    proxy.env.pop("BACKLOG_LEDGER_URL", None)
    proxy.start()
    try:
        yield Offline(proxy, ContextStore(home))
    finally:
        proxy.stop()


def test_offline_proxy_says_the_semantic_cache_is_on(offline) -> None:
    assert f"backlog-ops: semantic cache on for {PROJECT}: similarity >= 0.8" in offline.proxy.log()


def test_a_paraphrase_is_answered_from_the_cache_and_recorded_as_a_hit_at_zero_cost(offline) -> None:
    headers = session(offline.store, PROJECT, "SHOP-1")
    before = offline.upstream()
    first = offline.ask(headers, ASKED)
    second = offline.ask(headers, PARAPHRASE)
    assert offline.upstream() - before == 1, "the paraphrase must not reach the provider"
    assert second.json()["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
    first_id, second_id = first.headers["x-litellm-call-id"], second.headers["x-litellm-call-id"]
    rows = wait_for_rows(offline.proxy.home / "ledger.db", [first_id, second_id])
    assert rows[first_id]["cache_hit"] == 0 and rows[first_id]["cost_usd"] > 0
    hit = rows[second_id]
    assert (hit["cache_hit"], hit["cost_usd"], hit["ticket_id"], hit["project"]) == (1, 0.0, "SHOP-1", PROJECT)
    assert hit["saved_cost_usd"] == pytest.approx(rows[first_id]["cost_usd"], rel=0.05)


def test_an_unrelated_prompt_goes_to_the_provider(offline) -> None:
    headers = session(offline.store, PROJECT, "SHOP-2")
    before = offline.upstream()
    offline.ask(headers, UNRELATED[0])
    offline.ask(headers, UNRELATED[1])
    assert offline.upstream() - before == 2


def test_requests_with_tools_or_a_high_temperature_are_neither_served_nor_stored(offline) -> None:
    headers = session(offline.store, PROJECT, "SHOP-3")
    tool = {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object", "properties": {}}}}
    stored = offline.entries()
    before = offline.upstream()
    for _ in range(2):
        offline.ask(headers, "Which files define the checkout flow?", tools=[tool])
    for _ in range(2):
        offline.ask(headers, "Name three colours for the checkout button.", temperature=1.0)
    assert offline.upstream() - before == 4, "a repeat with tools or temperature 1.0 must still reach the provider"
    time.sleep(0.5)  # a store would have happened by now (they take milliseconds)
    assert offline.entries() == stored
    # At or below maxTemperature (0.5) the same repeat is cached.
    offline.ask(headers, "Name three colours for the checkout button.", temperature=0.0)
    wait_until(offline.entries, stored + 1)
    offline.ask(headers, "Name three colours for the checkout button.", temperature=0.0)
    assert offline.upstream() - before == 5


def test_claude_codes_messages_endpoint_is_served_from_the_cache_too(offline) -> None:
    headers = {**session(offline.store, PROJECT, "SHOP-4"), "anthropic-version": "2023-06-01"}
    before = offline.upstream()
    ids = []
    for content in ("List the steps to run the database migrations.",
                    "What are the steps to run the database migrations?"):
        stored = offline.entries()
        r = offline.client.post("/v1/messages", headers=headers, json={
            "model": "cheap", "max_tokens": 100, "messages": [{"role": "user", "content": content}]})
        assert r.status_code == 200, r.text
        ids.append(r.headers["x-litellm-call-id"])
        if not ids[1:]:
            wait_until(offline.entries, stored + 1)
    assert offline.upstream() - before == 1
    rows = wait_for_rows(offline.proxy.home / "ledger.db", ids)
    assert [rows[i]["cache_hit"] for i in ids] == [0, 1]


# -- a team gateway: two projects, the PostgreSQL index, a TTL ---------------------------------------


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    schema = "semcache_test_" + uuid.uuid4().hex[:10]
    root = tmp_path_factory.mktemp("semantic-team")
    configs = {}
    for name, extra in (("alpha", {}), ("beta", {"ttlSeconds": 3})):
        path = root / f"{name}.json"
        path.write_text(json.dumps({
            "project": {"name": name},
            "llmOps": {"gateway": {"providers": ["anthropic"]},
                       "cachePolicy": {"responseCache": {"enabled": True, "type": "local"},
                                       "semanticCache": semantic(index="postgres", **extra)},
                       "budgets": {"monthlyUSD": None, "perProviderUSD": {}, "perAliasUSD": {}}},
        }))
        configs[name] = load_backlog_config(path)
    upstream = MockUpstream().__enter__()
    rendered = render_proxy_config(configs["alpha"], source=root / "alpha.json")
    rendered["backlog_ops"]["policy"]["projects"]["beta"] = policy_section(configs["beta"], root / "beta.json")
    for dep in rendered["model_list"]:
        dep["litellm_params"].update(api_base=upstream.base_url, api_key="mock")
    config_path = root / "proxy.yaml"
    config_path.write_text(yaml.safe_dump(rendered, sort_keys=False))
    home = root / "home"
    proxy = ProxyProcess(home, config=config_path, env={
        "LITELLM_MASTER_KEY": "sk-test-" + secrets.token_hex(16),
        "BACKLOG_SEMANTIC_CACHE_URL": url,
        "BACKLOG_LEDGER_SCHEMA": schema,
    })
    for var in ("DATABASE_URL", "BACKLOG_POLICY_FILE", "BACKLOG_LEDGER_URL", "LITELLM_ENVIRONMENT"):
        proxy.env.pop(var, None)
    proxy.start()
    db = psycopg.connect(url, autocommit=True)
    proxy.upstream = upstream
    proxy.store = ContextStore(home)
    proxy.client = httpx.Client(base_url=proxy.base_url, headers={"authorization": f"Bearer {proxy.master_key}"},
                                timeout=60)

    def entries() -> int:
        try:
            return db.execute(f'SELECT count(*) FROM "{schema}".semantic_cache').fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0

    proxy.entries = entries
    try:
        yield proxy
    finally:
        proxy.stop()
        upstream.__exit__(None, None, None)
        db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        db.close()


def test_an_identical_prompt_from_another_project_is_not_served(team) -> None:
    alpha = session(team.store, "alpha", "ALPHA-1")
    beta = session(team.store, "beta", "BETA-1")
    content = f"Describe the retry policy of the payment client ({uuid.uuid4().hex[:6]})."
    before, stored = len(team.upstream.requests), team.entries()
    chat(team.client, alpha, content)
    wait_until(team.entries, stored + 1)
    chat(team.client, alpha, content.replace("Describe", "Explain"))
    assert len(team.upstream.requests) - before == 1, "alpha's paraphrase is served from the PostgreSQL index"
    chat(team.client, beta, content)
    assert len(team.upstream.requests) - before == 2, "beta must not get alpha's entry"


def test_an_entry_is_not_served_after_its_ttl(team) -> None:
    beta = session(team.store, "beta", "BETA-2")
    content = f"What does the nightly export job write ({uuid.uuid4().hex[:6]})?"
    paraphrase = content.replace("What does", "What is it that")
    before, stored = len(team.upstream.requests), team.entries()
    chat(team.client, beta, content)
    wait_until(team.entries, stored + 1)
    chat(team.client, beta, paraphrase)
    assert len(team.upstream.requests) - before == 1
    time.sleep(3.5)  # beta's ttlSeconds is 3
    chat(team.client, beta, paraphrase)
    assert len(team.upstream.requests) - before == 2, "an expired entry must not be served"


# -- the backend and its settings, in this process ---------------------------------------------------


def request(content: str, *, project: str = PROJECT, key: str = "hashed-key-1", team: str | None = None,
            **body) -> dict:
    meta = {"tags": [f"project:{project}", "ticket:T-1"], "user_api_key_hash": key, "user_api_key_team_id": team}
    return {"model": "cheap", "messages": [{"role": "user", "content": content}], "metadata": meta, **body}


def test_entries_are_scoped_by_key_and_team_and_identifiers(tmp_path, monkeypatch) -> None:
    import asyncio

    from backlog_ops.gateway.semantic_cache.backend import SemanticCacheBackend
    from backlog_ops.gateway.semantic_cache.policy import SemanticSettings

    monkeypatch.setenv("BACKLOG_HOME", str(tmp_path))
    on = SemanticSettings(enabled=True, similarity_threshold=0.8)
    backend = SemanticCacheBackend(lambda project: on if project == PROJECT else None)
    stored = {"timestamp": time.time(), "response": json.dumps({"id": "r1"})}

    async def run() -> list:
        await backend.async_set_cache("k", stored, **request("What does HTTP status 402 mean?"))
        return [
            await backend.async_get_cache("k2", **request("What does the HTTP 402 status code mean?")),
            await backend.async_get_cache("k2", **request("What does the HTTP 402 status code mean?", key="other")),
            await backend.async_get_cache("k2", **request("What does the HTTP 402 status code mean?", team="t2")),
            await backend.async_get_cache("k2", **request("What does HTTP status 404 mean?")),
            await backend.async_get_cache("k2", **request("What does HTTP status 402 mean?", project="other")),
        ]

    found = asyncio.run(run())
    assert found[0] == stored, "the paraphrase, same scope: served"
    assert found[1:] == [None, None, None, None], "another key, team, identifier or project: never served"
    assert backend.counts["hits"] == 1 and backend.counts["skipped:off for this project"] == 1
    asyncio.run(backend.disconnect())


def test_a_bad_semantic_entry_is_one_warning_and_the_budgets_still_load(tmp_path) -> None:
    from backlog_ops.policy.limits_file import PolicyFile

    warnings: list[str] = []
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"backlog_ops": {"policy": {"projects": {PROJECT: {
        "ticket_budget_usd": 5, "semantic_cache": {"enabled": True, "similarity_threshold": 3}}}}}}))
    policy = PolicyFile(str(path), warn=warnings.append)
    assert policy.policy_for(PROJECT).ticket_budget_usd == 5
    assert policy.semantic_cache_for(PROJECT) is None
    assert len(warnings) == 1 and "similarity_threshold: must be a number between 0.0 and 1.0, got 3" in warnings[0]


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def index(request, tmp_path):
    """Each index kind against its real store: a file, the local PostgreSQL, the local Redis."""
    kind = request.param
    if kind == "sqlite":
        from backlog_ops.gateway.semantic_cache.index_sqlite import SqliteVecIndex

        found = SqliteVecIndex(str(tmp_path / "semantic-cache.db"))
        yield found
        found.close()
    elif kind == "postgres":
        require_service("PostgreSQL", "127.0.0.1", 5432)
        import psycopg

        from backlog_ops.gateway.semantic_cache.index_postgres import PostgresIndex

        url, schema = "postgresql://postgres@127.0.0.1:5432/postgres", "semcache_idx_" + uuid.uuid4().hex[:10]
        found = PostgresIndex(url, schema=schema)
        yield found
        found.close()
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    else:
        require_service("Redis", "127.0.0.1", 6379)
        from backlog_ops.gateway.semantic_cache.index_redis import RedisIndex

        prefix = "backlog-test-semantic-" + uuid.uuid4().hex[:10]
        found = RedisIndex("redis://127.0.0.1:6379/0", prefix=prefix)
        yield found
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        found.close()


def unit(*values: float):
    import numpy as np

    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_each_index_finds_the_nearest_entry_of_its_bucket_only_until_it_expires(index) -> None:
    now = time.time()
    index.store("b1", PROJECT, unit(1, 0, 0, 0), '{"n": 1}', 60, 10, now=now)
    index.store("b1", PROJECT, unit(0, 1, 0, 0), '{"n": 2}', 2, 10, now=now)
    index.store("b2", PROJECT, unit(0, 0, 1, 0), '{"n": 3}', 60, 10, now=now)
    similarity, value = index.lookup("b1", unit(0.1, 1, 0, 0), 0.9, now=now + 1)
    assert value == '{"n": 2}' and similarity == pytest.approx(0.995, abs=1e-3)
    assert index.lookup("b1", unit(0, 0, 1, 0), 0.5, now=now + 1) is None, "b2's entry is not in b1"
    assert index.lookup("b1", unit(0.1, 1, 0, 0), 0.999, now=now + 1) is None, "below the threshold"
    if index.kind != "redis":  # Redis expires by its own clock, tested below
        assert index.lookup("b1", unit(0.1, 1, 0, 0), 0.9, now=now + 3) is None, "past its TTL"
    for n in range(12):  # a bucket keeps at most max_entries: the oldest go
        index.store("b3", PROJECT, unit(1, n, 0, 0), json.dumps({"n": n}), 60, 10, now=now)
    assert index.lookup("b3", unit(1, 0, 0, 0), 0.99, now=now) is None
    assert index.lookup("b3", unit(1, 11, 0, 0), 0.99, now=now)[1] == '{"n": 11}'


def test_redis_entries_expire_by_redis_itself() -> None:
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    from backlog_ops.gateway.semantic_cache.index_redis import RedisIndex

    prefix = "backlog-test-semantic-" + uuid.uuid4().hex[:10]
    index = RedisIndex("redis://127.0.0.1:6379/0", prefix=prefix)
    try:
        index.store("b1", PROJECT, unit(1, 0, 0, 0), '{"n": 1}', 1, 10)
        assert index.lookup("b1", unit(1, 0, 0, 0), 0.9) is not None
        time.sleep(1.6)
        assert index.lookup("b1", unit(1, 0, 0, 0), 0.9) is None
        assert not redis.Redis(host="127.0.0.1", port=6379).exists(f"{prefix}:v:b1"), "the idle bucket goes too"
    finally:
        index.close()


def test_a_proxy_config_whose_semantic_cache_cannot_work_is_refused_with_one_line_each(tmp_path) -> None:
    from backlog_ops.gateway.serving import environment_problems

    path = tmp_path / "team.json"
    path.write_text(json.dumps({"project": {"name": "alpha"}, "llmOps": {
        "gateway": {"providers": ["anthropic"]},
        "cachePolicy": {"semanticCache": {"enabled": True, "index": "redis"}}}}))
    rendered = render_proxy_config(load_backlog_config(path), source=path)
    env = {"ANTHROPIC_API_KEY": "sk-ant-test"}
    problems = environment_problems(tmp_path / "litellm.yaml", rendered, env)
    assert problems == [f"{tmp_path / 'litellm.yaml'}: project alpha: semanticCache.index 'redis' needs "
                        f"BACKLOG_SEMANTIC_CACHE_URL or BACKLOG_CONTEXT_URL set to its URL"]
    assert environment_problems(tmp_path / "litellm.yaml", rendered,
                                {**env, "BACKLOG_CONTEXT_URL": "redis://127.0.0.1:6379/0"}) == []


def test_the_minilm_embedder_reproduces_the_model_card_and_tells_near_misses_apart(tmp_path, monkeypatch) -> None:
    import asyncio

    from backlog_ops.gateway.semantic_cache.backend import SemanticCacheBackend
    from backlog_ops.gateway.semantic_cache.embedder import get_embedder
    from backlog_ops.gateway.semantic_cache.policy import SemanticSettings

    model = get_embedder("minilm-l6")
    v = model.embed(["That is a happy person", "That is a happy dog", "That is a very happy person",
                     "Today is a sunny day"])
    assert (v @ v[0])[1:] == pytest.approx([0.694, 0.943, 0.257], abs=0.005)  # the model card's figures

    monkeypatch.setenv("BACKLOG_HOME", str(tmp_path))
    on = SemanticSettings(enabled=True, similarity_threshold=0.9, embedder="minilm-l6")
    backend = SemanticCacheBackend(lambda project: on)
    stored = {"timestamp": time.time(), "response": json.dumps({"id": "r1"})}

    async def run() -> list:
        await backend.async_set_cache("k", stored, **request("How do I reset my password?"))
        return [await backend.async_get_cache("k2", **request(text))
                for text in ("How can I reset my password?", "How do I delete my account?")]

    assert asyncio.run(run()) == [stored, None]  # the static model scores the second pair 0.86
    asyncio.run(backend.disconnect())
