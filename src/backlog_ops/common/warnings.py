"""The one warning helper: a callback or writer that fails on every call must not flood the log.

`Warnings(logger)` logs each distinct message once (memory bounded); `Warnings(logger,
interval=30)` logs a message again at most every `interval` seconds per key and says how many
were held back meanwhile. Every message goes out as "backlog-ops: …" at WARNING, scrubbed of
passwords, tokens and keys (common/secrets.scrub_dsn).
"""

from __future__ import annotations

import logging
import threading
import time

from backlog_ops.common.secrets import scrub_dsn

__all__ = ["Warnings"]


class Warnings:
    """`warn(message, key=None)`: log `message` unless the same key was logged too recently."""

    def __init__(self, logger: logging.Logger | str, *, interval: float | None = None, limit: int = 1000) -> None:
        self._logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self._interval = interval
        self._limit = limit
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, message: str, key: str | None = None, *, level: int = logging.WARNING) -> bool:
        """Log `message` (keyed by `key`, default the message itself); True if it was logged."""
        key = message if key is None else key
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and (self._interval is None or now - last < self._interval):
                self._held[key] = self._held.get(key, 0) + 1
                return False
            if len(self._last) >= self._limit:
                self._last.clear()
                self._held.clear()
            self._last[key] = now
            held = self._held.pop(key, 0)
        suffix = f" ({held} similar message{'s' if held != 1 else ''} held back)" if held else ""
        # Backend errors can echo a DSN: no password, token or key reaches the log.
        message = scrub_dsn(message)
        self._logger.log(level, "backlog-ops: %s%s", message, suffix)
        return True

    warn = __call__
