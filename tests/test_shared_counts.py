"""The shared reservation store (policy/redis_counts.py) under the budget engine, on the real Redis.

Two engines on one key prefix stand for two proxy processes; the ledger is a fake usage reader
both share, so each step can say exactly what the ledger holds. The proxies themselves, on a
real PostgreSQL ledger: tests/test_replica_budgets.py.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

from backlog_ops.policy.engine import PolicyEngine
from backlog_ops.policy.limits import TicketPolicy
from backlog_ops.policy.redis_counts import RedisCounts, shared_counts_factory

pytestmark = pytest.mark.services

POLICY = TicketPolicy(project="my-api", ticket_budget_usd=1.0, max_escalations_per_ticket=2)


class FakeLedger:
    def __init__(self) -> None:
        self.cost = 0.0
        self.escalations = 0
        self.ids: set[str] = set()
        self.reads = 0
        self.broken = False

    def __call__(self, ticket, project, policy, call_ids):
        self.reads += 1
        if self.broken:
            raise ConnectionError("ledger down")
        return self.cost, self.escalations, {c for c in call_ids if c in self.ids}


@pytest.fixture
def prefix(redis_url: str):
    prefix = f"backlog-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


def engines(redis_url: str, prefix: str, ledger: FakeLedger, n: int = 2, **kw) -> list[PolicyEngine]:
    make = lambda read: RedisCounts(redis_url, read, prefix=prefix, **kw)  # noqa: E731
    return [PolicyEngine(ledger, shared=make) for _ in range(n)]


def test_forty_calls_on_two_processes_reserve_the_budget_once(redis_url: str, prefix: str) -> None:
    ledger = FakeLedger()
    a, b = engines(redis_url, prefix, ledger, refresh_seconds=60)
    barrier = threading.Barrier(40)
    results: dict[int, object] = {}

    def one(i: int) -> None:
        barrier.wait()
        results[i] = (a if i % 2 else b).check(f"c{i}", "T-1", POLICY, escalation=False, estimate_usd=0.3)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 0 -> 0.3 -> 0.6 -> 0.9 pass, whichever process each came to; then the $1 budget is reached.
    assert sum(r is None for r in results.values()) == 4
    refusal = next(r for r in results.values() if r is not None)
    assert refusal.kind == "budget" and "reserved for calls still running" in refusal.message
    assert ledger.reads == 1, "one process read the ledger for both"
    # Each process settles the calls it let through: the other sees the real costs at once.
    for i, r in results.items():
        if r is None:
            (a if i % 2 else b).settle(f"c{i}", 0.1)
    assert a.usage("T-1", POLICY)[0] == pytest.approx(0.4)
    assert b.usage("T-1", POLICY)[0] == pytest.approx(0.4)


def test_a_call_finished_elsewhere_counts_until_the_ledger_has_it_and_never_twice(redis_url: str, prefix: str) -> None:
    ledger = FakeLedger()
    a, b = engines(redis_url, prefix, ledger, refresh_seconds=0.05)
    assert a.check("x", "T-2", POLICY, escalation=False, estimate_usd=0.5) is None
    a.settle("x", 0.95)
    # No blind window: b has not read the ledger since, and the ledger has not got the row yet.
    refusal = b.check("y", "T-2", POLICY, escalation=False, estimate_usd=0.1)
    assert refusal is None
    b.release("y")
    assert b.usage("T-2", POLICY)[0] == pytest.approx(0.95)
    # The row reaches the ledger: after the next read it is counted there, not also as finished.
    ledger.cost, ledger.ids = 0.95, {"x"}
    time.sleep(0.1)
    assert b.usage("T-2", POLICY)[0] == pytest.approx(0.95)
    assert a.usage("T-2", POLICY)[0] == pytest.approx(0.95)
    ledger.cost = 1.0  # a direct call recorded elsewhere
    time.sleep(0.1)
    assert a.check("z", "T-2", POLICY, escalation=False, estimate_usd=0.0).kind == "budget"


def test_escalations_are_shared_too(redis_url: str, prefix: str) -> None:
    a, b = engines(redis_url, prefix, FakeLedger())
    assert a.check("f1", "T-3", POLICY, escalation=True, estimate_usd=0) is None
    assert b.check("f2", "T-3", POLICY, escalation=True, estimate_usd=0) is None
    refusal = a.check("f3", "T-3", POLICY, escalation=True, estimate_usd=0)
    assert refusal is not None and refusal.kind == "escalations" and "2 of them still running" in refusal.message
    b.release("f2")  # failed for good: its escalation is given back, to every process
    assert a.check("f4", "T-3", POLICY, escalation=True, estimate_usd=0) is None


def test_reservations_of_a_process_that_died_expire(redis_url: str, prefix: str) -> None:
    ledger = FakeLedger()
    dead, alive = engines(redis_url, prefix, ledger, refresh_seconds=0.05, stale_seconds=0.3)
    assert dead.check("lost", "T-4", POLICY, escalation=False, estimate_usd=0.99) is None
    assert alive.usage("T-4", POLICY)[0] == pytest.approx(0.99)
    time.sleep(0.5)
    alive.usage("T-4", POLICY)  # a ledger read recounts, dropping what expired
    assert alive.usage("T-4", POLICY)[0] == 0.0


def test_an_unreadable_ledger_follows_the_policy_with_shared_counts(redis_url: str, prefix: str, caplog) -> None:
    ledger = FakeLedger()
    ledger.broken = True
    (a,) = engines(redis_url, prefix, ledger, n=1)
    with caplog.at_level(logging.ERROR, logger="backlog_ops.policy"):
        assert a.check("c", "T-5", POLICY, escalation=False, estimate_usd=0.1) is None
    assert "were let through so far" in caplog.text
    deny = TicketPolicy(project="my-api", ticket_budget_usd=1.0, on_ledger_unavailable="deny")
    refusal = a.check("d", "T-6", deny, escalation=False, estimate_usd=0.1)
    assert refusal is not None and refusal.status == 503


def test_redis_down_falls_back_loudly_per_process_or_refuses_under_deny(caplog) -> None:
    ledger = FakeLedger()
    make = lambda read: RedisCounts("redis://127.0.0.1:1/0", read, prefix="x:")  # noqa: E731 - nothing listens on port 1
    engine = PolicyEngine(ledger, shared=make)
    with caplog.at_level(logging.ERROR, logger="backlog_ops.policy"):
        results = [engine.check(f"c{i}", "T-7", POLICY, escalation=False, estimate_usd=0.3) for i in range(6)]
    # Checked in this process instead: the budget still holds here, and the log says what happened.
    assert [r is None for r in results] == [True] * 4 + [False] * 2
    assert "checked in this process only" in caplog.text and "127.0.0.1:1" in caplog.text
    engine.settle("c0", 0.3)  # settles where it was reserved
    deny = TicketPolicy(project="my-api", ticket_budget_usd=1.0, on_ledger_unavailable="deny")
    refusal = engine.check("d", "T-8", deny, escalation=False, estimate_usd=0.1)
    assert refusal is not None and refusal.status == 503 and refusal.kind == "ledger_unavailable"


def test_the_shared_store_is_chosen_by_the_context_url(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.delenv("BACKLOG_CONTEXT_URL", raising=False)
    assert shared_counts_factory() is None
    monkeypatch.setenv("BACKLOG_CONTEXT_URL", redis_url)
    monkeypatch.setenv("BACKLOG_CONTEXT_PREFIX", "team-a:")
    store = shared_counts_factory()(FakeLedger())
    assert isinstance(store, RedisCounts) and store.keys(("p", "T"))[0] == "team-a:budget:{p/T}:s"
