"""The proxy's master key: $LITELLM_MASTER_KEY, else a key generated once in the toolkit home.

`backlog-ops proxy` generates the key file when it first needs one; `backlog-ops keys` only
reads it, so a typo in BACKLOG_HOME fails loudly instead of minting a key no proxy knows.
"""

from __future__ import annotations

import os
import secrets
import shlex

from backlog_ops.common.home import ensure_dir, home, write_atomic
from backlog_ops.errors import HomeError, KeyAPIError

__all__ = ["KEY_FILE", "key_location", "master_key", "rejected_key_message", "resolve_master_key"]

KEY_FILE = "master-key"  # in the toolkit home, mode 0600


def master_key() -> tuple[str, str]:
    """(key, where it came from): $LITELLM_MASTER_KEY, else a key generated once and kept 0600."""
    key = os.environ.get("LITELLM_MASTER_KEY")
    if key:
        return key, "LITELLM_MASTER_KEY"
    path = home() / KEY_FILE
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    except OSError as exc:
        raise HomeError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not key:
        ensure_dir(path.parent)
        key = "sk-" + secrets.token_urlsafe(32)
        write_atomic(path, (key + "\n").encode())
    return key, str(path)


def resolve_master_key() -> str:
    """$LITELLM_MASTER_KEY, else the key file the proxy generated; never a new one."""
    if os.environ.get("LITELLM_MASTER_KEY"):
        return os.environ["LITELLM_MASTER_KEY"]
    path = home() / KEY_FILE
    if not path.is_file():
        raise KeyAPIError(
            "no master key: set LITELLM_MASTER_KEY (the proxy's general_settings.master_key), "
            f"or run where the proxy generated {path}"
        )
    return master_key()[0]


def key_location(running_key: str) -> str:
    """Where the proxy's key is kept, never the key: the key file when it holds `running_key`."""
    path = home() / KEY_FILE
    try:
        kept = path.read_text().strip()
    except OSError:
        kept = ""
    if kept and secrets.compare_digest(kept.encode(), running_key.encode()):
        return str(path)
    return "the proxy's LITELLM_MASTER_KEY environment variable"


def rejected_key_message(*, sent: bool, location: str) -> str:
    """What a client of a proxy without a key database is told when its key is missing or wrong."""
    what = "the API key sent is not this proxy's key" if sent else "no API key was sent"
    fetch = f'"$(cat {shlex.quote(location)})"' if location.startswith("/") else "<that key>"
    return (
        f"backlog-ops proxy: {what}. It accepts its master key (it has no key database, so no virtual "
        f"keys), sent as 'Authorization: Bearer <key>' or 'x-api-key: <key>'; the key is kept in "
        f"{location}. For Claude Code: export ANTHROPIC_AUTH_TOKEN={fetch}"
    )
