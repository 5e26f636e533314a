"""`backlog-ops context …` and the shell helper, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "backlog-ops"), *args], capture_output=True, text=True, cwd=cwd, env=env or os.environ.copy(), timeout=60
    )


def test_set_show_clear_roundtrip(project_dir: Path, backlog_home: Path) -> None:
    r = cli("context", "set", "FEAT-001", "implement", "backend", "--skill", "backlog-implementer", "--session", "s1")
    assert r.returncode == 0, r.stderr
    assert "ticket:FEAT-001" in r.stdout and "project:my-api" in r.stdout

    shown = json.loads(cli("context", "show", "--session", "s1", "--agent-id", "a1", "--json").stdout)
    assert shown["scope"] == "session" and shown["session_id"] == "s1"
    assert shown["context"]["ticket_id"] == "FEAT-001" and shown["context"]["project"] == "my-api"

    r = cli("context", "clear", "--session", "s1")
    assert r.returncode == 0 and "was ticket:FEAT-001" in r.stdout
    assert json.loads(cli("context", "show", "--session", "s1", "--json").stdout)["context"] is None
    assert "no context in force" in cli("context", "show", "--session", "s1").stdout


def test_project_comes_from_backlog_config(project_dir: Path) -> None:
    (project_dir / "backlog.config.json").write_text(json.dumps({"project": {"name": "billing-svc"}}))
    assert cli("context", "set", "FEAT-9", "plan", "planner").returncode == 0
    assert json.loads(cli("context", "show", "--json").stdout)["context"]["project"] == "billing-svc"


def test_project_from_an_awkward_directory_name_is_slugged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    odd = tmp_path / "My Project (copy)"
    odd.mkdir()
    assert cli("context", "set", "FEAT-9", "plan", "planner", cwd=odd).returncode == 0
    assert json.loads(cli("context", "show", "--json", cwd=odd).stdout)["context"]["project"] == "My-Project-copy"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["context", "set", "FEAT 1", "plan", "planner"], "ticket_id 'FEAT 1' is not allowed"),
        (["context", "set", "FEAT-1", "", "planner"], "gate is required"),
        (["context", "set", "FEAT-1", "plan", "planner", "--ttl", "0"], "is not a positive duration"),
        (["context", "set", "FEAT-1", "plan", "planner", "--ttl", "soon"], "'soon' is not a duration"),
        (["context", "set", "FEAT-1", "plan", "planner", "--ttl", "31d"], "ttl must be from 1 second to 30 days"),
        (["context", "set", "FEAT-1", "plan", "planner", "--agent-id", "a1"], "needs a session"),
        (["context", "set", "FEAT-1", "plan", "planner", "--session", "../x"], "session id '../x' is not allowed"),
        (["context", "set", "FEAT-1", "plan"], "required: AGENT"),
        (["spend", "--since", "last tuesday"], "is not a date"),
    ],
)
def test_bad_arguments_fail_clearly_and_write_nothing(project_dir: Path, backlog_home: Path, args, needle) -> None:
    r = cli(*args)
    assert r.returncode == 2
    assert needle in r.stderr
    assert not (backlog_home / "context-history.jsonl").exists()
    assert not (project_dir / ".backlog-ops").exists()


def test_bad_backlog_config_is_named(project_dir: Path) -> None:
    (project_dir / "backlog.config.json").write_text("{oops")
    r = cli("context", "set", "FEAT-1", "plan", "planner")
    assert r.returncode == 1 and "backlog.config.json is not valid JSON" in r.stderr
    (project_dir / "backlog.config.json").write_text(json.dumps({"project": {"name": "bad name"}}))
    r = cli("context", "set", "FEAT-1", "plan", "planner")
    assert r.returncode == 1 and "project.name" in r.stderr


def test_unwritable_home_exits_non_zero(tmp_path: Path, project_dir: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    env = {**os.environ, "BACKLOG_HOME": str(blocker / "home")}
    r = cli("context", "set", "FEAT-1", "plan", "planner", env=env)
    assert r.returncode == 1 and "cannot create directory" in r.stderr


def test_history_command(project_dir: Path) -> None:
    assert cli("context", "history").stdout == "no context changes recorded.\n"
    assert json.loads(cli("context", "history", "--json").stdout) == []
    cli("context", "set", "FEAT-1", "plan", "planner", "--skill", "backlog-ticket")
    cli("context", "set", "FEAT-2", "review", "reviewer", "--session", "s1", "--agent-id", "a1")
    cli("context", "clear")
    entries = json.loads(cli("context", "history", "--json").stdout)
    assert [e["action"] for e in entries] == ["set", "set", "clear"]
    table = cli("context", "history").stdout.splitlines()
    assert table[0].split() == ["at", "(UTC)", "action", "scope", "ticket", "gate", "agent", "skill", "project"]
    assert table[2].split()[2:] == ["set", "global", "FEAT-1", "plan", "planner", "backlog-ticket", "my-api"]
    assert table[3].split()[2:7] == ["set", "agent", "a1", "of", "s1"] and "FEAT-2" in table[3]
    assert table[4].split()[2:5] == ["clear", "global", "FEAT-1"], "a clear shows the context it removed"
    assert len(json.loads(cli("context", "history", "--since", "1h", "--json").stdout)) == 3
    assert cli("context", "history", "--since", "2999-01-01").stdout == "no context changes recorded since 2999-01-01T00:00:00.000+00:00.\n"


def test_history_never_sends_stored_control_characters_to_the_terminal(project_dir: Path, backlog_home: Path) -> None:
    cli("context", "set", "FEAT-1", "plan", "planner")
    forged = {"at": "2026-12-01T10:00:00.000+00:00", "at_epoch": 1, "action": "set", "scope": "global",
              "session_id": None, "agent_id": None, "old": None,
              "new": {"ticket_id": "EVIL\x1b[2J\x07", "gate": "plan\r\nfake", "agent_type": "x", "project": "p"}}
    with open(backlog_home / "context-history.jsonl", "a") as fh:
        fh.write(json.dumps(forged) + "\n")
    for args in (["context", "history"], ["context", "history", "--json"]):
        r = cli(*args)
        assert r.returncode == 0, r.stderr
        assert not any(ord(c) < 32 and c != "\n" for c in r.stdout), repr(r.stdout)
    assert "EVIL\\x1b[2J\\x07" in cli("context", "history").stdout


def test_ttl_takes_the_one_duration_grammar(project_dir: Path) -> None:
    def lifetime(*args: str, env: dict | None = None) -> float:
        r = cli("context", "set", "FEAT-1", "plan", "planner", "--json", *args, env=env)
        assert r.returncode == 0, r.stderr
        ctx = json.loads(r.stdout)["context"]
        from backlog_ops.common.times import iso_to_epoch

        return iso_to_epoch(ctx["expires_at"]) - iso_to_epoch(ctx["updated_at"])

    assert lifetime("--ttl", "8h") == pytest.approx(8 * 3600, abs=1)
    assert lifetime("--ttl", "90m") == pytest.approx(5400, abs=1)
    assert lifetime("--ttl", "120") == pytest.approx(120, abs=1), "plain seconds keep working"
    assert lifetime(env={**os.environ, "BACKLOG_CONTEXT_TTL": "2h"}) == pytest.approx(7200, abs=1)
    r = cli("context", "set", "FEAT-1", "plan", "planner", env={**os.environ, "BACKLOG_CONTEXT_TTL": "soon"})
    assert r.returncode == 2 and "BACKLOG_CONTEXT_TTL" in r.stderr and "Traceback" not in r.stderr


def test_context_set_outside_a_repository_leaves_nothing_in_the_directory(tmp_path: Path, backlog_home: Path) -> None:
    somewhere = tmp_path / "downloads"
    somewhere.mkdir()
    assert cli("context", "set", "FEAT-1", "plan", "planner", cwd=somewhere).returncode == 0
    assert cli("context", "clear", cwd=somewhere).returncode == 0
    assert list(somewhere.iterdir()) == []


def test_the_audit_copy_goes_to_the_git_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sub = repo / "src" / "pkg"
    sub.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert cli("context", "set", "FEAT-7", "implement", "backend", cwd=sub).returncode == 0
    assert json.loads((repo / ".backlog-ops" / "current-context.json").read_text())["ticket_id"] == "FEAT-7"
    assert not (sub / ".backlog-ops").exists()
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == "", "the audit copy is git-ignored"


def test_shell_helper_functions(project_dir: Path, backlog_home: Path) -> None:
    helper = cli("context", "shell-helper").stdout.strip()
    assert Path(helper).is_file()
    script = f"""
        set -e
        export PATH="{BIN}:$PATH"
        source "{helper}"
        set_backlog_context FEAT-002 review reviewer backlog-implementer
        get_backlog_context
        BACKLOG_SESSION_ID=s9 set_backlog_context FEAT-003 lint linter
        BACKLOG_SESSION_ID=s9 get_backlog_context
        clear_backlog_context
        if set_backlog_context only-two args 2>/dev/null; then exit 9; fi
    """
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=project_dir, timeout=60)
    assert r.returncode == 0, r.stderr
    docs = [json.loads(d) for d in _json_documents(r.stdout)]
    assert docs[0]["context"]["ticket_id"] == "FEAT-002" and docs[0]["context"]["skill"] == "backlog-implementer"
    assert docs[1]["scope"] == "session" and docs[1]["context"]["ticket_id"] == "FEAT-003"
    assert not (backlog_home / "current-context.json").exists()


def _json_documents(text: str) -> list[str]:
    docs, depth, start = [], 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                docs.append(text[start : i + 1])
    return docs
