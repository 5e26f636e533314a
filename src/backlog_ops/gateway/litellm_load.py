"""LiteLLM's own loading of a proxy config, read back: did it fail, which deployments did it keep?

Not a schema guess: `ProxyConfig.load_config` is what the proxy runs at start-up (includes,
os.environ/ references, the response cache, the router and its deployments), and the call
LiteLLM's own `litellm --validate_config` makes, which however calls a config "OK" whatever
deployments the router dropped. `config check`
runs it in a child process (`check_loads`), since it changes LiteLLM's module state;
`backlog-ops proxy` reads the proxy's own start-up load (`guard_startup_load`). The outcome is a
plain dict that gateway.serving turns into problems:

    {"error": str | None, "loaded": {model_name: deployments kept},
     "dropped": [LiteLLM's reasons], "inactive": [model names not active for LITELLM_ENVIRONMENT]}
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

__all__ = ["check_loads", "guard_startup_load", "load_outcome"]

CHILD_TIMEOUT = 300.0  # importing LiteLLM's proxy takes 5-15 s on a busy 2-core machine
ROUTER_LOGGER = "LiteLLM Router"
# What LiteLLM 1.106's router logs when it does not keep a deployment (router._create_deployment).
_DROPPED = re.compile(r"Error creating deployment: (.*?), ignoring and continuing with other deployments", re.S)
_INACTIVE = re.compile(r"Ignoring deployment (.+?) as it is not active for environment")
# Any strong-looking key: the load only needs one to be set, as `backlog-ops proxy` always sets it.
_PLACEHOLDER_KEY = "sk-config-check-" + "0" * 32


class _RouterLog(logging.Filter):
    """Collects what LiteLLM's router says about deployments it does not keep.

    A filter on the router's logger, so it can also hold back the traceback LiteLLM prints for
    each dropped deployment: the caller reports the drop in one line instead.
    """

    def __init__(self, *, quiet: bool) -> None:
        super().__init__()
        self.quiet = quiet
        self.dropped: list[str] = []
        self.inactive: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            # LiteLLM's own filter may have formatted the record already: read the message text.
            message = record.getMessage()
            if found := _DROPPED.match(message):
                self.dropped.append(found.group(1))
                return not self.quiet
            if found := _INACTIVE.match(message):
                self.inactive.append(found.group(1))
        except Exception:  # noqa: BLE001 - a log reader never breaks the load it watches
            pass
        return True


@contextlib.contextmanager
def _watch_router(*, quiet: bool = True) -> Iterator[_RouterLog]:
    watched = _RouterLog(quiet=quiet)
    logger = logging.getLogger(ROUTER_LOGGER)
    logger.addFilter(watched)
    try:
        yield watched
    finally:
        logger.removeFilter(watched)


def load_outcome(models: list | None, watched: _RouterLog, error: BaseException | None) -> dict:
    """The outcome dict of one load: `models` is the router's model list (None when it failed)."""
    loaded: dict[str, int] = {}
    for dep in models or []:
        name = dep.get("model_name") if isinstance(dep, dict) else None
        if isinstance(name, str):
            loaded[name] = loaded.get(name, 0) + 1
    return {
        "error": None if error is None else (str(error) or type(error).__name__),
        "loaded": loaded,
        "dropped": watched.dropped,
        "inactive": watched.inactive,
    }


def _load_in_this_process(path: Path) -> dict:
    """Run LiteLLM's start-up load of `path` here, its printing silenced; the outcome dict."""
    import asyncio

    with contextlib.redirect_stdout(io.StringIO()):
        from litellm.proxy.proxy_server import ProxyConfig

        with _watch_router() as watched:
            try:
                _, models, _ = asyncio.run(ProxyConfig().load_config(router=None, config_file_path=str(path)))
            except Exception as exc:  # noqa: BLE001 - the error is the answer
                return load_outcome(None, watched, exc)
    return load_outcome(models, watched, None)


def check_loads(paths: list[Path], environ: Mapping[str, str], *, cwd: Path | None = None) -> dict[str, dict]:
    """LiteLLM's loading of each proxy config, in one child process with `environ`; keyed by str(path).

    A child that cannot run gives every path an outcome whose error says why.
    """
    if not paths:
        return {}
    env = dict(environ)
    env.setdefault("LITELLM_MASTER_KEY", _PLACEHOLDER_KEY)
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with tempfile.TemporaryDirectory(prefix="backlog-config-check-") as tmp:
        out = Path(tmp) / "outcome.json"
        args = [sys.executable, "-m", "backlog_ops.gateway.litellm_load", str(out), *[str(p) for p in paths]]
        try:
            done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            return {str(p): {"error": f"LiteLLM's loading did not finish within {CHILD_TIMEOUT:.0f} s"} for p in paths}
        try:
            result = json.loads(out.read_text())
        except (OSError, ValueError):
            tail = (done.stderr or "").strip().splitlines()[-1:]
            why = tail[0] if tail else f"it exited with status {done.returncode}"
            return {str(p): {"error": f"could not run LiteLLM's loading: {why}"} for p in paths}
    return result


def guard_startup_load(on_outcome: Callable[[dict], None]) -> None:
    """Make the proxy's first config load (its start-up) report its outcome to `on_outcome`.

    `on_outcome` runs after LiteLLM's load returns or raises and before the proxy serves; it may
    stop the process. Later loads (config reloads) are left alone.
    """
    from litellm.proxy import proxy_server

    target = proxy_server.proxy_config
    original = target.load_config
    first = [True]

    async def load_config(router: Any, config_file_path: str) -> Any:
        if not first[0]:
            return await original(router=router, config_file_path=config_file_path)
        first[0] = False
        with _watch_router() as watched:
            try:
                result = await original(router=router, config_file_path=config_file_path)
            except Exception as exc:
                on_outcome(load_outcome(None, watched, exc))
                raise
        on_outcome(load_outcome(result[1], watched, None))
        return result

    target.load_config = load_config


def _main(argv: list[str]) -> int:
    """Child entry: `python -m backlog_ops.gateway.litellm_load OUT PATH...` writes {path: outcome} to OUT."""
    out, paths = Path(argv[0]), [Path(p) for p in argv[1:]]
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)  # the outcome carries what matters
    result = {str(p): _load_in_this_process(p) for p in paths}
    out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    code = _main(sys.argv[1:])
    # The outcome is written. The collections at interpreter exit would walk every object LiteLLM
    # made for seconds before the parent hears back: frozen, they are skipped (as in gateway/proxy).
    gc.freeze()
    sys.exit(code)
