"""Whether the resident MCP server process runs (mcp_server/resident.py): new sessions are forked by it.

Nothing to fix either way (no resident: the next session starts cold and starts one), so this is
information: on or off, running or not, its pid, how many sessions it forked, where its socket is.
"""

from __future__ import annotations

import glob
import os
import time

from backlog_ops.doctor.report import INFO, OK, Check

__all__ = ["mcp_resident_check"]


def mcp_resident_check(environ=None) -> Check:
    from backlog_ops.claude import mcp_prefork

    env = os.environ if environ is None else environ
    if not mcp_prefork.enabled(env):
        return Check("claude", "MCP resident", INFO, f"off ({mcp_prefork.DISABLE_ENV}=0): each session starts its own MCP server",
                     facts={"enabled": False})
    if not mcp_prefork.available():
        return Check("claude", "MCP resident", INFO, "not on this platform (it needs fork and SO_PEERCRED: Linux): "
                     "each session starts its own MCP server", facts={"enabled": False})
    path = mcp_prefork.socket_path(environ=env)
    facts: dict = {"enabled": True, "socket": path}
    others = [p for p in glob.glob(os.path.join(os.path.dirname(path), "*.sock")) if p != path and mcp_prefork.status(p, timeout=1.0)]
    if others:
        facts["other_code"] = len(others)
    info = mcp_prefork.status(path)
    if info is None:
        return Check("claude", "MCP resident", INFO, f"not running: the next Claude Code session starts its MCP server cold "
                     f"and starts one ({path})" + _others(others), facts={**facts, "running": False})
    since = info.get("since", "")
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(int(since))) if since.isdigit() else "?"
    facts.update(running=True, pid=int(info["pid"]), served=int(info.get("served", 0)), sessions=int(info.get("sessions", 0)))
    idle = int(info.get("idle_exit", 0) or 0)
    return Check("claude", "MCP resident", OK,
                 f"running (pid {info['pid']}, since {started}): {facts['served']} session(s) forked, {facts['sessions']} open; "
                 f"exits after {idle // 3600 if idle >= 3600 else idle}{'h' if idle >= 3600 else 's'} without a session; "
                 f"{path}" + _others(others), facts=facts)


def _others(others: list[str]) -> str:
    return f"; {len(others)} resident(s) of other code (before an upgrade) still serve their sessions and exit by themselves" if others else ""
