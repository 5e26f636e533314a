"""One warning per distinct problem: a callback that fails on every call must not flood the proxy log."""

from __future__ import annotations

import logging
import threading

__all__ = ["WarnOnce"]


class WarnOnce:
    """`warn(message)` logs `message` the first time it is seen (memory bounded to `limit` messages)."""

    def __init__(self, logger: logging.Logger, limit: int = 1000) -> None:
        self._logger = logger
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self._lock:
            if message in self._seen:
                return
            if len(self._seen) >= self._limit:
                self._seen.clear()
            self._seen.add(message)
        self._logger.warning("backlog-ops: %s", message)
