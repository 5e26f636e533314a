"""Feedback inside a Claude Code session, without the proxy: ticket totals kept from a real ledger,
budget marks told once by the real hook command, the status line command fed Claude Code's
status-line JSON, runaway detection, pauses and `context resume`, and the statusLine install."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backlog_ops.claude.install import InstallTarget, install, remove
from backlog_ops.claude.install_statusline import STATUSLINE_CODE, statusline_entry
from backlog_ops.claude.statusline import FALLBACK, NOTHING_SET, clean, status_line
from backlog_ops.context.file_store import ContextStore
from backlog_ops.context.scope import Scope
from backlog_ops.errors import ConfigError
from backlog_ops.ledger import CallRecord, LedgerWriter, SqliteLedger
from backlog_ops.policy.limits import TicketPolicy
from backlog_ops.policy.limits_file import PolicyFile
from backlog_ops.policy.runaway import RunawayDetector, parse_runaway, request_fingerprint
from backlog_ops.policy.session_alerts import read_alerts, record_alert
from backlog_ops.policy.thresholds import crossed, heard_key, message, newly_crossed
from backlog_ops.project.schema import load_backlog_config, policy_section
from backlog_ops.reports.totals_file import read_totals, totals_path, write_totals
from backlog_ops.reports.totals_keeper import TotalsKeeper

from conftest import require_service

BIN = Path(sys.executable).parent
SID, SID2, AGENT = "4542a6ff-4e36-481a-b119-ba2bea61312e", "01f9e3b5-729d-4e92-8f0e-de7c049eadbb", "a470226e09ef4e5b7"
POLICY = TicketPolicy(project="shop", ticket_budget_usd=1.0, ticket_budgets_usd={"BIG-1": 10.0},
                      max_escalations_per_ticket=3, source="/p/backlog.config.json")


def status_input(cwd: Path, session: str = SID) -> dict:
    """The status-line JSON of Claude Code 2.1.197 (its documented shape, values of a real session)."""
    return {
        "session_id": session,
        "transcript_path": f"/home/u/.claude/projects/-proj/{session}.jsonl",
        "cwd": str(cwd),
        "permission_mode": "default",
        "model": {"id": "claude-sonnet-4-6", "display_name": "Sonnet 4.6"},
        "workspace": {"current_dir": str(cwd), "project_dir": str(cwd), "added_dirs": []},
        "version": "2.1.197",
        "output_style": {"name": "default"},
        "cost": {"total_cost_usd": 0.0123, "total_duration_ms": 45000, "total_api_duration_ms": 2300,
                 "total_lines_added": 156, "total_lines_removed": 23},
        "context_window": {"total_input_tokens": 15234, "total_output_tokens": 4521, "context_window_size": 200000,
                           "current_usage": {"input_tokens": 8500, "output_tokens": 1200, "cache_creation_input_tokens": 5000,
                                             "cache_read_input_tokens": 2000},
                           "used_percentage": 8, "remaining_percentage": 92},
        "exceeds_200k_tokens": False,
        "fast_mode": False,
        "thinking": {"enabled": True},
    }


def hook_input(event: str, cwd: Path, session: str = SID, **more) -> dict:
    base = {"session_id": session, "transcript_path": f"/tmp/{session}.jsonl", "cwd": str(cwd), "hook_event_name": event,
            "permission_mode": "default"}
    if event == "PostToolUse":
        base.update(tool_name="Bash", tool_input={"command": "make test"}, tool_response={"stdout": "ok"},
                    tool_use_id="toolu_01")
    elif event == "UserPromptSubmit":
        base.update(prompt="go on")
    return {**base, **more}


def run_statusline(data, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    raw = data if isinstance(data, (bytes, str)) else json.dumps(data)
    return subprocess.run([sys.executable, "-c", STATUSLINE_CODE, *args], input=raw if isinstance(raw, bytes) else raw.encode(),
                          capture_output=True, timeout=30, env=env or os.environ.copy())


def run_hook(data: dict) -> dict | None:
    r = subprocess.run([str(BIN / "backlog-ops"), "hook"], input=json.dumps(data), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else None


def call(call_id: str, cost: float, ticket: str = "FEAT-1", project: str | None = "shop", **more) -> CallRecord:
    return CallRecord(call_id=call_id, started_at="2026-12-03T07:00:00.000+00:00", status="success", ticket_id=ticket,
                      project=project, gate="implement", cost_usd=cost, model_group=more.pop("model_group", "cheap"), **more)


def set_session(ticket: str = "FEAT-1", session: str = SID, agent: str | None = None, **more) -> None:
    fields = {"ticket_id": ticket, "gate": "implement", "agent_type": "backend", "project": "shop", **more}
    ContextStore().set(fields, Scope(session, agent))


# -- the marks ---------------------------------------------------------------------------------------


def test_marks_are_passed_in_order_and_each_names_what_to_do() -> None:
    totals = {"project": "shop", "ticket_id": "FEAT-1", "spent_usd": 0.49, "budget_usd": 1.0,
              "budget_key": 'llmOps.budgets.tickets["FEAT-1"]', "escalations": 1, "max_escalations": 3,
              "source": "/p/backlog.config.json"}
    assert crossed(totals) == []
    assert crossed({**totals, "spent_usd": 0.5}) == ["50"]
    assert crossed({**totals, "spent_usd": 0.8, "escalations": 2}) == ["50", "80", "escalations-1"]
    assert crossed({**totals, "spent_usd": 1.2, "escalations": 3}) == ["50", "80", "100"]
    assert newly_crossed({**totals, "spent_usd": 0.6}, {**totals, "spent_usd": 0.85}) == ["80"]
    assert newly_crossed(None, {**totals, "spent_usd": 0.85}) == ["50", "80"]
    assert crossed({**totals, "budget_usd": None}) == [] and crossed(None) == []
    eighty = message({**totals, "spent_usd": 0.8}, "80")
    for part in ("FEAT-1", "80%", "$0.8000 of $1.0000", "$0.2000 left", "HTTP 402", 'llmOps.budgets.tickets["FEAT-1"]',
                 "/p/backlog.config.json"):
        assert part in eighty, (part, eighty)
    assert "reached its budget" in message({**totals, "spent_usd": 1.0}, "100")
    assert "1 escalation to the frontier model left (2 of 3 used)" in message({**totals, "escalations": 2}, "escalations-1")
    # A raised budget is a new wall: its marks are told again.
    assert heard_key(totals, "80") != heard_key({**totals, "budget_usd": 2.0}, "80")


# -- the totals file, kept from the ledger --------------------------------------------------------------


def keeper_and_writer(home: Path, limits=lambda project: POLICY):
    keeper = TotalsKeeper(lambda: SqliteLedger(home / "ledger.db"), limits=limits, interval=0.01)
    writer = LedgerWriter(lambda: SqliteLedger(home / "ledger.db"), spool_path=home / "spool.jsonl")
    writer.on_written.append(keeper.written)
    return keeper, writer


def settle(keeper: TotalsKeeper, writer: LedgerWriter) -> None:
    assert writer.flush(10) and keeper.flush(10)


def test_the_keeper_writes_exact_totals_and_announces_each_mark_once(backlog_home: Path) -> None:
    keeper, writer = keeper_and_writer(backlog_home)
    heard: list[tuple[str, str]] = []
    keeper.on_threshold.append(lambda totals, mark: heard.append((totals["ticket_id"], mark)))
    writer.submit(call("c1", 0.3))
    settle(keeper, writer)
    totals = read_totals("shop", "FEAT-1")
    assert totals["spent_usd"] == pytest.approx(0.3) and totals["budget_usd"] == 1.0 and totals["max_escalations"] == 3
    assert totals["source"] == "/p/backlog.config.json" and heard == []
    writer.submit(call("c2", 0.25))
    writer.submit(call("c2", 0.25))  # LiteLLM's sync and async events: one upserted row, counted once
    settle(keeper, writer)
    assert read_totals("shop", "FEAT-1")["spent_usd"] == pytest.approx(0.55) and heard == [("FEAT-1", "50")]
    writer.submit(call("c3", 0.5, model_group="frontier"))
    writer.submit(call("c4", 0.0, model_group="frontier"))
    settle(keeper, writer)
    assert heard == [("FEAT-1", "50"), ("FEAT-1", "80"), ("FEAT-1", "100"), ("FEAT-1", "escalations-1")]
    assert read_totals("shop", "FEAT-1")["escalations"] == 2
    # Another proxy sharing the home reads the same ledger: nothing is announced twice.
    other, other_writer = keeper_and_writer(backlog_home)
    again: list = []
    other.on_threshold.append(lambda totals, mark: again.append(mark))
    other_writer.submit(call("c4", 0.0, model_group="frontier"))
    settle(other, other_writer)
    assert again == []
    path = Path(totals_path("shop", "FEAT-1"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for k in (keeper, other):
        k.close()
    for w in (writer, other_writer):
        w.close()


def test_without_the_proxys_limits_the_keeper_keeps_those_last_written(backlog_home: Path) -> None:
    write_totals({"project": "shop", "ticket_id": "FEAT-2", "spent_usd": 0.0, "escalations": 0, "budget_usd": 2.0,
                  "budget_key": "llmOps.budgets.perTicketUSD", "max_escalations": None})
    keeper, writer = keeper_and_writer(backlog_home, limits=None)
    writer.submit(call("d1", 1.5, ticket="FEAT-2"))
    settle(keeper, writer)
    totals = read_totals("shop", "FEAT-2")
    assert totals["spent_usd"] == pytest.approx(1.5) and totals["budget_usd"] == 2.0
    keeper.close()
    writer.close()


def test_a_broken_ledger_or_subscriber_never_stops_the_writer(backlog_home: Path, caplog) -> None:
    keeper = TotalsKeeper(lambda: (_ for _ in ()).throw(RuntimeError("no ledger here")), limits=lambda p: POLICY, interval=0.01)
    writer = LedgerWriter(lambda: SqliteLedger(backlog_home / "ledger.db"), spool_path=backlog_home / "spool.jsonl")
    writer.on_written.append(keeper.written)
    writer.on_written.append(lambda batch: 1 / 0)
    writer.submit(call("e1", 0.1))
    settle(keeper, writer)
    with SqliteLedger(backlog_home / "ledger.db") as ledger:
        assert [r["call_id"] for r in ledger.rows()] == ["e1"]
    assert read_totals("shop", "FEAT-1") is None
    assert any("cannot update the totals" in r.getMessage() for r in caplog.records)
    keeper.close()
    writer.close()


def test_the_keeper_reads_a_postgresql_ledger(monkeypatch, backlog_home: Path) -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    from backlog_ops.ledger.postgres import PostgresLedger

    url, schema = "postgresql://postgres@127.0.0.1:5432/postgres", f"feedback_{os.getpid()}_{int(time.time())}"
    try:
        keeper = TotalsKeeper(lambda: PostgresLedger(url, schema=schema), limits=lambda p: POLICY, interval=0.01)
        writer = LedgerWriter(lambda: PostgresLedger(url, schema=schema), spool_path=backlog_home / "spool.jsonl")
        writer.on_written.append(keeper.written)
        for i in range(30):
            writer.submit(call(f"pg{i}", 0.01))
        settle(keeper, writer)
        assert read_totals("shop", "FEAT-1")["spent_usd"] == pytest.approx(0.30)
        keeper.close()
        writer.close()
    finally:
        PostgresLedger.drop_schema(url, schema)


# -- the hooks: told once, by the real hook command ------------------------------------------------------


def test_the_next_hook_output_tells_the_mark_once_to_model_and_user(project_dir: Path) -> None:
    set_session()
    write_totals({"project": "shop", "ticket_id": "FEAT-1", "spent_usd": 0.55, "escalations": 0, "budget_usd": 1.0,
                  "budget_key": "llmOps.budgets.perTicketUSD", "max_escalations": 3})
    out = run_hook(hook_input("UserPromptSubmit", project_dir))
    assert out["hookSpecificOutput"]["hookEventName"] == "UserPromptSubmit"
    assert "used 50% of its budget" in out["hookSpecificOutput"]["additionalContext"] == out["systemMessage"]
    assert run_hook(hook_input("PostToolUse", project_dir)) is None, "told once"
    write_totals({**read_totals("shop", "FEAT-1"), "spent_usd": 0.9, "escalations": 2})
    out = run_hook(hook_input("PostToolUse", project_dir))
    text = out["hookSpecificOutput"]["additionalContext"]
    assert out["hookSpecificOutput"]["hookEventName"] == "PostToolUse"
    assert "used 80% of its budget" in text and "1 escalation to the frontier model left" in text and "50%" not in text
    # Another session on the same ticket hears it too; its subagents share what the session heard.
    set_session(session=SID2)
    assert "80%" in run_hook(hook_input("PostToolUse", project_dir, session=SID2))["systemMessage"]
    assert run_hook(hook_input("PostToolUse", project_dir, session=SID2, agent_id=AGENT, agent_type="reviewer")) is None
    # SessionEnd forgets what the session heard.
    run_hook(hook_input("SessionEnd", project_dir, reason="other"))
    assert not (Path(os.environ["BACKLOG_HOME"]) / "claude-code" / "feedback" / f"{SID}.json").exists()


def test_parallel_subagent_hooks_tell_a_mark_only_once(project_dir: Path) -> None:
    set_session()
    write_totals({"project": "shop", "ticket_id": "FEAT-1", "spent_usd": 0.81, "escalations": 0, "budget_usd": 1.0})
    procs = [subprocess.Popen([str(BIN / "backlog-ops"), "hook"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(6)]
    for i, p in enumerate(procs):
        p.stdin.write(json.dumps(hook_input("PostToolUse", project_dir, agent_id=f"agent{i}", agent_type="reviewer")))
        p.stdin.close()
    outputs = [p.stdout.read() for p in procs]
    assert all(p.wait(30) == 0 for p in procs)
    assert sum("used 80%" in o for o in outputs) == 1, outputs


def test_a_runaway_alert_reaches_the_next_hook_once(project_dir: Path) -> None:
    record_alert(SID, {"id": "a1", "at": time.time(), "kind": "repeated_requests",
                       "message": "backlog-ops: runaway spend alert: session x sent 8 near-identical requests"})
    out = run_hook(hook_input("PostToolUse", project_dir))
    assert "runaway spend alert" in out["systemMessage"] and "runaway" in out["hookSpecificOutput"]["additionalContext"]
    assert run_hook(hook_input("UserPromptSubmit", project_dir)) is None


def test_feedback_hooks_import_nothing_heavy(project_dir: Path) -> None:
    set_session()
    write_totals({"project": "shop", "ticket_id": "FEAT-1", "spent_usd": 0.81, "escalations": 0, "budget_usd": 1.0})
    events = [hook_input("UserPromptSubmit", project_dir), hook_input("PostToolUse", project_dir)]
    heavy = ("pydantic", "filelock", "litellm", "mcp", "argparse", "httpx", "asyncio", "yaml", "sqlite3", "re", "pathlib",
             "typing", "dataclasses", "json")
    code = (
        "import io, sys\n"
        "from backlog_ops.cli.main import main\n"
        f"for raw in {[json.dumps(e) for e in events]!r}:\n"
        "    sys.stdin = io.TextIOWrapper(io.BytesIO(raw.encode()))\n"
        "    assert main(['hook']) == 0\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))\n"
    )
    r = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    assert r.returncode == 0, r.stderr
    assert "80%" in r.stdout and r.stdout.splitlines()[-1] == "[]", r.stdout


# -- the status line --------------------------------------------------------------------------------------


def test_status_line_shows_ticket_gate_agent_and_spend_against_the_budget(project_dir: Path) -> None:
    r = run_statusline(status_input(project_dir))
    assert (r.returncode, r.stdout.decode().strip()) == (0, NOTHING_SET)
    set_session()
    assert run_statusline(status_input(project_dir)).stdout.decode().strip() == "FEAT-1 · implement · backend · no spend yet"
    write_totals({"project": "shop", "ticket_id": "FEAT-1", "spent_usd": 0.0123, "escalations": 0, "budget_usd": None})
    assert run_statusline(status_input(project_dir)).stdout.decode().strip() == "FEAT-1 · implement · backend · $0.0123"
    write_totals({"project": "shop", "ticket_id": "FEAT-1", "spent_usd": 4.1, "escalations": 2, "budget_usd": 5.0,
                  "max_escalations": 3})
    line = run_statusline(status_input(project_dir)).stdout.decode().strip()
    assert line == "FEAT-1 · implement · backend · $4.10 / $5.00, 82% ⚠ (1 escalation left)"
    write_totals({"project": "shop", "ticket_id": "FEAT-1", "spent_usd": 5.2, "escalations": 0, "budget_usd": 5.0})
    assert run_statusline(status_input(project_dir)).stdout.decode().strip().endswith("$5.20 / $5.00, 104% ⛔")


def test_status_line_says_when_a_subagent_runs_or_its_context_applies(project_dir: Path) -> None:
    set_session()
    set_session(agent=AGENT, agent_type="reviewer", gate="review")
    line = status_line(status_input(project_dir))
    assert line == "FEAT-1 · implement · backend · + subagent reviewer on review · no spend yet"
    assert status_line({**status_input(project_dir), "agent_id": AGENT}).startswith("FEAT-1 · review · reviewer (subagent)")
    set_session(agent="a2", agent_type="tester")
    assert "+ 2 subagents" in status_line(status_input(project_dir))


def test_status_line_marks_an_inferred_ticket(project_dir: Path, backlog_home: Path) -> None:
    # What branch inference writes: a context whose ticket_source says where the ticket came from.
    set_session()
    path = ContextStore().file_for(Scope(SID))
    data = json.loads(Path(path).read_text())
    Path(path).write_text(json.dumps({**data, "ticket_source": "branch"}))
    assert status_line(status_input(project_dir)).startswith("FEAT-1 (from branch) · implement")
    Path(path).write_text(json.dumps({**data, "ticket_source": "mcp"}))  # anything else counts as set
    assert status_line(status_input(project_dir)).startswith("FEAT-1 · implement")


def test_status_line_shows_a_pause_and_never_fails(project_dir: Path, backlog_home: Path) -> None:
    set_session()
    record_alert(SID, {"id": "p1", "at": time.time(), "kind": "repeated_requests\x1b]0;owned\x07", "message": "m"},
                 pause_until=time.time() + 600)
    line = run_statusline(status_input(project_dir)).stdout.decode()
    assert "⏸ paused: backlog-ops context resume" in line and "\x1b" not in line
    assert "\x1b" not in clean("a\x1b[31mred\x07")
    # Garbage in, a corrupt context file, an unwritable home: a short line and exit 0, every time.
    for raw in (b"not json", b"[1, 2]", b"\xff\xfe", b""):
        r = run_statusline(raw)
        assert r.returncode == 0 and r.stdout.decode().strip() in (FALLBACK, NOTHING_SET, line.strip()), (raw, r.stdout)
    Path(ContextStore().file_for(Scope(SID))).write_text("{ broken")
    r = run_statusline(status_input(project_dir))
    assert r.returncode == 0 and r.stdout.decode().strip().startswith(NOTHING_SET) and not r.stderr


def test_status_line_with_another_status_line_first(project_dir: Path) -> None:
    set_session()
    r = run_statusline(status_input(project_dir), "--with", "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"model\"][\"display_name\"])'")
    assert r.returncode == 0 and r.stdout.decode().strip() == "Sonnet 4.6  │  FEAT-1 · implement · backend · no spend yet"
    r = run_statusline(status_input(project_dir), "--with", "exit 3")
    assert r.stdout.decode().strip() == "FEAT-1 · implement · backend · no spend yet"
    cli = subprocess.run([str(BIN / "backlog-ops"), "statusline"], input=json.dumps(status_input(project_dir)).encode(),
                         capture_output=True, timeout=30)
    assert cli.returncode == 0 and cli.stdout.decode().startswith("FEAT-1 · implement")


# -- runaway detection, pause and resume ---------------------------------------------------------------


def loop_request(i: int) -> dict:
    """A stuck agent: the same tool call and the same failing result, with a fresh id and timing."""
    return {"model": "cheap", "messages": [
        {"role": "user", "content": "fix the build"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": f"toolu_{i}", "name": "Bash", "input": {"command": "make"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}",
                                      "content": f"error: missing symbol (took 0.{i}s)"}]},
    ]}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_loop_of_near_identical_requests_raises_one_alert() -> None:
    settings = parse_runaway({"repeated_requests": 5})
    clock = Clock()
    detector = RunawayDetector(clock=clock)
    assert request_fingerprint(loop_request(1)) == request_fingerprint(loop_request(2))
    raised = []
    for i in range(12):
        clock.now += 5
        raised += detector.on_request(session="s", agent=None, ticket="T-1", project="p",
                                      fingerprint=request_fingerprint(loop_request(i)), settings=settings)
    assert [a.kind for a in raised] == ["repeated_requests"], "one alert per window, however long the loop runs"
    assert "5 near-identical requests" in raised[0].message() and "session s on ticket T-1" in raised[0].message()
    # Varied work (new tool results each time) never trips it; an A-B-A-B loop does.
    varied = RunawayDetector(clock=clock)
    for i in range(50):
        work = {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": f"file {chr(65 + i % 26)}{i} read"}]}]}
        assert varied.on_request(session="s", agent=None, ticket=None, project=None,
                                 fingerprint=request_fingerprint(work), settings=settings) == []
    ab = RunawayDetector(clock=clock)
    prints = [request_fingerprint({"messages": [{"role": "user", "content": x}]}) for x in ("edit", "test")] * 6
    assert any(ab.on_request(session="s", agent=None, ticket=None, project=None, fingerprint=p, settings=settings)
               for p in prints)


def test_call_rate_and_dollar_rate_per_session_and_ticket() -> None:
    settings = parse_runaway({"calls_per_minute": 10, "usd_per_window": 1.0, "window_seconds": "10m", "repeated_requests": None})
    clock = Clock()
    d = RunawayDetector(clock=clock)
    kinds = []
    for i in range(11):
        clock.now += 1
        kinds += [a.kind for a in d.on_request(session="s", agent=None, ticket="T", project="p", fingerprint=None, settings=settings)]
    assert kinds == ["calls_per_minute"]
    slow = RunawayDetector(clock=clock)
    for i in range(30):  # 30 calls at one every 7 s: 9 a minute
        clock.now += 7
        assert slow.on_request(session="s", agent=None, ticket="T", project="p", fingerprint=None, settings=settings) == []
    costs = RunawayDetector(clock=clock)
    alerts = []
    for session in ("s1", "s2", "s3"):  # three sessions on one ticket, each within its own limit
        alerts += costs.on_cost(session=session, agent=None, ticket="T", project="p", cost=0.4, settings=settings)
    assert [(a.scope, a.kind) for a in alerts] == [("ticket", "usd_per_window")]
    assert "ticket T (project p) spent $1.2000 in the last 10 min (limit $1.00)" in alerts[0].message()
    clock.now += 601
    assert costs.on_cost(session="s4", agent=None, ticket="T", project="p", cost=0.4, settings=settings) == []
    off = parse_runaway({"policy": "off"})
    assert RunawayDetector().on_cost(session="s", agent=None, ticket="T", project="p", cost=99.0, settings=off) == []


def test_runaway_settings_come_from_backlog_config_json(tmp_path: Path) -> None:
    path = tmp_path / "backlog.config.json"
    path.write_text(json.dumps({"project": {"name": "shop"}, "llmOps": {"alerts": {"runaway": {
        "policy": "pause", "usdPerWindow": 2.5, "window": "15m", "callsPerMinute": None, "pauseTTL": "1h"}}}}))
    entry = policy_section(load_backlog_config(path), path)
    proxy_config = tmp_path / "proxy.yaml"
    proxy_config.write_text(json.dumps({"backlog_ops": {"policy": {"projects": {"shop": entry}}}}))
    settings = PolicyFile(str(proxy_config)).runaway_for("shop")
    assert (settings.policy, settings.usd_per_window, settings.window_seconds, settings.calls_per_minute,
            settings.repeated_requests, settings.pause_seconds) == ("pause", 2.5, 900, None, 8, 3600)
    assert PolicyFile(str(proxy_config)).runaway_for("other").policy == "alert", "defaults elsewhere"
    for bad, key in (({"policy": "shout"}, "policy"), ({"repeatedRequests": 1}, "repeatedRequests"),
                     ({"window": "soon"}, "window"), ({"usdPerWindow": -1}, "usdPerWindow")):
        path.write_text(json.dumps({"llmOps": {"alerts": {"runaway": bad}}}))
        with pytest.raises(ConfigError) as caught:
            load_backlog_config(path)
        assert f"llmOps.alerts.runaway.{key}" in str(caught.value) and "\n" not in str(caught.value)


def test_context_resume_lifts_a_pause(backlog_home: Path) -> None:
    record_alert(SID, {"id": "x", "at": time.time(), "kind": "calls_per_minute", "message": "m"}, pause_until=time.time() + 600)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "backlog-ops"), "context", "resume", *args], capture_output=True, text=True, timeout=30)

    r = cli("--session", SID2)
    assert r.returncode == 0 and r.stdout.strip() == f"session {SID2} is not paused"
    r = cli()
    assert r.returncode == 0 and f"resumed: session {SID}" in r.stdout
    assert read_alerts(SID)["paused_until"] is None
    assert cli().stdout.strip() == "no session is paused"
    r = cli("--session", "../etc")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "session id '../etc' is not allowed" in r.stderr


# -- install: the statusLine, never over the user's own -----------------------------------------------------


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_install_wires_the_status_line_and_uninstall_removes_it(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    target = InstallTarget.for_scope("project", project)
    install(target)
    entry = load(project / ".claude" / "settings.json")["statusLine"]
    assert entry == statusline_entry(None) and entry["refreshInterval"] == 5 and entry["type"] == "command"
    # The wired command itself, run the way Claude Code runs it.
    r = subprocess.run(["sh", "-c", entry["command"]], input=json.dumps(status_input(project)).encode(), capture_output=True, timeout=30)
    assert (r.returncode, r.stdout.decode().strip()) == (0, NOTHING_SET)
    install(target, ["/new/venv/bin/backlog-ops"])  # a moved virtualenv: ours is replaced
    assert load(project / ".claude" / "settings.json")["statusLine"]["command"] == "/new/venv/bin/backlog-ops statusline"
    remove(target)
    assert list(project.iterdir()) == []


def test_a_users_own_status_line_is_kept_with_how_to_combine(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / ".claude").mkdir(parents=True)
    theirs = {"type": "command", "command": "~/.claude/my-status.sh", "padding": 1}
    (project / ".claude" / "settings.json").write_text(json.dumps({"statusLine": theirs, "model": "sonnet"}))
    target = InstallTarget.for_scope("project", project)
    report = install(target, ["backlog-ops"])
    note = next(k for k in report.kept if "your own status line" in k)
    assert "backlog-ops statusline --with '~/.claude/my-status.sh'" in note
    assert load(project / ".claude" / "settings.json")["statusLine"] == theirs
    remove(target)
    assert load(project / ".claude" / "settings.json") == {"statusLine": theirs, "model": "sonnet"}


def test_the_install_command_prints_the_combination(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / ".claude").mkdir(parents=True)
    (project / ".claude" / "settings.json").write_text(json.dumps({"statusLine": {"type": "command", "command": "echo mine"}}))
    r = subprocess.run([str(BIN / "backlog-ops"), "install", "--dir", str(project)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "kept: your own status line in .claude/settings.json (left as it is)" in r.stdout and "--with 'echo mine'" in r.stdout


def test_crafted_ids_and_tags_reach_no_file_and_no_log_line(backlog_home: Path, tmp_path: Path, caplog) -> None:
    """Session headers and caller tags come from any client: control characters and paths go nowhere."""
    pytest.importorskip("litellm")
    import asyncio

    from backlog_ops.callbacks.ticket_policy import TicketPolicyCallback

    config = tmp_path / "proxy.yaml"
    config.write_text(json.dumps({"backlog_ops": {"policy": {"projects": {"p": {"runaway": {"repeated_requests": 2}}}}}}))
    cb = TicketPolicyCallback(policy_file=str(config))
    for session in ("evil\x1b]0;owned\x07", "../../etc/passwd"):
        for i in range(4):
            data = {**loop_request(i), "metadata": {"tags": ["ticket:T\x1b[31m", "project:p"]},
                    "proxy_server_request": {"headers": {"x-backlog-session": session}}}
            assert asyncio.run(cb.async_pre_call_hook(None, None, data, "acompletion")) is data
    assert not (backlog_home / "session-alerts").exists()
    assert not any("\x1b" in r.getMessage() for r in caplog.records)
    keeper, writer = keeper_and_writer(backlog_home)
    writer.submit(call("f1", 0.1, ticket="../../x"))
    writer.submit(call("f2", 0.1, ticket="T\x1b[31m"))
    settle(keeper, writer)
    assert not (backlog_home / "ticket-totals").exists()
    keeper.close()
    writer.close()


def test_a_paused_session_is_refused_in_process_until_resumed(backlog_home: Path, tmp_path: Path) -> None:
    pytest.importorskip("litellm")
    import asyncio

    from fastapi import HTTPException

    from backlog_ops.callbacks.ticket_policy import TicketPolicyCallback
    from backlog_ops.policy.session_alerts import resume

    config = tmp_path / "proxy.yaml"
    config.write_text(json.dumps({"backlog_ops": {"policy": {"projects": {"p": {"runaway": {
        "policy": "pause", "repeated_requests": 3, "pause_seconds": "5m"}}}}}}))
    cb = TicketPolicyCallback(policy_file=str(config))

    def hook(i: int):
        data = {**loop_request(i), "metadata": {"tags": ["ticket:T-1", "project:p"]},
                "proxy_server_request": {"headers": {"x-backlog-session": SID}}}
        return asyncio.run(cb.async_pre_call_hook(None, None, data, "acompletion"))

    hook(0), hook(1)
    with pytest.raises(HTTPException) as caught:
        hook(2)
    detail = caught.value.detail
    assert caught.value.status_code == 402 and detail["type"] == "session_paused" and detail["session"] == SID
    assert f"backlog-ops context resume --session {SID}" in detail["error"] and "5 more minute(s)" in detail["error"]
    assert resume(SID) == [SID]
    assert hook(3)["model"] == "cheap", "resumed: counted afresh, so one more repeat is not a new alert"
