"""The one warning helper: a callback or writer that fails on every call must not flood the log.

`Warnings(logger)` logs each distinct message once (memory bounded); `Warnings(logger,
interval=30)` logs a message again at most every `interval` seconds per key and says how many
were held back meanwhile. Every message goes out as "backlog-ops: …" at WARNING, scrubbed of
passwords, tokens and keys (common/secrets.scrub_dsn).

What must never be held back for good — rows lost or spooled, calls let through unchecked — is a
`Tally`: a count, logged with its total at once, then at most every `every` seconds, and whatever
was counted since the last message is said by `report_rest` (called now and then, and at exit).
"""

from __future__ import annotations

import logging
import threading
import time

from backlog_ops.common.secrets import scrub_dsn

__all__ = ["Tally", "Warnings"]


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


class Tally:
    """`add(count, **values)`: count something and log `text` (formatted with `total` and `values`)."""

    def __init__(self, logger: logging.Logger | str, text: str, *, level: int = logging.WARNING, every: float = 30.0) -> None:
        self._logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self._text = text
        self._level = level
        self._every = every
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._unsaid = 0
        self._values: dict = {}
        self.total = 0

    def add(self, count: int = 1, **values: object) -> None:
        with self._lock:
            self.total += count
            self._unsaid += count
            self._values = values
            message = self._due(self._every)
        if message:
            self._logger.log(self._level, "backlog-ops: %s", scrub_dsn(message))

    def report_rest(self, every: float = 0.0) -> None:
        """Log the total if anything was counted since the last message (and `every` s have passed)."""
        with self._lock:
            message = self._due(every) if self._unsaid else None
        if message:
            self._logger.log(self._level, "backlog-ops: %s", scrub_dsn(message))

    def _due(self, every: float) -> str | None:
        now = time.monotonic()
        if now - self._last < every:
            return None
        self._last = now
        self._unsaid = 0
        return self._text.format(total=self.total, **self._values)
