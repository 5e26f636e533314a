"""Inputs a user types every day: each bad one gets one clear line and an exit status, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backlog_ops.gateway.process import free_port

BIN = Path(sys.executable).parent


def cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "backlog-ops"), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def _down() -> str:
    return f"http://127.0.0.1:{free_port()}"


BAD = [
    (["context", "set", "F-1", "plan", "planner", "--ttl", "999999999999999999999d"], 2, "too long a duration"),
    (["context", "set", "F-1", "plan", "planner", "--ttl", "-5"], 2, "--ttl"),
    (["context", "set", "F-1", "plan", "planner", "--ttl", "8 hours"], 2, "is not a duration"),
    (["context", "history", "--since", "yesterday"], 2, "is not a date"),
    (["context", "history", "--since", "9999999999d"], 2, "too long a duration"),
    (["context", "show", "--session", "../etc"], 2, "session id '../etc' is not allowed"),
    (["spend", "--since", "999999999999999999999d"], 2, "too long a duration"),
    (["spend", "--by", "weather"], 2, "cannot group by 'weather'"),
    (["spend", "--by", "ticket,day,model"], 2, "cannot group by"),
    (["spend", "--until", "someday"], 2, "is not a date"),
    (["spend", "--since", "2026-12-01", "--until", "2026-11-01"], 2, "swap --since and --until"),
    (["spend", "--top", "0"], 2, "--top"),
    (["keys", "list", "--url", "DOWN"], 1, "start it with `backlog-ops proxy`"),
    (["keys", "revoke", "x", "--url", "DOWN"], 1, "start it with `backlog-ops proxy`"),
    (["keys", "setup", "config/virtual_keys.yaml", "--url", "DOWN", "--wait", "0.3"], 1, "start it with `backlog-ops proxy`"),
    (["keys", "setup", "--wait", "soon"], 2, "'soon' is not a duration"),
    (["keys", "list", "--url", "localhost:4000"], 2, "is not an http(s) URL"),
    (["doctor", "--url", "http://[::1"], 2, "is not a URL"),
]


@pytest.mark.parametrize(("args", "status", "needle"), BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_input_gets_one_clear_line(args: list[str], status: int, needle: str, project_dir: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    args = [_down() if a == "DOWN" else str(repo / a) if a.startswith("config/") else a for a in args]
    r = cli(*args, env={"LITELLM_MASTER_KEY": "sk-edge-" + "0" * 24})
    assert r.returncode == status, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert needle in r.stderr
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, r.stderr


def test_spend_on_an_empty_ledger_says_where_calls_come_from(project_dir: Path) -> None:
    r = cli("spend", env={"BACKLOG_GATEWAY_URL": _down()})
    assert r.returncode == 0 and r.stdout == "no calls recorded\n"
    assert "no proxy answers at" in r.stderr and "backlog-ops proxy" in r.stderr


def test_spend_with_an_unreachable_ledger_is_one_line_with_what_to_do(project_dir: Path) -> None:
    r = cli("spend", env={"BACKLOG_LEDGER_URL": f"postgresql://bob:edge-s3cret@127.0.0.1:{free_port()}/llmops"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert "cannot open ledger" in r.stderr and "unset BACKLOG_LEDGER_URL" in r.stderr and "edge-s3cret" not in r.stderr


def test_a_history_line_of_another_shape_is_shown_not_a_crash(project_dir: Path, backlog_home: Path) -> None:
    backlog_home.mkdir()
    (backlog_home / "context-history.jsonl").write_text('{"at": "2026-12-01T10:00:00", "action": "set", "new": ["not", "a", "dict"]}\n')
    r = cli("context", "history")
    assert r.returncode == 0 and "Traceback" not in r.stderr and "set" in r.stdout


def test_a_bug_reaches_the_user_as_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from backlog_ops.cli import context_cmd
    from backlog_ops.cli.main import main

    def boom(args):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(context_cmd, "context_show", boom)
    monkeypatch.delenv("BACKLOG_DEBUG", raising=False)
    assert main(["context", "show"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: something nobody expected" in err and "BACKLOG_DEBUG=1" in err
    monkeypatch.setenv("BACKLOG_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["context", "show"])
