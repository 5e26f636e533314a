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


def stop_residents_under(root: str | os.PathLike) -> None:
    """SIGTERM each resident whose BACKLOG_HOME lies under `root` (a test run's temporary tree), by pid.

    For the ones a test's subprocess started with a home of its own and an environment without
    the short idle time (a proxy's home, a fake user's): found in /proc, not through their socket.
    """
    root = os.fsencode(os.path.join(os.path.abspath(root), ""))
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if b"backlog_ops.mcp_server.resident" not in fh.read():
                    continue
            with open(f"/proc/{entry}/environ", "rb") as fh:
                homes = [v[len(b"BACKLOG_HOME="):] for v in fh.read().split(b"\0") if v.startswith(b"BACKLOG_HOME=")]
            if homes and os.path.join(homes[0], b"").startswith(root):
                os.kill(int(entry), signal.SIGTERM)
        except OSError:
            continue
