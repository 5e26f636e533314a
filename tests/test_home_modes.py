"""Every directory backlog-ops creates is 0700 and every state file 0600, whoever creates it first.

The usual first writer is Claude Code's SessionStart hook, in an empty HOME: it is run here as
Claude Code runs it (`backlog-ops hook`, JSON on stdin), under several umasks.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from backlog_ops.common.home import ensure_dir

BIN = Path(sys.executable).parent
SID = "4542a6ff-4e36-481a-b119-ba2bea61312e"


def _modes(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def _hook(home: Path, project: Path, event: dict, umask: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKLOG_")}
    env["HOME"] = str(home)
    r = subprocess.run([str(BIN / "backlog-ops"), "hook"], input=json.dumps(event), env=env, cwd=project,
                       capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.umask(umask))
    assert r.returncode == 0, r.stderr
    assert "systemMessage" not in r.stdout, r.stdout  # the hook did its work, it did not fail quietly


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o000], ids=["022", "002", "000"])
def test_hooks_from_an_empty_home_make_everything_private(tmp_path, umask) -> None:
    home = tmp_path / "home"
    home.mkdir()
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)  # a repository: the audit copy goes to its root
    base = {"session_id": SID, "transcript_path": str(home / "t.jsonl"), "cwd": str(project)}
    events = [
        {**base, "hook_event_name": "SessionStart", "source": "startup"},
        {**base, "hook_event_name": "UserPromptExpansion", "expansion_type": "slash_command",
         "command_name": "backlog-implementer", "command_args": "FEAT-1", "prompt": "/backlog-implementer FEAT-1"},
        {**base, "hook_event_name": "PreToolUse", "tool_name": "mcp__backlog-ops__set_context", "tool_input": {},
         "tool_use_id": "toolu_1"},
    ]
    for event in events:
        _hook(home, project, event, umask)

    state = home / ".backlog-toolkit"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    modes = _modes(state)
    assert any(name.startswith("contexts") for name in modes), modes  # the skill set a context
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o700 if (state / name).is_dir() else 0o600)}
    assert wrong == {}
    # The project's audit copy directory is ours too; the project itself is left alone.
    audit = project / ".backlog-ops"
    assert stat.S_IMODE(audit.stat().st_mode) == 0o700


def test_a_umask_that_takes_the_owners_bits_does_not_lock_us_out(tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    event = {"session_id": SID, "transcript_path": "", "cwd": str(project), "hook_event_name": "SessionStart", "source": "startup"}
    _hook(home, project, event, 0o277)  # mkdir alone would give 0500: no way in for the next write
    for name, mode in _modes(home / ".backlog-toolkit").items():
        if (home / ".backlog-toolkit" / name).is_dir():
            assert mode == 0o700, name


def test_ensure_dir_makes_each_missing_parent_private_and_leaves_existing_ones(tmp_path) -> None:
    existing = tmp_path / "shared"
    existing.mkdir(mode=0o755)
    os.chmod(existing, 0o755)
    old = os.umask(0o022)
    try:
        ensure_dir(existing / "a" / "b" / "c")
    finally:
        os.umask(old)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o755
    for part in ("a", "a/b", "a/b/c"):
        assert stat.S_IMODE((existing / part).stat().st_mode) == 0o700, part


def test_the_cli_and_install_make_their_directories_private(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKLOG_")}
    env["BACKLOG_HOME"] = str(tmp_path / "deep" / "er" / "home")
    env["HOME"] = str(tmp_path)

    def run(*args: str) -> None:
        r = subprocess.run([str(BIN / "backlog-ops"), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=60, preexec_fn=lambda: os.umask(0o022))
        assert r.returncode == 0, r.stderr

    run("context", "set", "FEAT-1", "plan", "backend", "--project", "p")
    for part in ("deep", "deep/er", "deep/er/home"):
        assert stat.S_IMODE((tmp_path / part).stat().st_mode) == 0o700, part
    (tmp_path / "proj").mkdir()
    run("install", "--dir", str(tmp_path / "proj"))
    made = [p for p in (tmp_path / "proj" / ".claude").rglob("*") if p.is_dir()] + [tmp_path / "proj" / ".claude"]
    assert len(made) > 2
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in made if stat.S_IMODE(p.stat().st_mode) != 0o700} == {}
