"""Helpers for tests that run the real LiteLLM proxy in front of the mock provider."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path

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
