"""The context store: validation, scopes, TTL, history, permissions, the audit copy."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from backlog_ops.context.scope import Scope
from backlog_ops.errors import ContextFileError, InvalidContext
from backlog_ops.context.resolver import ContextResolver
from backlog_ops.context.file_store import ContextStore

CTX = {"ticket_id": "FEAT-001", "gate": "implement", "agent_type": "backend", "project": "my-api", "skill": "backlog-implementer"}


def test_set_then_get_at_each_scope(backlog_home: Path) -> None:
    store = ContextStore()
    store.set(CTX)
    store.set({**CTX, "ticket_id": "FEAT-002"}, Scope("sess-1"))
    store.set({**CTX, "ticket_id": "FEAT-003", "agent_type": "reviewer"}, Scope("sess-1", "agent-7"))

    assert store.get()["ticket_id"] == "FEAT-001"
    assert store.get(Scope("sess-1"))["ticket_id"] == "FEAT-002"
    assert store.get(Scope("sess-1", "agent-7"))["agent_type"] == "reviewer"
    assert store.get(Scope("sess-2")) is None
    assert (backlog_home / "current-context.json").is_file()
    on_disk = json.loads((backlog_home / "current-context.json").read_text())
    assert set(on_disk) == {"ticket_id", "gate", "project", "agent_type", "skill", "component", "updated_at", "expires_at"}


def test_resolution_order_agent_then_session_then_global() -> None:
    store = ContextStore()
    resolver = ContextResolver(store)
    assert resolver.resolve("sess-1", "agent-7") is None

    store.set(CTX)
    assert resolver.resolve("sess-1", "agent-7").scope == Scope()
    store.set({**CTX, "ticket_id": "FEAT-002"}, Scope("sess-1"))
    found = resolver.resolve("sess-1", "agent-7")
    assert (found.scope, found.context["ticket_id"]) == (Scope("sess-1"), "FEAT-002")
    store.set({**CTX, "ticket_id": "FEAT-003"}, Scope("sess-1", "agent-7"))
    assert resolver.resolve("sess-1", "agent-7").context["ticket_id"] == "FEAT-003"
    assert resolver.resolve("sess-1", "agent-8").context["ticket_id"] == "FEAT-002"
    assert resolver.resolve("sess-2").context["ticket_id"] == "FEAT-001"
    assert resolver.resolve(None, None).context["ticket_id"] == "FEAT-001"
    assert resolver.resolve("sess-1", "agent-7").tags == (
        "ticket:FEAT-003", "gate:implement", "project:my-api", "agent:backend", "skill:backlog-implementer",
    )


def test_resolver_sees_every_change_even_within_one_clock_tick() -> None:
    store = ContextStore()
    resolver = ContextResolver(store)
    for i in range(50):  # same size, same coarse mtime: the racy-read rule must still see each write
        store.set({**CTX, "ticket_id": f"FEAT-{i:03d}"}, Scope("s"))
        assert resolver.resolve("s").context["ticket_id"] == f"FEAT-{i:03d}"
    store.clear(Scope("s"))
    assert resolver.resolve("s") is None


def test_invalid_ids_in_requests_fall_back_to_global() -> None:
    store = ContextStore()
    store.set(CTX)
    resolver = ContextResolver(store)
    assert resolver.resolve("../../etc/passwd", "x").scope == Scope()
    assert resolver.resolve("ok-session", "bad/agent").scope == Scope()


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("ticket_id", "FEAT 001", "ticket_id 'FEAT 001' is not allowed"),
        ("ticket_id", "x" * 65, "at most 64 characters"),
        ("ticket_id", "-lead", "starting with a letter or digit"),
        ("gate", "", "gate is required"),
        ("gate", "plan;rm", "gate 'plan;rm' is not allowed"),
        ("agent_type", None, "agent_type is required"),
        ("project", "my project", "project 'my project' is not allowed"),
        ("skill", 7, "skill must be a string"),
        ("component", "a/b", "component 'a/b' is not allowed"),
    ],
)
def test_invalid_fields_name_the_field_and_write_nothing(backlog_home: Path, field: str, value, needle: str) -> None:
    with pytest.raises(InvalidContext, match=needle.replace("(", r"\(").replace(")", r"\)")):
        ContextStore().set({**CTX, field: value})
    assert not (backlog_home / "current-context.json").exists()
    assert not (backlog_home / "context-history.jsonl").exists()


def test_empty_ticket_is_work_on_no_ticket() -> None:
    store = ContextStore()
    store.set({**CTX, "ticket_id": ""})
    assert store.get()["ticket_id"] is None
    assert ContextResolver(store).resolve().tags[0] == "gate:implement"


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "", "x" * 129, "a b"])
def test_session_and_agent_ids_cannot_escape_the_home(bad: str) -> None:
    with pytest.raises(InvalidContext):
        Scope(bad)
    with pytest.raises(InvalidContext):
        Scope("s", bad)


def test_agent_scope_needs_a_session() -> None:
    with pytest.raises(InvalidContext, match="needs a session"):
        Scope(None, "agent-1")


def test_contexts_expire(backlog_home: Path) -> None:
    store = ContextStore()
    now = time.time()
    store.set(CTX, Scope("s"), ttl=60, now=now - 120)
    assert store.get(Scope("s")) is None
    assert ContextResolver(store).resolve("s") is None
    store.set(CTX, ttl=3600)
    assert store.get() is not None
    with pytest.raises(InvalidContext, match="ttl"):
        store.set(CTX, ttl=0)


def test_expired_session_files_are_pruned_on_the_next_write(backlog_home: Path) -> None:
    store = ContextStore()
    store.set(CTX, Scope("old"), ttl=1, now=time.time() - 10)
    assert store.path(Scope("old")).exists()
    store.set(CTX, Scope("new"))
    assert not store.path(Scope("old")).exists()
    assert store.path(Scope("new")).exists()


def test_default_ttl_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLOG_CONTEXT_TTL", "120")
    ctx = ContextStore().set(CTX).new
    from backlog_ops.common.times import parse_time
    assert parse_time(ctx["expires_at"], "e") - parse_time(ctx["updated_at"], "u") == pytest.approx(120, abs=0.01)
    monkeypatch.setenv("BACKLOG_CONTEXT_TTL", "soon")
    with pytest.raises(InvalidContext, match="BACKLOG_CONTEXT_TTL"):
        ContextStore().set(CTX)


def test_history_records_old_and_new() -> None:
    store = ContextStore()
    store.set(CTX, Scope("s"))
    store.set({**CTX, "gate": "review"}, Scope("s"))
    store.clear(Scope("s"))
    entries = list(store.history())
    assert [e["action"] for e in entries] == ["set", "set", "clear"]
    assert entries[1]["old"]["gate"] == "implement" and entries[1]["new"]["gate"] == "review"
    assert entries[2]["old"]["gate"] == "review" and entries[2]["new"] is None
    assert all(e["scope"] == "session" and e["session_id"] == "s" for e in entries)


def test_clear_session_removes_its_agents_only() -> None:
    store = ContextStore()
    store.set(CTX, Scope("s1"))
    store.set(CTX, Scope("s1", "a1"))
    store.set(CTX, Scope("s1", "a2"))
    store.set(CTX, Scope("s10", "a1"))
    changes = store.clear_session("s1")
    assert {c.scope for c in changes} == {Scope("s1"), Scope("s1", "a1"), Scope("s1", "a2")}
    assert store.get(Scope("s1")) is None and store.get(Scope("s1", "a2")) is None
    assert store.get(Scope("s10", "a1")) is not None


def test_files_are_private(backlog_home: Path) -> None:
    os.umask(0o022)
    store = ContextStore()
    store.set(CTX)
    store.set(CTX, Scope("s", "a"))
    for path in [backlog_home, backlog_home / "contexts"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in [store.path(Scope()), store.path(Scope("s", "a")), store.history_path, store.lock_path]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_global_path_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    custom = tmp_path / "elsewhere" / "ctx.json"
    monkeypatch.setenv("BACKLOG_CONTEXT_FILE", str(custom))
    ContextStore().set(CTX)
    assert json.loads(custom.read_text())["ticket_id"] == "FEAT-001"


def test_design_shell_helper_file_is_accepted(backlog_home: Path) -> None:
    """The design's helper writes no expires_at and a naive UTC time: still a valid context."""
    backlog_home.mkdir()
    updated = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    (backlog_home / "current-context.json").write_text(json.dumps({**CTX, "updated_at": updated}))
    assert ContextStore().get()["ticket_id"] == "FEAT-001"
    stale = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 9 * 3600))
    (backlog_home / "current-context.json").write_text(json.dumps({**CTX, "updated_at": stale}))
    assert ContextStore().get() is None  # older than the default TTL


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "the top level must be an object {...}, not an array"),
        (json.dumps({**CTX, "gate": 5}).encode(), "gate must be a string"),
        (json.dumps({**CTX, "ticket_id": "bad ticket"}).encode(), "ticket_id 'bad ticket'"),
        (json.dumps({**CTX, "expires_at": "tomorrow"}).encode(), "expires_at 'tomorrow' is not an ISO 8601 time"),
        (b"{" + b" " * 70_000 + b"}", "at most 65536 bytes"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_context_files_are_reported_and_skipped(backlog_home: Path, content: bytes, needle: str) -> None:
    store = ContextStore()
    store.set({**CTX, "ticket_id": "GLOBAL-1"})
    store.contexts_dir.mkdir(exist_ok=True)
    store.path(Scope("s")).write_bytes(content)
    with pytest.raises(ContextFileError, match=needle.replace("(", r"\(")):
        store.get(Scope("s"))
    warnings: list[str] = []
    resolver = ContextResolver(store, warn=warnings.append)
    for _ in range(3):
        assert resolver.resolve("s").context["ticket_id"] == "GLOBAL-1"
    assert len(warnings) == 1 and needle.split(" (")[0] in warnings[0]


def test_overwriting_a_corrupt_context_warns_and_recovers() -> None:
    store = ContextStore()
    store.contexts_dir.mkdir(parents=True)
    store.path(Scope("s")).write_text("garbage")
    change = store.set(CTX, Scope("s"))
    assert change.old is None and "unreadable" in change.warnings[0]
    assert store.get(Scope("s"))["ticket_id"] == "FEAT-001"


def test_unwritable_home_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() == 0:
        # root ignores permission bits; a file where the directory should be fails for everyone
        blocker = tmp_path / "blocker"
        blocker.write_text("")
        monkeypatch.setenv("BACKLOG_HOME", str(blocker / "home"))
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        monkeypatch.setenv("BACKLOG_HOME", str(locked / "home"))
    from backlog_ops.errors import HomeError

    with pytest.raises(HomeError, match="cannot create directory"):
        ContextStore().set(CTX)


def test_audit_copy_is_written_git_ignored_and_cleared(project_dir: Path) -> None:
    subprocess.run(["git", "init", "-q", str(project_dir)], check=True)
    store = ContextStore()
    store.set(CTX, Scope("s"), project_dir=project_dir)
    audit = project_dir / ".backlog-ops" / "current-context.json"
    data = json.loads(audit.read_text())
    assert data["ticket_id"] == "FEAT-001" and data["scope"] == "session" and data["session_id"] == "s"
    ignored = subprocess.run(["git", "-C", str(project_dir), "check-ignore", "-q", str(audit)])
    assert ignored.returncode == 0, "the audit copy must be git-ignored"
    status = subprocess.run(["git", "-C", str(project_dir), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == ""
    store.clear(Scope("other"), project_dir=project_dir)
    assert audit.exists(), "clearing another scope leaves the audit copy"
    store.clear(Scope("s"), project_dir=project_dir)
    assert not audit.exists()


def test_audit_copy_failure_warns_but_keeps_the_context(project_dir: Path) -> None:
    (project_dir / ".git").mkdir()  # the audit copy lives at a repository's root
    (project_dir / ".backlog-ops").write_text("a file where a directory should be")
    change = ContextStore().set(CTX, project_dir=project_dir)
    assert change.warnings and "audit copy" in change.warnings[0]
    assert ContextStore().get()["ticket_id"] == "FEAT-001"
