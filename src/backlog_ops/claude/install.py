"""`backlog-ops install`: wire the MCP server, the hooks and the skills into Claude Code.

    --scope project (default)   DIR/.mcp.json, DIR/.claude/settings.json, DIR/.claude/skills/
    --scope user                ~/.claude.json (user MCP servers), ~/.claude/settings.json, ~/.claude/skills/

It merges with what is there and never clobbers a user's own hooks, servers, permissions or
skills: a JSON file that does not parse is an error, not something to overwrite; a server or a
skill of the same name that is not ours is kept, with a warning. Running it again changes
nothing. Everything it adds is written down in a manifest (.claude/backlog-ops-install.json,
or ~/.claude/backlog-ops-install.json), so that `--uninstall` removes exactly that: entries
still as installed, skill files still unmodified, and files or keys it created that are now
empty.

CLAUDE_CONFIG_DIR, when set, relocates ~/.claude (and ~/.claude.json inside it), as it does for
Claude Code.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from backlog_ops.errors import ConfigError
from backlog_ops.common.home import write_atomic

__all__ = ["HOOK_EVENTS", "MCP_TOOL_PERMISSIONS", "SERVER_NAME", "InstallTarget", "install", "remove", "run_install"]

SERVER_NAME = "backlog-ops"
MANIFEST = "backlog-ops-install.json"
MCP_TOOL_PERMISSIONS = [f"mcp__{SERVER_NAME}__{tool}" for tool in ("set_context", "clear_context", "get_context", "ticket_spend")]
HOOK_EVENTS = ("SessionStart", "PreToolUse", "UserPromptExpansion", "SubagentStart", "SubagentStop", "SessionEnd")


@dataclass
class InstallTarget:
    """Where one scope's files are."""

    scope: str
    mcp_file: Path  # holds {"mcpServers": {...}}
    settings_file: Path
    skills_dir: Path
    manifest_file: Path
    root: Path  # the directory paths are shown relative to

    @classmethod
    def for_scope(cls, scope: str, directory: Path | str = ".") -> "InstallTarget":
        if scope == "project":
            root = Path(directory).expanduser().resolve()
            if not root.is_dir():
                raise ConfigError(f"{root} is not a directory: pass --dir with an existing project directory")
            claude = root / ".claude"
            return cls("project", root / ".mcp.json", claude / "settings.json", claude / "skills", claude / MANIFEST, root)
        if scope == "user":
            config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
            claude = Path(config_dir).expanduser() if config_dir else Path.home() / ".claude"
            claude_json = claude / ".claude.json" if config_dir else Path.home() / ".claude.json"
            return cls("user", claude_json, claude / "settings.json", claude / "skills", claude / MANIFEST, Path.home())
        raise ConfigError(f"unknown scope {scope!r}: use project or user")

    def show(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root)) if self.scope == "project" else "~/" + str(path.relative_to(self.root))
        except ValueError:
            return str(path)


@dataclass
class Report:
    done: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# -- what we install ---------------------------------------------------------------------------------


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
    return {"type": "stdio", "command": command[0], "args": [*command[1:], "mcp"], "env": {}}


HOOK_CODE = "from backlog_ops.hooks.entry import run; run()"


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


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- JSON files --------------------------------------------------------------------------------------


def _load(path: Path) -> tuple[dict, bool]:
    """(data, existed). A file that exists but is not a JSON object is an error: never clobber it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, False
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not text.strip():
        return {}, True
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix it by hand, then run install again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object; fix it by hand, then run install again")
    return data, True


def _save(path: Path, data: dict) -> None:
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600 if path.name == ".claude.json" else 0o644
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode(), mode=mode)


def _created_containers(data: dict, keys: list[str]) -> list[str]:
    """Which dotted keys do not exist yet (so uninstall may delete them once empty)."""
    missing, node = [], data
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            missing += [".".join(keys[: j + 1]) for j in range(i, len(keys))]
            break
        node = node[key]
    return missing


def _prune(data: dict, dotted: str) -> None:
    """Delete the container at `dotted` if it is empty (and we created it)."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict) and node.get(keys[-1]) in ({}, []):
        del node[keys[-1]]


# -- install -----------------------------------------------------------------------------------------


def install(target: InstallTarget, command: list[str] | None = None) -> Report:
    """Add the MCP server, hooks, permissions and skills that are missing; record them in the manifest."""
    hooks_command = command  # None: hooks run this interpreter directly (see hook_prefix)
    command = command or cli_command()
    report = Report()
    manifest, _ = _load(target.manifest_file)
    manifest.setdefault("created", [])

    # 1. the MCP server
    data, existed = _load(target.mcp_file)
    servers = data.setdefault("mcpServers", {})
    ours = server_entry(command)
    current = servers.get(SERVER_NAME)
    previous = manifest.get("mcp_server")
    if current is None or (previous is not None and current == previous):
        if current != ours:
            servers[SERVER_NAME] = ours
            _save(target.mcp_file, data)
            report.done.append(f"MCP server {SERVER_NAME!r} in {target.show(target.mcp_file)}")
        manifest["mcp_server"] = ours
        if not existed:
            manifest["created"] = sorted(set(manifest["created"]) | {"mcp_file"})
    else:
        report.kept.append(f"your own MCP server {SERVER_NAME!r} in {target.show(target.mcp_file)} (left as it is)")

    # 2. hooks and tool permissions
    settings, existed = _load(target.settings_file)
    before = json.dumps(settings, sort_keys=True)
    created = set(manifest.get("settings_created", []))
    for event in HOOK_EVENTS:
        created.update(_created_containers(settings, ["hooks", event]))
    created.update(_created_containers(settings, ["permissions", "allow"]))
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ConfigError(f"{target.settings_file}: 'hooks' must be an object; fix it, then run install again")
    recorded = manifest.get("hooks", {})
    wanted = hook_groups(hooks_command)
    for event, groups in wanted.items():
        entries = hooks.setdefault(event, [])
        # An older install of ours with another command (a moved virtualenv): replace it.
        for old in recorded.get(event, []):
            if old not in groups and old in entries:
                entries.remove(old)
        for group in groups:
            if group not in entries:
                entries.append(group)
    manifest["hooks"] = wanted
    permissions = settings.setdefault("permissions", {})
    allow = permissions.setdefault("allow", [])
    added = set(manifest.get("permissions", []))
    for rule in MCP_TOOL_PERMISSIONS:
        if rule not in allow:
            allow.append(rule)
            added.add(rule)
    manifest["permissions"] = sorted(added)
    manifest["settings_created"] = sorted(created)
    if not existed:
        manifest["created"] = sorted(set(manifest["created"]) | {"settings_file"})
    if json.dumps(settings, sort_keys=True) != before or not existed:
        _save(target.settings_file, settings)
        report.done.append(f"hooks and MCP tool permissions in {target.show(target.settings_file)}")

    # 3. skills
    installed = manifest.setdefault("skills", {})
    for name, files in shipped_skills().items():
        directory = target.skills_dir / name
        ours_before = installed.get(name, {})
        if directory.exists() and not ours_before:
            if all(_file_sha(directory / rel) == _sha(data) for rel, data in files.items()):
                report.kept.append(f"skill {name} (already present and identical)")
            else:
                report.kept.append(f"your own skill {target.show(directory)} (left as it is)")
            continue
        modified = [rel for rel, sha in ours_before.items() if (directory / rel).exists() and _file_sha(directory / rel) != sha]
        if modified:
            report.warnings.append(f"skill {name}: you changed {', '.join(modified)}; not updated (uninstall, or delete it, to take ours)")
            continue
        changed = False
        for rel, data in files.items():
            path = directory / rel
            if _file_sha(path) != _sha(data):
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, data, mode=0o644)
                changed = True
        for rel in set(ours_before) - set(files):
            _unlink(directory / rel)
        installed[name] = {rel: _sha(data) for rel, data in files.items()}
        if changed:
            report.done.append(f"skill {name} in {target.show(directory)}")

    _save(target.manifest_file, manifest)
    return report


def remove(target: InstallTarget) -> Report:
    """Undo install(): remove exactly what the manifest says it added and is still as it was."""
    report = Report()
    manifest, existed = _load(target.manifest_file)
    if not existed:
        report.warnings.append(f"nothing to uninstall: no {target.show(target.manifest_file)}")
        return report

    data, present = _load(target.mcp_file)
    servers = data.get("mcpServers") if isinstance(data.get("mcpServers"), dict) else None
    ours = manifest.get("mcp_server")
    if present and servers is not None and ours is not None:
        if servers.get(SERVER_NAME) == ours:
            del servers[SERVER_NAME]
            if not servers and "mcp_file" in manifest.get("created", []):
                del data["mcpServers"]
            if not data and "mcp_file" in manifest.get("created", []):
                _unlink(target.mcp_file)
            else:
                _save(target.mcp_file, data)
            report.done.append(f"MCP server {SERVER_NAME!r} from {target.show(target.mcp_file)}")
        elif SERVER_NAME in servers:
            report.kept.append(f"MCP server {SERVER_NAME!r}: changed since install, left as it is")

    settings, present = _load(target.settings_file)
    if present:
        hooks = settings.get("hooks") if isinstance(settings.get("hooks"), dict) else {}
        for event, groups in manifest.get("hooks", {}).items():
            entries = hooks.get(event)
            if isinstance(entries, list):
                for group in groups:
                    if group in entries:
                        entries.remove(group)
        allow = (settings.get("permissions") or {}).get("allow")
        if isinstance(allow, list):
            for rule in manifest.get("permissions", []):
                if rule in allow:
                    allow.remove(rule)
        for dotted in sorted(manifest.get("settings_created", []), key=lambda d: -d.count(".")):
            _prune(settings, dotted)
        if not settings and "settings_file" in manifest.get("created", []):
            _unlink(target.settings_file)
        else:
            _save(target.settings_file, settings)
        report.done.append(f"hooks and MCP tool permissions from {target.show(target.settings_file)}")

    for name, files in manifest.get("skills", {}).items():
        directory = target.skills_dir / name
        kept = []
        for rel, sha in files.items():
            path = directory / rel
            if not path.exists():
                continue
            if _file_sha(path) == sha:
                _unlink(path)
            else:
                kept.append(rel)
        _remove_empty_dirs(directory)
        if kept:
            report.kept.append(f"skill {name}: files you changed were kept ({', '.join(kept)})")
        else:
            report.done.append(f"skill {name} from {target.show(directory)}")
    _unlink(target.manifest_file)
    for directory in (target.skills_dir, target.settings_file.parent):
        if target.scope == "project":
            _remove_empty_dirs(directory, only_self=True)
    return report


def _file_sha(path: Path) -> str | None:
    try:
        return _sha(path.read_bytes())
    except OSError:
        return None


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _remove_empty_dirs(directory: Path, only_self: bool = False) -> None:
    if not directory.is_dir():
        return
    if not only_self:
        for sub in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                sub.rmdir()
            except OSError:
                pass
    try:
        directory.rmdir()
    except OSError:
        pass


# -- the command -------------------------------------------------------------------------------------


def run_install(scope: str, directory: str, uninstall: bool) -> int:
    target = InstallTarget.for_scope(scope, directory)
    report = remove(target) if uninstall else install(target)
    verb = "removed" if uninstall else "installed"
    for line in report.done:
        print(f"{verb}: {line}")
    for line in report.kept:
        print(f"kept: {line}")
    for line in report.warnings:
        print(f"backlog-ops: warning: {line}", file=sys.stderr)
    if not report.done and not uninstall:
        print(f"backlog-ops is already installed for this {scope} (nothing changed)")
    if not uninstall and report.done:
        where = f"in {target.root}" if scope == "project" else "for every project"
        print(
            f"\nNext: start Claude Code {where} through the proxy, e.g.\n"
            "  backlog-ops proxy &   # then\n"
            "  ANTHROPIC_BASE_URL=http://127.0.0.1:4000 ANTHROPIC_AUTH_TOKEN=<proxy key> claude\n"
            "and run a skill such as /backlog-implementer FEAT-001."
        )
        if scope == "project":
            print("Claude Code asks once to approve the project's MCP server (.mcp.json); `claude -p` uses it at once.")
    return 0
