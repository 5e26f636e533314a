"""The warnings of track_llm_call: one log line per kind of problem a minute at most.

Tracking runs inside the caller's program on every call, so a problem that repeats must not
flood its log. Logger: ``backlog_ops.capture.tracking``.
"""

from __future__ import annotations

import logging

from backlog_ops.common.warnings import Warnings

__all__ = ["LOGGER", "WARNINGS", "warn"]

LOGGER = "backlog_ops.capture.tracking"
WARNINGS = Warnings(LOGGER, interval=60)


def warn(key: str, message: str, level: int = logging.WARNING) -> None:
    """Log `message` unless a message of the same `key` was logged in the last minute."""
    WARNINGS(f"track_llm_call: {message}", key, level=level)
