"""The context store: which ticket, gate, project, agent and skill are active, and where.

Three scopes, most specific first: one agent of a Claude Code session, the session, and the
global context (the design's ~/.backlog-toolkit/current-context.json). Writers serialize on one
lock file and replace files atomically; readers take no lock. Every set and clear is appended to
a history (when, scope, old -> new) so usage can later be attributed by time.
"""

from __future__ import annotations

import os
import time

from backlog_ops.common import fastjson
from backlog_ops.common.home import (
    append_line,
    ensure_dir,
    global_context_file,
    home_dir,
    write_atomic,
)
from backlog_ops.common.lock import ExclusiveLock
from backlog_ops.common.times import format_time
from backlog_ops.context.change import ContextChange, check_ttl, update_audit_copy
from backlog_ops.context.contextfile import (
    read_context_file,
    render_context,
)
from backlog_ops.context.scope import Scope
from backlog_ops.errors import ContextFileError, HomeError

__all__ = ["ContextStore"]



class ContextStore:
    """File-backed context store under the toolkit home (BACKLOG_HOME).

    Paths are kept as strings (hooks must not import pathlib); the `root`, `global_path`,
    `contexts_dir`, `history_path` and `lock_path` properties and `path()` give pathlib.Paths.
    """

    def __init__(self, root=None, *, global_path=None) -> None:
        self._root = os.fspath(root) if root is not None else home_dir()
        if global_path is not None:
            self._global = os.fspath(global_path)
        elif root is None:
            self._global = global_context_file()
        else:
            self._global = os.path.join(self._root, "current-context.json")
        self._contexts = os.path.join(self._root, "contexts")
        self._history = os.path.join(self._root, "context-history.jsonl")
        self._lock = os.path.join(self._root, ".context.lock")

    root = property(lambda self: _as_path(self._root))
    global_path = property(lambda self: _as_path(self._global))
    contexts_dir = property(lambda self: _as_path(self._contexts))
    history_path = property(lambda self: _as_path(self._history))
    lock_path = property(lambda self: _as_path(self._lock))

    # -- paths -------------------------------------------------------------------------------

    def file_for(self, scope: Scope) -> str:
        """The file that holds `scope`'s context ('~' cannot occur in ids, so names never clash)."""
        if scope.agent_id is not None:
            return os.path.join(self._contexts, f"{scope.session_id}~{scope.agent_id}.json")
        if scope.session_id is not None:
            return os.path.join(self._contexts, f"{scope.session_id}.json")
        return self._global

    def path(self, scope: Scope):
        """file_for(scope) as a pathlib.Path."""
        return _as_path(self.file_for(scope))

    # -- reads -------------------------------------------------------------------------------

    def get(self, scope: Scope = Scope(), *, now: float | None = None) -> dict | None:
        """The unexpired context set at exactly `scope`, or None. Raises ContextFileError if unreadable."""
        return read_context_file(self.file_for(scope), now=now)

    def session_has_contexts(self, session_id: str) -> bool:
        """Whether the session or one of its agents has a context file (cheap: one listdir)."""
        try:
            names = os.listdir(self._contexts)
        except OSError:
            return False
        prefix = f"{session_id}~"
        return any(n == f"{session_id}.json" or n.startswith(prefix) for n in names)

    def history(self, since: float | None = None):
        """History entries, oldest first; a torn last line (a writer mid-append) is skipped."""
        try:
            fh = open(self._history, "rb")
        except FileNotFoundError:
            return
        with fh:
            for line in fh:
                try:
                    entry = fastjson.loads(line)
                except ValueError:
                    continue
                if since is None or entry.get("at_epoch", 0) >= since:
                    yield entry

    # -- writes ------------------------------------------------------------------------------

    def set(
        self,
        fields: dict,
        scope: Scope = Scope(),
        *,
        ttl: int | None = None,
        project_dir=None,
        now: float | None = None,
    ) -> ContextChange:
        """Validate and store a context at `scope` for `ttl` seconds (default: default_ttl())."""
        now = time.time() if now is None else now
        new = render_context(fields, now=now, ttl=check_ttl(ttl))
        change = self._write(scope, new, now)
        update_audit_copy(project_dir, change)
        return change

    def clear(self, scope: Scope = Scope(), *, project_dir=None, now: float | None = None) -> ContextChange:
        """Remove the context at `scope` (a no-op, still recorded, when none is set)."""
        change = self._write(scope, None, time.time() if now is None else now)
        update_audit_copy(project_dir, change)
        return change

    def clear_session(self, session_id: str, *, project_dir=None) -> list[ContextChange]:
        """Remove a session's context and the contexts of all its agents (Claude Code's SessionEnd)."""
        session = Scope(session_id)
        scopes = [session]
        try:
            names = os.listdir(self._contexts)
        except FileNotFoundError:
            names = []
        prefix = f"{session_id}~"
        for name in sorted(names):
            if name.startswith(prefix) and name.endswith(".json"):
                scopes.append(Scope(session_id, name[len(prefix) : -len(".json")]))
        return [self.clear(scope, project_dir=project_dir) for scope in scopes]

    def _write(self, scope: Scope, new: dict | None, now: float) -> ContextChange:
        path = self.file_for(scope)
        ensure_dir(self._root)
        change = ContextChange(scope, None, new)
        with ExclusiveLock(self._lock):
            try:
                change.old = read_context_file(path, now=now)
            except ContextFileError as exc:
                change.warnings.append(f"replaced an unreadable context: {exc}")
            if new is None:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise HomeError(f"cannot remove {path}: {exc.strerror or exc}") from exc
            else:
                # No fsync: contexts expire within hours and Claude Code waits for the hooks that
                # write them; a file emptied by a power loss is skipped as unreadable.
                write_atomic(path, (fastjson.dumps(new) + "\n").encode(), durable=False)
            entry = {
                "at": format_time(now),
                "at_epoch": now,
                "action": "clear" if new is None else "set",
                **scope.as_dict(),
                "old": change.old,
                "new": new,
            }
            append_line(self._history, fastjson.dumps(entry))
            self._prune_expired(now)
        return change

    def _prune_expired(self, now: float) -> None:
        """Delete expired session and agent files so the contexts directory does not grow forever."""
        try:
            entries = list(os.scandir(self._contexts))
        except FileNotFoundError:
            return
        for entry in entries:
            if not entry.name.endswith(".json"):
                continue
            try:
                if read_context_file(entry.path, now=now) is None:
                    os.unlink(entry.path)
            except (ContextFileError, OSError):
                continue  # someone else's file: leave it for a person to look at

def _as_path(path: str):
    from pathlib import Path

    return Path(path)
