"""`backlog-ops hook [EVENT]`: the one entry point of every backlog-ops Claude Code hook.

Claude Code runs it with the hook's JSON on stdin and waits for it, so it starts fast: it
imports sys, backlog_ops.common.fastjson (JSON without `re`) and plain constants here, and
each event imports only the light modules it needs (never pydantic, filelock, litellm, mcp or
argparse). It never blocks and never breaks a session: on any internal error it prints
``{"systemMessage": ...}`` for the user and exits 0.

BACKLOG_HOOKS_DISABLED=1 turns every hook into a no-op.
"""

from __future__ import annotations

import sys

from backlog_ops.claude.names import HOOK_EVENTS
from backlog_ops.common import fastjson
from backlog_ops.common.settings import settings

__all__ = ["main", "run"]

MAX_INPUT = 4 * 1024 * 1024  # a hook's JSON carries tool inputs: large, but never unbounded


def main(argv: list[str]) -> int:
    event = argv[0] if argv else None
    try:
        if settings().hooks_disabled:
            return 0
        raw = sys.stdin.buffer.read(MAX_INPUT) if not sys.stdin.isatty() else b""
        data = fastjson.loads(raw) if raw.strip() else {}
        if not isinstance(data, dict):
            raise ValueError(f"hook input must be a JSON object, got {type(data).__name__}")
        event = event or data.get("hook_event_name")
        if event not in HOOK_EVENTS:
            return 0  # wired to an event we do nothing for: import nothing more
        from .events import handle

        output = handle(event, data)
        if output:
            sys.stdout.write(fastjson.dumps(output) + "\n")
        return 0
    except Exception as exc:  # noqa: BLE001 - a hook must never break the session
        try:
            message = f"backlog-ops hook {event or '?'} skipped: {type(exc).__name__}: {exc}"
            sys.stdout.write(fastjson.dumps({"systemMessage": message[:1000]}) + "\n")
        except Exception:  # noqa: BLE001 - stdout closed: nothing more to do
            pass
        return 0


def run() -> None:
    """`python -c 'from backlog_ops.hooks.entry import run; run()' EVENT`: what install wires.

    Faster than the `backlog-ops` console script, whose pip-generated wrapper imports `re`
    (~6 ms of every hook) before it calls us.
    """
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":  # pragma: no cover - `python -m backlog_ops.hooks.entry EVENT`
    sys.exit(main(sys.argv[1:]))
