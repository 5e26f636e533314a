"""Throwaway PostgreSQL, Redis and NATS servers on free loopback ports, for fault tests and bench/chaos.py.

Each lives in its own temporary directory and can be stopped, restarted and killed without
touching the shared instances on the usual ports. PostgreSQL runs from Debian's versioned server
binaries (`pg_config --bindir`), as the `postgres` user when this process is root (initdb refuses
root). `missing()` says which binaries are absent, so a test can skip (or fail under CI) saying why.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from backlog_ops.gateway.process import free_port

__all__ = ["ThrowawayNats", "ThrowawayPostgres", "ThrowawayRedis", "missing"]


def _pg_bindir() -> str | None:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        out = None
    candidates = [out.stdout.strip()] if out is not None and out.returncode == 0 else []
    candidates += sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)
    for directory in candidates:
        if os.path.exists(os.path.join(directory, "pg_ctl")) and os.path.exists(os.path.join(directory, "initdb")):
            return directory
    return None


def missing() -> list[str]:
    """The server programs this machine lacks (empty: every throwaway server can run)."""
    absent = []
    if _pg_bindir() is None:
        absent.append("PostgreSQL server binaries (initdb, pg_ctl)")
    if shutil.which("redis-server") is None:
        absent.append("redis-server")
    if shutil.which("nats-server") is None and not os.path.exists("/usr/sbin/nats-server"):
        absent.append("nats-server")
    return absent


def _wait_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


class _Server:
    def __init__(self, kind: str) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix=f"backlog-{kind}-"))
        self.process: subprocess.Popen | None = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()

    def start(self):  # pragma: no cover - each server defines it
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def restart(self):
        self.stop()
        return self.start()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class ThrowawayRedis(_Server):
    """redis-server on a free port; its data survives a restart (saved at shutdown, loaded at start)."""

    def __init__(self, password: str | None = None) -> None:
        super().__init__("redis")
        self.password = password

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> "ThrowawayRedis":
        # The password goes in a config file, not the command line (ps shows that to everyone).
        config = self.root / "redis.conf"
        config.write_text(f"requirepass {self.password}\n" if self.password else "")
        config.chmod(0o600)
        self.process = subprocess.Popen(
            ["redis-server", str(config), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
             "--save", "3600 1", "--appendonly", "no", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, 15, self.process)
        return self


class ThrowawayNats(_Server):
    """nats-server with JetStream (file store) on a free port; streams survive a restart."""

    def __init__(self, token: str | None = None) -> None:
        super().__init__("nats")
        self.token = token

    @property
    def url(self) -> str:
        auth = f"{self.token}@" if self.token else ""
        return f"nats://{auth}127.0.0.1:{self.port}"

    def start(self) -> "ThrowawayNats":
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        config = self.root / "nats.conf"
        store = str(self.root / "store")
        lines = [f'listen: "127.0.0.1:{self.port}"', f'jetstream {{ store_dir: "{store}" }}']
        if self.token:
            lines.append(f'authorization {{ token: "{self.token}" }}')
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o600)
        self.process = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, 15, self.process)
        return self


class ThrowawayPostgres(_Server):
    """A PostgreSQL cluster of its own (trust auth, user postgres) on a free loopback port."""

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        super().__init__("pg")
        self.user, self.password = user, password
        self.bindir = _pg_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.root.chmod(0o755)  # the postgres user must reach its data directory
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0
        self._initialised = False

    @property
    def url(self) -> str:
        """The superuser's URL (trust authentication: no password)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def user_url(self) -> str:
        """The URL of `user` with its password (made at the first start), as an application would hold it."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {(done.stderr or done.stdout).strip()[-500:]}")

    def _init(self) -> None:
        self.data.mkdir(mode=0o700)
        if self._as_postgres:
            shutil.chown(self.data, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._initialised = True
        self._make_user = bool(self.user)

    def start(self) -> "ThrowawayPostgres":
        if not self._initialised:
            self._init()
        # Socket and log inside the data directory: the one place the postgres user may write.
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "server.log"), "-w", "start")
        if getattr(self, "_make_user", False):
            import psycopg

            self._make_user = False
            with psycopg.connect(self.url, autocommit=True) as db:
                db.execute(f'CREATE ROLE "{self.user}" LOGIN SUPERUSER PASSWORD %s'.replace("%s", _quote(self.password)))
        return self

    def stop(self) -> None:
        if self._initialised and (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            except RuntimeError:
                self.kill()

    def restart(self) -> "ThrowawayPostgres":
        """A fast restart: every connection is cut, as when an operator restarts the server."""
        self.stop()
        return self.start()

    def kill(self) -> None:
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
