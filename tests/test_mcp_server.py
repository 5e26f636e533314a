"""The MCP server through the real `mcp` client: in memory for each tool, over stdio once.

Who the caller is (mcp_server.caller) is tested here too: the PreToolUse hook's claim, the
process record that SessionStart keeps current across /clear, and the stale spawn-time
CLAUDE_CODE_SESSION_ID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_support import start_resident

from backlog_ops.claude import sessions
from backlog_ops.context.scope import Scope
from backlog_ops.hooks.events import handle
from backlog_ops.ledger import CallRecord, open_ledger
from backlog_ops.claude import mcp_prefork
from backlog_ops.mcp_server import core
from backlog_ops.mcp_server.caller import TOOL_USE_ID_META, Caller, CallerResolver
from backlog_ops.mcp_server.server import build_server
from backlog_ops.context.file_store import ContextStore

BIN = Path(sys.executable).parent
SPAWNED, CURRENT = "11111111-aaaa-4bbb-8ccc-000000000001", "22222222-aaaa-4bbb-8ccc-000000000002"
PROCESS = "4242-99999"


def resolver(project_dir: Path, env: dict | None = None) -> CallerResolver:
    return CallerResolver(env={"CLAUDE_CODE_SESSION_ID": SPAWNED, **(env or {})}, process_key=PROCESS, cwd=str(project_dir))


def call(server, tool: str, arguments: dict | None = None, meta: dict | None = None):
    async def go():
        async with Client(server) as client:
            return await client.call_tool(tool, arguments or {}, meta=meta)

    return anyio.run(go)


def ok(result) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def error(result) -> str:
    assert result.is_error, result.structured_content
    return result.content[0].text


@pytest.fixture
def server(project_dir):
    return build_server(resolver(project_dir))


@pytest.fixture
def store(backlog_home) -> ContextStore:
    return ContextStore(backlog_home)


# -- the tools, in memory -------------------------------------------------------------------------


def test_the_tools_and_their_descriptions_are_written_for_the_model(server) -> None:
    async def go():
        async with Client(server) as client:
            return (await client.list_tools()).tools

    tools = {t.name: t for t in anyio.run(go)}
    assert set(tools) == {"set_context", "clear_context", "get_context", "ticket_spend", "spend_report"}
    assert set(tools["set_context"].input_schema["required"]) == {"ticket_id", "gate", "agent_type"}
    for name in ("skill", "project", "component"):
        assert "description" in tools["set_context"].input_schema["properties"][name]
    assert "ticket" in tools["set_context"].description and "gate" in tools["set_context"].description
    assert "frontier" in tools["ticket_spend"].description
    for tool in tools.values():
        assert tool.output_schema["type"] == "object"
        assert "ctx" not in tool.input_schema["properties"]


def test_set_context_lands_on_the_spawn_session_without_hooks(server, store, project_dir) -> None:
    (project_dir / ".git").mkdir()  # a repository: the audit copy goes to its root
    result = call(server, "set_context", {"ticket_id": "FEAT-1", "gate": "plan", "agent_type": "backend", "skill": "backlog-implementer"})
    out = ok(result)
    assert (out["action"], out["scope"], out["session_id"], out["attributed_via"]) == ("set", "session", SPAWNED, "CLAUDE_CODE_SESSION_ID at server start")
    assert out["tags"] == ["ticket:FEAT-1", "gate:plan", "project:my-api", "agent:backend", "skill:backlog-implementer"]
    assert "Context set for session" in result.content[0].text and "ticket:FEAT-1" in result.content[0].text
    assert store.get(Scope(SPAWNED))["ticket_id"] == "FEAT-1"
    assert json.loads((project_dir / ".backlog-ops" / "current-context.json").read_text())["ticket_id"] == "FEAT-1"


def test_set_context_with_no_ticket(server, store) -> None:
    out = ok(call(server, "set_context", {"ticket_id": "", "gate": "prescan", "agent_type": "sentinel"}))
    assert out["context"]["ticket_id"] is None and "ticket:" not in " ".join(out["tags"])


@pytest.mark.parametrize(("arguments", "needles"), [
    ({"ticket_id": "FEAT 1", "gate": "plan", "agent_type": "backend"}, ["ticket_id 'FEAT 1' is not allowed", "ticket_id='FEAT-001'"]),
    ({"ticket_id": "FEAT-1", "gate": "", "agent_type": "backend"}, ["gate is required", "gate='plan'"]),
    ({"ticket_id": "FEAT-1", "gate": "plan", "agent_type": "back end"}, ["agent_type 'back end' is not allowed", "agent_type='backend'"]),
    ({"ticket_id": "FEAT-1", "gate": "plan"}, ["agent_type"]),
    ({"ticket_id": "FEAT-1", "gate": "plan", "agent_type": "x", "project": "../etc"}, ["project '../etc' is not allowed", "project='my-api'"]),
])
def test_bad_set_context_arguments_say_what_to_send(server, store, arguments, needles) -> None:
    text = error(call(server, "set_context", arguments))
    for needle in needles:
        assert needle in text
    assert not store.contexts_dir.exists() and store.get() is None


@pytest.mark.parametrize(("tool", "arguments", "needles"), [
    ("set_context", {"ticket_id": "FEAT-1", "gate": "plan"}, ["agent_type is required", "agent_type='backend'"]),
    ("set_context", {"ticket_id": 5, "gate": "plan", "agent_type": "x"},
     ["ticket_id must be a string, not the number 5", "ticket_id='FEAT-001'"]),
    ("set_context", {"ticket_id": "FEAT-1", "gate": ["plan"], "agent_type": "x"}, ["gate must be a string, not a list", "gate='plan'"]),
    ("set_context", {"ticket_id": "FEAT-1", "gate": "plan", "agent_type": None}, ["agent_type must be a string, not null"]),
    ("set_context", {"ticket_id": "FEAT-1", "gate": "plan", "agent_type": "x", "skill": {"name": "s"}}, ["skill must be a string, not an object"]),
    ("set_context", {"ticket_id": "FEAT-1", "gate": "plan", "agent_type": "x", "ticket": "FEAT-2"},
     ["set_context has no argument 'ticket'", "it takes ticket_id, gate, agent_type, skill, project, component"]),
    ("set_context", {"ticket_id": "FEAT-1", "gate": "plan", "agent_type": "x", "ttl": 60, "scope": "global"},
     ["no argument 'scope', 'ttl'"]),
    ("ticket_spend", {"group_by": 3}, ["group_by must be a string, not the number 3", "'gate', 'agent'"]),
    ("ticket_spend", {"ticket_id": "FEAT-1", "by": "model"}, ["ticket_spend has no argument 'by'", "group_by"]),
    ("get_context", {"session_id": "x"}, ["get_context has no argument 'session_id'", "it takes no arguments"]),
    ("clear_context", {"all": True}, ["clear_context has no argument 'all'"]),
])
def test_missing_wrong_type_and_unknown_arguments_are_refused_in_plain_words(server, store, tool, arguments, needles) -> None:
    store.set({"ticket_id": "OPS-1", "gate": "plan", "agent_type": "infra"})
    text = error(call(server, tool, arguments))
    for needle in needles:
        assert needle in text
    for pydantic_words in ("validation error", "pydantic", "[type=", "input_value", "Arguments\n"):
        assert pydantic_words not in text
    assert store.get()["ticket_id"] == "OPS-1" and not store.contexts_dir.exists(), "a refused call changes nothing"


def test_the_schemas_say_no_other_arguments(server) -> None:
    async def go():
        async with Client(server) as client:
            return (await client.list_tools()).tools

    for tool in anyio.run(go):
        assert tool.input_schema["additionalProperties"] is False


def test_get_context_falls_back_to_the_global_context(server, store) -> None:
    out = ok(call(server, "get_context"))
    assert out["context"] is None and out["action"] == "current"
    store.set({"ticket_id": "OPS-1", "gate": "implement", "agent_type": "infra"})
    result = call(server, "get_context")
    assert ok(result)["scope"] == "global" and ok(result)["context"]["ticket_id"] == "OPS-1"
    assert "from the global scope" in result.content[0].text


def test_clear_context_clears_the_callers_scope_and_reports_what_remains(server, store) -> None:
    store.set({"ticket_id": "OPS-1", "gate": "implement", "agent_type": "infra"})
    ok(call(server, "set_context", {"ticket_id": "FEAT-2", "gate": "review", "agent_type": "reviewer"}))
    result = call(server, "clear_context")
    out = ok(result)
    assert out["previous"]["ticket_id"] == "FEAT-2" and out["context"]["ticket_id"] == "OPS-1"
    assert "Still in force from a wider scope" in result.content[0].text
    assert store.get(Scope(SPAWNED)) is None and store.get()["ticket_id"] == "OPS-1"


def _ledger_rows(*rows: tuple) -> None:
    records = [
        CallRecord(call_id=f"c{i}", started_at=f"2026-11-2{day}T10:00:00.000+00:00", status="success", ticket_id=ticket,
                   gate=gate, agent_type=agent, model=model, skill="backlog-implementer", prompt_tokens=1000,
                   completion_tokens=100, cost_usd=cost)
        for i, (ticket, gate, agent, model, cost, day) in enumerate(rows)
    ]
    with open_ledger() as ledger:
        ledger.record_many(records)


def test_ticket_spend_breaks_the_cost_down(server) -> None:
    _ledger_rows(
        ("FEAT-3", "plan", "backend", "claude-haiku-4-5", 0.01, 1),
        ("FEAT-3", "implement", "backend", "claude-sonnet-4-6", 0.20, 2),
        ("FEAT-3", "implement", "backend", "claude-sonnet-4-6", 0.25, 3),
        ("FEAT-3", "review", "reviewer", "claude-opus-4-6", 0.50, 3),
        ("FEAT-4", "plan", "backend", "claude-haiku-4-5", 9.99, 3),
    )
    result = call(server, "ticket_spend", {"ticket_id": "FEAT-3"})
    out = ok(result)
    assert (out["ticket_id"], out["calls"], out["tokens"], out["by"]) == ("FEAT-3", 4, 4400, "gate")
    assert (out["input_tokens"], out["output_tokens"], out["cache_write_tokens"], out["cache_read_tokens"]) == (4000, 400, 0, 0)
    assert out["failed_calls"] == 0 and out["breakdown"][0]["input_tokens"] == 1000
    assert out["cost_usd"] == pytest.approx(0.96)
    assert [(r["key"], r["calls"]) for r in out["breakdown"]] == [("review", 1), ("implement", 2), ("plan", 1)]
    assert out["budget"] is None and out["remaining_usd"] is None
    assert "FEAT-3: $0.9600 over 4 calls, 4,400 tokens (4,000 input, 400 output" in result.content[0].text and "No budget" in result.content[0].text
    by_agent = ok(call(server, "ticket_spend", {"ticket_id": "FEAT-3", "group_by": "agent"}))
    assert {r["key"]: r["calls"] for r in by_agent["breakdown"]} == {"backend": 3, "reviewer": 1}
    by_model = ok(call(server, "ticket_spend", {"ticket_id": "FEAT-3", "group_by": "model"}))
    assert by_model["breakdown"][0]["key"] == "claude-opus-4-6"
    since = ok(call(server, "ticket_spend", {"ticket_id": "FEAT-3", "since": "2026-11-23"}))
    assert since["calls"] == 2 and since["since"].startswith("2026-11-23")


def test_ticket_spend_defaults_to_the_callers_ticket(server) -> None:
    _ledger_rows(("FEAT-5", "plan", "backend", "m", 0.25, 1))
    assert "send ticket_id" in error(call(server, "ticket_spend"))
    ok(call(server, "set_context", {"ticket_id": "FEAT-5", "gate": "implement", "agent_type": "backend"}))
    assert ok(call(server, "ticket_spend"))["cost_usd"] == pytest.approx(0.25)


def test_spend_report_ranks_tickets_with_the_token_split(server) -> None:
    """'What are the most expensive tickets this week': every ticket, grouped, the tail summed."""
    _ledger_rows(
        ("FEAT-3", "plan", "backend", "claude-haiku-4-5", 0.25, 1),
        ("FEAT-3", "implement", "backend", "claude-sonnet-4-6", 0.50, 2),
        ("FEAT-4", "plan", "backend", "claude-haiku-4-5", 1.00, 3),
        ("FEAT-5", "review", "reviewer", "claude-opus-4-6", 0.125, 3),
        (None, "plan", "backend", "claude-haiku-4-5", 0.0625, 3),
    )
    result = call(server, "spend_report", {"since": "2026-11-21", "top": 2})
    out = ok(result)
    assert [(r["ticket"], r["calls"], r["cost_usd"]) for r in out["rows"]] == \
        [("FEAT-4", 1, 1.0), ("FEAT-3", 2, 0.75), ("(others)", 2, 0.1875)]
    assert out["others"] == 2 and out["totals"]["calls"] == 5 and out["totals"]["input_tokens"] == 5000
    text = result.content[0].text
    assert "| ticket | cost | calls |" in text and "| FEAT-4 | $1.0000 | 1 |" in text and "2 more groups" in text
    by_day = ok(call(server, "spend_report", {"group_by": "ticket,day", "ticket_id": "FEAT-3"}))
    assert [(r["ticket"], r["day"]) for r in by_day["rows"]] == [("FEAT-3", "2026-11-21"), ("FEAT-3", "2026-11-22")]
    later = ok(call(server, "spend_report", {"group_by": "model", "since": "2026-11-23", "until": "2026-11-23"}))
    assert {r["model"]: r["calls"] for r in later["rows"]} == {"claude-haiku-4-5": 2, "claude-opus-4-6": 1}
    no_ticket = ok(call(server, "spend_report", {"ticket_id": "-"}))
    assert [(r["ticket"], r["cost_usd"]) for r in no_ticket["rows"]] == [(None, 0.0625)]


@pytest.mark.parametrize(("arguments", "needle"), [
    ({"group_by": "colour"}, "cannot group by 'colour'"),
    ({"group_by": "ticket,day,model"}, "one or two"),
    ({"since": "last tuesday"}, "is not a date"),
    ({"top": 0}, "send a whole number from 1 to 1000"),
    ({"ticket": "FEAT-1"}, "spend_report has no argument 'ticket'"),
])
def test_bad_spend_report_arguments_say_what_to_send(server, arguments, needle) -> None:
    assert needle in error(call(server, "spend_report", arguments))


@pytest.mark.parametrize(("arguments", "needle"), [
    ({"ticket_id": "FEAT 3"}, "ticket_id 'FEAT 3' is not allowed"),
    ({"ticket_id": "FEAT-3", "group_by": "colour"}, "group_by 'colour' is not one of gate, agent, model, skill"),
    ({"ticket_id": "FEAT-3", "since": "last tuesday"}, "send YYYY-MM-DD"),
])
def test_bad_ticket_spend_arguments_say_what_to_send(server, arguments, needle) -> None:
    assert needle in error(call(server, "ticket_spend", arguments))


def test_ticket_spend_shows_the_budget_when_budgets_exist(server, monkeypatch, project_dir) -> None:
    seen = []

    budget = {"ticket_id": "FEAT-6", "budget_usd": 2.0, "spent_usd": 0.5, "remaining_usd": 1.5, "over_budget": False,
              "max_escalations": None, "config": "backlog.config.json"}

    def ticket_budget(ticket_id, project_dir):
        seen.append((ticket_id, Path(project_dir)))
        return budget

    monkeypatch.setattr("backlog_ops.reports.ticket.ticket_budget", ticket_budget)
    _ledger_rows(("FEAT-6", "plan", "backend", "m", 0.5, 1))
    result = call(server, "ticket_spend", {"ticket_id": "FEAT-6"})
    out = ok(result)
    assert out["budget"] == budget and out["remaining_usd"] == pytest.approx(1.5)
    assert "Budget $2.0000: $1.5000 left (25% used)" in result.content[0].text
    assert seen == [("FEAT-6", project_dir)]


# -- whose call is it? ----------------------------------------------------------------------------


def test_a_subagents_call_lands_on_that_agent_through_the_hooks_claim(server, store, project_dir) -> None:
    handle("PreToolUse", {"session_id": CURRENT, "cwd": str(project_dir), "hook_event_name": "PreToolUse",
                          "tool_name": "mcp__backlog-ops__set_context", "tool_input": {}, "tool_use_id": "toolu_sub1",
                          "agent_id": "a1b2c3", "agent_type": "reviewer"})
    out = ok(call(server, "set_context", {"ticket_id": "FEAT-7", "gate": "review", "agent_type": "security-reviewer"},
                  meta={TOOL_USE_ID_META: "toolu_sub1"}))
    assert (out["scope"], out["session_id"], out["agent_id"], out["attributed_via"]) == ("agent", CURRENT, "a1b2c3", "tool-call hook")
    assert store.get(Scope(CURRENT, "a1b2c3"))["gate"] == "review"
    assert store.get(Scope(CURRENT)) is None and store.get(Scope(SPAWNED)) is None


def test_after_clear_the_server_follows_the_new_session_not_its_spawn_environment(store, project_dir) -> None:
    """CLAUDE_CODE_SESSION_ID is stale after /clear; SessionStart(source=clear) re-points the process."""
    sessions.record_process(PROCESS, SPAWNED, cwd=str(project_dir))
    server = build_server(resolver(project_dir))
    ok(call(server, "set_context", {"ticket_id": "FEAT-8", "gate": "plan", "agent_type": "backend"}))
    assert store.get(Scope(SPAWNED))["ticket_id"] == "FEAT-8"

    # /clear: Claude Code ends the old session and starts a new one in the same process.
    sessions.record_process(PROCESS, CURRENT, cwd=str(project_dir))
    out = ok(call(server, "set_context", {"ticket_id": "FEAT-9", "gate": "implement", "agent_type": "backend"}))
    assert (out["session_id"], out["attributed_via"]) == (CURRENT, "Claude Code process (hooks)")
    assert store.get(Scope(CURRENT))["ticket_id"] == "FEAT-9"
    assert store.get(Scope(SPAWNED))["ticket_id"] == "FEAT-8"


def test_an_unknown_or_malformed_claim_falls_back_safely(project_dir) -> None:
    sessions.record_call("toolu_bad", session_id="../../etc", agent_id=None)
    r = resolver(project_dir)
    assert r.resolve({TOOL_USE_ID_META: "toolu_bad"}).session_id == SPAWNED
    assert r.resolve({TOOL_USE_ID_META: "toolu_missing"}).via == "CLAUDE_CODE_SESSION_ID at server start"
    assert r.resolve({TOOL_USE_ID_META: "../x"}).session_id == SPAWNED
    bare = CallerResolver(env={}, process_key=PROCESS, cwd=str(project_dir))
    assert bare.resolve(None) == Caller(None, None, str(project_dir), "no session: global context")
    named = CallerResolver(env={"BACKLOG_SESSION_ID": "ci-job-1", "BACKLOG_AGENT_ID": "w2"}, process_key=PROCESS, cwd="/x")
    assert named.resolve({}).scope == Scope("ci-job-1", "w2")


def test_the_core_works_without_mcp(store, project_dir) -> None:
    caller = Caller("s-core", None, str(project_dir), "test")
    data = core.parse_context_input(ticket_id="FEAT-10", gate="lint", agent_type="linter")
    assert core.set_context(data, caller).context.project == "my-api"
    assert core.get_context(caller).context.gate == "lint"
    with pytest.raises(core.ToolInputError, match="gate is required"):
        core.parse_context_input(ticket_id="FEAT-10", agent_type="linter")
    with pytest.raises(core.ToolInputError, match="there is no argument 'colour'"):
        core.parse_context_input(ticket_id="FEAT-10", gate="lint", agent_type="linter", colour="red")
    assert core.clear_context(caller).previous.ticket_id == "FEAT-10"


# -- over stdio, as Claude Code runs it -----------------------------------------------------------


# What `backlog-ops mcp` imports before it answers `initialize` (timings: bench/mcp_roundtrip.py).
NOT_AT_START = ("argparse", "litellm", "httpx", "filelock", "yaml", "backlog_ops.ledger", "backlog_ops.reports",
                "backlog_ops.policy", "backlog_ops.gateway", "backlog_ops.mcp_server.core", "backlog_ops.context.model",
                "backlog_ops.context.backend", "backlog_ops.context.file_store", "backlog_ops.project")


def test_backlog_ops_mcp_imports_no_ledger_litellm_httpx_or_tool_models_at_start(backlog_home, project_dir) -> None:
    """The console script Claude Code spawns, serving until stdin closes; Python lists every module it imports."""
    env = {**os.environ, "BACKLOG_HOME": str(backlog_home), "PYTHONPROFILEIMPORTTIME": "1"}
    run = subprocess.run([str(BIN / "backlog-ops"), "mcp"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         env=env, cwd=project_dir, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert {"mcp.server.lowlevel.server", "mcp.server.stdio", "backlog_ops.mcp_server.server"} <= imported, "the server ran"
    loaded = sorted(m for m in imported if any(m == bad or m.startswith(bad + ".") for bad in NOT_AT_START))
    assert loaded == [], f"imported at start: {loaded}"


@pytest.mark.parametrize("served_by", ["its own process", "a resident's fork"])
def test_backlog_ops_mcp_over_stdio(backlog_home, project_dir, store, tmp_path, served_by) -> None:
    """The same session, served cold (BACKLOG_MCP_PREFORK=0) and forked by a resident (tests/test_mcp_prefork.py)."""
    env = {**os.environ, "BACKLOG_HOME": str(backlog_home), "CLAUDE_CODE_SESSION_ID": SPAWNED}
    if served_by == "its own process":
        env["BACKLOG_MCP_PREFORK"] = "0"
    elif mcp_prefork.available():
        (tmp_path / "other").mkdir()
        start_resident({**env, "CLAUDE_CODE_SESSION_ID": CURRENT}, str(tmp_path / "other"))
    else:
        pytest.skip("no resident on this platform (fork and SO_PEERCRED: Linux)")
    params = StdioServerParameters(command=str(BIN / "backlog-ops"), args=["mcp"], env=env, cwd=str(project_dir))
    handle("PreToolUse", {"session_id": CURRENT, "cwd": str(project_dir), "hook_event_name": "PreToolUse",
                          "tool_name": "mcp__backlog-ops__set_context", "tool_use_id": "toolu_stdio", "tool_input": {}})

    async def go():
        async with Client(params, read_timeout_seconds=60) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            claimed = await client.call_tool("set_context", {"ticket_id": "FEAT-11", "gate": "implement", "agent_type": "backend"},
                                             meta={TOOL_USE_ID_META: "toolu_stdio"})
            spawned = await client.call_tool("get_context", {})
            bad = await client.call_tool("set_context", {"ticket_id": "FEAT-11", "gate": "im plement", "agent_type": "backend"})
            wrong_type = await client.call_tool("set_context", {"ticket_id": 11, "gate": "plan", "agent_type": "backend"})
            unknown = await client.call_tool("set_context", {"ticket": "FEAT-12", "gate": "plan", "agent_type": "backend"})
            report = await client.call_tool("spend_report", {"group_by": "ticket,model", "since": "2026-11-01"})
            return names, claimed, spawned, bad, wrong_type, unknown, report

    with open_ledger() as ledger:
        ledger.record_many([CallRecord(call_id="io1", started_at="2026-11-21T10:00:00.000+00:00", status="success",
                                       ticket_id="FEAT-11", model="m", prompt_tokens=50, completion_tokens=5, cost_usd=0.5)])
    names, claimed, spawned, bad, wrong_type, unknown, report = anyio.run(go)
    assert [(r["ticket"], r["model"], r["input_tokens"]) for r in ok(report)["rows"]] == [("FEAT-11", "m", 50)]
    assert names == ["clear_context", "get_context", "set_context", "spend_report", "ticket_spend"]
    assert ok(claimed)["session_id"] == CURRENT and store.get(Scope(CURRENT))["ticket_id"] == "FEAT-11"
    assert ok(spawned)["session_id"] == SPAWNED and ok(spawned)["context"] is None
    assert "gate 'im plement' is not allowed" in error(bad)
    assert "ticket_id must be a string, not the number 11" in error(wrong_type)
    assert "set_context has no argument 'ticket'" in error(unknown)
    assert store.get(Scope(SPAWNED)) is None, "a refused call stores nothing"
    if served_by != "its own process":
        assert mcp_prefork.status()["served"] == "1"


def test_ticket_spend_with_the_projects_real_budget(server, project_dir) -> None:
    """backlog.config.json's llmOps.budgets (issue 4) as backlog_ops.reports.ticket reads it."""
    (project_dir / "backlog.config.json").write_text(json.dumps({
        "project": {"name": "my-api"},
        "llmOps": {"routing": {"maxEscalationsPerTicket": 3}, "budgets": {"perTicketUSD": 5, "tickets": {"FEAT-12": 2}}},
    }))
    with open_ledger() as ledger:
        ledger.record_many([CallRecord(call_id="b1", started_at="2026-11-21T10:00:00.000+00:00", status="success",
                                       ticket_id="FEAT-12", project="my-api", gate="plan", cost_usd=0.5)])
    result = call(server, "ticket_spend", {"ticket_id": "FEAT-12"})
    out = ok(result)
    assert out["budget"]["budget_usd"] == 2 and out["remaining_usd"] == pytest.approx(1.5)
    assert "Budget $2.0000: $1.5000 left (25% used)." in result.content[0].text
    assert "Escalations to the frontier model: 0 of 3 allowed." in result.content[0].text
    (project_dir / "backlog.config.json").write_text("{oops")
    result = call(server, "ticket_spend", {"ticket_id": "FEAT-12"})
    assert ok(result)["budget"] is None and "Warning: budget unknown" in result.content[0].text
