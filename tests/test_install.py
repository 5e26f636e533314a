"""`backlog-ops install`: merging into a user's Claude Code settings, idempotence, exact uninstall,
and the plugin layout shipped in the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml

from backlog_ops.errors import ConfigError
from backlog_ops.claude.install import InstallTarget, install, remove
from backlog_ops.claude.install_content import MCP_TOOL_PERMISSIONS, SETTINGS_ENV, server_entry
from backlog_ops.claude.names import HOOK_EVENTS

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SKILLS = ("backlog-implementer", "backlog-refinement", "backlog-sentinel", "backlog-ticket")
CMD = ["backlog-ops"]

USER_SETTINGS = {
    "model": "sonnet",
    "permissions": {"allow": ["Bash(ls:*)"], "deny": ["Read(./.env)"]},
    "hooks": {
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./check-bash.sh"}]}],
        "SessionStart": [{"hooks": [{"type": "command", "command": "echo hello"}]}],
    },
}
USER_MCP = {"mcpServers": {"github": {"type": "stdio", "command": "gh-mcp", "args": [], "env": {"TOKEN": "x"}}}}


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = tmp_path / "myproject"
    project.mkdir()
    return project


def target(project: Path) -> InstallTarget:
    return InstallTarget.for_scope("project", project)


def test_install_into_a_fresh_project(project: Path) -> None:
    report = install(target(project), CMD)
    assert len(report.done) == 2 + len(SKILLS)
    assert load(project / ".mcp.json") == {"mcpServers": {"backlog-ops": {
        "type": "stdio", "command": "backlog-ops", "args": ["mcp"], "env": {}, "alwaysLoad": True}}}
    settings = load(project / ".claude" / "settings.json")
    assert set(settings["hooks"]) == set(HOOK_EVENTS)
    assert settings["hooks"]["SubagentStart"][0]["hooks"][0]["command"] == "backlog-ops hook SubagentStart"
    assert settings["permissions"]["allow"] == MCP_TOOL_PERMISSIONS
    # Claude Code waits for the alwaysLoad server up to 30 s instead of 5 s before the first request.
    assert settings["env"] == {"MCP_CONNECT_TIMEOUT_MS": "30000"} == SETTINGS_ENV
    for name in SKILLS:
        shipped = resources.files("backlog_ops.skills").joinpath(name, "SKILL.md").read_bytes()
        assert (project / ".claude" / "skills" / name / "SKILL.md").read_bytes() == shipped


def test_install_merges_is_idempotent_and_uninstall_restores_exactly(project: Path) -> None:
    claude = project / ".claude"
    (claude / "skills" / "my-skill").mkdir(parents=True)
    (claude / "skills" / "my-skill" / "SKILL.md").write_text("---\nname: my-skill\ndescription: mine\n---\nmine\n")
    (claude / "skills" / "backlog-ticket").mkdir()
    (claude / "skills" / "backlog-ticket" / "SKILL.md").write_text("---\nname: backlog-ticket\ndescription: our team's own\n---\n")
    (claude / "settings.json").write_text(json.dumps(USER_SETTINGS, indent=4))
    (project / ".mcp.json").write_text(json.dumps(USER_MCP))
    before = snapshot(project)

    report = install(target(project), CMD)
    assert any("your own skill" in k and "backlog-ticket" in k for k in report.kept)
    settings = load(claude / "settings.json")
    assert settings["model"] == "sonnet" and settings["permissions"]["deny"] == ["Read(./.env)"]
    assert settings["permissions"]["allow"] == ["Bash(ls:*)", *MCP_TOOL_PERMISSIONS]
    assert settings["hooks"]["PreToolUse"][0] == USER_SETTINGS["hooks"]["PreToolUse"][0]
    assert [g["hooks"][0]["command"] for g in settings["hooks"]["SessionStart"]] == ["echo hello", "backlog-ops hook SessionStart"]
    assert set(load(project / ".mcp.json")["mcpServers"]) == {"github", "backlog-ops"}
    assert (claude / "skills" / "backlog-ticket" / "SKILL.md").read_text().endswith("our team's own\n---\n")

    installed = snapshot(project)
    assert install(target(project), CMD).done == []
    assert snapshot(project) == installed, "a second install changes nothing"

    remove(target(project))
    after = snapshot(project)
    assert set(after) == set(before)
    for name, data in before.items():
        if name.endswith(".json"):
            assert json.loads(after[name]) == json.loads(data), name
        else:
            assert after[name] == data, name


def test_uninstall_of_a_fresh_install_leaves_nothing(project: Path) -> None:
    install(target(project), CMD)
    remove(target(project))
    assert list(project.iterdir()) == []


def test_a_users_own_backlog_ops_server_is_kept(project: Path) -> None:
    own = {"mcpServers": {"backlog-ops": {"command": "/opt/bo/bin/backlog-ops", "args": ["mcp"]}}}
    (project / ".mcp.json").write_text(json.dumps(own))
    report = install(target(project), CMD)
    assert any("your own MCP server" in k for k in report.kept)
    assert any('no "alwaysLoad": true' in w for w in report.warnings), report.warnings
    remove(target(project))
    assert load(project / ".mcp.json") == own


def test_a_skill_the_user_edited_survives_update_and_uninstall(project: Path) -> None:
    install(target(project), CMD)
    skill = project / ".claude" / "skills" / "backlog-implementer" / "SKILL.md"
    skill.write_text(skill.read_text() + "\nOur team also runs `make e2e` at REVIEW.\n")
    report = install(target(project), CMD)
    assert any("you changed SKILL.md" in w for w in report.warnings)
    report = remove(target(project))
    assert skill.exists() and "make e2e" in skill.read_text()
    assert not (project / ".claude" / "skills" / "backlog-sentinel").exists()


def test_a_users_own_env_setting_is_kept_and_ours_removed_on_uninstall(project: Path) -> None:
    claude = project / ".claude"
    claude.mkdir()
    (claude / "settings.json").write_text(json.dumps({"env": {"MCP_CONNECT_TIMEOUT_MS": "90000", "FOO": "1"}}))
    report = install(target(project), CMD)
    assert any("your own env MCP_CONNECT_TIMEOUT_MS='90000'" in k for k in report.kept)
    assert load(claude / "settings.json")["env"] == {"MCP_CONNECT_TIMEOUT_MS": "90000", "FOO": "1"}
    remove(target(project))
    assert load(claude / "settings.json") == {"env": {"MCP_CONNECT_TIMEOUT_MS": "90000", "FOO": "1"}}
    # Ours goes on uninstall; a key of the user's next to it stays.
    (claude / "settings.json").write_text(json.dumps({"env": {"FOO": "1"}}))
    install(target(project), CMD)
    assert load(claude / "settings.json")["env"] == {"FOO": "1", **SETTINGS_ENV}
    remove(target(project))
    assert load(claude / "settings.json") == {"env": {"FOO": "1"}}


def test_an_older_install_without_always_load_is_updated(project: Path) -> None:
    install(target(project), CMD)
    for path in (project / ".mcp.json", project / ".claude" / "backlog-ops-install.json"):
        data = load(path)
        server = data["mcpServers" if path.name == ".mcp.json" else "mcp_server"]
        server = server["backlog-ops"] if path.name == ".mcp.json" else server
        del server["alwaysLoad"]  # what an install before alwaysLoad wrote
        path.write_text(json.dumps(data))
    report = install(target(project), CMD)
    assert report.done == ["MCP server 'backlog-ops' in .mcp.json"] and not report.kept
    assert load(project / ".mcp.json")["mcpServers"]["backlog-ops"]["alwaysLoad"] is True


def test_reinstalling_from_a_moved_virtualenv_replaces_our_hooks(project: Path) -> None:
    install(target(project), ["/old/venv/bin/backlog-ops"])
    install(target(project), ["/new/venv/bin/backlog-ops"])
    settings = load(project / ".claude" / "settings.json")
    commands = [h["command"] for groups in settings["hooks"].values() for g in groups for h in g["hooks"]]
    assert len(commands) == len(HOOK_EVENTS) and all(c.startswith("/new/venv/bin/backlog-ops hook ") for c in commands)
    assert load(project / ".mcp.json")["mcpServers"]["backlog-ops"]["command"] == "/new/venv/bin/backlog-ops"


def test_invalid_json_is_never_overwritten(project: Path) -> None:
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.json").write_text("{ oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        install(target(project), CMD)
    assert (project / ".claude" / "settings.json").read_text() == "{ oops"


def test_user_scope(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    claude_json = {"userID": "u1", "projects": {"/x": {"allowedTools": []}}, "mcpServers": {"memory": {"command": "mem"}}}
    (home / ".claude.json").write_text(json.dumps(claude_json))
    (home / ".claude.json").chmod(0o600)
    user = InstallTarget.for_scope("user")
    install(user, CMD)
    data = load(home / ".claude.json")
    assert data["userID"] == "u1" and set(data["mcpServers"]) == {"memory", "backlog-ops"}
    assert data["mcpServers"]["backlog-ops"]["alwaysLoad"] is True
    assert (home / ".claude.json").stat().st_mode & 0o777 == 0o600
    assert set(load(home / ".claude" / "settings.json")["hooks"]) == set(HOOK_EVENTS)
    assert (home / ".claude" / "skills" / "backlog-sentinel" / "SKILL.md").exists()
    remove(user)
    assert load(home / ".claude.json") == claude_json
    assert not (home / ".claude" / "settings.json").exists() and not (home / ".claude" / "skills" / "backlog-sentinel").exists()


def test_the_install_command(project: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "backlog-ops"), "install", "--dir", str(project), *args],
                              capture_output=True, text=True, timeout=60, env=os.environ.copy())

    r = cli()
    assert r.returncode == 0 and "installed: MCP server 'backlog-ops' in .mcp.json" in r.stdout, r.stderr
    assert "/backlog-implementer FEAT-001" in r.stdout
    command = load(project / ".mcp.json")["mcpServers"]["backlog-ops"]["command"]
    assert Path(command).name == "backlog-ops"
    assert "already installed" in cli().stdout
    r = cli("--uninstall")
    assert r.returncode == 0 and "removed: skill backlog-ticket" in r.stdout
    assert list(project.iterdir()) == []
    r = subprocess.run([str(BIN / "backlog-ops"), "install", "--dir", str(project / "missing")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "is not a directory" in r.stderr


# -- the plugin layout and the skills ----------------------------------------------------------------


def test_the_checkout_is_a_claude_code_plugin_and_marketplace() -> None:
    plugin = load(REPO / ".claude-plugin" / "plugin.json")
    market = load(REPO / ".claude-plugin" / "marketplace.json")
    assert plugin["name"] == "backlog-ops" and market["plugins"][0]["name"] == "backlog-ops"
    assert market["plugins"][0]["source"] == "./"
    # The plugin's server is the one `install` writes: on PATH, and connected before the first request.
    assert load(REPO / ".mcp.json")["mcpServers"]["backlog-ops"] == server_entry(["backlog-ops"])
    assert server_entry(["backlog-ops"])["alwaysLoad"] is True
    assert (REPO / "hooks" / "hooks.json").is_file()


@pytest.mark.parametrize("name", SKILLS)
def test_skills_follow_claude_code_conventions(name: str) -> None:
    text = (REPO / "skills" / name / "SKILL.md").read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    body = text.split("---\n", 2)[2]
    assert front["name"] == name
    description = front["description"]
    assert description.split()[0].endswith("s"), "third person: 'Takes…', 'Writes…'"
    assert "Use when" in description and '"' in description, "literal trigger phrases"
    assert len(description) <= 1024
    tools = [t.strip() for t in front["allowed-tools"].split(",")]
    for tool in ("set_context", "clear_context", "ticket_spend"):
        assert f"mcp__backlog-ops__{tool}" in tools and f"mcp__plugin_backlog-ops_backlog-ops__{tool}" in tools
    assert "clear_context()" in body and "set_context(" in body and "set_backlog_context" in body


@pytest.mark.parametrize(("name", "calls"), [
    ("backlog-implementer", [('"plan"', '"<agent type>"'), ('"implement"', '"<agent type>"'), ('"lint"', '"linter"'), ('"review"', '"reviewer"')]),
    ("backlog-sentinel", [('"prescan"', '"sentinel"'), ('"review"', '"security-reviewer"'), ('"ticket-create"', '"ticket"')]),
    ("backlog-ticket", [('"generate"', '"ticket"')]),
    ("backlog-refinement", [('"refine"', '"refinement"')]),
])
def test_skills_call_set_context_at_each_gate_of_the_design(name: str, calls: list) -> None:
    body = (REPO / "skills" / name / "SKILL.md").read_text()
    for gate, agent in calls:
        assert f"gate={gate}, agent_type={agent}, skill=\"{name}\"" in body, (gate, agent)
    if name in ("backlog-implementer", "backlog-sentinel"):
        assert "frontier" in body and "ticket_spend" in body


# -- what the project's files name: `backlog-ops` on PATH, or this install's path -------------------


def _cli(project: Path, path: str) -> subprocess.CompletedProcess:
    """`backlog-ops install` run from this venv by its path, with PATH as given."""
    env = {**os.environ, "PATH": path}
    return subprocess.run([str(BIN / "backlog-ops"), "install", "--dir", str(project)],
                          capture_output=True, text=True, timeout=60, env=env)


def _commands(project: Path) -> list[str]:
    server = load(project / ".mcp.json")["mcpServers"]["backlog-ops"]
    settings = load(project / ".claude" / "settings.json")
    hooks = [h["command"] for groups in settings["hooks"].values() for g in groups for h in g["hooks"]]
    return [" ".join([server["command"], *server["args"]]), *hooks]


def test_a_project_install_names_backlog_ops_on_path_so_it_can_be_committed(project: Path, tmp_path: Path) -> None:
    # As after `pipx install`: a bin directory on PATH with a link to the installed command.
    user_bin = tmp_path / "user-bin"
    user_bin.mkdir()
    (user_bin / "backlog-ops").symlink_to(BIN / "backlog-ops")
    r = _cli(project, f"{user_bin}:/usr/bin:/bin")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", "nothing to warn about"
    assert f"note: the MCP server and the hooks run `backlog-ops` as PATH finds it (now {user_bin / 'backlog-ops'})" in r.stdout
    assert "can be committed" in r.stdout
    commands = _commands(project)
    assert commands[0] == "backlog-ops mcp"
    assert set(commands[1:]) == {f"backlog-ops hook {event}" for event in HOOK_EVENTS}
    for name in (".mcp.json", ".claude/settings.json"):
        text = (project / name).read_text()
        assert str(BIN) not in text and str(tmp_path) not in text, f"{name} names a path of this machine"
    assert load(project / ".mcp.json")["mcpServers"]["backlog-ops"]["alwaysLoad"] is True


def test_without_backlog_ops_on_path_install_writes_its_own_path_and_says_so(project: Path, tmp_path: Path) -> None:
    r = _cli(project, "/usr/bin:/bin")
    assert r.returncode == 0, r.stderr
    warning = r.stderr.strip()
    assert warning.startswith("backlog-ops: warning: `backlog-ops` is not on PATH") and "\n" not in warning
    assert str(BIN / "backlog-ops") in warning and "do not commit them" in warning and "pipx install" in warning
    commands = _commands(project)
    assert commands[0] == f"{BIN / 'backlog-ops'} mcp"
    assert all(c.startswith(sys.executable + " -c ") for c in commands[1:]), commands[1:]
    # Once the command is on PATH, installing again makes the files portable, leaving nothing behind.
    user_bin = tmp_path / "user-bin"
    user_bin.mkdir()
    (user_bin / "backlog-ops").symlink_to(BIN / "backlog-ops")
    r = _cli(project, f"{user_bin}:/usr/bin:/bin")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "installed: MCP server 'backlog-ops' in .mcp.json" in r.stdout
    commands = _commands(project)
    assert commands[0] == "backlog-ops mcp"
    assert sorted(commands[1:]) == sorted(f"backlog-ops hook {event}" for event in HOOK_EVENTS)


def test_the_next_steps_name_the_models_and_the_key_file_where_it_is(project: Path, tmp_path: Path) -> None:
    env = {**os.environ, "BACKLOG_HOME": str(tmp_path / "state")}
    r = subprocess.run([str(BIN / "backlog-ops"), "install", "--dir", str(project)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert "ANTHROPIC_MODEL=balanced ANTHROPIC_SMALL_FAST_MODEL=cheap claude" in r.stdout
    assert f'ANTHROPIC_AUTH_TOKEN="$(cat {tmp_path / "state" / "master-key"})"' in r.stdout
