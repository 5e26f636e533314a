"""Every BACKLOG_* environment variable, read in one place.

`settings()` reads the environment when called (tests and `backlog-ops demo` change it at run
time), so nothing here is cached. A plain class, not pydantic-settings: Claude Code hooks read
these values and importing pydantic would cost each hook ~50 ms.

| variable | what it sets | default |
|---|---|---|
| BACKLOG_HOME | where all state lives (contexts, ledger, keys, spools) | ~/.backlog-toolkit |
| BACKLOG_CONTEXT_FILE | the global context file (the design's override) | HOME/current-context.json |
| BACKLOG_CONTEXT_TTL | how long a context lives when set without a TTL (8h, 90m, or seconds) | 8 h |
| BACKLOG_CONTEXT_URL | redis://… : contexts in Redis (a team gateway) | files under HOME |
| BACKLOG_CONTEXT_PREFIX | key prefix in that Redis | backlog: |
| BACKLOG_LEDGER_URL | postgresql://… : the ledger in PostgreSQL | SQLite at HOME/ledger.db |
| BACKLOG_LEDGER_SCHEMA | the PostgreSQL schema of the ledger | backlog_ops |
| BACKLOG_SESSION_ID / BACKLOG_AGENT_ID | whose work a process does (shell helper, SDK use) | none |
| BACKLOG_GATEWAY_URL | the gateway direct SDK calls are checked against | none |
| BACKLOG_POLICY_FILE | the file the ticket policy reads its limits from | the proxy's config |
| BACKLOG_HOOKS_DISABLED | 1: every hook exits at once | off |
| BACKLOG_MCP_PREFORK | 0: every `backlog-ops mcp` starts its own server, no resident process (mcp_server/prefork.py) | on (Linux) |
| BACKLOG_MCP_PREFORK_IDLE | how long the resident MCP server process waits for a session before it exits | 8h |
| BACKLOG_PROGRESS | 0: no progress bar on imports | on for a terminal |
| BACKLOG_DEBUG | 1: the CLI shows the traceback of an unexpected error | one line |

The gateway's own switches (BACKLOG_NATS_*, BACKLOG_METRICS_MAX_*, BACKLOG_COMPRESSION_*,
BACKLOG_GUARDRAILS_FILE, BACKLOG_GUARDRAIL_NATS_*, BACKLOG_CALLBACKS_DIR, BACKLOG_OTEL_CONSOLE,
BACKLOG_MOCK*, BACKLOG_SEMANTIC_CACHE_URL) are read by the callback or module that uses them, each
documented there, through `env_str` / `env_int` below.
"""

from __future__ import annotations

import os

from backlog_ops.errors import ConfigError

__all__ = ["DEFAULT_HOME", "Settings", "env_int", "env_str", "settings"]

DEFAULT_HOME = "~/.backlog-toolkit"


def env_str(name: str, default: str | None = None) -> str | None:
    """A variable's value, stripped; unset or empty gives `default`."""
    value = os.environ.get(name)
    if value is None:
        return default
    value = value.strip()
    return value or default


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """A whole-number variable; a value that is not one raises ConfigError naming the variable."""
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


class Settings:
    """The toolkit's BACKLOG_* settings as read from the environment at construction."""

    __slots__ = ("home", "context_file", "context_url", "context_prefix", "ledger_url", "ledger_schema",
                 "session_id", "agent_id", "gateway_url", "policy_file", "hooks_disabled")

    def __init__(self, environ=None) -> None:
        env = os.environ if environ is None else environ
        get = (lambda n, d=None: (env.get(n) or "").strip() or d)
        self.home = os.path.expanduser(get("BACKLOG_HOME", DEFAULT_HOME))
        override = get("BACKLOG_CONTEXT_FILE")
        self.context_file = os.path.expanduser(override) if override else os.path.join(self.home, "current-context.json")
        self.context_url = get("BACKLOG_CONTEXT_URL")
        self.context_prefix = get("BACKLOG_CONTEXT_PREFIX", "backlog:")
        self.ledger_url = get("BACKLOG_LEDGER_URL")
        self.ledger_schema = get("BACKLOG_LEDGER_SCHEMA", "backlog_ops")
        self.session_id = get("BACKLOG_SESSION_ID")
        self.agent_id = get("BACKLOG_AGENT_ID")
        self.gateway_url = get("BACKLOG_GATEWAY_URL")
        self.policy_file = get("BACKLOG_POLICY_FILE")
        self.hooks_disabled = get("BACKLOG_HOOKS_DISABLED", "").lower() in ("1", "true", "yes")

    @property
    def ledger_backend(self) -> str:
        return "postgres" if self.ledger_url else "sqlite"

    @property
    def context_backend(self) -> str:
        return "redis" if self.context_url else "files"


def settings() -> Settings:
    """The settings in force now."""
    return Settings()
