"""Shared fixtures. Every test gets its own BACKLOG_HOME: no test touches the user's state."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# litellm's price map ships with it; fetching the live one needs the internet and costs seconds.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# The shipped production config lists LiteLLM's langfuse callback; without these it would send to
# Langfuse's cloud. Tests that check Langfuse start their own stand-in and set its address.
os.environ.setdefault("LANGFUSE_HOST", "http://127.0.0.1:9")
os.environ.setdefault("LANGFUSE_PUBLIC_KEY", "pk-lf-none")
os.environ.setdefault("LANGFUSE_SECRET_KEY", "sk-lf-none")
# `backlog-ops mcp` leaves a resident server process behind (mcp_server/resident.py); each test's
# own are stopped at its end, and any other (a subprocess's own BACKLOG_HOME) exits after this.
os.environ.setdefault("BACKLOG_MCP_PREFORK_IDLE", "120")


@pytest.fixture(autouse=True, scope="session")
def _no_resident_outlives_the_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Residents started under this run's temporary tree by a subprocess with its own home (a proxy's)."""
    yield
    import sys

    if sys.platform == "linux":
        from mcp_support import stop_residents_under

        stop_residents_under(tmp_path_factory.getbasetemp())


@pytest.fixture(autouse=True)
def backlog_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "backlog-home"
    monkeypatch.setenv("BACKLOG_HOME", str(home))
    for var in ("BACKLOG_CONTEXT_FILE", "BACKLOG_CONTEXT_TTL", "BACKLOG_SESSION_ID", "BACKLOG_AGENT_ID"):
        monkeypatch.delenv(var, raising=False)
    yield home
    if (home / "mcp").is_dir():
        from mcp_support import stop_residents

        stop_residents(home)


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory that is the current directory."""
    project = tmp_path / "my-api"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (under CI=true) when a service the test needs is not listening."""
    import socket

    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as exc:
        message = f"{name} is not reachable on {host}:{port} ({exc}); .ci/run starts it"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


def run_spawned(target, arg_tuples: list[tuple], timeout: float) -> None:
    """target(*args) in one fresh process per tuple, all at once (replicas racing); each must exit 0."""
    import multiprocessing

    procs = [multiprocessing.get_context("spawn").Process(target=target, args=args) for args in arg_tuples]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
        assert p.exitcode == 0


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return "redis://127.0.0.1:6379/0"


@pytest.fixture
def postgres_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg(postgres_url: str, monkeypatch: pytest.MonkeyPatch):
    """The ledger in a fresh schema of the local PostgreSQL (BACKLOG_LEDGER_URL set): (url, schema).

    The schema is dropped after the test.
    """
    from backlog_ops.ledger.postgres import PostgresLedger

    schema = f"test_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("BACKLOG_LEDGER_URL", postgres_url)
    monkeypatch.setenv("BACKLOG_LEDGER_SCHEMA", schema)
    yield postgres_url, schema
    PostgresLedger.drop_schema(postgres_url, schema)


@pytest.fixture(scope="module")
def upstream():
    """The mock provider, one per test module; every call is 1000 prompt + 200 completion tokens.

    A module that needs other figures defines its own `upstream`.
    """
    from backlog_ops.testing.mock_upstream import MockUpstream

    with MockUpstream(prompt_tokens=1000, completion_tokens=200) as up:
        yield up
