"""`backlog-ops proxy --workers N`: what each of LiteLLM's worker processes needs of ours.

With --num_workers above 1, uvicorn starts each worker as a fresh interpreter that imports
LiteLLM's proxy app by name: what `backlog-ops proxy` set up in its own process (the check of
LiteLLM's start-up load, the status route) is not there. LiteLLM runs the functions named in
LITELLM_WORKER_STARTUP_HOOKS in each worker before it loads the config; `in_worker` is ours
(gateway/proxy.py names it there).

It also makes each worker write its last ledger rows when it stops: uvicorn stops a worker
gracefully on SIGTERM, then raises the signal again with the default action, which ends the
process without running its exit handlers (the ledger writer's last flush, the totals keeper).
So the exit handlers run right after LiteLLM's own shutdown. Each worker has its own ledger
writer and journal (named by pid: a worker killed with -9 leaves its journal to the next start),
and the spool loader claims each file under a lock, so two workers starting together never load
one file twice.
"""

from __future__ import annotations

import atexit
import os
import signal
from pathlib import Path

__all__ = ["in_worker"]


def in_worker() -> None:
    """In a worker, before LiteLLM loads its config: the load check, the status route, the last flush."""
    from backlog_ops.gateway.litellm_load import guard_startup_load
    from backlog_ops.gateway.proxy import WORKER_CONFIG_ENV, WORKER_MOCK_ENV, read_proxy_config, serve_status
    from backlog_ops.gateway.proxy import print_load_problems

    path = os.environ.get(WORKER_CONFIG_ENV)
    if not path:
        return
    config_path = Path(path)
    proxy_config = read_proxy_config(config_path)

    def stop_on_problems(outcome: dict) -> None:
        if not print_load_problems(config_path, proxy_config, outcome):
            return
        # The parent would start this worker again and again: stop the parent, which stops them all.
        os.kill(os.getppid(), signal.SIGTERM)
        os._exit(1)

    guard_startup_load(stop_on_problems)
    serve_status(config_path, mock=os.environ.get(WORKER_MOCK_ENV) == "1")
    _flush_after_shutdown()


def _flush_after_shutdown() -> None:
    from litellm.proxy import proxy_server

    original = proxy_server.proxy_shutdown_event

    async def proxy_shutdown_event(*args, **kwargs):
        try:
            return await original(*args, **kwargs)
        finally:
            # Our exit handlers are idempotent (each closes once): running them now, and again at
            # a normal exit, writes the last rows whichever way the worker ends.
            atexit._run_exitfuncs()

    proxy_server.proxy_shutdown_event = proxy_shutdown_event
