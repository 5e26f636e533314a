"""Claude Code hooks fed with hook JSON as Claude Code 2.1 sends it (recorded, ids shortened)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from backlog_ops.claude import sessions
from backlog_ops.context.scope import Scope
from backlog_ops.hooks.events import SKILL_GATES, handle, is_backlog_mcp_tool, ticket_from_args
from backlog_ops.context.file_store import ContextStore

BIN = Path(sys.executable).parent
SID, SID2, AGENT = "4542a6ff-4e36-481a-b119-ba2bea61312e", "01f9e3b5-729d-4e92-8f0e-de7c049eadbb", "a470226e09ef4e5b7"


def recorded(event: str, cwd: Path, session: str = SID, **more) -> dict:
    """A hook input with the fields Claude Code sends for `event` (see FIELD-NOTES.md)."""
    base = {
        "session_id": session,
        "transcript_path": f"/home/u/.claude/projects/-proj/{session}.jsonl",
        "cwd": str(cwd),
        "hook_event_name": event,
    }
    if event not in ("SessionStart", "SessionEnd"):
        base.update({"prompt_id": "ca60753c-d24a-452b-93e5-b1be4c56e019", "permission_mode": "default"})
    return {**base, **more}


def session_start(cwd, session=SID, source="startup"):
    return recorded("SessionStart", cwd, session, source=source)


def expansion(cwd, name, args="", session=SID):
    return recorded("UserPromptExpansion", cwd, session, expansion_type="slash_command", command_name=name,
                    command_args=args, command_source="projectSettings", prompt=f"/{name} {args}".strip())


def pre_tool(cwd, tool, tool_input, session=SID, agent=None, agent_type=None, tool_use_id="toolu_5d4dcf7682654c23ac04"):
    extra = {"agent_id": agent, "agent_type": agent_type} if agent else {}
    return recorded("PreToolUse", cwd, session, effort={"level": "high"}, tool_name=tool, tool_input=tool_input,
                    tool_use_id=tool_use_id, **extra)


def subagent(event, cwd, agent=AGENT, agent_type="reviewer", session=SID):
    extra = {"stop_hook_active": False, "last_assistant_message": "done"} if event == "SubagentStop" else {}
    return recorded(event, cwd, session, agent_id=agent, agent_type=agent_type, **extra)


def session_end(cwd, session=SID, reason="other"):
    return recorded("SessionEnd", cwd, session, reason=reason)


def ctx(store: ContextStore, session=SID, agent=None) -> tuple | None:
    c = store.get(Scope(session, agent))
    return (c["ticket_id"], c["gate"], c["agent_type"], c["skill"]) if c else None


@pytest.fixture
def store(backlog_home) -> ContextStore:
    return ContextStore(backlog_home)


# -- SessionStart -----------------------------------------------------------------------------------


def test_session_start_records_the_session_and_says_nothing_without_a_ticket(project_dir, store) -> None:
    (project_dir / "backlog.config.json").write_text(json.dumps({"project": {"name": "billing-svc"}}))
    assert handle("SessionStart", session_start(project_dir)) is None
    record = sessions.session_record(SID)
    assert record["project"] == "billing-svc" and record["cwd"] == str(project_dir) and record["source"] == "startup"
    assert sessions.process_record(record["process"])["session_id"] == SID


def test_session_start_tells_the_model_the_active_ticket(project_dir, store) -> None:
    store.set({"ticket_id": "FEAT-9", "gate": "review", "agent_type": "reviewer", "skill": "backlog-implementer"}, Scope(SID))
    out = handle("SessionStart", session_start(project_dir, source="resume"))
    text = out["hookSpecificOutput"]["additionalContext"]
    assert out["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    assert "ticket FEAT-9, gate review, agent reviewer" in text and "set_context" in text


def test_session_start_mentions_a_global_context_too(project_dir, store) -> None:
    store.set({"ticket_id": "OPS-3", "gate": "implement", "agent_type": "infra"})
    out = handle("SessionStart", session_start(project_dir))
    assert "ticket OPS-3" in out["hookSpecificOutput"]["additionalContext"]


# -- skills -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("skill", sorted(SKILL_GATES))
def test_a_typed_skill_sets_its_first_gate(project_dir, store, skill) -> None:
    handle("UserPromptExpansion", expansion(project_dir, skill, "FEAT-42 please"))
    gate, agent = SKILL_GATES[skill]
    assert ctx(store) == ("FEAT-42", gate, agent, skill)
    assert store.get(Scope(SID))["project"] == "my-api"


def test_the_skill_tool_sets_the_gate_with_the_plugins_namespaced_name(project_dir, store) -> None:
    handle("PreToolUse", pre_tool(project_dir, "Skill", {"skill": "backlog-ops:backlog-sentinel", "args": ""}))
    assert ctx(store) == (None, "prescan", "sentinel", "backlog-ops:backlog-sentinel")


def test_a_skill_started_inside_a_subagent_sets_that_agents_context(project_dir, store) -> None:
    handle("PreToolUse", pre_tool(project_dir, "Skill", {"skill": "backlog-ticket", "args": "BUG-7"}, agent=AGENT, agent_type="planner"))
    assert ctx(store, agent=AGENT) == ("BUG-7", "generate", "ticket", "backlog-ticket")
    assert ctx(store) is None


def test_the_implementer_without_a_ticket_keeps_the_sessions_ticket(project_dir, store) -> None:
    store.set({"ticket_id": "FEAT-5", "gate": "review", "agent_type": "reviewer", "component": "auth"}, Scope(SID))
    handle("UserPromptExpansion", expansion(project_dir, "backlog-implementer", "carry on"))
    assert ctx(store) == ("FEAT-5", "plan", "implementer", "backlog-implementer")
    assert store.get(Scope(SID))["component"] == "auth"


def test_another_skill_is_recorded_on_the_current_context_only(project_dir, store) -> None:
    handle("UserPromptExpansion", expansion(project_dir, "security-review"))
    assert ctx(store) is None, "no context: nothing to attribute, nothing written"
    store.set({"ticket_id": "FEAT-6", "gate": "implement", "agent_type": "backend"}, Scope(SID))
    handle("UserPromptExpansion", expansion(project_dir, "security-review"))
    assert ctx(store) == ("FEAT-6", "implement", "backend", "security-review")


def test_other_expansions_and_tools_are_ignored(project_dir, store, backlog_home) -> None:
    assert handle("UserPromptExpansion", {**expansion(project_dir, "backlog-ticket", "FEAT-1"), "expansion_type": "mcp_prompt"}) is None
    assert handle("PreToolUse", pre_tool(project_dir, "Bash", {"command": "ls"})) is None
    assert handle("Stop", recorded("Stop", project_dir)) is None
    assert not (backlog_home / "contexts").exists()


@pytest.mark.parametrize(("args", "ticket"), [
    ("FEAT-001", "FEAT-001"), ("fix PROJ_12 now", "PROJ_12"), ("see BUG-7.", "BUG-7"),
    ("no ticket here", None), ("lower-case-1", None), ("", None), (None, None),
])
def test_ticket_ids_in_skill_arguments(args, ticket) -> None:
    assert ticket_from_args(args) == ticket


# -- subagents --------------------------------------------------------------------------------------


def test_a_subagent_inherits_the_sessions_ticket_and_gate_with_its_own_type(project_dir, store) -> None:
    store.set({"ticket_id": "FEAT-8", "gate": "implement", "agent_type": "backend", "skill": "backlog-implementer"}, Scope(SID))
    handle("SubagentStart", subagent("SubagentStart", project_dir, agent_type="backlog-ops:security reviewer"))
    assert ctx(store, agent=AGENT) == ("FEAT-8", "implement", "backlog-ops:security-reviewer", "backlog-implementer")
    handle("SubagentStop", subagent("SubagentStop", project_dir))
    assert ctx(store, agent=AGENT) is None
    assert ctx(store) == ("FEAT-8", "implement", "backend", "backlog-implementer")


def test_a_subagent_with_no_context_in_force_gets_none(project_dir, store, backlog_home) -> None:
    handle("SubagentStart", subagent("SubagentStart", project_dir))
    handle("SubagentStop", subagent("SubagentStop", project_dir))
    assert not (backlog_home / "context-history.jsonl").exists(), "nothing set, nothing cleared"


# -- MCP tool calls ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["mcp__backlog-ops__set_context", "mcp__plugin_backlog-ops_backlog-ops__ticket_spend"])
def test_a_call_to_our_mcp_tool_leaves_a_claim_for_the_server(project_dir, tool) -> None:
    handle("PreToolUse", pre_tool(project_dir, tool, {"ticket_id": "SUB-1"}, agent=AGENT, agent_type="reviewer",
                                  tool_use_id="toolu_af8e5722b65a4bf180f3"))
    claim = sessions.claim_call("toolu_af8e5722b65a4bf180f3")
    assert (claim["session_id"], claim["agent_id"], claim["agent_type"], claim["cwd"]) == (SID, AGENT, "reviewer", str(project_dir))
    assert sessions.claim_call("toolu_af8e5722b65a4bf180f3") is None, "a claim is taken once"


@pytest.mark.parametrize(("name", "ours"), [
    ("mcp__backlog-ops__set_context", True), ("mcp__plugin_backlog-ops_backlog-ops__get_context", True),
    ("mcp__backlog-ops__drop_tables", False), ("mcp__other__set_context", False), ("Skill", False), (None, False),
])
def test_which_tools_are_ours(name, ours) -> None:
    assert is_backlog_mcp_tool(name) is ours


# -- SessionEnd and /clear --------------------------------------------------------------------------


def test_session_end_clears_the_session_and_its_agents(project_dir, store) -> None:
    handle("SessionStart", session_start(project_dir))
    store.set({"ticket_id": "FEAT-1", "gate": "implement", "agent_type": "backend"}, Scope(SID))
    handle("SubagentStart", subagent("SubagentStart", project_dir))
    handle("PreToolUse", pre_tool(project_dir, "mcp__backlog-ops__get_context", {}, tool_use_id="toolu_left_behind"))
    store.set({"ticket_id": "FEAT-2", "gate": "plan", "agent_type": "planner"}, Scope(SID2))
    handle("SessionEnd", session_end(project_dir))
    assert ctx(store) is None and ctx(store, agent=AGENT) is None
    assert ctx(store, session=SID2) == ("FEAT-2", "plan", "planner", None), "other sessions are untouched"
    assert sessions.session_record(SID) is None and sessions.claim_call("toolu_left_behind") is None


def test_clear_carries_the_context_over_to_the_new_session(project_dir, store) -> None:
    handle("SessionStart", session_start(project_dir))
    store.set({"ticket_id": "FEAT-3", "gate": "implement", "agent_type": "backend"}, Scope(SID))
    handle("SessionEnd", session_end(project_dir, reason="clear"))
    out = handle("SessionStart", session_start(project_dir, session=SID2, source="clear"))
    assert ctx(store) is None
    assert ctx(store, session=SID2) == ("FEAT-3", "implement", "backend", None)
    assert "carried over from before /clear" in out["hookSpecificOutput"]["additionalContext"]
    assert sessions.process_record(sessions.session_record(SID2)["process"])["session_id"] == SID2
    # A later, ordinary start in the same process carries nothing.
    handle("SessionEnd", session_end(project_dir, session=SID2))
    assert handle("SessionStart", session_start(project_dir, session="third-session", source="startup")) is None


# -- the entry point as Claude Code runs it ---------------------------------------------------------


def run_hook(data, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    stdin = data if isinstance(data, str) else json.dumps(data)
    return subprocess.run([str(BIN / "backlog-ops"), "hook", *args], input=stdin, capture_output=True, text=True,
                          timeout=30, env=env or os.environ.copy())


def test_the_hook_command_runs_a_whole_session(project_dir, store) -> None:
    steps = [
        session_start(project_dir),
        expansion(project_dir, "backlog-implementer", "FEAT-77"),
        subagent("SubagentStart", project_dir),
    ]
    for data in steps:
        r = run_hook(data)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert ctx(store, agent=AGENT) == ("FEAT-77", "plan", "reviewer", "backlog-implementer")
    r = run_hook(session_start(project_dir, source="resume"), "SessionStart")
    assert "FEAT-77" in json.loads(r.stdout)["hookSpecificOutput"]["additionalContext"]
    assert run_hook(session_end(project_dir)).returncode == 0
    assert ctx(store) is None and ctx(store, agent=AGENT) is None


@pytest.mark.parametrize("stdin", ["not json", "[1, 2]", '{"session_id": "../../etc", "hook_event_name": "SessionEnd"}'])
def test_bad_input_exits_0_with_a_system_message(stdin, project_dir) -> None:
    r = run_hook(stdin, "SessionEnd")
    assert r.returncode == 0
    assert "backlog-ops hook SessionEnd skipped" in json.loads(r.stdout)["systemMessage"]


def test_an_unwritable_home_never_breaks_the_session(tmp_path, project_dir) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    env = {**os.environ, "BACKLOG_HOME": str(blocker / "home")}
    for data in (session_start(project_dir), expansion(project_dir, "backlog-ticket", "FEAT-1")):
        r = run_hook(data, env=env)
        assert r.returncode == 0 and "systemMessage" in json.loads(r.stdout)


def test_hooks_can_be_switched_off(project_dir, backlog_home) -> None:
    r = run_hook(expansion(project_dir, "backlog-ticket", "FEAT-1"), env={**os.environ, "BACKLOG_HOOKS_DISABLED": "1"})
    assert (r.returncode, r.stdout) == (0, "") and not backlog_home.exists()


def fresh_interpreter(code: str, cwd) -> str:
    """Run `code` in a new interpreter (its own sys.modules), as a hook runs; its stdout."""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return r.stdout


HEAVY = ("pydantic", "filelock", "litellm", "mcp", "argparse", "httpx", "asyncio", "yaml", "sqlite3", "datetime")


def test_the_hook_path_imports_nothing_heavy(project_dir) -> None:
    events = [
        session_start(project_dir), expansion(project_dir, "backlog-implementer", "FEAT-1"),
        pre_tool(project_dir, "Skill", {"skill": "backlog-ticket"}), pre_tool(project_dir, "mcp__backlog-ops__set_context", {}),
        subagent("SubagentStart", project_dir), subagent("SubagentStop", project_dir), session_end(project_dir),
    ]
    code = (
        "import io, json, sys\n"
        "from backlog_ops.cli.main import main\n"
        f"for data in json.loads({json.dumps(json.dumps(events))}):\n"
        "    sys.stdin = io.TextIOWrapper(io.BytesIO(json.dumps(data).encode()))\n"
        "    assert main(['hook']) == 0\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )
    out = fresh_interpreter(code, project_dir)
    assert "systemMessage" not in out, out
    assert json.loads(out.splitlines()[-1]) == []


# -- hooks.json -------------------------------------------------------------------------------------


def test_hooks_json_wires_every_event_to_the_hook_command() -> None:
    config = json.loads(resources.files("backlog_ops.hooks").joinpath("hooks.json").read_text())["hooks"]
    assert set(config) == {"SessionStart", "PreToolUse", "UserPromptExpansion", "SubagentStart", "SubagentStop", "SessionEnd",
                           "UserPromptSubmit", "PostToolUse"}
    for event, groups in config.items():
        for group in groups:
            for hook in group["hooks"]:
                assert hook["command"] == f"backlog-ops hook {event}" and hook["type"] == "command" and hook["timeout"] <= 30
    matcher = re.compile(config["PreToolUse"][0]["matcher"])
    for tool in ("Skill", "mcp__backlog-ops__set_context", "mcp__plugin_backlog-ops_backlog-ops__clear_context"):
        assert matcher.fullmatch(tool), tool
    for tool in ("Bash", "Edit", "mcp__github__create_issue", "SkillX"):
        assert not matcher.fullmatch(tool), tool


def test_the_session_registry_lives_in_backlog_home(monkeypatch, tmp_path) -> None:
    from backlog_ops.common.home import home

    assert Path(sessions.state_dir()) == home() / "claude-code"
    monkeypatch.delenv("BACKLOG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Path(sessions.state_dir()) == home() / "claude-code"


def test_the_mcp_claim_path_imports_neither_json_nor_the_store(project_dir) -> None:
    """The PreToolUse hook runs before every call of our MCP tools: it is the hottest hook."""
    data = pre_tool(project_dir, "mcp__backlog-ops__set_context", {"ticket_id": "FEAT-1"}, tool_use_id="toolu_hot")
    code = (
        "import io, json as _probe, sys\n"
        "del sys.modules['json'], sys.modules['json.decoder'], sys.modules['json.scanner'], sys.modules['json.encoder']\n"
        "before = set(sys.modules)\n"
        f"sys.stdin = io.TextIOWrapper(io.BytesIO({json.dumps(data).encode()!r}))\n"
        "from backlog_ops.cli.main import main\n"
        "assert main(['hook']) == 0\n"
        "print(' '.join(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('json', 'typing', 'pathlib', 'datetime') or m in ('backlog_ops.context.file_store', 'backlog_ops.context.fields'))))\n"
    )
    out = fresh_interpreter(code, project_dir)
    assert out.strip() == "", f"imported on the hot path: {out}"
    assert sessions.claim_call("toolu_hot")["session_id"] == SID


def test_session_end_imports_nothing_of_the_budget_notices(project_dir) -> None:
    """SessionEnd only forgets what the session heard: the notices' modules are for the hooks that tell."""
    code = (
        "import io, json, sys\n"
        f"sys.stdin = io.TextIOWrapper(io.BytesIO({json.dumps(session_end(project_dir)).encode()!r}))\n"
        "from backlog_ops.hooks.entry import main\n"
        "assert main([]) == 0\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('backlog_ops.policy', 'backlog_ops.reports', "
        "'backlog_ops.claude.statusline', 'backlog_ops.claude.context_view')))))\n"
    )
    out = fresh_interpreter(code, project_dir)
    assert out.strip() == "", f"imported by SessionEnd: {out}"


KEY_OF_PARENT = "from backlog_ops.claude.sessions import claude_process_key; print(claude_process_key())"


def test_the_claude_process_key_names_the_process_above_the_hook() -> None:
    """Through the shell Claude Code runs hooks with, the key is this process's: pid and start time."""
    out = subprocess.run(["sh", "-c", f"{sys.executable} -c '{KEY_OF_PARENT}'"], capture_output=True, text=True, check=True)
    with open(f"/proc/{os.getpid()}/stat") as fh:
        start = fh.read().rsplit(")", 1)[1].split()[19]
    assert out.stdout.strip() == f"{os.getpid()}-{start}"


def test_in_a_pid_namespace_without_its_own_proc_the_key_is_the_parent_pid_alone() -> None:
    """There /proc/<pid> is another process of the outer namespace: it is not read, the parent pid stands alone."""
    try:
        subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("this machine lets no process make a pid namespace (unshare needs root or user namespaces)")
    code = f"import os, subprocess, sys; p = subprocess.run([sys.executable, '-c', {KEY_OF_PARENT!r}], capture_output=True, text=True); print(os.getpid(), p.stdout.strip())"
    out = subprocess.run(["unshare", "--pid", "--fork", sys.executable, "-c", code], capture_output=True, text=True, check=True)
    pid, key = out.stdout.split()
    assert key == pid, out.stdout
