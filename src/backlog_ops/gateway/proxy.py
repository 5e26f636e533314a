"""`backlog-ops proxy`: the real LiteLLM proxy with the backlog-ops callbacks registered.

With no --config it runs the shipped offline development config: the aliases cheap, balanced
and frontier answered by a local mock provider (backlog_ops.testing.mock_upstream) that reports usage in
proportion to the request, so spend looks like spend without any provider key. The answers are
fake, and the start-up text says so.

With --config it runs that file against real providers, and refuses to start, with one line per
problem, when the config would not serve: an alias whose provider key is unset, a provider base
URL pointing at the proxy itself, a start-up error in LiteLLM's loading (a Redis cache without
REDIS_HOST), or deployments LiteLLM drops (gateway.serving says which). A `.env` in the directory
it starts in supplies variables the environment does not set.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import yaml

from backlog_ops.common.extras import require
from backlog_ops.common.home import home, write_atomic
from backlog_ops.common.settings import settings
from backlog_ops.errors import ConfigError, ProxyStartError
from backlog_ops.gateway.lint import POLICY_SECTION, config_dir
from backlog_ops.gateway.master_key import master_key
from backlog_ops.gateway.render import render_proxy_config
from backlog_ops.gateway.proxy_startup import (
    WORKER_CONFIG_ENV,
    WORKER_MOCK_ENV,
    WORKER_PROBLEMS_ENV,
    read_proxy_config,
    report_start_problems,
    serve_status,
)
from backlog_ops.gateway.serving import (
    environment_problems,
    load_problems,
    provider_summary,
    routes,
)
from backlog_ops.ledger.backend import describe_ledger
from backlog_ops.project.file import CONFIG_FILE
from backlog_ops.project.schema import load_backlog_config

__all__ = ["DEV_CONFIG", "DOTENV", "MAX_WORKERS", "WORKER_CONFIG_ENV", "WORKER_MOCK_ENV", "WORKER_PROBLEMS_ENV", "read_dotenv", "read_proxy_config", "report_start_problems", "run_proxy", "serve_status", "startup_text", "worker_environment"]

DEV_CONFIG = "dev.yaml"
DOTENV = ".env"
MOCK_BASE_ENV = "BACKLOG_MOCK_API_BASE"
MAX_WORKERS = 64


def dev_config_path() -> Path:
    return config_dir() / DEV_CONFIG


def read_dotenv(directory: Path | None = None) -> dict[str, str]:
    """The variables of DIRECTORY/.env (default: the current directory); {} when there is none."""
    path = (directory or Path.cwd()) / DOTENV
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # python-dotenv comes with litellm

    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return {k: v for k, v in values.items() if isinstance(k, str) and v is not None}


def run_proxy(*, config: str | None, host: str, port: int, workers: int = 1) -> int:
    """Run the proxy in this process until it is stopped (Ctrl-C or SIGTERM).

    `workers` above 1 runs that many worker processes on the one port, each on a listening socket
    of its own (gateway/worker_pool.py; gateway/proxy_workers.py sets each up); their per-ticket
    limits are exact together only with the team's Redis configured (BACKLOG_CONTEXT_URL:
    reservations shared by every process).
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers {workers}: give a number of worker processes from 1 to {MAX_WORKERS}")
    # The proxy's own dependencies (fastapi, websockets, …) come with the gateway extra.
    for module in ("fastapi", "websockets"):
        require(module, "gateway", "The LiteLLM proxy (backlog-ops proxy)")
    from_dotenv = []  # the environment wins over .env, as with docker compose and python-dotenv
    for name, value in read_dotenv().items():
        if name not in os.environ:
            os.environ[name] = value
            from_dotenv.append(name)
    if config is None:
        config_path = dev_config_path()
    else:
        config_path = Path(config).expanduser()
        if not config_path.is_file():
            raise ConfigError(f"proxy config {config_path} does not exist")
    proxy_config = read_proxy_config(config_path)
    if not isinstance(proxy_config.get("model_list"), list) or not proxy_config["model_list"]:
        raise ConfigError(f"{config_path}: model_list: missing or empty, so the proxy would serve nothing; "
                          f"fix: render one with `backlog-ops config render --output litellm.yaml`")
    problems = environment_problems(config_path, proxy_config, os.environ, port=port) if config else []
    if problems:
        raise ConfigError("\n".join(f"cannot start the proxy: {p}" for p in problems))
    if workers > 1:
        from backlog_ops.gateway.worker_pool import check_port_free

        check_port_free(host, port)
    key, key_source = master_key()
    os.environ["LITELLM_MASTER_KEY"] = key
    # The price map ships with litellm; fetching it at start costs ~7 s and needs the internet.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

    mock = None
    if config is None:
        policy_source, section = _dev_policy_from_project()
        if policy_source is not None:
            print(f"backlog-ops: ticket budgets from {policy_source}", file=sys.stderr)
            for line in _semantic_cache_start(section):
                print(f"backlog-ops: {line}", file=sys.stderr)
        from backlog_ops.testing.mock_upstream import MockUpstream

        mock = MockUpstream(estimate_usage=True)
        os.environ[MOCK_BASE_ENV] = mock.start()
        print(f"backlog-ops: mock provider at {os.environ[MOCK_BASE_ENV]}", file=sys.stderr)

    # The start-up banner stays here: it belongs to the running process and goes to its log.
    for line in startup_text(config_path if config else None, proxy_config, host=host, port=port,
                             key_source=key_source, from_dotenv=from_dotenv, workers=workers):
        print(f"backlog-ops: {line}", file=sys.stderr)
    problems_file = None
    if workers > 1:
        # A private directory: the file a worker that cannot load the config writes its problems to.
        problems_file = Path(tempfile.mkdtemp(prefix="backlog-ops-proxy-")) / "worker-problems"
        os.environ.update(worker_environment(config_path, mock=mock is not None, problems_file=problems_file))
    from litellm.proxy.proxy_cli import run_server

    from backlog_ops.gateway.litellm_load import guard_startup_load

    def stop_on_problems(outcome: dict) -> None:
        found = load_problems(config_path, proxy_config, outcome, os.environ)
        if not found:
            return
        report_start_problems(found)
        if mock is not None:
            mock.stop()
        # Inside uvicorn's start-up any exception ends in a traceback; nothing was served or
        # recorded yet, so leaving at once loses nothing.
        os._exit(1)

    guard_startup_load(stop_on_problems)
    serve_status(config_path, mock=mock is not None)

    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the handler it found:
    # with the default one the process dies before atexit, and the ledger's last rows with it.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    stopped = None
    failures: list[str] = []
    try:
        # With workers, LiteLLM's own start-up (its worker config, its database) runs here, and
        # the workers serve its app instead of uvicorn's supervisor (gateway/worker_pool.py: why).
        run_server.main(
            args=["--config", str(config_path), "--host", host, "--port", str(port), "--num_workers", str(workers),
                  *(["--skip_server_startup"] if workers > 1 else [])],
            standalone_mode=False,
        )
        if workers > 1:
            from backlog_ops.gateway.worker_pool import WorkerPool

            failures = WorkerPool(workers, host, port, _worker_server_args(host, port, workers, proxy_config)).run()
    except SystemExit as exc:  # a SIGTERM (_exit_on_sigterm) in the single process, once uvicorn has stopped
        stopped = exc
    except Exception as exc:  # noqa: BLE001 - LiteLLM reads the config again before serving
        raise ProxyStartError(f"the LiteLLM proxy stopped: {type(exc).__name__}: {exc}") from None
    finally:
        if mock is not None:
            mock.stop()
        found = _worker_problems(problems_file) or failures
        # The server has stopped. LiteLLM leaves millions of objects, and the collections at interpreter
        # exit would walk them all for seconds (a Ctrl-C took 4-6 s, 0.9 s frozen). Frozen, they are
        # skipped; the exit handlers (the ledger's last rows) run all the same.
        gc.freeze()
    # A worker that could not load the config, or ended before it served, stopped the proxy: not a clean stop.
    if found:
        report_start_problems(found)
        return 1
    if stopped is not None:
        raise stopped
    return 0


def _worker_problems(problems_file: Path | None) -> list[str]:
    """What a worker that could not load the config wrote (gateway/proxy_workers.stop_the_proxy); the file goes."""
    if problems_file is None:
        return []
    try:
        text = problems_file.read_text(errors="replace")
    except FileNotFoundError:
        text = ""
    finally:
        shutil.rmtree(problems_file.parent, ignore_errors=True)
    return [line for line in text.splitlines() if line.strip()]


def worker_environment(config_path: Path, *, mock: bool, problems_file: Path | None = None) -> dict[str, str]:
    """What each worker process needs to run gateway/proxy_workers.in_worker."""
    return {WORKER_CONFIG_ENV: str(config_path), WORKER_MOCK_ENV: "1" if mock else "",
            WORKER_PROBLEMS_ENV: str(problems_file or "")}


def _worker_server_args(host: str, port: int, workers: int, proxy_config: dict) -> dict:
    """The uvicorn settings LiteLLM's proxy_cli gives its workers, and its set-up for several of them."""
    from litellm.proxy.db.query_engine_reaper import start_query_engine_reaper
    from litellm.proxy.proxy_cli import ProxyInitializationHelpers as litellm_start

    args = dict(litellm_start.get_default_unvicorn_init_args(host=host, port=port))
    loop = litellm_start.get_loop_type()
    if loop:
        args["loop"] = loop
    litellm_start.maybe_setup_prometheus_multiproc_dir(num_workers=workers,
                                                       litellm_settings=proxy_config.get("litellm_settings"))
    start_query_engine_reaper()  # prisma query engines of workers that died, as LiteLLM's supervisor does
    return args


def startup_text(config_path: Path | None, proxy_config: dict, *, host: str, port: int, key_source: str,
                 from_dotenv: list[str] = (), workers: int = 1) -> list[str]:
    """The start-up banner: which mode, where calls go, which keys are missing (names only), the ledger."""
    lines = []
    if config_path is None:
        lines.append(f"LiteLLM proxy on http://{host}:{port} in OFFLINE MOCK mode: answers are fake, from a local "
                     f"mock provider (no provider is called, no key is needed; costs use the real models' prices)")
        lines.append("for real answers: backlog-ops config render --output litellm.yaml && "
                     "backlog-ops proxy --config litellm.yaml (README: real provider quick start)")
    else:
        lines.append(f"LiteLLM proxy on http://{host}:{port} with config {config_path}")
        found = routes(proxy_config, os.environ)
        aliases = [f"{r.model_name} → {r.model}" for r in found if r.model_name in ("cheap", "balanced", "frontier")]
        if aliases:
            lines.append("aliases: " + ", ".join(aliases))
        for entry in provider_summary(found):
            where = (f"at {', '.join(entry['local_endpoints'])} (a local endpoint)" if entry["local_endpoints"]
                     else "real provider")
            keys = ", ".join(entry["keys"]) or "no key variable"
            status = (f"MISSING {', '.join(entry['missing_keys'])}: calls to {', '.join(entry['models'])} will fail"
                      if entry["missing_keys"] else f"{keys} set")
            lines.append(f"provider {entry['provider']} ({where}): {status}")
    if from_dotenv:
        lines.append(f"from ./{DOTENV}: {', '.join(sorted(from_dotenv))} (values not shown)")
    lines.append(f"master key from {key_source} (use it as the API key; it is not printed)")
    lines.append(f"ledger: {describe_ledger()}")
    if workers > 1:
        shared = settings().context_url
        lines.append(f"{workers} worker processes: per-ticket limits are " + (
            "shared by every worker and replica through the team's Redis (BACKLOG_CONTEXT_URL)" if shared else
            "checked per worker, so together they may overshoot a budget by a few calls; set BACKLOG_CONTEXT_URL "
            "(the team's Redis) to share them"))
    return lines


def _dev_policy_from_project() -> tuple[Path | None, dict]:
    """Let the offline proxy enforce ./backlog.config.json's ticket budgets, as a rendered config would.

    Returns the backlog.config.json it used and the policy section written (None, {} when there
    is none or BACKLOG_POLICY_FILE is set).
    """
    source = Path.cwd() / CONFIG_FILE
    if settings().policy_file or not source.is_file():
        return None, {}
    section = render_proxy_config(load_backlog_config(source), source=source)[POLICY_SECTION]
    policy_file = home() / "dev-policy.yaml"
    write_atomic(policy_file, yaml.safe_dump({POLICY_SECTION: section}, sort_keys=False).encode())
    os.environ["BACKLOG_POLICY_FILE"] = str(policy_file)
    return source, section


def _semantic_cache_start(section: dict) -> list[str]:
    """Load the semantic cache's embedding model now when a project has the cache on; its banner lines."""
    from backlog_ops.gateway.semantic_cache.settings import parse_semantic_section

    lines = []
    for project, found in parse_semantic_section(section).items():
        if not found.enabled:
            continue
        from backlog_ops.gateway.semantic_cache.embedder import get_embedder

        get_embedder(found.embedder).load()  # here, so that the first request does not wait for it
        lines.append(f"semantic cache on for {project}: similarity >= {found.similarity_threshold}, "
                     f"TTL {found.ttl_seconds} s, {found.index} index, embedder {found.embedder}")
    return lines


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)
