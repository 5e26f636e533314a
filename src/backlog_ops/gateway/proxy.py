"""`backlog-ops proxy`: the real LiteLLM proxy with the backlog-ops callbacks registered.

With no --config it runs the shipped offline development config: the aliases cheap, balanced
and frontier answered by a local mock provider (backlog_ops.testing.mock_upstream) that reports usage in
proportion to the request, so spend looks like spend without any provider key.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import yaml

from backlog_ops.common.extras import require
from backlog_ops.common.home import home, write_atomic
from backlog_ops.common.settings import settings
from backlog_ops.errors import ConfigError
from backlog_ops.gateway.lint import POLICY_SECTION, config_dir
from backlog_ops.gateway.master_key import master_key
from backlog_ops.gateway.render import render_proxy_config
from backlog_ops.ledger.sqlite import default_ledger_path
from backlog_ops.project.file import CONFIG_FILE
from backlog_ops.project.schema import load_backlog_config

__all__ = ["DEV_CONFIG", "run_proxy"]

DEV_CONFIG = "dev.yaml"
MOCK_BASE_ENV = "BACKLOG_MOCK_API_BASE"


def dev_config_path() -> Path:
    return config_dir() / DEV_CONFIG


def run_proxy(*, config: str | None, host: str, port: int) -> int:
    """Run the proxy in this process until it is stopped (Ctrl-C or SIGTERM)."""
    # The proxy's own dependencies (fastapi, websockets, …) come with the gateway extra.
    for module in ("fastapi", "websockets"):
        require(module, "gateway", "The LiteLLM proxy (backlog-ops proxy)")
    if config is None:
        config_path = dev_config_path()
    else:
        config_path = Path(config).expanduser()
        if not config_path.is_file():
            raise ConfigError(f"proxy config {config_path} does not exist")
    key, key_source = master_key()
    os.environ["LITELLM_MASTER_KEY"] = key
    # The price map ships with litellm; fetching it at start costs ~7 s and needs the internet.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    mock = None
    if config is None:
        policy_source = _dev_policy_from_project()
        if policy_source is not None:
            print(f"backlog-ops: ticket budgets from {policy_source}", file=sys.stderr)
        from backlog_ops.testing.mock_upstream import MockUpstream

        mock = MockUpstream(estimate_usage=True)
        os.environ[MOCK_BASE_ENV] = mock.start()

    # The start-up banner stays here: it belongs to the running process and goes to its log.
    print(f"backlog-ops: LiteLLM proxy on http://{host}:{port} with config {config_path}", file=sys.stderr)
    print(f"backlog-ops: master key from {key_source} (use it as the API key; it is not printed)", file=sys.stderr)
    print(f"backlog-ops: ledger {default_ledger_path()}", file=sys.stderr)
    from litellm.proxy.proxy_cli import run_server

    _serve_status(config_path, mock=mock is not None)

    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the handler it found:
    # with the default one the process dies before atexit, and the ledger's last rows with it.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    try:
        run_server.main(
            args=["--config", str(config_path), "--host", host, "--port", str(port)],
            standalone_mode=False,
        )
    finally:
        if mock is not None:
            mock.stop()
    return 0


def _dev_policy_from_project() -> Path | None:
    """Let the offline proxy enforce ./backlog.config.json's ticket budgets, as a rendered config would.

    Returns the backlog.config.json it used: None when there is none or BACKLOG_POLICY_FILE is set.
    """
    source = Path.cwd() / CONFIG_FILE
    if settings().policy_file or not source.is_file():
        return None
    section = render_proxy_config(load_backlog_config(source), source=source)[POLICY_SECTION]
    policy_file = home() / "dev-policy.yaml"
    write_atomic(policy_file, yaml.safe_dump({POLICY_SECTION: section}, sort_keys=False).encode())
    os.environ["BACKLOG_POLICY_FILE"] = str(policy_file)
    return source


def _serve_status(config_path: Path, *, mock: bool) -> None:
    """GET /backlog-ops/status: the mode and missing key names, for `backlog-ops doctor`."""
    from litellm.proxy.proxy_server import app

    from backlog_ops.gateway.lint import load_proxy_config
    from backlog_ops.gateway.status import add_status_route, describe_proxy_config

    try:
        config = load_proxy_config(config_path)
    except (ConfigError, OSError, yaml.YAMLError):
        config = {}  # LiteLLM reports the broken file itself when it loads it
    add_status_route(app, describe_proxy_config(config, mock=mock, config_path=config_path))


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)
