"""The real `claude` CLI, installed with `backlog-ops install`, through the real LiteLLM proxy.

    claude -p  ->  backlog-ops proxy (TicketTagger, SpendLedger)  ->  ScriptedModel (plays the model)

The scripted model (tests/claude_support.py) answers from a script written in each prompt:
``CALL tool {json}`` lines become tool_use blocks, so the model calls our MCP tools, launches
subagents and so on exactly as a real model would, and Claude Code runs them. What is checked
is what the ledger recorded for each request and what the context store holds afterwards.

The CLI is installed with npm into .cache/claude-code when missing. Under CI=true these tests
must run: a missing CLI is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from backlog_ops.context.scope import Scope
from backlog_ops.ledger import SqliteLedger
from backlog_ops.context.file_store import ContextStore

from claude_support import ScriptedModel, claude_env, find_claude
from conftest import in_ci
from proxy_support import start_proxy

pytestmark = pytest.mark.proxy

BIN = Path(sys.executable).parent
MODEL = "claude-test"
SET = "mcp__backlog-ops__set_context"
ALLOWED = ",".join([SET, "mcp__backlog-ops__get_context", "mcp__backlog-ops__clear_context",
                    "mcp__backlog-ops__ticket_spend", "Agent", "Task", "Skill"])
REVIEWER_AGENT = """\
---
name: reviewer
description: Reviews a change for correctness. Use when asked to review.
tools: mcp__backlog-ops__set_context, mcp__backlog-ops__get_context, Read
---
You review code changes and report problems.
"""


@pytest.fixture(scope="module")
def claude_bin() -> Path:
    binary, why = find_claude()
    if binary is None:
        if in_ci():
            pytest.fail(f"the claude CLI is required under CI: {why}")
        pytest.skip(why)
    return binary


@pytest.fixture(scope="module")
def model():
    with ScriptedModel() as m:
        yield m


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, model, claude_bin):
    root = tmp_path_factory.mktemp("claude-e2e")
    config = root / "proxy.yaml"
    config.write_text(yaml.safe_dump({
        "model_list": [{"model_name": MODEL, "litellm_params": {
            "model": "anthropic/claude-haiku-4-5", "api_base": model.base_url, "api_key": "scripted"}}],
        "litellm_settings": {
            "callbacks": ["backlog_ops.callbacks.ticket_tagger.ticket_tagger",
                          "backlog_ops.callbacks.spend_ledger.spend_ledger"],
            "num_retries": 0,
            "disable_add_user_agent_to_request_tags": True,
        },
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }))
    proc = start_proxy(root / "home", config)
    proc.root = root
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def project(proxy) -> Path:
    """A project set up the way a user does it: `backlog-ops install --dir myproject`."""
    project = proxy.root / "myproject"
    project.mkdir()
    (project / "backlog.config.json").write_text(json.dumps({"project": {"name": "shop-api"}}))
    r = subprocess.run([str(BIN / "backlog-ops"), "install", "--dir", str(project)],
                       capture_output=True, text=True, timeout=60, env=_cli_env(proxy))
    assert r.returncode == 0, r.stderr
    agents = project / ".claude" / "agents"
    agents.mkdir(parents=True)
    (agents / "reviewer.md").write_text(REVIEWER_AGENT)
    return project


def _cli_env(proxy) -> dict:
    return {**os.environ, "BACKLOG_HOME": str(proxy.home), "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def _call(tool: str, **arguments) -> str:
    return f"CALL {tool} {json.dumps(arguments)}"


def _task(subagent_type: str, *script: str) -> str:
    return _call("Agent", subagent_type=subagent_type, description="delegated step", prompt="\n".join(script))


def start_claude(claude_bin: Path, proxy, project: Path, *script: str, home: Path) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    env = claude_env(home, proxy.base_url, proxy.master_key, MODEL, proxy.home, BIN)
    prompt = "\n".join(script) if script[0].startswith("/") else "Work through this script.\n" + "\n".join(script)
    return subprocess.Popen(
        [str(claude_bin), "-p", prompt, "--output-format", "json", "--allowedTools", ALLOWED],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> dict:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"claude did not finish in {timeout} s: {err[-2000:]}")
    assert proc.returncode == 0, f"claude exited {proc.returncode}: {err[-2000:]} {out[-2000:]}"
    result = json.loads(out)
    assert not result.get("is_error"), result
    return result


def run_claude(claude_bin, proxy, project, *script: str, home: Path) -> dict:
    return finish(start_claude(claude_bin, proxy, project, *script, home=home))


def session_rows(proxy, session_id: str, model: ScriptedModel, timeout: float = 20.0) -> list[dict]:
    """The session's ledger rows, oldest first, once every model request of the session is in."""
    expected = sum(1 for r in model.requests if r.session_id == session_id)
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        if (proxy.home / "ledger.db").exists():
            with SqliteLedger(proxy.home / "ledger.db") as ledger:
                rows = ledger.rows("WHERE session_id = ? ORDER BY started_at, call_id", (session_id,))
            if expected and len(rows) >= expected:
                return rows
        time.sleep(0.1)
    raise AssertionError(f"ledger has {len(rows)} of {expected} rows for session {session_id}")


def tags(row: dict) -> tuple:
    return row["ticket_id"], row["gate"], row["agent_type"]


def assert_session_cleared(proxy, session_id: str) -> None:
    store = ContextStore(proxy.home)
    assert store.get(Scope(session_id)) is None
    leftovers = [p.name for p in store.contexts_dir.glob(f"{session_id}*")] if store.contexts_dir.exists() else []
    assert leftovers == [], "SessionEnd must clear the session's and its agents' contexts"


# -- the tests ------------------------------------------------------------------------------------


def test_set_context_tool_tags_the_following_requests(claude_bin, proxy, project, model, tmp_path) -> None:
    result = run_claude(
        claude_bin, proxy, project,
        _call(SET, ticket_id="FEAT-501", gate="implement", agent_type="backend"),
        _call("mcp__backlog-ops__get_context"),
        "SAY done",
        home=tmp_path / "home",
    )
    sid = result["session_id"]
    rows = session_rows(proxy, sid, model)
    main = [r for r in rows if r["agent_id"] is None]
    unoffered = [tool for session, tool in model.unoffered if session == sid]
    assert not unoffered, f"Claude Code did not offer these tools when the script called them: {unoffered}"
    assert len(main) >= 3
    assert main[0]["ticket_id"] is None, "before the tool call nothing is attributed"
    for row in main[1:]:
        assert tags(row) == ("FEAT-501", "implement", "backend")
        assert row["project"] == "shop-api", "the project comes from backlog.config.json via SessionStart"
        assert row["cost_usd"] > 0 and row["status"] == "success"
    assert_session_cleared(proxy, sid)


# Four sessions started at once on a 2-core machine: with Claude Code's default MCP settings each
# session's first request used to go out before set_context was offered (FIELD-NOTES); the
# "alwaysLoad" that install writes makes Claude Code connect the server first.
CONCURRENT = (("FEAT-601", "plan", "planner"), ("FEAT-602", "review", "reviewer"),
              ("FEAT-603", "implement", "backend"), ("FEAT-604", "lint", "linter"))


def test_four_sessions_at_once_are_each_attributed_to_their_ticket(claude_bin, proxy, project, model, tmp_path) -> None:
    procs = {
        ticket: start_claude(
            claude_bin, proxy, project,
            _call(SET, ticket_id=ticket, gate=gate, agent_type=agent),
            _call("mcp__backlog-ops__get_context"),
            _call("mcp__backlog-ops__get_context"),
            "SAY done",
            home=tmp_path / f"home-{ticket}",
        )
        for ticket, gate, agent in CONCURRENT
    }
    results = {ticket: finish(p, timeout=240) for ticket, p in procs.items()}
    sessions = {ticket: result["session_id"] for ticket, result in results.items()}
    assert len(set(sessions.values())) == len(CONCURRENT)
    unoffered = [(s, tool) for s, tool in model.unoffered if s in sessions.values()]
    assert unoffered == [], f"Claude Code did not offer these tools when the script called them: {unoffered}"
    for ticket, gate, agent in CONCURRENT:
        rows = session_rows(proxy, sessions[ticket], model)
        assert rows[0]["ticket_id"] is None, "before the tool call nothing is attributed"
        tagged = [tags(r) for r in rows[1:]]
        assert len(tagged) >= 3 and set(tagged) == {(ticket, gate, agent)}, tagged
        assert_session_cleared(proxy, sessions[ticket])


def test_a_subagent_carries_its_agent_type_and_can_set_its_own_gate(claude_bin, proxy, project, model, tmp_path) -> None:
    result = run_claude(
        claude_bin, proxy, project,
        _call(SET, ticket_id="FEAT-701", gate="implement", agent_type="backend"),
        _task("reviewer", "SAY looks fine"),
        _task("reviewer", _call(SET, ticket_id="FEAT-701", gate="review", agent_type="security-reviewer"),
              "SAY reviewed"),
        "SAY done",
        home=tmp_path / "home",
    )
    rows = session_rows(proxy, result["session_id"], model)
    main = [r for r in rows if r["agent_id"] is None]
    agents: dict[str, list[dict]] = {}
    for r in rows:
        if r["agent_id"] is not None:
            agents.setdefault(r["agent_id"], []).append(r)
    assert len(agents) == 2, "two subagents, each with its own x-claude-code-agent-id"
    first, second = sorted(agents.values(), key=lambda rs: rs[0]["started_at"])
    # SubagentStart: the session's ticket and gate, the subagent's type as agent type.
    assert {tags(r) for r in first} == {("FEAT-701", "implement", "reviewer")}
    # The second subagent's set_context lands on that subagent only (the PreToolUse claim).
    assert tags(second[0]) == ("FEAT-701", "implement", "reviewer")
    assert tags(second[-1]) == ("FEAT-701", "review", "security-reviewer")
    assert {tags(r) for r in main[1:]} == {("FEAT-701", "implement", "backend")}, "the main thread keeps its own"
    assert_session_cleared(proxy, result["session_id"])


def test_a_typed_skill_sets_its_first_gate_before_the_first_request(claude_bin, proxy, project, model, tmp_path) -> None:
    result = run_claude(claude_bin, proxy, project, "/backlog-implementer FEAT-801 add rate limiting", home=tmp_path / "home")
    rows = session_rows(proxy, result["session_id"], model)
    assert rows and all(tags(r) == ("FEAT-801", "plan", "implementer") for r in rows)
    assert {r["skill"] for r in rows} == {"backlog-implementer"}
    assert_session_cleared(proxy, result["session_id"])


def test_claude_mcp_add_and_list_show_the_server_connected(claude_bin, proxy, tmp_path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    env = claude_env(home, proxy.base_url, proxy.master_key, MODEL, proxy.home, BIN)
    add = subprocess.run([str(claude_bin), "mcp", "add", "backlog-ops", "--", "backlog-ops", "mcp"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert add.returncode == 0, add.stderr
    listed = subprocess.run([str(claude_bin), "mcp", "list"], cwd=work, env=env, capture_output=True, text=True, timeout=90)
    line = next((l for l in listed.stdout.splitlines() if l.startswith("backlog-ops:")), "")
    assert "Connected" in line, listed.stdout + listed.stderr


def test_the_checkout_installs_as_a_claude_code_plugin(claude_bin, proxy, tmp_path) -> None:
    # Claude Code copies a directory plugin whole into ~/.claude/plugins: install from the plugin's
    # own files, as a fresh clone has them, not from a checkout with .venv and .cache inside.
    repo = tmp_path / "checkout"
    source = Path(__file__).resolve().parent.parent
    for name in (".claude-plugin", "hooks", "skills"):
        shutil.copytree(source / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(source / ".mcp.json", repo / ".mcp.json")
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    env = claude_env(home, proxy.base_url, proxy.master_key, MODEL, proxy.home, BIN)

    def claude(*args: str) -> str:
        r = subprocess.run([str(claude_bin), *args], cwd=work, env=env, capture_output=True, text=True, timeout=90)
        assert r.returncode == 0, f"claude {' '.join(args)}: {r.stdout}{r.stderr}"
        return r.stdout

    assert "Validation passed" in claude("plugin", "validate", str(repo))
    claude("plugin", "marketplace", "add", str(repo))
    claude("plugin", "install", "backlog-ops@backlog-ops")
    details = claude("plugin", "details", "backlog-ops@backlog-ops")
    assert "Skills (4)" in details and "Hooks (8)" in details and "MCP servers (1)" in details, details
    listed = claude("mcp", "list")
    line = next((l for l in listed.splitlines() if "backlog-ops" in l and "mcp" in l), "")
    assert "Connected" in line, listed
    cached = sum(p.stat().st_size for p in (home / ".claude" / "plugins").rglob("*") if p.is_file())
    assert cached < 5_000_000, f"the plugin cache holds {cached} bytes"


# -- no set-up at all: the ticket from the git branch -------------------------------------------------


@pytest.fixture(scope="module")
def branch_project(proxy) -> Path:
    """A git repository on a ticket's branch, installed as a user does it; nobody sets a context."""
    project = proxy.root / "shop-web"
    project.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "feat/FEAT-901-login"], cwd=project, check=True)
    (project / "backlog.config.json").write_text(json.dumps({"project": {"name": "shop-web"}}))
    r = subprocess.run([str(BIN / "backlog-ops"), "install", "--dir", str(project)],
                       capture_output=True, text=True, timeout=60, env=_cli_env(proxy))
    assert r.returncode == 0, r.stderr
    return project


def _attribution(row: dict) -> tuple:
    return row["ticket_id"], row["gate"], row["agent_type"], row["project"], row["ticket_source"]


def test_a_session_on_a_ticket_branch_is_attributed_with_no_context_set(claude_bin, proxy, branch_project, model, tmp_path) -> None:
    result = run_claude(claude_bin, proxy, branch_project, _call("mcp__backlog-ops__get_context"), "SAY done",
                        home=tmp_path / "home")
    rows = session_rows(proxy, result["session_id"], model)
    assert len(rows) >= 2
    assert {_attribution(r) for r in rows} == {("FEAT-901", "unspecified", "main", "shop-web", "branch")}, \
        "every request, the first one included, lands on the branch's ticket, marked inferred"
    first = next(r for r in model.requests if r.session_id == result["session_id"])
    assert "inferred from the git branch 'feat/FEAT-901-login'" in json.dumps(first.body), "the model is told"
    assert_session_cleared(proxy, result["session_id"])

    r = subprocess.run([str(BIN / "backlog-ops"), "spend", "FEAT-901", "--by", "ticket_source", "--json"],
                       capture_output=True, text=True, timeout=60, env=_cli_env(proxy))
    assert r.returncode == 0, r.stderr
    assert {b["ticket_source"] for b in json.loads(r.stdout)["rows"]} == {"branch"}


def test_set_context_on_a_ticket_branch_replaces_the_inferred_ticket(claude_bin, proxy, branch_project, model, tmp_path) -> None:
    result = run_claude(
        claude_bin, proxy, branch_project,
        _call(SET, ticket_id="FEAT-902", gate="implement", agent_type="backend"),
        _call("mcp__backlog-ops__get_context"),
        "SAY done",
        home=tmp_path / "home",
    )
    rows = session_rows(proxy, result["session_id"], model)
    assert _attribution(rows[0]) == ("FEAT-901", "unspecified", "main", "shop-web", "branch")
    assert len(rows) >= 3
    assert {_attribution(r) for r in rows[1:]} == {("FEAT-902", "implement", "backend", "shop-web", None)}
    assert_session_cleared(proxy, result["session_id"])
