"""Small JSON state files under the home: a safe file name from an id, and a bounded, forgiving read.

Session ids, agent ids and ticket ids reach file names from headers and hook input; none of them
may become a path. Readers run on the hook and status-line paths, so they never raise and never
read more than they were told to.
"""

from __future__ import annotations

from backlog_ops.common import fastjson

__all__ = ["SAFE_CHARS", "file_stem", "read_small_json"]

SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def file_stem(value: object, *, max_len: int = 128, bad_first: str = ".") -> str | None:
    """`value` when it can be a file name as it is (no separator, not hidden, bounded), else None."""
    if not isinstance(value, str) or not 0 < len(value) <= max_len or value[0] in bad_first \
            or not set(value) <= SAFE_CHARS:
        return None
    return value


def read_small_json(path: str, max_bytes: int = 64 * 1024) -> dict | None:
    """The JSON object in `path`, or None when it is absent, unreadable, too big or not an object."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
        data = fastjson.loads(raw) if len(raw) <= max_bytes else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
