"""`backlog-ops statusline [--with COMMAND]`: Claude Code's status line command (settings `statusLine`).

Claude Code runs it every few seconds with the session's JSON on stdin and shows what it prints.
It starts like the hooks (`python -c 'from backlog_ops.hooks.statusline import run; run()'`, no
console script, no argparse) and never fails the status line: on any error it prints a short
fallback and exits 0.

`--with COMMAND` shows another status line too: COMMAND (a shell command, say the user's own
status line) gets the same JSON on stdin, and its line comes first, then ours.
"""

from __future__ import annotations

import sys

from backlog_ops.common import fastjson

__all__ = ["main", "run"]

MAX_INPUT = 1024 * 1024
OTHER_TIMEOUT = 5.0  # seconds the other status line may take; Claude Code itself waits on us


def main(argv: list[str]) -> int:
    raw = b""
    try:
        raw = sys.stdin.buffer.read(MAX_INPUT) if not sys.stdin.isatty() else b""
        data = fastjson.loads(raw) if raw.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("the status line input must be a JSON object")
        from backlog_ops.claude.statusline import status_line

        line = status_line(data)
    except Exception:  # noqa: BLE001 - the status line is never an error
        from backlog_ops.claude.statusline import FALLBACK

        line = FALLBACK
    other = _other(argv, raw)
    try:
        sys.stdout.write((f"{other}  │  {line}" if other and "\n" not in other else f"{other}\n{line}" if other else line) + "\n")
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 - stdout closed: nothing more to do
        pass
    return 0


def _other(argv: list[str], raw: bytes) -> str:
    """What `--with COMMAND` prints for the same input ('' without one, or when it fails)."""
    if len(argv) < 2 or argv[0] != "--with" or not argv[1].strip():
        return ""
    try:
        import subprocess

        result = subprocess.run(argv[1], shell=True, input=raw, capture_output=True, timeout=OTHER_TIMEOUT)
        return result.stdout.decode("utf-8", "replace").rstrip("\n")
    except Exception:  # noqa: BLE001 - theirs failing must not take ours down
        return ""


def run() -> None:
    """What `backlog-ops install` wires: faster than the console script, whose wrapper imports `re`."""
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":  # pragma: no cover - `python -m backlog_ops.hooks.statusline`
    sys.exit(main(sys.argv[1:]))
