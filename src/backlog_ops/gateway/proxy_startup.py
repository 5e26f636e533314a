"""What every proxy process does around LiteLLM's own start, the parent and each --workers worker alike.

Read the config it was given, add the status route `backlog-ops doctor` asks, and say why it cannot
start; and the variables the parent hands its workers (gateway/proxy_workers.py). Kept apart from
gateway/proxy.py so that the workers' set-up does not import the parent's (no import circle).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from backlog_ops.errors import ConfigError
from backlog_ops.gateway.lint import load_proxy_config

__all__ = ["WORKER_CONFIG_ENV", "WORKER_MOCK_ENV", "WORKER_PROBLEMS_ENV", "read_proxy_config", "report_start_problems",
           "serve_status"]

WORKER_CONFIG_ENV = "BACKLOG_PROXY_WORKER_CONFIG"  # the config the parent checked, for each worker
WORKER_MOCK_ENV = "BACKLOG_PROXY_WORKER_MOCK"  # "1": the offline mock config
WORKER_PROBLEMS_ENV = "BACKLOG_PROXY_WORKER_PROBLEMS"  # where a worker that cannot serve writes why


def read_proxy_config(path: Path) -> dict:
    try:
        return load_proxy_config(path)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def report_start_problems(problems: list[str]) -> None:
    """One error line per reason the proxy cannot start, on stderr (its log)."""
    for problem in problems:
        print(f"backlog-ops: error: cannot start the proxy: {problem}", file=sys.stderr)
    sys.stderr.flush()


def serve_status(config_path: Path, *, mock: bool) -> None:
    """GET /backlog-ops/status: the mode and missing key names, for `backlog-ops doctor`."""
    from litellm.proxy.proxy_server import app

    from backlog_ops.gateway.status import add_status_route, describe_proxy_config

    try:
        config = load_proxy_config(config_path)
    except (ConfigError, OSError, yaml.YAMLError):
        config = {}  # LiteLLM reports the broken file itself when it loads it
    add_status_route(app, describe_proxy_config(config, mock=mock, config_path=config_path))
