"""What backlog-ops knows about running Claude Code sessions, kept under BACKLOG_HOME/claude-code/.

Three kinds of small JSON files, written by the hooks and read by the MCP server:

    sessions/<session_id>.json      a session: its cwd, project, transcript, the Claude Code process
    processes/<pid>-<start>.json    the session a Claude Code process is running *now*
    calls/<tool_use_id>.json        who is calling one of our MCP tools (PreToolUse hook)

Why: the MCP server is one process per Claude Code process, spawned with CLAUDE_CODE_SESSION_ID
fixed at spawn time, and it serves the main thread and every subagent alike. A tool call tells it
neither the current session (it changes on /clear) nor the agent. The PreToolUse hook knows both
and the tool_use_id, which Claude Code also sends to the server as ``_meta["claudecode/toolUseId"]``,
so the hook leaves a claim ticket under that id and the server takes it. The process record is
the fallback when a call carries no id: the SessionStart hook (also run after /clear) and every
PreToolUse hook keep it current.

Light on purpose (os, time and fastjson: not even `re` or pathlib): the hooks import this module.
Files are tiny, ephemeral and rewritten whole, so they are replaced atomically but not fsynced.
"""

from __future__ import annotations

import os
import time

from backlog_ops.common import fastjson
from backlog_ops.common.home import home_dir, write_atomic
from backlog_ops.common.state_files import file_stem, read_small_json

__all__ = [
    "CALL_TTL",
    "claim_call",
    "claude_process_key",
    "forget_session",
    "process_record",
    "prune",
    "read_json",
    "record_call",
    "record_process",
    "record_session",
    "session_record",
    "state_dir",
]

CALL_TTL = 3600  # a claim the server never took (the call was denied) is deleted after an hour
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "fish", "busybox", "env", "timeout", "nice", "uv", "uvx"}


def state_dir() -> str:
    """BACKLOG_HOME/claude-code."""
    return os.path.join(home_dir(), "claude-code")


def _safe_name(value: object) -> str | None:
    """An id usable as a file name, or None (ids come from Claude Code, but never trust a path)."""
    return file_stem(value)


def _write(path: str, data: dict) -> None:
    write_atomic(path, fastjson.dumps(data).encode(), durable=False)


def read_json(path: str) -> dict | None:
    return read_small_json(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- which Claude Code process -------------------------------------------------------------------


def _proc_is_ours() -> bool:
    """Whether /proc numbers processes as this process does: in a pid namespace whose /proc was not
    remounted (a sandbox), /proc/<pid> is another process of an outer namespace."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


def _proc_stat(pid: int) -> tuple[str, int, str] | None:
    """(command name, parent pid, start time) from /proc, or None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode(errors="replace")
    except OSError:
        return None
    name = raw[raw.find("(") + 1 : raw.rfind(")")]
    rest = raw[raw.rfind(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, starttime field 22.
    return name, int(rest[1]), rest[19]


def claude_process_key(start_pid: int | None = None) -> str:
    """'<pid>-<start time>' of the Claude Code process that runs us (hook or MCP server).

    Claude Code runs hooks through `sh -c` and may run an MCP server through a wrapper, so
    shells and launchers between us and it are skipped. The start time makes the key unique
    even when pids are reused. Without /proc to trust (macOS, a sandbox's pid namespace), the
    parent pid alone.
    """
    pid = os.getppid() if start_pid is None else start_pid
    if not _proc_is_ours():
        return str(pid)
    for _ in range(6):
        stat = _proc_stat(pid)
        if stat is None:
            return str(pid)
        name, ppid, start = stat
        if name.lower() not in _SHELLS or ppid <= 1:
            return f"{pid}-{start}"
        pid = ppid
    return str(pid)


# -- records -------------------------------------------------------------------------------------


def _session_path(session_id: str) -> str | None:
    name = _safe_name(session_id)
    return os.path.join(state_dir(), "sessions", name + ".json") if name else None


def _process_path(key: str) -> str | None:
    name = _safe_name(key)
    return os.path.join(state_dir(), "processes", name + ".json") if name else None


def _call_path(tool_use_id: str) -> str | None:
    name = _safe_name(tool_use_id)
    return os.path.join(state_dir(), "calls", name + ".json") if name else None


def record_session(session_id: str, **info: object) -> None:
    path = _session_path(session_id)
    if path:
        _write(path, {"session_id": session_id, "at": time.time(), **info})


def session_record(session_id: str | None) -> dict | None:
    path = _session_path(session_id) if session_id else None
    return read_json(path) if path else None


def record_process(key: str, session_id: str, **info: object) -> None:
    """Remember that Claude Code process `key` now runs `session_id`; fields given as None are dropped."""
    path = _process_path(key)
    if not path:
        return
    current = read_json(path) or {}
    updated = {k: v for k, v in {**current, "session_id": session_id, **info}.items() if v is not None and k != "at"}
    if updated == {k: v for k, v in current.items() if k != "at"}:
        return  # nothing new: spare the write (PreToolUse hooks call this on every MCP call)
    _write(path, {**updated, "at": time.time()})


def process_record(key: str | None) -> dict | None:
    path = _process_path(key) if key else None
    return read_json(path) if path else None


def record_call(tool_use_id: str, **info: object) -> bool:
    path = _call_path(tool_use_id)
    if not path:
        return False
    _write(path, {"tool_use_id": tool_use_id, "at": time.time(), **info})
    return True


def claim_call(tool_use_id: str | None) -> dict | None:
    """Take (read and delete) the claim the PreToolUse hook left for this tool call."""
    path = _call_path(tool_use_id) if tool_use_id else None
    if not path:
        return None
    data = read_json(path)
    if data is not None:
        _unlink(path)
    return data


def forget_session(session_id: str) -> None:
    """Delete a finished session's record and any claims it left."""
    path = _session_path(session_id)
    if path:
        _unlink(path)
    calls = os.path.join(state_dir(), "calls")
    try:
        entries = list(os.scandir(calls))
    except OSError:
        return
    for entry in entries:
        data = read_json(entry.path)
        if data is not None and data.get("session_id") == session_id:
            _unlink(entry.path)


def prune(now: float | None = None, *, call_ttl: float = CALL_TTL, record_ttl: float = 30 * 86400) -> int:
    """Delete stale claims (older than call_ttl) and records of sessions or processes long gone."""
    now = time.time() if now is None else now
    removed = 0
    for sub, ttl in (("calls", call_ttl), ("sessions", record_ttl), ("processes", record_ttl)):
        try:
            entries = list(os.scandir(os.path.join(state_dir(), sub)))
        except OSError:
            continue
        for entry in entries:
            try:
                stale = entry.stat().st_mtime < now - ttl
            except OSError:
                continue
            if stale:
                _unlink(entry.path)
                removed += 1
    return removed
