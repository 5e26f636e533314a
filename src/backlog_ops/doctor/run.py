"""Run every check, in the order a user would fix things: state, then the proxy, then Claude Code."""

from __future__ import annotations

from pathlib import Path

from backlog_ops.doctor.claude_code import claude_code_checks
from backlog_ops.doctor.gateway import gateway_checks
from backlog_ops.doctor.mcp_resident import mcp_resident_check
from backlog_ops.doctor.report import DoctorReport
from backlog_ops.doctor.state import state_checks

__all__ = ["run_checks"]


def run_checks(*, url: str | None = None, cwd: Path | None = None, environ=None) -> DoctorReport:
    """Every check, for the project at `cwd` (default: the current directory) and the proxy at `url`."""
    directory = Path.cwd() if cwd is None else Path(cwd)
    checks = state_checks()
    gateway, proxy_url = gateway_checks(url, directory, environ=environ)
    checks += gateway
    checks += claude_code_checks(directory, proxy_url=proxy_url, environ=environ)
    checks.append(mcp_resident_check(environ))
    return DoctorReport(checks)
