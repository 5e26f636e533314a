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

__all__ = ["HOOK_CODE", "MCP_TOOL_PERMISSIONS", "cli_command", "hook_groups", "hook_prefix", "server_entry", "shipped_skills"]

MCP_TOOL_PERMISSIONS = [f"mcp__{SERVER_NAME}__{tool}" for tool in MCP_TOOLS]
HOOK_CODE = "from backlog_ops.hooks.entry import run; run()"


def cli_command() -> list[str]:
    """How Claude Code should run our CLI: `backlog-ops` when PATH finds this very install, else its path."""
    script = Path(sys.executable).parent / "backlog-ops"
    found = shutil.which("backlog-ops")
    if script.exists():
        if found and Path(found).resolve() == script.resolve():
            return ["backlog-ops"]
        return [str(script)]
    if found:
        return ["backlog-ops"]
    return [sys.executable, "-m", "backlog_ops.cli"]


def server_entry(command: list[str]) -> dict:
    """The mcpServers entry that runs `COMMAND mcp` on stdio."""
    return {"type": "stdio", "command": command[0], "args": [*command[1:], "mcp"], "env": {}}


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
