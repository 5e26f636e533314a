"""Feedback inside a real Claude Code session, through the real proxy.

    claude (-p, or interactive under tmux) -> backlog-ops proxy (tagger, ticket policy, spend ledger)
                                           -> ScriptedModel (tests/claude_support.py plays the model)

What is checked is what the user runs, as installed by `backlog-ops install`: the settings load,
the PostToolUse hook tells the model (the scripted model receives it in its next request) that
the ticket passed 80% of its budget, once; the installed statusLine command prints the ticket and
its spend for Claude Code's status-line JSON; and an interactive `claude` under tmux shows that
line on screen. Under CI=true nothing here may skip.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from backlog_ops.gateway.process import ProxyProcess
from backlog_ops.ledger import CallRecord, SqliteLedger

from claude_support import ScriptedModel, claude_env, require_claude, write_proxy_config
from conftest import in_ci

pytestmark = pytest.mark.proxy

BIN = Path(sys.executable).parent
MODEL = "claude-test"
PROJECT = "shop-api"
BUDGET = 1.0
EARLIER = 0.79  # what the ticket cost before this session: a few calls take it past 80%, none to 100%


@pytest.fixture(scope="module")
def claude_bin() -> Path:
    return require_claude()


@pytest.fixture(scope="module")
def model():
    with ScriptedModel() as m:
        yield m


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, model, claude_bin):
    root = tmp_path_factory.mktemp("claude-feedback")
    policy = {"projects": {PROJECT: {"ticket_budget_usd": BUDGET, "max_escalations_per_ticket": 3}}}
    config = write_proxy_config(root / "proxy.yaml", MODEL, model.base_url,
                                ["ticket_tagger", "ticket_policy", "spend_ledger"], backlog_ops={"policy": policy})
    proc = ProxyProcess(root / "home", config=config, env={"LITELLM_MASTER_KEY": "sk-test-" + secrets.token_hex(16)})
    proc.env.pop("BACKLOG_POLICY_FILE", None)
    proc.start()
    proc.root = root
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def project(proxy) -> Path:
    """A project set up the way a user does it: `backlog-ops install --dir myproject`."""
    project = proxy.root / "myproject"
    project.mkdir()
    (project / "backlog.config.json").write_text(json.dumps({"project": {"name": PROJECT}}))
    r = subprocess.run([str(BIN / "backlog-ops"), "install", "--dir", str(project)], capture_output=True, text=True,
                       timeout=60, env=cli_env(proxy))
    assert r.returncode == 0, r.stderr
    return project


def cli_env(proxy) -> dict:
    return {**os.environ, "BACKLOG_HOME": str(proxy.home), "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def cli(proxy, project: Path, *args: str) -> str:
    r = subprocess.run([str(BIN / "backlog-ops"), *args], capture_output=True, text=True, timeout=60, cwd=project,
                       env=cli_env(proxy))
    assert r.returncode == 0, r.stderr
    return r.stdout


def earlier_spend(proxy, ticket: str) -> None:
    """The ticket's calls of earlier days, already in the ledger."""
    with SqliteLedger(proxy.home / "ledger.db") as ledger:
        ledger.record_many([CallRecord(call_id=f"earlier-{ticket}", started_at="2026-12-01T09:00:00.000+00:00",
                                       status="success", ticket_id=ticket, project=PROJECT, gate="plan",
                                       cost_usd=EARLIER, model_group=MODEL)])


def request_session(request) -> str | None:
    """The session of a request as the upstream sees it: Claude Code's metadata.user_id (the proxy keeps the body)."""
    user_id = (request.body.get("metadata") or {}).get("user_id")
    try:
        return json.loads(user_id).get("session_id") if isinstance(user_id, str) else None
    except ValueError:
        return None


def installed_statusline(project: Path) -> str:
    return json.loads((project / ".claude" / "settings.json").read_text())["statusLine"]["command"]


def test_claude_hears_80_percent_once_and_the_status_line_shows_the_spend(claude_bin, proxy, project, model, tmp_path) -> None:
    ticket = "FEAT-901"
    earlier_spend(proxy, ticket)
    cli(proxy, project, "context", "set", ticket, "implement", "backend")  # what the user set before starting
    notes = project / "notes"
    notes.mkdir()
    script = []
    for i in range(12):  # ordinary work: a different file each step
        (notes / f"n{i}.md").write_text(f"note {i}\n")
        script.append(f"CALL Read {json.dumps({'file_path': str(notes / f'n{i}.md')})}")
    script.append("SAY done")
    home = tmp_path / "home"
    home.mkdir()
    env = claude_env(home, proxy.base_url, proxy.master_key, MODEL, proxy.home, BIN)
    try:
        r = subprocess.run([str(claude_bin), "-p", "Work through this script.\n" + "\n".join(script), "--output-format", "json",
                            "--allowedTools", "Read"], cwd=project, env=env, capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL)
    finally:
        cli(proxy, project, "context", "clear")
    assert r.returncode == 0, r.stderr[-2000:] + r.stdout[-2000:]
    result = json.loads(r.stdout)
    assert not result.get("is_error"), result
    sid = result["session_id"]
    mine = [q for q in model.requests if request_session(q) == sid and q.body.get("tools")]
    told = [i for i, q in enumerate(mine) if "has used 80% of its budget" in json.dumps(q.body)]
    assert told, "the PostToolUse hook's message never reached the model"
    last = json.dumps(mine[-1].body)
    # 79% before the session: its first call takes it past 50% (told), a few more past 80% (told), each once.
    assert last.count("has used 50% of its budget") == 1 and last.count("has used 80% of its budget") == 1, last[-3000:]
    assert last.index("has used 50% of its budget") < last.index("has used 80% of its budget")
    assert "has reached its budget" not in last and all(q.path.endswith("/v1/messages") for q in mine)
    totals = json.loads((proxy.home / "ticket-totals" / f"{PROJECT}~{ticket}.json").read_text())
    assert 0.8 * BUDGET <= totals["spent_usd"] < BUDGET and totals["budget_usd"] == BUDGET

    # The status line the install wired, fed Claude Code's status-line JSON for a session on this ticket.
    other = str(uuid.uuid4())
    cli(proxy, project, "context", "set", ticket, "review", "reviewer", "--session", other)
    data = {"session_id": other, "transcript_path": str(home / f"{other}.jsonl"), "cwd": str(project),
            "model": {"id": MODEL, "display_name": "Test"}, "permission_mode": "default",
            "workspace": {"current_dir": str(project), "project_dir": str(project), "added_dirs": []},
            "version": "2.1.197", "output_style": {"name": "default"},
            "cost": {"total_cost_usd": 0.0, "total_duration_ms": 1, "total_api_duration_ms": 1, "total_lines_added": 0,
                     "total_lines_removed": 0},
            "exceeds_200k_tokens": False}
    line = subprocess.run(["sh", "-c", installed_statusline(project)], input=json.dumps(data), capture_output=True,
                          text=True, timeout=30, env=cli_env(proxy), cwd=project)
    assert line.returncode == 0, line.stderr
    percent = int(100 * totals["spent_usd"] / BUDGET + 1e-6)
    assert line.stdout.strip() == f"{ticket} · review · reviewer · ${totals['spent_usd']:.4f} / $1.00, {percent}% ⚠"


def tmux_or_skip() -> str:
    tmux = shutil.which("tmux")
    if tmux is None:
        if in_ci():
            pytest.fail("tmux is required under CI (apt-get install tmux)")
        pytest.skip("tmux is not installed: the interactive status line was not checked")
    return tmux


def test_an_interactive_claude_shows_the_status_line(claude_bin, proxy, project, model, tmp_path) -> None:
    tmux = tmux_or_skip()
    ticket = "FEAT-902"
    cli(proxy, project, "context", "set", ticket, "implement", "backend")  # global: whatever session starts
    home = tmp_path / "home"
    home.mkdir()
    # What a user who has used Claude Code here before has: onboarding done, the folder trusted and
    # the project's MCP server approved (else Claude Code asks first).
    (home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True, "numStartups": 3, "theme": "dark",
        "projects": {str(project): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True,
                                    "enabledMcpjsonServers": ["backlog-ops"], "allowedTools": []}},
    }))
    env = {**claude_env(home, proxy.base_url, proxy.master_key, MODEL, proxy.home, BIN), "TERM": "xterm-256color"}
    name = f"bo-{uuid.uuid4().hex[:8]}"
    command = " ".join(shlex.quote(part) for part in ["env", "-i", *(f"{k}={v}" for k, v in env.items()), str(claude_bin)])
    subprocess.run([tmux, "new-session", "-d", "-s", name, "-x", "160", "-y", "40", "-c", str(project), command], check=True,
                   timeout=30)
    try:
        screen = wait_for_screen(tmux, name, f"{ticket} · implement · backend", timeout=60)
        assert "no spend yet" in screen or "$0.0" in screen, screen
        subprocess.run([tmux, "send-keys", "-t", name, "say hello", "Enter"], check=True, timeout=10)
        screen = wait_for_screen(tmux, name, f"{ticket} · implement · backend · $0.0", timeout=90)
        line = next(l for l in screen.splitlines() if f"{ticket} · implement" in l)
        assert "no spend yet" not in line, screen
    finally:
        subprocess.run([tmux, "kill-session", "-t", name], timeout=10)
        cli(proxy, project, "context", "clear")


def wait_for_screen(tmux: str, name: str, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        r = subprocess.run([tmux, "capture-pane", "-p", "-t", name], capture_output=True, text=True, timeout=10)
        screen = r.stdout
        if text in screen:
            return screen
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not on screen after {timeout} s:\n{screen}")
