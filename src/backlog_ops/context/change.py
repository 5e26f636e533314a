"""What a set or clear did, the TTL rule, and the project's audit copy: shared by both stores."""

from __future__ import annotations

import os

from backlog_ops.common import fastjson
from backlog_ops.common.home import ensure_dir, write_atomic
from backlog_ops.common.state_files import read_small_json
from backlog_ops.context.contextfile import default_ttl
from backlog_ops.context.scope import Scope
from backlog_ops.errors import HomeError, InvalidContext
from backlog_ops.project.root import project_root

__all__ = ["AUDIT_DIR", "ContextChange", "check_ttl", "update_audit_copy"]

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


def check_ttl(ttl: int | None) -> int:
    """The TTL to use for a set: the given one if valid, else the default."""
    ttl = default_ttl() if ttl is None else ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= _MAX_TTL:
        got = f"{ttl} seconds" if isinstance(ttl, int) and not isinstance(ttl, bool) else repr(ttl)
        raise InvalidContext(f"ttl must be from 1 second to 30 days (e.g. 90m, 8h, 7d), got {got}")
    return ttl


def update_audit_copy(project_dir, change: ContextChange) -> None:
    """Mirror the latest change into ROOT/.backlog-ops/current-context.json (git-ignored).

    ROOT is the git root of `project_dir`; outside a repository there is no audit copy, so a
    command run in some other directory leaves nothing behind there. The audit copy is a
    convenience: failing to write it warns, it never undoes the change.
    """
    root = project_root(project_dir) if project_dir is not None else None
    if root is None:
        return
    audit_dir = os.path.join(root, AUDIT_DIR)
    audit_file = os.path.join(audit_dir, _AUDIT_FILE)
    try:
        ensure_dir(audit_dir)
        ignore = os.path.join(audit_dir, ".gitignore")
        if not os.path.exists(ignore):
            # '*' ignores the directory's every file, itself included, without touching the
            # project's own .gitignore.
            write_atomic(ignore, b"# written by backlog-ops: local state, never committed\n*\n", mode=0o644)
        if change.new is not None:
            write_atomic(audit_file, (fastjson.dumps({**change.new, **change.scope.as_dict()}) + "\n").encode(), durable=False)
        else:
            current = read_small_json(audit_file)
            same_scope = current is not None and all(current.get(k) == v for k, v in change.scope.as_dict().items())
            if same_scope:
                os.unlink(audit_file)
    except (HomeError, OSError) as exc:
        change.warnings.append(f"could not update the audit copy {audit_file}: {exc}")
