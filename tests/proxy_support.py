"""Helpers for tests that run the real LiteLLM proxy in front of the mock provider."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import httpx
import yaml

from backlog_ops.ledger import SqliteLedger
from backlog_ops.gateway.process import ProxyProcess

TESTS = Path(__file__).resolve().parent
OUR_CALLBACKS = [
    "backlog_ops.callbacks.ticket_tagger.ticket_tagger",
    "backlog_ops.callbacks.spend_ledger.spend_ledger",
]


def write_config(directory: Path, upstream_url: str, *, extra_callbacks: list[str] = (), ours: bool = True, **settings) -> Path:
    """A proxy config with an OpenAI and an Anthropic deployment on the mock provider.

    The SLO probe (tests/slo_probe.py) is copied beside the config: LiteLLM loads a callback
    module from the config's directory.
    """
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(TESTS / "slo_probe.py", directory / "slo_probe.py")
    config = {
        "model_list": [
            {"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": f"{upstream_url}/v1", "api_key": "mock"}},
            {"model_name": "claude-haiku", "litellm_params": {"model": "anthropic/claude-haiku-4-5", "api_base": upstream_url, "api_key": "mock"}},
        ],
        "litellm_settings": {
            "callbacks": (OUR_CALLBACKS if ours else []) + list(extra_callbacks),
            "num_retries": 0,
            "disable_add_user_agent_to_request_tags": True,
            **settings,
        },
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }
    path = directory / "proxy.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_proxy(home: Path, config: Path, probe_file: Path | None = None) -> ProxyProcess:
    env = {"LITELLM_MASTER_KEY": "sk-test-" + secrets.token_hex(16)}
    if probe_file is not None:
        env["SLO_PROBE_FILE"] = str(probe_file)
    return ProxyProcess(home, config=config, env=env).start()


def wait_for_rows(ledger_path: Path, call_ids: list[str], timeout: float = 15.0) -> dict[str, dict]:
    """Ledger rows for call_ids, waiting for the background writer (bounded)."""
    deadline = time.monotonic() + timeout
    found: dict[str, dict] = {}
    while time.monotonic() < deadline:
        if ledger_path.exists():
            with SqliteLedger(ledger_path) as ledger:
                marks = ",".join("?" for _ in call_ids)
                found = {r["call_id"]: r for r in ledger.rows(f"WHERE call_id IN ({marks})", tuple(call_ids))}
            if len(found) == len(set(call_ids)):
                return found
        time.sleep(0.1)
    raise AssertionError(f"ledger has {len(found)} of {len(set(call_ids))} rows after {timeout} s")


def wait_for_probe(probe_file: Path, call_ids: list[str], timeout: float = 15.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    found: dict[str, dict] = {}
    while time.monotonic() < deadline:
        if probe_file.exists():
            for line in probe_file.read_text().splitlines():
                row = json.loads(line)
                if row["call_id"] in call_ids:
                    found[row["call_id"]] = row
            if len(found) == len(set(call_ids)):
                return found
        time.sleep(0.1)
    raise AssertionError(f"LiteLLM logged {len(found)} of {len(set(call_ids))} calls after {timeout} s")


def point_at_mock(config: dict, upstream_url: str) -> dict:
    """The rendered config with every deployment answered by the mock provider."""
    for dep in config["model_list"]:
        dep["litellm_params"]["api_base"] = upstream_url
        dep["litellm_params"]["api_key"] = "mock"
    return config


@contextmanager
def rendered_gateway(root: Path, backlog_config: Callable[[str], dict], upstream_url: str, *,
                     config_name: str = "litellm.yaml") -> Iterator[ProxyProcess]:
    """The proxy running `config render` of backlog_config(namespace), only the upstream replaced.

    The real Redis on loopback serves the response cache under a fresh namespace, whose keys are
    deleted after. Started with no database and no LITELLM_ENVIRONMENT: the rendered aliases must
    load without them, as a user starts them.
    """
    from backlog_ops.gateway.render import render_proxy_config
    from backlog_ops.project.schema import load_backlog_config

    namespace = "backlog-test-" + uuid.uuid4().hex[:12]
    project_config = root / "backlog.config.json"
    project_config.write_text(json.dumps(backlog_config(namespace)))
    rendered = render_proxy_config(load_backlog_config(project_config), source=project_config)
    config_path = root / config_name
    config_path.write_text(yaml.safe_dump(point_at_mock(rendered, upstream_url), sort_keys=False))
    home = root / "home"
    proc = ProxyProcess(home, config=config_path, env={
        "LITELLM_MASTER_KEY": "sk-test-" + secrets.token_hex(16), "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379",
    })
    for var in ("DATABASE_URL", "REDIS_PASSWORD", "BACKLOG_POLICY_FILE", "LITELLM_ENVIRONMENT"):
        proc.env.pop(var, None)  # no database here; Redis on loopback has no password
    proc.start()
    proc.config_path, proc.project_config, proc.namespace = config_path, project_config, namespace
    proc.ledger_path = home / "ledger.db"
    try:
        yield proc
    finally:
        proc.stop()
        drop_redis_keys(namespace)


def drop_redis_keys(namespace: str) -> None:
    """Delete what a test left in the shared Redis under `namespace`."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
    if keys:
        client.delete(*keys)


def admin_client(proc: ProxyProcess) -> httpx.Client:
    """An HTTP client of the proxy with its master key."""
    return httpx.Client(base_url=proc.base_url, headers={"authorization": f"Bearer {proc.master_key}"}, timeout=60)


def chat(client: httpx.Client, model: str, headers: dict | None = None, content: str | None = None,
         **body) -> httpx.Response:
    """One chat completion through the proxy; a fresh prompt unless `content` is given."""
    payload = {
        "model": model,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": content or f"unique {uuid.uuid4()}"}],
        **body,
    }
    return client.post("/v1/chat/completions", headers=headers or {}, json=payload)


def ok(r: httpx.Response) -> str:
    """The call id of a call that succeeded."""
    assert r.status_code == 200, r.text
    return r.headers["x-litellm-call-id"]


def upstream_models(upstream, since: int = 0) -> list[str]:
    """The model of each request the mock provider received since its `since`-th."""
    return [r.body.get("model") for r in upstream.requests[since:] if isinstance(r.body, dict)]


def worker_pids(parent: int) -> list[int]:
    """The proxy's workers: its children running multiprocessing's spawn entry."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in cmdline:
            found.append(int(entry))
    return found
