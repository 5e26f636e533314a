"""Optional dependencies: each backend is an extra, and a missing one is a one-line error.

The base install (CLI, hooks, MCP server, reports, transcript import) needs none of them; a
gateway needs `gateway`, a team set-up `postgres` and `redis`, events `nats`, metrics
`metrics`, tracing `otel`.
"""

from __future__ import annotations

import importlib

from backlog_ops.errors import MissingExtra

__all__ = ["require"]


def require(module: str, extra: str, feature: str):
    """Import `module`, or raise MissingExtra saying which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"{feature} needs {module.split('.')[0]}, which is not installed: pip install 'backlog-ops[{extra}]'"
        ) from None
