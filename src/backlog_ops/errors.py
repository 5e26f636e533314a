"""Errors backlog-ops reports to its user; each edge (CLI, MCP, hook, callback) translates them."""

__all__ = [
    "BacklogOpsError",
    "ConfigError",
    "ContextFileError",
    "DemoError",
    "HomeError",
    "InvalidContext",
    "FallbackAPIError",
    "KeyAPIError",
    "LedgerError",
    "MissingExtra",
    "ProxyStartError",
    "ReportError",
    "ToolInputError",
    "TranscriptFileError",
]


class BacklogOpsError(Exception):
    """Base class for every error backlog-ops raises on purpose."""


class InvalidContext(BacklogOpsError, ValueError):
    """A context field, session id or agent id is not of an allowed form."""


class ContextFileError(BacklogOpsError):
    """A context file exists but is not a readable, well-formed context."""


class HomeError(BacklogOpsError):
    """The toolkit home (BACKLOG_HOME) cannot be created, locked or written."""


class LedgerError(BacklogOpsError):
    """The spend ledger cannot be opened, migrated, written or queried."""


class ConfigError(BacklogOpsError):
    """A configuration file (backlog.config.json, proxy config) is missing or invalid."""


class MissingExtra(BacklogOpsError):
    """A feature needs an optional dependency that is not installed (pip install 'backlog-ops[EXTRA]')."""


class DemoError(BacklogOpsError):
    """The demo proxy did not start or did not answer."""


class KeyAPIError(BacklogOpsError):
    """The proxy's key API refused a request, or could not be reached."""


class FallbackAPIError(BacklogOpsError):
    """The proxy's fallback management API refused a request, or could not be reached."""


class ProxyStartError(BacklogOpsError):
    """The proxy exited or did not answer its liveness probe in time."""


class ToolInputError(BacklogOpsError, ValueError):
    """An MCP tool's arguments or state are wrong: the message tells the model what to send instead."""


class TranscriptFileError(BacklogOpsError):
    """A transcript path is not a regular file (a FIFO, a device, a socket): it is skipped, not read."""


class ReportError(BacklogOpsError, ValueError):
    """A spend view was asked for something it cannot show (an unknown group, a bad date)."""


class BudgetStoreError(BacklogOpsError):
    """The shared store of per-ticket reservations (the team's Redis) cannot be reached or used."""
