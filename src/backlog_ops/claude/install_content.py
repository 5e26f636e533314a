"""What `backlog-ops install` writes into Claude Code: the MCP server entry, the hooks, the tool
permissions and the skills, each built as data from what this package ships."""

from __future__ import annotations

import copy
import json
import shlex
import shutil
import sys
from importlib import resources
from pathlib import Path

from backlog_ops.claude.names import MCP_TOOLS, SERVER_NAME

__all__ = [
    "HOOK_CODE",
    "Commands",
    "MCP_TOOL_PERMISSIONS",
    "SETTINGS_ENV",
    "cli_command",
    "commands_for",
    "hook_groups",
    "hook_prefix",
    "server_entry",
    "shipped_skills",
    "this_script",
]

MCP_TOOL_PERMISSIONS = [f"mcp__{SERVER_NAME}__{tool}" for tool in MCP_TOOLS]
# Claude Code waits for an alwaysLoad server before the first request, but only 5 s by default
# (MCP_CONNECT_TIMEOUT_MS), then sends its first requests without the server's tools. Our server
# answers within a second on a quiet machine, but its imports took 8-23 s on a loaded 2-core
# machine: wait as long as Claude Code lets a server start at all (MCP_TIMEOUT, 30 s).
SETTINGS_ENV = {"MCP_CONNECT_TIMEOUT_MS": "30000"}
HOOK_CODE = "from backlog_ops.hooks.entry import run; run()"


def cli_command() -> list[str]:
    """How Claude Code should run our CLI: `backlog-ops` when PATH finds this very install, else its path."""
    script = this_script()
    found = shutil.which("backlog-ops")
    if script.exists():
        if found and Path(found).resolve() == script.resolve():
            return ["backlog-ops"]
        return [str(script)]
    if found:
        return ["backlog-ops"]
    return [sys.executable, "-m", "backlog_ops.cli"]


class Commands:
    """What install writes to run our CLI: the MCP server's command, the hooks' (None: this
    interpreter with -c, see hook_prefix), and a note or a warning that says why."""

    __slots__ = ("server", "hooks", "note", "warning")

    def __init__(self, server: list[str], hooks: list[str] | None, note: str | None = None, warning: str | None = None) -> None:
        self.server, self.hooks, self.note, self.warning = server, hooks, note, warning


def commands_for(scope: str) -> Commands:
    """The commands install writes for `scope`.

    Project files are meant to be committed, so they name `backlog-ops` and let each machine's
    PATH find it; only when this machine's PATH has no `backlog-ops` do they name this install's
    absolute path, with a warning. The user's own files name this very install (its path when
    PATH finds another one or none), so they keep working whatever PATH Claude Code is started with.
    """
    if scope != "project":
        return Commands(cli_command(), None)
    found = shutil.which("backlog-ops")
    if found:
        script = this_script()
        other = script.exists() and Path(found).resolve() != script.resolve()
        note = (
            f"the MCP server and the hooks run `backlog-ops` as PATH finds it (now {found}), so these "
            "files can be committed: each teammate needs backlog-ops on PATH too"
            + (f" (this install, {script}, is not the one on PATH)" if other else "")
        )
        return Commands(["backlog-ops"], ["backlog-ops"], note=note)
    script = this_script()
    command = [str(script)] if script.exists() else [sys.executable, "-m", "backlog_ops.cli"]
    warning = (
        f"`backlog-ops` is not on PATH, so .mcp.json and .claude/settings.json name this install by its "
        f"absolute path ({command[0]}): they work on this machine only, do not commit them as they are. "
        "Put the CLI on PATH (python3 -m pipx install '.[gateway]', see the README), then run "
        "`backlog-ops install` again: it rewrites them to name `backlog-ops`."
    )
    return Commands(command, None, warning=warning)


def this_script() -> Path:
    """The `backlog-ops` console script of the install that is running (it may not exist)."""
    return Path(sys.executable).parent / "backlog-ops"


def server_entry(command: list[str]) -> dict:
    """The mcpServers entry that runs `COMMAND mcp` on stdio.

    alwaysLoad: Claude Code connects the server before a session's first request and never
    defers its tools behind tool search; without it, several sessions started at once on a busy
    machine send their first request before set_context is offered (FIELD-NOTES).
    """
    return {"type": "stdio", "command": command[0], "args": [*command[1:], "mcp"], "env": {}, "alwaysLoad": True}


def hook_prefix(command: list[str] | None) -> str:
    """How a hook runs. For this very install (command None): this interpreter with -c, which
    skips the console script's `import re` (~6 ms of every hook); otherwise `COMMAND hook`."""
    if command is None:
        return f"{shlex.quote(sys.executable)} -c {shlex.quote(HOOK_CODE)}"
    return " ".join(shlex.quote(part) for part in command) + " hook"


def hook_groups(command: list[str] | None) -> dict[str, list[dict]]:
    """hooks/hooks.json with its `backlog-ops hook` commands pointed at this install."""
    shipped = json.loads(resources.files("backlog_ops.hooks").joinpath("hooks.json").read_text())["hooks"]
    prefix = hook_prefix(command)
    groups: dict[str, list[dict]] = {}
    for event, entries in shipped.items():
        out = copy.deepcopy(entries)
        for group in out:
            for hook in group.get("hooks", []):
                if hook.get("command", "").startswith("backlog-ops hook "):
                    hook["command"] = prefix + hook["command"][len("backlog-ops hook"):]
        groups[event] = out
    return groups


def shipped_skills() -> dict[str, dict[str, bytes]]:
    """{skill name: {relative path: bytes}} for every skills/<name>/ shipped in the package."""
    root = resources.files("backlog_ops.skills")
    skills: dict[str, dict[str, bytes]] = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_dir() and entry.joinpath("SKILL.md").is_file():
            skills[entry.name] = dict(_walk(entry, ""))
    return skills


def _walk(node, prefix: str):
    for child in sorted(node.iterdir(), key=lambda e: e.name):
        if child.name == "__pycache__":
            continue
        rel = f"{prefix}{child.name}"
        if child.is_dir():
            yield from _walk(child, rel + "/")
        else:
            yield rel, child.read_bytes()
