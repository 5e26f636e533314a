"""`backlog-ops proxy --workers N`: what each worker process needs of ours before it serves.

Each worker (gateway/worker_pool.py) is a fresh interpreter that imports LiteLLM's proxy app by
name: what `backlog-ops proxy` set up in its own process (the check of LiteLLM's start-up load,
the status route) is not there. `in_worker` sets it up, before LiteLLM loads its config in the
app's lifespan.

It also makes each worker write its last ledger rows when it stops: uvicorn stops a server
gracefully on SIGTERM, then raises the signal again with the default action, which ends the
process without running its exit handlers (the ledger writer's last flush, the totals keeper).
So the exit handlers run right after LiteLLM's own shutdown. Each worker has its own ledger
writer and journal (named by pid: a worker killed with -9 leaves its journal to the one started
in its place, or to the next start), and the spool loader claims each file under a lock, so two
workers starting together never load one file twice.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import NoReturn

from backlog_ops.errors import BacklogOpsError

__all__ = ["in_worker", "stop_the_proxy"]


def in_worker() -> None:
    """In a worker, before LiteLLM loads its config: the load check, the status route, the last flush."""
    from backlog_ops.gateway.litellm_load import guard_startup_load
    from backlog_ops.gateway.proxy_startup import WORKER_CONFIG_ENV, WORKER_MOCK_ENV, read_proxy_config, serve_status
    from backlog_ops.gateway.serving import load_problems

    path = os.environ.get(WORKER_CONFIG_ENV)
    if not path:
        return
    config_path = Path(path)
    try:
        proxy_config = read_proxy_config(config_path)
    except BacklogOpsError as exc:  # the file changed or went away since the parent read it
        stop_the_proxy([str(exc)])

    def stop_on_problems(outcome: dict) -> None:
        found = load_problems(config_path, proxy_config, outcome, os.environ)
        if found:
            stop_the_proxy(found)

    guard_startup_load(stop_on_problems)
    serve_status(config_path, mock=os.environ.get(WORKER_MOCK_ENV) == "1")
    _flush_after_shutdown()


def stop_the_proxy(problems: list[str]) -> NoReturn:
    """This worker cannot serve: hand the problems to the parent and leave.

    The parent stops every worker when one ends before it served; the problems go to the file it
    named (WORKER_PROBLEMS_ENV), which it reports, once however many workers failed, before it
    exits 1.
    """
    from backlog_ops.gateway.proxy_startup import WORKER_PROBLEMS_ENV, report_start_problems

    text = "".join(f"{problem}\n" for problem in problems).encode()
    target = os.environ.get(WORKER_PROBLEMS_ENV)
    try:
        # O_EXCL: the first worker to fail writes them; the others would only repeat them.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, text)
        finally:
            os.close(fd)
    except FileExistsError:
        pass
    except (OSError, TypeError):  # no file to write to: say it here, in the log both share
        report_start_problems(problems)
    os._exit(1)


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
