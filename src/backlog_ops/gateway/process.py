"""Run `backlog-ops proxy` as a child process on 127.0.0.1: used by the demo, tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from backlog_ops.common.home import ensure_dir
from backlog_ops.errors import ProxyStartError
from backlog_ops.gateway.master_key import KEY_FILE
from backlog_ops.gateway.worker_pool import SERVING

__all__ = ["ProxyProcess", "free_port"]

READY_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProxyProcess:
    """A `backlog-ops proxy` child with its own BACKLOG_HOME; a context manager.

    `config` None runs the shipped offline development config. The master key is the child's:
    pass one in `env` (LITELLM_MASTER_KEY) or let it generate one in `home`.
    """

    def __init__(
        self,
        home: Path,
        *,
        config: Path | None = None,
        port: int = 0,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        cwd: Path | None = None,
        workers: int = 1,
    ) -> None:
        self.home = Path(home)
        self.cwd = cwd
        self.workers = workers
        self.config = config
        self.port = port or free_port()
        self.env = {**os.environ, "BACKLOG_HOME": str(self.home), **(env or {})}
        self.log_path = log_path or self.home / "proxy.log"
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def master_key(self) -> str:
        if self.env.get("LITELLM_MASTER_KEY"):
            return self.env["LITELLM_MASTER_KEY"]
        return (self.home / KEY_FILE).read_text().strip()

    def start(self, timeout: float = READY_TIMEOUT) -> "ProxyProcess":
        ensure_dir(self.home)
        args = [sys.executable, "-m", "backlog_ops.cli.main", "proxy", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        if self.workers != 1:
            args += ["--workers", str(self.workers)]
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # Workers are the proxy's children: in a session of their own, a kill reaches them all.
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                                            start_new_session=self.workers > 1)
        finally:
            os.close(log)
        self._wait_ready(timeout)
        return self

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Stop as Ctrl-C (default) or SIGTERM would; returns the exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self._signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(10)
        elif self.workers > 1:
            self._signal(signal.SIGKILL)  # workers the proxy left behind, if any
        return self.process.returncode

    def _signal(self, sig: int) -> None:
        if self.workers > 1 and sig == signal.SIGKILL:
            try:
                os.killpg(self.process.pid, sig)
            except OSError:
                pass
        else:
            self.process.send_signal(sig)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> "ProxyProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ProxyStartError(
                    f"the proxy exited with status {self.process.returncode}; its log {self.log_path} ends:\n"
                    + "\n".join(self.log().splitlines()[-20:])
                )
            try:
                # /health/liveliness needs no key and calls no deployment (/health does both).
                if httpx.get(f"{self.base_url}/health/liveliness", timeout=2).status_code == 200 and (
                        self.workers == 1 or SERVING in self.log()):
                    return  # with workers: every one of them listens (gateway/worker_pool.py says when)
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop(signal.SIGKILL)
        raise ProxyStartError(f"the proxy did not become ready within {timeout:.0f} s; see {self.log_path}")
