"""Residents of `backlog-ops mcp` in tests: start one the way a first session does, wait for it, stop it."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from backlog_ops.claude import mcp_prefork

BACKLOG_OPS = str(Path(sys.executable).parent / "backlog-ops")


def wait_for(predicate, what: str, timeout: float = 120.0, every: float = 0.2):
    """predicate()'s first truthy value; fails the test after `timeout` s (bounded, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(every)


def start_resident(env: dict, cwd: str) -> dict:
    """A first, cold `backlog-ops mcp` (stdin closed at once) leaves a resident behind: its status."""
    run = subprocess.run([BACKLOG_OPS, "mcp"], stdin=subprocess.DEVNULL, capture_output=True, env=env, cwd=cwd, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return wait_for(lambda: mcp_prefork.status(mcp_prefork.socket_path(environ=env)), "the resident")


def stop_residents(home: str | os.PathLike) -> None:
    """SIGTERM each resident answering under `home` (the ones this test's sessions started)."""
    for path in glob.glob(os.path.join(home, "mcp", "*.sock")):
        info = mcp_prefork.status(path, timeout=1.0)
        if info and info.get("pid", "").isdigit():
            try:
                os.kill(int(info["pid"]), signal.SIGTERM)
            except OSError:
                pass
