"""The context store: which ticket, gate, project, agent and skill are active, and where.

Three scopes, most specific first: one agent of a Claude Code session, the session, and the
global context (the design's ~/.backlog-toolkit/current-context.json). Writers serialize on one
lock file and replace files atomically; readers take no lock. Every set and clear is appended to
a history (when, scope, old -> new) so usage can later be attributed by time.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator

from .contextfile import Scope, default_ttl, format_time, read_context_file, render_context
from .errors import ContextFileError, HomeError, InvalidContext
from .home import append_line, ensure_dir, global_context_path, home, write_atomic
from .lock import ExclusiveLock

__all__ = ["AUDIT_DIR", "ContextChange", "ContextStore", "check_ttl", "open_store", "update_audit_copy"]

AUDIT_DIR = ".backlog-ops"
_AUDIT_FILE = "current-context.json"
_MAX_TTL = 30 * 24 * 3600


class ContextChange:
    """What one set or clear did: the scope, the context before and after, and any warnings."""

    __slots__ = ("scope", "old", "new", "warnings")

    def __init__(self, scope: Scope, old: dict | None, new: dict | None) -> None:
        self.scope = scope
        self.old = old
        self.new = new
        self.warnings: list[str] = []


class ContextStore:
    """File-backed context store under the toolkit home (BACKLOG_HOME)."""

    def __init__(self, root: Path | None = None, *, global_path: Path | None = None) -> None:
        self.root = root if root is not None else home()
        if global_path is not None:
            self.global_path = global_path
        elif root is None:
            self.global_path = global_context_path()
        else:
            self.global_path = self.root / "current-context.json"
        self.contexts_dir = self.root / "contexts"
        self.history_path = self.root / "context-history.jsonl"
        self.lock_path = self.root / ".context.lock"

    # -- paths -------------------------------------------------------------------------------

    def path(self, scope: Scope) -> Path:
        """The file that holds `scope`'s context ('~' cannot occur in ids, so names never clash)."""
        if scope.agent_id is not None:
            return self.contexts_dir / f"{scope.session_id}~{scope.agent_id}.json"
        if scope.session_id is not None:
            return self.contexts_dir / f"{scope.session_id}.json"
        return self.global_path

    # -- reads -------------------------------------------------------------------------------

    def get(self, scope: Scope = Scope(), *, now: float | None = None) -> dict | None:
        """The unexpired context set at exactly `scope`, or None. Raises ContextFileError if unreadable."""
        return read_context_file(self.path(scope), now=now)

    def history(self, since: float | None = None) -> Iterator[dict]:
        """History entries, oldest first; a torn last line (a writer mid-append) is skipped."""
        try:
            fh = open(self.history_path, "rb")
        except FileNotFoundError:
            return
        with fh:
            for line in fh:
                try:
                    entry = json.loads(line)
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
        project_dir: Path | None = None,
        now: float | None = None,
    ) -> ContextChange:
        """Validate and store a context at `scope` for `ttl` seconds (default: default_ttl())."""
        now = time.time() if now is None else now
        new = render_context(fields, now=now, ttl=check_ttl(ttl))
        change = self._write(scope, new, now)
        update_audit_copy(project_dir, change)
        return change

    def clear(self, scope: Scope = Scope(), *, project_dir: Path | None = None, now: float | None = None) -> ContextChange:
        """Remove the context at `scope` (a no-op, still recorded, when none is set)."""
        change = self._write(scope, None, time.time() if now is None else now)
        update_audit_copy(project_dir, change)
        return change

    def clear_session(self, session_id: str, *, project_dir: Path | None = None) -> list[ContextChange]:
        """Remove a session's context and the contexts of all its agents (Claude Code's SessionEnd)."""
        session = Scope(session_id)
        scopes = [session]
        try:
            names = os.listdir(self.contexts_dir)
        except FileNotFoundError:
            names = []
        prefix = f"{session_id}~"
        for name in sorted(names):
            if name.startswith(prefix) and name.endswith(".json"):
                scopes.append(Scope(session_id, name[len(prefix) : -len(".json")]))
        return [self.clear(scope, project_dir=project_dir) for scope in scopes]

    def _write(self, scope: Scope, new: dict | None, now: float) -> ContextChange:
        path = self.path(scope)
        ensure_dir(self.root)
        change = ContextChange(scope, None, new)
        with ExclusiveLock(self.lock_path):
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
                write_atomic(path, (json.dumps(new, indent=2) + "\n").encode())
            entry = {
                "at": format_time(now),
                "at_epoch": now,
                "action": "clear" if new is None else "set",
                **scope.as_dict(),
                "old": change.old,
                "new": new,
            }
            append_line(self.history_path, json.dumps(entry, separators=(",", ":")))
            self._prune_expired(now)
        return change

    def _prune_expired(self, now: float) -> None:
        """Delete expired session and agent files so the contexts directory does not grow forever."""
        try:
            entries = list(os.scandir(self.contexts_dir))
        except FileNotFoundError:
            return
        for entry in entries:
            if not entry.name.endswith(".json"):
                continue
            try:
                if read_context_file(Path(entry.path), now=now) is None:
                    os.unlink(entry.path)
            except (ContextFileError, OSError):
                continue  # someone else's file: leave it for a person to look at

def check_ttl(ttl: int | None) -> int:
    """The TTL to use for a set: the given one if valid, else the default."""
    ttl = default_ttl() if ttl is None else ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= _MAX_TTL:
        raise InvalidContext(f"ttl must be a whole number of seconds from 1 to {_MAX_TTL}, got {ttl!r}")
    return ttl


def update_audit_copy(project_dir: Path | None, change: ContextChange) -> None:
    """Mirror the latest change into PROJECT/.backlog-ops/current-context.json (git-ignored).

    The audit copy is a convenience: failing to write it warns, it never undoes the change.
    """
    if project_dir is None:
        return
    audit_dir = Path(project_dir) / AUDIT_DIR
    audit_file = audit_dir / _AUDIT_FILE
    try:
        ensure_dir(audit_dir)
        ignore = audit_dir / ".gitignore"
        if not ignore.exists():
            # '*' ignores the directory's every file, itself included, without touching the
            # project's own .gitignore.
            write_atomic(ignore, b"# written by backlog-ops: local state, never committed\n*\n", mode=0o644)
        if change.new is not None:
            write_atomic(audit_file, (json.dumps({**change.new, **change.scope.as_dict()}, indent=2) + "\n").encode())
        else:
            current = _read_json(audit_file)
            same_scope = current is not None and all(current.get(k) == v for k, v in change.scope.as_dict().items())
            if same_scope:
                os.unlink(audit_file)
    except (HomeError, OSError) as exc:
        change.warnings.append(f"could not update the audit copy {audit_file}: {exc}")


def open_store():
    """The configured store: Redis when BACKLOG_CONTEXT_URL is set (a team gateway), else files.

    BACKLOG_CONTEXT_PREFIX (default 'backlog:') namespaces the keys, for several teams on one Redis.
    """
    url = os.environ.get("BACKLOG_CONTEXT_URL")
    if url:
        from .redis_store import RedisContextStore

        return RedisContextStore(url, prefix=os.environ.get("BACKLOG_CONTEXT_PREFIX") or "backlog:")
    return ContextStore()


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
