"""Install's part for the status line: `statusLine` in Claude Code's settings, never over the user's own.

    "statusLine": {"type": "command", "command": "<python> -c '…statusline import run; run()'",
                   "padding": 0, "refreshInterval": 5}

(Claude Code 2.1 reads type, command, padding and refreshInterval, in seconds, at least 1.)
A settings file with a status line of the user's own keeps it: install says how to show both
(`backlog-ops statusline --with '<theirs>'`). What install wrote is recorded in the manifest, and
uninstall removes it only while it is still exactly that, so the settings end as they were.
"""

from __future__ import annotations

import shlex
import sys

__all__ = ["REFRESH_SECONDS", "STATUSLINE_CODE", "install_statusline", "remove_statusline", "statusline_entry"]

STATUSLINE_CODE = "from backlog_ops.hooks.statusline import run; run()"
REFRESH_SECONDS = 5
_MANIFEST_KEY = "statusline"


def statusline_entry(command: list[str] | None) -> dict:
    """Our statusLine: this interpreter with -c (command None, as the hooks run), else `COMMAND statusline`."""
    if command is None:
        line = f"{shlex.quote(sys.executable)} -c {shlex.quote(STATUSLINE_CODE)}"
    else:
        line = " ".join(shlex.quote(part) for part in command) + " statusline"
    return {"type": "command", "command": line, "padding": 0, "refreshInterval": REFRESH_SECONDS}


def install_statusline(settings: dict, manifest: dict, command: list[str] | None, kept: list[str], where: str) -> None:
    """Add or update our statusLine in `settings` (in memory); leave the user's own, with a note in `kept`."""
    ours = statusline_entry(command)
    current = settings.get("statusLine")
    previous = manifest.get(_MANIFEST_KEY)
    if current is None or current == previous:  # none, or ours from an earlier install (maybe another venv)
        settings["statusLine"] = ours
        manifest[_MANIFEST_KEY] = ours
        return
    manifest.pop(_MANIFEST_KEY, None)
    theirs = current.get("command") if isinstance(current, dict) else None
    how = (f"set its command to: {ours['command']} --with {shlex.quote(theirs)}" if isinstance(theirs, str) and theirs
           else f"make it run: {ours['command']}")
    kept.append(f"your own status line in {where} (left as it is); to show the ticket and its spend too, {how}")


def remove_statusline(settings: dict, manifest: dict, kept: list[str], where: str) -> None:
    """Remove our statusLine from `settings` (in memory) if it is still the one install wrote."""
    ours = manifest.get(_MANIFEST_KEY)
    if ours is None or "statusLine" not in settings:
        return
    if settings["statusLine"] == ours:
        del settings["statusLine"]
    else:
        kept.append(f"the status line in {where}: changed since install, left as it is")
