"""An exclusive inter-process lock on a lock file.

On POSIX this is flock(2) on the lock file, exactly what filelock's UnixFileLock takes, so a tool
that locks the same file with filelock excludes us and we exclude it. We call fcntl directly
because importing filelock costs a Claude Code hook ~100 ms (it pulls in asyncio); elsewhere we
fall back to filelock itself.
"""

from __future__ import annotations

import os
import time

from backlog_ops.common.home import ensure_dir
from backlog_ops.errors import HomeError

__all__ = ["ExclusiveLock"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class ExclusiveLock:
    """`with ExclusiveLock(path):` holds an exclusive lock on `path`, waiting up to `timeout` s."""

    def __init__(self, path, timeout: float = 10.0) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self._fd: int | None = None
        self._fallback = None

    def __enter__(self) -> "ExclusiveLock":
        ensure_dir(os.path.dirname(self.path) or ".")
        if fcntl is None:  # pragma: no cover - Windows
            import filelock

            self._fallback = filelock.FileLock(self.path, timeout=self.timeout)
            try:
                self._fallback.acquire()
            except filelock.Timeout as exc:
                raise HomeError(f"another writer has held {self.path} for {self.timeout:g} s") from exc
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise HomeError(f"cannot open lock file {self.path}: {exc.strerror or exc}") from exc
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise HomeError(
                        f"another writer has held {self.path} for {self.timeout:g} s; "
                        "if no backlog-ops process is running, delete the file"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        self._fd = fd
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fallback is not None:  # pragma: no cover - Windows
            self._fallback.release()
            self._fallback = None
        elif self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
