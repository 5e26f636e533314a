"""Install and uninstall: wire the MCP server, the hooks and the skills into Claude Code.

    scope project (default)   DIR/.mcp.json, DIR/.claude/settings.json (hooks, statusLine), DIR/.claude/skills/
    scope user                ~/.claude.json (user MCP servers), ~/.claude/settings.json, ~/.claude/skills/

Install merges with what is there and never clobbers a user's own hooks, servers, permissions or
skills: a server or a skill of the same name that is not ours is kept, with a note. Running it
again changes nothing. Everything it adds is written down in a manifest
(.claude/backlog-ops-install.json, or ~/.claude/backlog-ops-install.json), so that uninstall
removes exactly that: entries still as installed, skill files still unmodified, and files or keys
it created that are now empty. Both return an InstallReport; the CLI (cli/install_cmd.py) prints it.

CLAUDE_CONFIG_DIR, when set, relocates ~/.claude (and ~/.claude.json inside it), as it does for
Claude Code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from backlog_ops.claude.install_content import (
    MCP_TOOL_PERMISSIONS,
    SETTINGS_ENV,
    commands_for,
    hook_groups,
    server_entry,
    shipped_skills,
)
from backlog_ops.claude.install_statusline import install_statusline, remove_statusline
from backlog_ops.claude.names import HOOK_EVENTS, SERVER_NAME
from backlog_ops.claude.user_files import (
    file_sha,
    load_json_object,
    missing_keys,
    prune_if_empty,
    remove_empty_dirs,
    save_json_object,
    sha,
    unlink_if_present,
)
from backlog_ops.common.home import ensure_dir, write_atomic
from backlog_ops.errors import ConfigError

__all__ = ["InstallReport", "InstallTarget", "install", "remove"]

MANIFEST = "backlog-ops-install.json"


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
class InstallReport:
    """What install or uninstall did (done), left alone on purpose (kept), could not do or should
    be looked at (warnings), and why it wrote what it wrote (notes)."""

    done: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- install -----------------------------------------------------------------------------------------


def install(target: InstallTarget, command: list[str] | None = None) -> InstallReport:
    """Add the MCP server, hooks, permissions and skills that are missing; record them in the manifest.

    `command` runs our CLI for both the server and the hooks; None: what commands_for(scope) says.
    """
    report = InstallReport()
    manifest, _ = load_json_object(target.manifest_file)
    manifest.setdefault("created", [])
    if command is None:
        chosen = commands_for(target.scope)
        server_command, hooks_command = chosen.server, chosen.hooks
        report.notes += [chosen.note] if chosen.note else []
        report.warnings += [chosen.warning] if chosen.warning else []
    else:
        server_command = hooks_command = command
    _install_server(target, manifest, server_entry(server_command), report)
    # hooks_command None: the hooks run this interpreter directly (see install_content.hook_prefix).
    _install_settings(target, manifest, hooks_command, report)
    _install_skills(target, manifest, report)
    save_json_object(target.manifest_file, manifest)
    return report


def _note_created(manifest: dict, name: str) -> None:
    manifest["created"] = sorted(set(manifest["created"]) | {name})


def _install_server(target: InstallTarget, manifest: dict, ours: dict, report: InstallReport) -> None:
    data, existed = load_json_object(target.mcp_file)
    servers = data.setdefault("mcpServers", {})
    current = servers.get(SERVER_NAME)
    previous = manifest.get("mcp_server")
    if current is not None and (previous is None or current != previous):
        report.kept.append(f"your own MCP server {SERVER_NAME!r} in {target.show(target.mcp_file)} (left as it is)")
        if not (isinstance(current, dict) and current.get("alwaysLoad") is True):
            report.warnings.append(
                f"your MCP server {SERVER_NAME!r} in {target.show(target.mcp_file)} has no \"alwaysLoad\": true; "
                "add it, or a session's first requests may go out before set_context is offered"
            )
        return
    if current != ours:
        servers[SERVER_NAME] = ours
        save_json_object(target.mcp_file, data)
        report.done.append(f"MCP server {SERVER_NAME!r} in {target.show(target.mcp_file)}")
    manifest["mcp_server"] = ours
    if not existed:
        _note_created(manifest, "mcp_file")


def _install_settings(target: InstallTarget, manifest: dict, hooks_command: list[str] | None, report: InstallReport) -> None:
    """The hooks and the MCP tool permissions, in settings.json."""
    settings, existed = load_json_object(target.settings_file)
    before = json.dumps(settings, sort_keys=True)
    created = set(manifest.get("settings_created", []))
    for event in HOOK_EVENTS:
        created.update(missing_keys(settings, ["hooks", event]))
    created.update(missing_keys(settings, ["permissions", "allow"]))
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
    allow = settings.setdefault("permissions", {}).setdefault("allow", [])
    added = set(manifest.get("permissions", []))
    for rule in MCP_TOOL_PERMISSIONS:
        if rule not in allow:
            allow.append(rule)
            added.add(rule)
    manifest["permissions"] = sorted(added)
    _install_env(target, settings, manifest, created, report)
    install_statusline(settings, manifest, hooks_command, report.kept, target.show(target.settings_file))
    manifest["settings_created"] = sorted(created)
    if not existed:
        _note_created(manifest, "settings_file")
    if json.dumps(settings, sort_keys=True) != before or not existed:
        save_json_object(target.settings_file, settings)
        report.done.append(f"hooks, status line, MCP tool permissions and settings in {target.show(target.settings_file)}")


def _install_env(target: InstallTarget, settings: dict, manifest: dict, created: set, report: InstallReport) -> None:
    """Environment settings our server needs (install_content.SETTINGS_ENV); a user's own value is kept."""
    created.update(missing_keys(settings, ["env"]))
    env = settings.setdefault("env", {})
    if not isinstance(env, dict):
        raise ConfigError(f"{target.settings_file}: 'env' must be an object; fix it, then run install again")
    ours = dict(manifest.get("env", {}))
    for key, value in SETTINGS_ENV.items():
        if key not in env:
            env[key] = ours[key] = value
        elif key in ours and env[key] == ours[key]:
            env[key] = ours[key] = value  # ours from an earlier install: take the current value
        else:
            ours.pop(key, None)  # the user's own (or changed since): theirs to keep, and to remove
            report.kept.append(f"your own env {key}={env[key]!r} in {target.show(target.settings_file)} (left as it is)")
    manifest["env"] = ours


def _install_skills(target: InstallTarget, manifest: dict, report: InstallReport) -> None:
    installed = manifest.setdefault("skills", {})
    for name, files in shipped_skills().items():
        directory = target.skills_dir / name
        ours_before = installed.get(name, {})
        if directory.exists() and not ours_before:
            if all(file_sha(directory / rel) == sha(data) for rel, data in files.items()):
                report.kept.append(f"skill {name} (already present and identical)")
            else:
                report.kept.append(f"your own skill {target.show(directory)} (left as it is)")
            continue
        modified = [rel for rel, digest in ours_before.items() if (directory / rel).exists() and file_sha(directory / rel) != digest]
        if modified:
            report.warnings.append(f"skill {name}: you changed {', '.join(modified)}; not updated (uninstall, or delete it, to take ours)")
            continue
        changed = False
        for rel, data in files.items():
            path = directory / rel
            if file_sha(path) != sha(data):
                ensure_dir(path.parent)
                write_atomic(path, data, mode=0o644)
                changed = True
        for rel in set(ours_before) - set(files):
            unlink_if_present(directory / rel)
        installed[name] = {rel: sha(data) for rel, data in files.items()}
        if changed:
            report.done.append(f"skill {name} in {target.show(directory)}")


# -- uninstall ---------------------------------------------------------------------------------------


def remove(target: InstallTarget) -> InstallReport:
    """Undo install(): remove exactly what the manifest says it added and is still as it was."""
    report = InstallReport()
    manifest, existed = load_json_object(target.manifest_file)
    if not existed:
        report.warnings.append(f"nothing to uninstall: no {target.show(target.manifest_file)}")
        return report
    _remove_server(target, manifest, report)
    _remove_settings(target, manifest, report)
    _remove_skills(target, manifest, report)
    unlink_if_present(target.manifest_file)
    if target.scope == "project":
        for directory in (target.skills_dir, target.settings_file.parent):
            remove_empty_dirs(directory, only_self=True)
    return report


def _remove_server(target: InstallTarget, manifest: dict, report: InstallReport) -> None:
    data, present = load_json_object(target.mcp_file)
    servers = data.get("mcpServers") if isinstance(data.get("mcpServers"), dict) else None
    ours = manifest.get("mcp_server")
    if not present or servers is None or ours is None:
        return
    if servers.get(SERVER_NAME) != ours:
        if SERVER_NAME in servers:
            report.kept.append(f"MCP server {SERVER_NAME!r}: changed since install, left as it is")
        return
    del servers[SERVER_NAME]
    created = "mcp_file" in manifest.get("created", [])
    if not servers and created:
        del data["mcpServers"]
    if not data and created:
        unlink_if_present(target.mcp_file)
    else:
        save_json_object(target.mcp_file, data)
    report.done.append(f"MCP server {SERVER_NAME!r} from {target.show(target.mcp_file)}")


def _remove_settings(target: InstallTarget, manifest: dict, report: InstallReport) -> None:
    settings, present = load_json_object(target.settings_file)
    if not present:
        return
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
    env = settings.get("env")
    if isinstance(env, dict):
        for key, value in manifest.get("env", {}).items():
            if env.get(key) == value:
                del env[key]
    remove_statusline(settings, manifest, report.kept, target.show(target.settings_file))
    for dotted in sorted(manifest.get("settings_created", []), key=lambda d: -d.count(".")):
        prune_if_empty(settings, dotted)
    if not settings and "settings_file" in manifest.get("created", []):
        unlink_if_present(target.settings_file)
    else:
        save_json_object(target.settings_file, settings)
    report.done.append(f"hooks, status line, MCP tool permissions and settings from {target.show(target.settings_file)}")


def _remove_skills(target: InstallTarget, manifest: dict, report: InstallReport) -> None:
    for name, files in manifest.get("skills", {}).items():
        directory = target.skills_dir / name
        kept = []
        for rel, digest in files.items():
            path = directory / rel
            if not path.exists():
                continue
            if file_sha(path) == digest:
                unlink_if_present(path)
            else:
                kept.append(rel)
        remove_empty_dirs(directory)
        if kept:
            report.kept.append(f"skill {name}: files you changed were kept ({', '.join(kept)})")
        else:
            report.done.append(f"skill {name} from {target.show(directory)}")
