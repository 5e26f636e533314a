"""Claude Code's side: is backlog-ops wired in for this project and for the user, will it load?

What is read, as Claude Code 2.1.197 keeps it (measured with `claude mcp list`):
- MCP servers: the project's `.mcp.json`; ~/.claude.json's `mcpServers` (user scope) and
  `projects[<root>].mcpServers` (local scope, what `claude mcp add` writes by default);
- hooks: `hooks` in .claude/settings.json or ~/.claude/settings.json;
- approval of a `.mcp.json` server: `enabledMcpjsonServers` / `enableAllProjectMcpServers` in
  .claude/settings.local.json or ~/.claude/settings.json (and .claude/settings.json once the
  folder is trusted); `disabledMcpjsonServers` in any of them rejects it. Approvals older versions
  kept in ~/.claude.json (`projects[<root>]`) are moved into settings.local.json at the next start.
CLAUDE_CONFIG_DIR relocates ~/.claude and ~/.claude.json, as it does for Claude Code.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

from backlog_ops.claude.install import InstallTarget
from backlog_ops.claude.names import HOOK_EVENTS, SERVER_NAME
from backlog_ops.doctor.report import INFO, OK, PROBLEM, Check
from backlog_ops.project.root import project_root

__all__ = ["claude_code_checks"]

_OUR_HOOK_MARKS = ("backlog-ops hook", "backlog_ops.hooks.entry")
ENTRY_JSON = json.dumps({"type": "stdio", "command": "backlog-ops", "args": ["mcp"], "alwaysLoad": True})


def claude_code_checks(cwd: Path, *, proxy_url: str | None = None, environ=None) -> list[Check]:
    env = os.environ if environ is None else environ
    root = Path(project_root(cwd) or cwd).resolve()
    project = InstallTarget("project", root / ".mcp.json", root / ".claude" / "settings.json", root / ".claude" / "skills",
                            root / ".claude" / "backlog-ops-install.json", root)
    user = _user_target(env)
    claude_json = _read(user.mcp_file)
    local_entry = _server(((claude_json.get("projects") or {}).get(str(root)) or {}))

    project_entry, user_entry = _server(_read(project.mcp_file)), _server(claude_json)
    checks = [
        _install_check(project, project_entry, f"this project ({root})", "backlog-ops install"),
        _install_check(user, user_entry, "the user", "backlog-ops install --scope user"),
    ]
    if local_entry is not None:
        checks.append(_entry_check(local_entry, f"~/.claude.json (local scope of {root})",
                                   fix=f"claude mcp remove {SERVER_NAME} -s local; then `backlog-ops install`"))
    if project_entry is None and user_entry is None and local_entry is None:
        checks.append(Check("claude", "integration", PROBLEM, "Claude Code has no backlog-ops MCP server in this project nor for the user",
                            fix="backlog-ops install (this project), or backlog-ops install --scope user (every project)"))
    for entry, target, fix in ((project_entry, project, "backlog-ops install"), (user_entry, user, "backlog-ops install --scope user")):
        if entry is not None:
            checks.append(_always_load_check(entry, target.mcp_file, fix))
    if project_entry is not None:
        checks.append(_approval_check(root, user, claude_json))
    checks.append(_base_url_check(root, user, env, proxy_url))
    return checks


def _user_target(env) -> InstallTarget:
    config_dir = env.get("CLAUDE_CONFIG_DIR")
    home = Path(env.get("HOME") or Path.home())
    claude = Path(config_dir).expanduser() if config_dir else home / ".claude"
    claude_json = claude / ".claude.json" if config_dir else home / ".claude.json"
    return InstallTarget("user", claude_json, claude / "settings.json", claude / "skills", claude / "backlog-ops-install.json", home)


# -- files ------------------------------------------------------------------------------------------


def _read(path: Path) -> dict:
    """A JSON object file, or {} when it is missing or unreadable (install reports those itself)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _server(data: dict) -> dict | None:
    servers = data.get("mcpServers")
    entry = servers.get(SERVER_NAME) if isinstance(servers, dict) else None
    return entry if isinstance(entry, dict) else None


def _our_hooks(settings: dict) -> dict[str, list[str]]:
    """{event: [command, …]} of our hooks in a settings file."""
    hooks = settings.get("hooks") if isinstance(settings.get("hooks"), dict) else {}
    found: dict[str, list[str]] = {}
    for event in HOOK_EVENTS:
        for group in hooks.get(event) or []:
            for hook in (group.get("hooks") or []) if isinstance(group, dict) else []:
                command = hook.get("command") if isinstance(hook, dict) else None
                if isinstance(command, str) and any(mark in command for mark in _OUR_HOOK_MARKS):
                    found.setdefault(event, []).append(command)
    return found


def _runnable(command: str) -> bool:
    if os.path.isabs(command):
        return os.access(command, os.X_OK)
    return shutil.which(command) is not None


# -- the checks ------------------------------------------------------------------------------------


def _install_check(target: InstallTarget, entry: dict | None, who: str, fix: str) -> Check:
    hooks = _our_hooks(_read(target.settings_file))
    facts = {"mcp_file": str(target.mcp_file), "settings_file": str(target.settings_file),
             "manifest": target.manifest_file.is_file(), "mcp_server": entry is not None, "hook_events": sorted(hooks)}
    name = f"install ({target.scope})"
    if entry is None and not hooks:
        return Check("claude", name, INFO, f"not installed for {who}", facts=facts)
    gaps = []
    if entry is None:
        gaps.append(f"no {SERVER_NAME!r} MCP server in {target.mcp_file}")
    elif not _runnable(str(entry.get("command", ""))):
        gaps.append(f"the MCP server's command {entry.get('command')!r} is not found (Claude Code cannot start it)")
    missing_events = [e for e in HOOK_EVENTS if e not in hooks]
    if missing_events:
        gaps.append(f"no hooks for {', '.join(missing_events)} in {target.settings_file}")
    broken = sorted({c for commands in hooks.values() for c in commands if not _runnable(_first_word(c))})
    if broken:
        gaps.append(f"hook command not found: {broken[0]}")
    if gaps:
        return Check("claude", name, PROBLEM, f"installed for {who}, but: " + "; ".join(gaps), fix=fix, facts=facts)
    return Check("claude", name, OK, f"installed for {who}: MCP server in {target.mcp_file}, hooks in {target.settings_file}", facts=facts)


def _first_word(command: str) -> str:
    try:
        words = shlex.split(command)
    except ValueError:
        return ""
    return words[0] if words else ""


def _always_load_check(entry: dict, where: Path, fix: str) -> Check:
    if entry.get("alwaysLoad") is True:
        return Check("claude", "alwaysLoad", OK, f"the {SERVER_NAME!r} server in {where} has alwaysLoad: true")
    return Check("claude", "alwaysLoad", PROBLEM,
                 f"the {SERVER_NAME!r} server in {where} has no \"alwaysLoad\": true: Claude Code may send a session's "
                 "first requests before set_context is offered",
                 fix=f"add \"alwaysLoad\": true to the {SERVER_NAME!r} entry in {where} (or run `{fix}` again)")


def _entry_check(entry: dict, where: str, fix: str) -> Check:
    if entry.get("alwaysLoad") is True:
        return Check("claude", "local MCP server", OK, f"a {SERVER_NAME!r} server in {where} with alwaysLoad: true")
    return Check("claude", "local MCP server", PROBLEM,
                 f"a {SERVER_NAME!r} server in {where} (from `claude mcp add`) has no \"alwaysLoad\": true",
                 fix=f"{fix}, or: claude mcp add-json -s local {SERVER_NAME} '{ENTRY_JSON}'")


def _approval_check(root: Path, user: InstallTarget, claude_json: dict) -> Check:
    local_file = root / ".claude" / "settings.local.json"
    project_file = root / ".claude" / "settings.json"
    sources = [(local_file, _read(local_file)), (user.settings_file, _read(user.settings_file)), (project_file, _read(project_file))]
    legacy = (claude_json.get("projects") or {}).get(str(root)) or {}
    trusted = legacy.get("hasTrustDialogAccepted") is True
    for path, data in sources:
        if _names(data.get("disabledMcpjsonServers")) & {SERVER_NAME}:
            return Check("claude", "MCP approval", PROBLEM, f"the project's {SERVER_NAME!r} server is rejected in {path}",
                         fix=f"remove {SERVER_NAME!r} from disabledMcpjsonServers in {path} (or `claude mcp reset-project-choices`), "
                             "then approve it when `claude` asks")
    approving = sources[:2] + (sources[2:] if trusted else []) + [(user.mcp_file, legacy)]
    for path, data in approving:
        if data.get("enableAllProjectMcpServers") is True or SERVER_NAME in _names(data.get("enabledMcpjsonServers")):
            return Check("claude", "MCP approval", OK, f"the project's {SERVER_NAME!r} server is approved ({path})")
    return Check("claude", "MCP approval", PROBLEM,
                 f"the project's {SERVER_NAME!r} server waits for approval: interactive `claude` sessions do not start it "
                 "until you approve it (`claude -p` uses it anyway)",
                 fix=f"run `claude` in {root} and approve {SERVER_NAME!r}, or add \"enabledMcpjsonServers\": [\"{SERVER_NAME}\"] "
                     f"to {local_file}")


def _names(value: object) -> set[str]:
    return {v for v in value if isinstance(v, str)} if isinstance(value, list) else set()


def _base_url_check(root: Path, user: InstallTarget, env, proxy_url: str | None) -> Check:
    """Informational: where Claude Code would send its requests from this shell."""
    found = env.get("ANTHROPIC_BASE_URL"), "ANTHROPIC_BASE_URL in this shell"
    if not found[0]:
        for path in (root / ".claude" / "settings.local.json", root / ".claude" / "settings.json", user.settings_file):
            value = (_read(path).get("env") or {}).get("ANTHROPIC_BASE_URL")
            if isinstance(value, str) and value:
                found = value, f"env.ANTHROPIC_BASE_URL in {path}"
                break
    url, source = found
    if not url:
        return Check("claude", "Claude Code → proxy", INFO,
                     "ANTHROPIC_BASE_URL is not set here: Claude Code started from this shell talks to Anthropic directly, "
                     f"not through the proxy (export ANTHROPIC_BASE_URL={proxy_url or 'http://127.0.0.1:4000'})")
    same = proxy_url is not None and url.rstrip("/") == proxy_url.rstrip("/")
    note = "the proxy checked above" if same else f"not the proxy checked above ({proxy_url})"
    return Check("claude", "Claude Code → proxy", INFO, f"Claude Code sends to {url} ({source}): {note}")
