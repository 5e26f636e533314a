"""`backlog-ops context set | clear | show | history | shell-helper`: the commands and what they print.

main.py builds the argument parser at every start, so this module imports nothing heavy at
import time; each command imports the store when it runs.
"""

from __future__ import annotations

import sys

__all__ = [
    "add_scope_args",
    "context_clear",
    "context_history",
    "context_resume",
    "context_set",
    "context_shell_helper",
    "context_show",
]


def add_scope_args(parser) -> None:
    """--session and --agent-id: the scope a context command acts on (neither: the global scope)."""
    parser.add_argument("--session", metavar="ID", help="Claude Code session id (x-claude-code-session-id; default: the global scope)")
    parser.add_argument("--agent-id", metavar="ID", help="agent id within the session (x-claude-code-agent-id; default: the session itself)")


def _scope(args):
    from backlog_ops.context.scope import Scope

    return Scope(args.session or None, args.agent_id or None)


def context_set(args) -> int:
    import json
    from pathlib import Path

    from backlog_ops.context.backend import open_store
    from backlog_ops.project.file import default_project

    scope = _scope(args)
    fields = {
        "ticket_id": args.ticket,
        "gate": args.gate,
        "agent_type": args.agent,
        "project": args.project or default_project(),
        "skill": args.skill,
        "component": args.component,
    }
    change = open_store().set(fields, scope, ttl=args.ttl, project_dir=Path.cwd())
    _print_warnings(change.warnings)
    if args.json:
        print(json.dumps({**scope.as_dict(), "context": change.new}, indent=2))
    else:
        print(f"set ({scope.describe()}): {_describe(change.new)}")
    return 0


def context_clear(args) -> int:
    from pathlib import Path

    from backlog_ops.context.backend import open_store

    scope = _scope(args)
    store = open_store()
    if args.all_agents:
        if scope.kind != "session":
            from backlog_ops.errors import InvalidContext

            raise InvalidContext("--all-agents needs --session (and no --agent-id)")
        changes = store.clear_session(scope.session_id, project_dir=Path.cwd())
    else:
        changes = [store.clear(scope, project_dir=Path.cwd())]
    for change in changes:
        _print_warnings(change.warnings)
        state = f"was {_describe(change.old)}" if change.old else "nothing was set"
        print(f"cleared ({change.scope.describe()}): {state}")
    return 0


def context_show(args) -> int:
    import json

    from backlog_ops.context.backend import make_resolver

    scope = _scope(args)
    resolver = make_resolver(warn=lambda message: _print_warnings([message]))
    found = resolver.resolve(scope.session_id, scope.agent_id)
    if args.json:
        out = {**found.scope.as_dict(), "context": found.context} if found else {**scope.as_dict(), "context": None}
        print(json.dumps(out, indent=2))
    elif found is None:
        print(f"no context in force for {scope.describe()}")
    else:
        print(_describe(found.context))
        print(f"from: {found.scope.describe()}   expires: {found.context['expires_at']}")
        print(f"tags: {' '.join(found.tags)}")
    return 0


def context_history(args) -> int:
    import json

    from backlog_ops.common.times import iso_to_epoch
    from backlog_ops.context.backend import open_store

    since = iso_to_epoch(args.since) if args.since else None
    entries = list(open_store().history(since=since))
    if getattr(args, "json", False):
        # ensure_ascii: stored text never reaches the terminal as a control character.
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print("no context changes recorded" + (f" since {args.since}" if args.since else "") + ".")
        return 0
    header = ["at (UTC)", "action", "scope", "ticket", "gate", "agent", "skill", "project"]
    print(_table(header, [_history_row(e) for e in entries]))
    return 0


def _history_row(entry: dict) -> list[str]:
    """One history entry as table cells: a set shows the new context, a clear the one it removed."""
    ctx = entry.get("new") if entry.get("action") == "set" else entry.get("old")
    ctx = ctx if isinstance(ctx, dict) else {}
    at = str(entry.get("at") or "")[:19].replace("T", " ")
    session, agent = entry.get("session_id"), entry.get("agent_id")
    scope = f"agent {agent} of {session}" if agent else f"session {session}" if session else "global"
    cells = [at, entry.get("action") or "?", scope]
    cells += [ctx.get(k) or "-" for k in ("ticket_id", "gate", "agent_type", "skill", "project")]
    return [_printable(c) for c in cells]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def _printable(value: object) -> str:
    """Stored text as it may reach a terminal: control characters shown escaped, never sent."""
    text = str(value)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def context_shell_helper(args) -> int:
    from pathlib import Path

    print(Path(__file__).with_name("shell") / "context.sh")
    return 0


def _describe(ctx: dict | None) -> str:
    if not ctx:
        return "(none)"
    from backlog_ops.context.fields import context_tags

    return "  ".join(context_tags(ctx)) or "(empty)"


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"backlog-ops: warning: {warning}", file=sys.stderr)


def context_resume(args) -> int:
    """Lift the pause a runaway-spend alert put on a session (policy/session_alerts.py)."""
    from backlog_ops.context.fields import check_id
    from backlog_ops.policy.session_alerts import resume

    session = check_id("session id", args.session) if args.session else None
    resumed = resume(session)
    if resumed:
        for sid in resumed:
            print(f"resumed: session {sid} may call again (the proxy lets its next call through)")
    elif session:
        print(f"session {session} is not paused")
    else:
        print("no session is paused")
    return 0
