"""Fixtures for fault tests: throwaway PostgreSQL, Redis and NATS servers of the test's own.

They run on free loopback ports in temporary directories, so a test may restart or kill them;
the shared instances on 5432, 6379 and 4222 are never touched. A machine without the server
programs skips these tests and says why (under CI=true they fail instead).
"""

from __future__ import annotations

import time
import uuid

import pytest

from backlog_ops.testing import servers
from conftest import in_ci


def require_servers() -> None:
    absent = servers.missing()
    if absent:
        message = f"fault tests need {', '.join(absent)} (the CI image installs them)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def own_postgres():
    require_servers()
    server = servers.ThrowawayPostgres().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def own_pg_ledger(own_postgres, monkeypatch: pytest.MonkeyPatch):
    """BACKLOG_LEDGER_URL on our own PostgreSQL, in a schema of this test's own."""
    monkeypatch.setenv("BACKLOG_LEDGER_URL", own_postgres.url)
    monkeypatch.setenv("BACKLOG_LEDGER_SCHEMA", f"fault_{uuid.uuid4().hex[:10]}")
    return own_postgres


@pytest.fixture
def own_redis():
    require_servers()
    server = servers.ThrowawayRedis().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def own_nats():
    require_servers()
    server = servers.ThrowawayNats().start()
    try:
        yield server
    finally:
        server.destroy()


def eventually(check, timeout: float = 30.0, interval: float = 0.1):
    """Poll `check()` until it returns a truthy value (bounded); that value, or the last one."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()
    return value
