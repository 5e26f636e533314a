"""`backlog-ops install [--uninstall]`: run install or uninstall and print what it did."""

from __future__ import annotations

import shlex
import sys

from backlog_ops.claude.install import InstallTarget, install, remove
from backlog_ops.common.home import home
from backlog_ops.gateway.master_key import KEY_FILE

__all__ = ["run_install"]


def next_steps() -> str:
    """How to start Claude Code through the proxy, with the key file where it really is."""
    key_file = shlex.quote(str(home() / KEY_FILE))
    return (
        "  backlog-ops proxy &   # then\n"
        f"  ANTHROPIC_BASE_URL=http://127.0.0.1:4000 ANTHROPIC_AUTH_TOKEN=\"$(cat {key_file})\" \\\n"
        "    ANTHROPIC_MODEL=balanced ANTHROPIC_SMALL_FAST_MODEL=cheap claude\n"
        "and run a skill such as /backlog-implementer FEAT-001."
    )


def run_install(scope: str, directory: str, uninstall: bool) -> int:
    target = InstallTarget.for_scope(scope, directory)
    report = remove(target) if uninstall else install(target)
    verb = "removed" if uninstall else "installed"
    for line in report.done:
        print(f"{verb}: {line}")
    for line in report.kept:
        print(f"kept: {line}")
    for line in report.warnings:
        print(f"backlog-ops: warning: {line}", file=sys.stderr)
    if uninstall:
        return 0
    if not report.done:
        print(f"backlog-ops is already installed for this {scope} (nothing changed)")
        return 0
    for line in report.notes:
        print(f"note: {line}")
    where = f"in {target.root}" if scope == "project" else "for every project"
    print(f"\nNext: start Claude Code {where} through the proxy, e.g.\n{next_steps()}")
    if scope == "project":
        print("Claude Code asks once to approve the project's MCP server (.mcp.json); `claude -p` uses it at once.")
    return 0
