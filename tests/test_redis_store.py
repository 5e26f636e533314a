"""The Redis context store (BACKLOG_CONTEXT_URL) against the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from backlog_ops.context.scope import Scope
from backlog_ops.errors import HomeError, InvalidContext
from backlog_ops.context.redis_store import RedisContextResolver, RedisContextStore

pytestmark = pytest.mark.services

CTX = {"ticket_id": "FEAT-001", "gate": "implement", "agent_type": "backend", "project": "my-api"}


@pytest.fixture
def store(redis_url: str):
    prefix = f"backlog-test-{uuid.uuid4().hex[:8]}:"
    s = RedisContextStore(redis_url, prefix=prefix)
    yield s
    for key in s.redis.scan_iter(match=f"{prefix}*"):
        s.redis.delete(key)


def test_scopes_resolution_and_history(store: RedisContextStore) -> None:
    store.set(CTX)
    store.set({**CTX, "ticket_id": "FEAT-002"}, Scope("s1"))
    store.set({**CTX, "ticket_id": "FEAT-003", "agent_type": "reviewer"}, Scope("s1", "a1"))
    resolver = RedisContextResolver(store, max_age=0)
    assert resolver.resolve("s1", "a1").context["ticket_id"] == "FEAT-003"
    assert resolver.resolve("s1", "a2").context["ticket_id"] == "FEAT-002"
    assert resolver.resolve("s2").context["ticket_id"] == "FEAT-001"
    assert resolver.resolve("../bad", "x").scope == Scope()
    changes = store.clear_session("s1")
    assert {c.scope for c in changes} == {Scope("s1"), Scope("s1", "a1")}
    assert resolver.resolve("s1", "a1").context["ticket_id"] == "FEAT-001"
    history = list(store.history())
    assert [h["action"] for h in history] == ["set", "set", "set", "clear", "clear"]
    assert history[3]["old"]["ticket_id"] in ("FEAT-002", "FEAT-003") and history[3]["new"] is None


def test_same_validation_as_files(store: RedisContextStore) -> None:
    with pytest.raises(InvalidContext, match="ticket_id 'bad id'"):
        store.set({**CTX, "ticket_id": "bad id"})
    with pytest.raises(InvalidContext, match="ttl"):
        store.set(CTX, ttl=-5)
    assert list(store.history()) == []


def test_ttl_is_enforced_by_redis_itself(store: RedisContextStore) -> None:
    store.set(CTX, Scope("short"), ttl=1)
    assert 0 < store.redis.pttl(store.key(Scope("short"))) <= 1000
    time.sleep(1.2)
    assert store.get(Scope("short")) is None
    assert store.redis.exists(store.key(Scope("short"))) == 0


def test_published_changes_reach_a_caching_resolver_at_once(store: RedisContextStore) -> None:
    resolver = RedisContextResolver(store, max_age=60)  # only invalidation can make it see changes
    store.set(CTX, Scope("live"))
    assert resolver.resolve("live").context["ticket_id"] == "FEAT-001"
    time.sleep(0.3)  # the listener subscribes on first use
    store.set({**CTX, "ticket_id": "FEAT-009"}, Scope("live"))
    deadline = time.monotonic() + 5
    while resolver.resolve("live").context["ticket_id"] != "FEAT-009":
        assert time.monotonic() < deadline, "the change was never seen"
        time.sleep(0.02)


def test_corrupt_value_is_skipped_with_one_report(store: RedisContextStore) -> None:
    store.set(CTX)
    store.redis.set(store.key(Scope("s")), b"{torn")
    warnings: list[str] = []
    resolver = RedisContextResolver(store, warn=warnings.append, max_age=0)
    assert resolver.resolve("s").context["ticket_id"] == "FEAT-001"
    assert warnings and "ignoring context" in warnings[0]


def test_outage_means_untagged_at_once_not_a_timeout(store: RedisContextStore) -> None:
    dead = RedisContextStore("redis://127.0.0.1:1/0", prefix=store.prefix)
    warnings: list[str] = []
    resolver = RedisContextResolver(dead, warn=warnings.append)
    asked: list[int] = []
    real_mget = resolver._redis.mget
    resolver._redis.mget = lambda keys: asked.append(1) or real_mget(keys)
    results = [resolver.resolve("s1") for _ in range(100)]
    assert results == [None] * 100
    # Asked again only after a back-off (0.25 s, doubling): not a connect timeout on every call.
    assert 1 <= len(asked) < 10, f"{len(asked)} connection attempts for 100 calls"
    assert len(warnings) == 1
    with pytest.raises(HomeError, match="unavailable"):
        dead.set(CTX)


def _writer(url: str, prefix: str, index: int, ops: int) -> None:
    store = RedisContextStore(url, prefix=prefix)
    for i in range(ops):
        store.set({**CTX, "ticket_id": f"T-{index}-{i}"}, Scope(f"s{index % 2}"))


def test_concurrent_writers_lose_no_history(store: RedisContextStore, redis_url: str) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(redis_url, store.prefix, i, 25)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    history = list(store.history())
    assert len(history) == 100
    # Every entry's "old" is exactly the previous "new" of the same scope: no interleaving.
    last: dict[str, dict | None] = {}
    for entry in history:
        assert entry.get("old") == last.get(entry["session_id"])
        last[entry["session_id"]] = entry["new"]


def test_cli_uses_redis_when_configured(store: RedisContextStore, redis_url: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "BACKLOG_CONTEXT_URL": redis_url, "BACKLOG_CONTEXT_PREFIX": store.prefix}
    bin_ = Path(sys.executable).parent / "backlog-ops"
    sid = "cli-" + uuid.uuid4().hex[:8]
    r = subprocess.run([str(bin_), "context", "set", "FEAT-77", "plan", "planner", "--session", sid],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    shown = subprocess.run([str(bin_), "context", "show", "--session", sid, "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(shown.stdout)["context"]["ticket_id"] == "FEAT-77"
    assert store.get(Scope(sid))["ticket_id"] == "FEAT-77"
    assert not (Path(os.environ["BACKLOG_HOME"]) / "contexts").exists(), "nothing went to files"


@pytest.mark.proxy
def test_proxy_tags_from_the_shared_redis_store(store: RedisContextStore, redis_url: str, tmp_path: Path) -> None:
    """A context set on a developer's machine tags calls in a proxy that shares only Redis."""
    import httpx

    from backlog_ops.testing.mock_upstream import MockUpstream
    from backlog_ops.gateway.process import ProxyProcess
    from proxy_support import wait_for_rows, write_config

    sid = str(uuid.uuid4())
    with MockUpstream() as up:
        config = write_config(tmp_path / "cfg", up.base_url)
        env = {"LITELLM_MASTER_KEY": "sk-test-" + uuid.uuid4().hex, "BACKLOG_CONTEXT_URL": redis_url, "BACKLOG_CONTEXT_PREFIX": store.prefix}
        with ProxyProcess(tmp_path / "proxy-home", config=config, env=env) as proxy:
            store.set({**CTX, "ticket_id": "FEAT-R1"}, Scope(sid))
            with httpx.Client(base_url=proxy.base_url, headers={"authorization": f"Bearer {proxy.master_key}"}, timeout=60) as c:
                first = c.post("/v1/chat/completions", headers={"x-claude-code-session-id": sid},
                               json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a"}]})
                store.set({**CTX, "ticket_id": "FEAT-R2", "gate": "review"}, Scope(sid))
                time.sleep(0.3)
                second = c.post("/v1/chat/completions", headers={"x-claude-code-session-id": sid},
                                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "b"}]})
            ids = [first.headers["x-litellm-call-id"], second.headers["x-litellm-call-id"]]
            rows = wait_for_rows(tmp_path / "proxy-home" / "ledger.db", ids)
    assert [rows[i]["ticket_id"] for i in ids] == ["FEAT-R1", "FEAT-R2"]
    assert not (tmp_path / "proxy-home" / "contexts").exists()


# -- a Redis of the test's own, restarted and stopped under load -----------------------------------

from fault_support import eventually, own_redis  # noqa: E402,F401 - fixtures


def test_the_resolver_keeps_tagging_across_a_redis_restart_under_load(own_redis) -> None:
    import threading

    store = RedisContextStore(own_redis.url, prefix="fault:")
    store.set(CTX, Scope("busy"))
    resolver = RedisContextResolver(store, max_age=0.05)
    seen: list[str | None] = []
    stop = threading.Event()

    def load() -> None:  # bounded: at most 3,000 lookups
        for _ in range(3000):
            if stop.is_set():
                return
            found = resolver.resolve("busy")
            seen.append(found.context["ticket_id"] if found else None)
            time.sleep(0.002)

    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(0.3)
    own_redis.restart()
    time.sleep(0.5)
    stop.set()
    thread.join(30)
    assert seen and set(seen) == {"FEAT-001"}, f"{seen.count(None)} of {len(seen)} lookups lost the context"
    store.set({**CTX, "ticket_id": "FEAT-002"}, Scope("new-session"))  # writers reconnect too
    assert resolver.resolve("new-session").context["ticket_id"] == "FEAT-002"


def test_after_an_outage_the_resolver_and_its_subscription_come_back(own_redis) -> None:
    store = RedisContextStore(own_redis.url, prefix="fault:")
    store.set(CTX, Scope("s1"))
    resolver = RedisContextResolver(store, max_age=3600)  # only an invalidation can show a change
    assert resolver.resolve("s1").context["ticket_id"] == "FEAT-001"
    time.sleep(0.3)  # the subscription is made on first use
    own_redis.stop()
    assert resolver.resolve("nobody-yet") is None, "down: no context, at once"
    time.sleep(1.0)
    own_redis.start()
    # Changed while the subscription was away: no message will ever say so.
    store.set({**CTX, "ticket_id": "FEAT-002"}, Scope("s1"))
    store.set({**CTX, "ticket_id": "FEAT-003"}, Scope("nobody-yet"))
    assert eventually(lambda: resolver.resolve("s1").context["ticket_id"] == "FEAT-002", timeout=4)
    assert eventually(lambda: resolver.resolve("nobody-yet") is not None, timeout=4)
