"""The `backlog-ops` command: argument parsing and printing only; the work is in the core packages."""

from backlog_ops.cli.main import main

__all__ = ["main"]
