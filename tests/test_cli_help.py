"""Every command's --help: a one-line purpose, examples, and each option's default."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backlog_ops.cli.main import build_parser, main

BIN = Path(sys.executable).parent


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action.choices, dict) and all(isinstance(p, argparse.ArgumentParser) for p in action.choices.values()):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


COMMANDS = [path for path, _ in _walk(build_parser())]


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(p) for p in COMMANDS}
    assert {"", "context set", "context history", "spend", "proxy", "hook", "mcp", "install", "config check",
            "import transcripts", "check-direct-calls", "keys setup", "keys list", "keys revoke", "demo", "doctor"} <= names
    assert len(COMMANDS) >= 24


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "backlog-ops")
def test_help_has_a_purpose_defaults_and_an_example(path: tuple[str, ...], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    parser = dict(_walk(build_parser()))[path]
    assert parser.description and "\n" not in parser.description and len(parser.description) <= 130, parser.description
    assert parser.description in out
    assert "example" in out and f"backlog-ops {' '.join(path)}".strip() in out.split("example", 1)[1]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) or isinstance(action.choices, dict):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{name} has no help text"
        meaningful = action.default not in (None, False, True, [], "", argparse.SUPPRESS)
        if meaningful:
            assert "default" in parser._get_formatter()._get_help_string(action), f"{name}: its default is not shown"


def test_defaults_are_shown_with_their_values(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "setup", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: config/virtual_keys.yaml)" in out and "(default: 60 s)" in out
    with pytest.raises(SystemExit):
        main(["proxy", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 127.0.0.1)" in out and "(default: 4000)" in out and "answers are fake" in out


def test_a_command_group_without_an_action_shows_its_own_help() -> None:
    r = subprocess.run([str(BIN / "backlog-ops"), "context"], capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert r.returncode == 2
    assert "usage: backlog-ops context" in r.stderr and "history" in r.stderr and "Traceback" not in r.stderr


def test_hook_help_is_help_not_a_hook_run() -> None:
    r = subprocess.run([str(BIN / "backlog-ops"), "hook", "--help"], capture_output=True, text=True, timeout=60,
                       input="", env=os.environ.copy())
    assert r.returncode == 0 and "Claude Code hook entry point" in r.stdout
