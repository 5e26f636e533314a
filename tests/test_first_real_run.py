"""The README's real-provider quick start, run as written: render, start, call every alias.

A project with the example backlog.config.json and a `.env` holding a stand-in provider key, the
local mock as the provider endpoint (ANTHROPIC_API_BASE, which LiteLLM reads when a deployment
sets no api_base) and REDIS_HOST for the example's response cache. `backlog-ops config render`
and `backlog-ops proxy --config litellm.yaml` run as a user runs them; the rendered file is not
edited. Then: keys the proxy rejects (401, never in the ledger), and start-ups it refuses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from backlog_ops.context.file_store import ContextStore
from backlog_ops.context.scope import Scope
from backlog_ops.gateway.process import ProxyProcess, free_port
from backlog_ops.ledger import SqliteLedger

from conftest import require_service
from proxy_support import drop_redis_keys, wait_for_rows

pytestmark = [pytest.mark.proxy, pytest.mark.services]

REPO = Path(__file__).resolve().parents[1]
STAND_IN_KEY = "sk-ant-stand-in-" + uuid.uuid4().hex
SERVED = {"cheap": "claude-haiku-4-5", "balanced": "claude-sonnet-4-6", "frontier": "claude-opus-4-6"}
# What a shell that started the proxy might carry and the quick start does not set.
NOT_SET = ("ANTHROPIC_API_KEY", "ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "REDIS_HOST",
           "REDIS_URL", "REDIS_PORT", "REDIS_PASSWORD", "LITELLM_ENVIRONMENT", "LITELLM_MASTER_KEY", "DATABASE_URL",
           "BACKLOG_POLICY_FILE", "BACKLOG_LEDGER_URL", "OPENAI_API_KEY", "GROQ_API_KEY")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_SET}
    return {**env, **extra}


def cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backlog_ops.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def make_project(root: Path, namespace: str) -> Path:
    """A project like a user's: the example settings (its own cache namespace), rendered by the CLI."""
    project = root / "my-api"
    project.mkdir(parents=True)
    settings = json.loads((REPO / "backlog.config.example.json").read_text())
    settings["llmOps"]["cachePolicy"]["responseCache"]["namespace"] = namespace
    (project / "backlog.config.json").write_text(json.dumps(settings))
    done = cli(["config", "render", "--output", "litellm.yaml"], project, clean_env(BACKLOG_HOME=str(root / "render-home")))
    assert done.returncode == 0, done.stderr
    return project


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory, upstream):
    require_service("Redis", "127.0.0.1", 6379)
    root = tmp_path_factory.mktemp("quick-start")
    namespace = "backlog-test-" + uuid.uuid4().hex[:12]
    project = make_project(root, namespace)
    (project / ".env").write_text(
        f"ANTHROPIC_API_KEY={STAND_IN_KEY}\nANTHROPIC_API_BASE={upstream.base_url}\nREDIS_HOST=127.0.0.1\n"
    )
    proc = ProxyProcess(root / "home", config=project / "litellm.yaml", cwd=project)
    proc.env = clean_env(BACKLOG_HOME=str(root / "home"))
    proc.start()
    proc.project = project
    yield proc
    proc.stop()
    drop_redis_keys(namespace)


def test_the_rendered_config_serves_every_alias_on_both_routes(quick_start, upstream) -> None:
    sid = str(uuid.uuid4())
    ContextStore(quick_start.home).set({"ticket_id": "QS-1", "gate": "implement", "agent_type": "backend"}, Scope(sid))
    bearer = {"authorization": f"Bearer {quick_start.master_key}"}
    calls = {}
    with httpx.Client(base_url=quick_start.base_url, headers={"x-claude-code-session-id": sid}, timeout=60) as client:
        for alias, model in SERVED.items():
            before = len(upstream.requests)
            r = client.post("/v1/chat/completions", headers=bearer, json={
                "model": alias, "messages": [{"role": "user", "content": f"hello {uuid.uuid4()}"}]})
            assert r.status_code == 200, r.text
            calls[r.headers["x-litellm-call-id"]] = alias
            # Claude Code's route, streamed, with the key in x-api-key as ANTHROPIC_API_KEY sends it.
            payload = {"model": alias, "max_tokens": 50, "stream": True,
                       "messages": [{"role": "user", "content": f"hi {uuid.uuid4()}"}]}
            stream_headers = {"x-api-key": quick_start.master_key, "anthropic-version": "2023-06-01"}
            with client.stream("POST", "/v1/messages", json=payload, headers=stream_headers) as s:
                s.read()
                assert s.status_code == 200 and "message_stop" in s.text, s.text
                calls[s.headers["x-litellm-call-id"]] = alias
            sent = upstream.requests[before:]
            assert [r.body.get("model") for r in sent] == [model, model]
            assert {r.headers.get("x-api-key") for r in sent} == {STAND_IN_KEY}, "the stand-in key from .env"
    rows = wait_for_rows(quick_start.home / "ledger.db", list(calls))
    for call_id, alias in calls.items():
        row = rows[call_id]
        assert (row["status"], row["model_group"], row["ticket_id"]) == ("success", alias, "QS-1")
        assert row["cost_usd"] > 0


def test_the_banner_says_where_calls_go_and_never_a_secret(quick_start, upstream) -> None:
    log = quick_start.log()
    for line in (
        f"LiteLLM proxy on {quick_start.base_url} with config {quick_start.project / 'litellm.yaml'}",
        "aliases: cheap → anthropic/claude-haiku-4-5, balanced → anthropic/claude-sonnet-4-6, "
        "frontier → anthropic/claude-opus-4-6",
        f"provider anthropic (at 127.0.0.1:{upstream.port} (a local endpoint)): ANTHROPIC_API_KEY set",
        "provider openai (real provider): MISSING OPENAI_API_KEY: calls to gpt-4o-mini",
        "from ./.env: ANTHROPIC_API_BASE, ANTHROPIC_API_KEY, REDIS_HOST (values not shown)",
        f"master key from {quick_start.home / 'master-key'}",
        f"ledger: SQLite at {quick_start.home / 'ledger.db'}",
    ):
        assert f"backlog-ops: {line}" in log, f"{line!r} not in the start-up text:\n{log[:3000]}"
    assert "OFFLINE MOCK" not in log
    assert STAND_IN_KEY not in log and quick_start.master_key not in log
    assert "Error creating deployment" not in log and "supported_environments" not in log


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize("key", [None, "sk-not-the-key", "wrong"], ids=["no-key", "wrong-sk-key", "wrong-key"])
def test_a_missing_or_wrong_key_gets_401_naming_where_the_key_is_kept(quick_start, upstream, route, key) -> None:
    headers = {"anthropic-version": "2023-06-01"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    before = len(upstream.requests)
    r = httpx.post(quick_start.base_url + route, headers=headers, timeout=60,
                   json={"model": "cheap", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 401, r.text
    message = r.json()["error"]["message"]
    assert ("no API key was sent" if key is None else "the API key sent is not this proxy's key") in message
    assert str(quick_start.home / "master-key") in message and "ANTHROPIC_AUTH_TOKEN" in message
    assert quick_start.master_key not in r.text and "prisma" not in r.text
    assert len(upstream.requests) == before


def test_rejected_requests_are_not_calls_in_the_ledger(quick_start) -> None:
    for headers in ({}, {"authorization": "Bearer sk-wrong"}, {"x-api-key": "sk-wrong"}):
        r = httpx.post(quick_start.base_url + "/v1/chat/completions", headers=headers, timeout=60,
                       json={"model": "cheap", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 401
    # A later call's row is written after any row for the rejected ones would have been.
    r = httpx.post(quick_start.base_url + "/v1/chat/completions", timeout=60,
                   headers={"authorization": f"Bearer {quick_start.master_key}"},
                   json={"model": "cheap", "messages": [{"role": "user", "content": f"after {uuid.uuid4()}"}]})
    assert r.status_code == 200, r.text
    wait_for_rows(quick_start.home / "ledger.db", [r.headers["x-litellm-call-id"]])
    with SqliteLedger(quick_start.home / "ledger.db") as ledger:
        rows = ledger.rows()
    assert rows and all(row["status"] == "success" for row in rows), [r["error_class"] for r in rows]
    log = quick_start.log()
    assert "ModuleNotFoundError" not in log and "No connected db" not in log


# -- start-ups the proxy refuses, with one line and a non-zero exit -----------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("refusals"), "backlog-unused")


def refused(project: Path, env: dict[str, str], config: str = "litellm.yaml", port: int | None = None,
            workers: int = 1) -> list[str]:
    port = port or free_port()
    done = cli(["proxy", "--config", config, "--port", str(port), "--workers", str(workers)], project,
               clean_env(BACKLOG_HOME=str(project / "home"), **env))
    assert done.returncode != 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("backlog-ops: error:")]
    assert errors, done.stderr[-3000:]
    return errors


def test_start_is_refused_without_the_aliases_provider_key(project) -> None:
    errors = refused(project, {"REDIS_HOST": "127.0.0.1"})
    assert len(errors) == 1
    assert "cheap, balanced, frontier: the provider key ANTHROPIC_API_KEY is not set" in errors[0]
    assert "fix: export ANTHROPIC_API_KEY (your provider key) or put it in ./.env" in errors[0]


def test_start_is_refused_when_the_provider_base_url_is_the_proxy_itself(project) -> None:
    port = free_port()
    errors = refused(project, {"ANTHROPIC_API_KEY": STAND_IN_KEY, "REDIS_HOST": "127.0.0.1",
                               "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}, port=port)
    assert len(errors) == 1 and f"ANTHROPIC_BASE_URL points at 127.0.0.1:{port}, this proxy's own address" in errors[0]


def test_start_is_refused_when_the_redis_cache_has_no_host(project) -> None:
    errors = refused(project, {"ANTHROPIC_API_KEY": STAND_IN_KEY})
    assert len(errors) == 1, errors
    assert "LiteLLM cannot start the Redis response cache" in errors[0] and "REDIS_HOST" in errors[0]
    assert "responseCache.type" in errors[0]


def test_start_with_workers_is_refused_when_the_redis_cache_has_no_host(project) -> None:
    # Found by each worker as LiteLLM loads the config, not by the parent: the parent still exits
    # non-zero (it used to exit 0) and says why once, however many workers failed.
    errors = refused(project, {"ANTHROPIC_API_KEY": STAND_IN_KEY}, workers=2)
    assert len(errors) == 1, errors
    assert "LiteLLM cannot start the Redis response cache" in errors[0] and "REDIS_HOST" in errors[0]


def test_start_is_refused_when_litellm_would_drop_the_aliases(project) -> None:
    config = yaml.safe_load((project / "litellm.yaml").read_text())
    for dep in config["model_list"]:
        if dep["model_name"] in SERVED:
            dep["model_info"] = {"supported_environments": ["production", "staging"]}
    (project / "gated.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    errors = refused(project, {"ANTHROPIC_API_KEY": STAND_IN_KEY, "REDIS_HOST": "127.0.0.1"}, config="gated.yaml")
    assert len(errors) == 1, errors
    for part in ("LiteLLM drops deployments (cheap: 1 of 1, balanced: 1 of 1, frontier: 1 of 1)",
                 "LITELLM_ENVIRONMENT, which is not set", "fix: export LITELLM_ENVIRONMENT=production"):
        assert part in errors[0], errors[0]
