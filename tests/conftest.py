"""Shared fixtures. Every test gets its own BACKLOG_HOME: no test touches the user's state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def backlog_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "backlog-home"
    monkeypatch.setenv("BACKLOG_HOME", str(home))
    for var in ("BACKLOG_CONTEXT_FILE", "BACKLOG_CONTEXT_TTL", "BACKLOG_SESSION_ID", "BACKLOG_AGENT_ID"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory that is the current directory."""
    project = tmp_path / "my-api"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
