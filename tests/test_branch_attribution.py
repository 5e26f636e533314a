"""Attribution with no set-up: the ticket a git branch names, for sessions nothing set a context for.

Real git repositories (worktrees, detached HEADs), the real SessionStart hook entry point, the
tagger's tags, the ledger column and the `spend --by ticket_source` breakdown. The real `claude`
CLI through the proxy is in tests/test_claude_e2e.py.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from backlog_ops.capture.proxy_record import record_from_logging_object
from backlog_ops.capture.rows import call_record
from backlog_ops.context.fields import fields_from_tags
from backlog_ops.context.file_store import ContextStore
from backlog_ops.context.resolver import ContextResolver
from backlog_ops.context.scope import Scope
from backlog_ops.errors import ConfigError
from backlog_ops.hooks.events import handle
from backlog_ops.ledger import SqliteLedger
from backlog_ops.project.branch import (
    BUILTIN_PATTERN,
    INFERRED_GATE,
    branch_rule,
    git_branch,
    ticket_in_branch,
)
from backlog_ops.project.schema import check_backlog_config

from backlog_ops.callbacks.ticket_tagger import TicketTagger

BIN = Path(sys.executable).parent
SRC = Path(__file__).resolve().parent.parent / "src"
SID, SID2, AGENT = "4542a6ff-4e36-481a-b119-ba2bea61312e", "01f9e3b5-729d-4e92-8f0e-de7c049eadbb", "a470226e09ef4e5b7"


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def repo_on(path: Path, branch: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    return path


def start(cwd: Path, session: str = SID, source: str = "startup") -> dict:
    return {"session_id": session, "transcript_path": f"/tmp/{session}.jsonl", "cwd": str(cwd),
            "hook_event_name": "SessionStart", "source": source}


@pytest.fixture
def store(backlog_home) -> ContextStore:
    return ContextStore(backlog_home)


# -- the rule -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("branch", "ticket"), [
    ("feat/FEAT-001-login", "FEAT-001"), ("FEAT-001", "FEAT-001"), ("bugfix/PROJ-12", "PROJ-12"),
    ("feature/JIRA-1234_fix-bug", "JIRA-1234"), ("feat/add-login-FEAT-9", "FEAT-9"), ("user/ab/OPS_7", "OPS_7"),
    ("A1B-22.hotfix", "A1B-22"),
    ("main", None), ("develop", None), ("release/v2.3", None), ("feature/proj-12-lower-case", None),
    ("FEAT-001x", None), ("xFEAT-001", None), ("FEAT-", None), ("feat/ABCDEFGHIJKLMNOPQ-1", None),
    ("X-1234567890", None), ("", None), (None, None),
])
def test_the_built_in_rule(branch, ticket) -> None:
    assert ticket_in_branch(branch) == ticket


def test_the_built_in_rule_finds_what_its_documented_pattern_finds() -> None:
    pattern = re.compile(BUILTIN_PATTERN)
    rng = random.Random(7)
    alphabet = "ABZ019-_/.ax"
    for _ in range(50_000):
        branch = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
        match = pattern.search(branch)
        assert ticket_in_branch(branch) == (match.group("ticket") if match else None), branch
    for branch in ("A" * 16 + "-1", "A" * 17 + "-1", "B-" + "9" * 9, "B-" + "9" * 10, "x/" + "Q" * 16 + "_5-y"):
        match = pattern.search(branch)
        assert ticket_in_branch(branch) == (match.group("ticket") if match else None), branch


def test_a_configured_pattern() -> None:
    assert ticket_in_branch("feature/proj-12-login", r"(?i)(?P<ticket>proj-[0-9]+)") == "proj-12"
    assert ticket_in_branch("sc-4711/login", r"^sc-([0-9]+)") == "4711"
    assert ticket_in_branch("TASK42", r"TASK[0-9]+") == "TASK42"
    assert ticket_in_branch("main", r"(?P<ticket>[A-Z]+-[0-9]+)") is None
    assert ticket_in_branch("feat/a b", r"feat/(.*)") is None, "what a pattern finds must still be a valid ticket id"


# -- where the branch comes from: HEAD, read without git ---------------------------------------------


def test_git_branch_reads_head_from_any_directory_of_the_repository(tmp_path) -> None:
    repo = repo_on(tmp_path / "shop", "feat/FEAT-001-login")
    (repo / "src" / "deep").mkdir(parents=True)
    assert git_branch(repo) == "feat/FEAT-001-login"
    assert git_branch(repo / "src" / "deep") == "feat/FEAT-001-login"
    assert git_branch(tmp_path) is None, "not a repository"
    assert git_branch(tmp_path / "missing") is None


def test_git_branch_in_a_worktree_and_with_a_detached_head(tmp_path) -> None:
    repo = repo_on(tmp_path / "shop", "main")
    (repo / "a.txt").write_text("a")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "worktree", "add", "-q", "-b", "bugfix/PROJ-12", str(tmp_path / "wt"))
    assert (tmp_path / "wt" / ".git").is_file(), "a worktree's .git is a file naming its git directory"
    assert git_branch(tmp_path / "wt") == "bugfix/PROJ-12"
    assert git_branch(repo) == "main"
    git(repo, "checkout", "-q", "--detach")
    assert git_branch(repo) is None


def test_branch_settings_from_backlog_config(tmp_path) -> None:
    assert branch_rule(tmp_path).enabled and branch_rule(tmp_path).pattern is None
    (tmp_path / "backlog.config.json").write_text(json.dumps({"attribution": {"inferFromBranch": False}}))
    assert branch_rule(tmp_path).ticket("feat/FEAT-1") is None
    (tmp_path / "backlog.config.json").write_text(json.dumps({"attribution": {"branchTicketPattern": "^(sc-[0-9]+)"}}))
    assert branch_rule(tmp_path).ticket("sc-88-login") == "sc-88"
    for bad, says in (({"attribution": {"branchTicketPattern": "(oops"}}, "not a valid regular expression"),
                      ({"attribution": {"inferFromBranch": "no"}}, "must be true or false"),
                      ({"attribution": []}, "must be an object"), ([1, 2], "must hold a JSON object")):
        (tmp_path / "backlog.config.json").write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=says) as caught:
            branch_rule(tmp_path)
        assert "\n" not in str(caught.value)


def test_config_check_validates_the_attribution_section(tmp_path) -> None:
    path = tmp_path / "backlog.config.json"
    path.write_text(json.dumps({"attribution": {"inferFromBranch": False, "branchTicketPattern": "(?P<ticket>[A-Z]+-[0-9]+)"}}))
    assert check_backlog_config(path) == []
    path.write_text(json.dumps({"attribution": {"inferFromBranch": "yes", "branchTicketPattern": "(x", "typo": 1}}))
    problems = "\n".join(check_backlog_config(path))
    assert "attribution.inferFromBranch" in problems and "attribution.branchTicketPattern: not a valid regular expression" in problems
    assert "attribution.typo: unknown key" in problems


# -- the SessionStart hook ---------------------------------------------------------------------------


def test_session_start_infers_the_ticket_from_the_branch(tmp_path, store) -> None:
    repo = repo_on(tmp_path / "shop", "feat/FEAT-001-login")
    (repo / "backlog.config.json").write_text(json.dumps({"project": {"name": "shop-api"}}))
    out = handle("SessionStart", start(repo))
    ctx = store.get(Scope(SID))
    assert (ctx["ticket_id"], ctx["gate"], ctx["agent_type"], ctx["project"], ctx["ticket_source"]) == (
        "FEAT-001", INFERRED_GATE, "main", "shop-api", "branch")
    text = out["hookSpecificOutput"]["additionalContext"]
    assert "ticket FEAT-001" in text and "inferred from the git branch 'feat/FEAT-001-login'" in text
    # The proxy tags the session's requests with the ticket and the mark.
    assert ContextResolver(store).resolve(SID).tags == (
        "ticket:FEAT-001", "gate:unspecified", "project:shop-api", "agent:main", "ticket_source:branch")


def test_session_start_never_overrides_a_context_that_was_set(tmp_path, store) -> None:
    repo = repo_on(tmp_path / "shop", "feat/FEAT-001-login")
    store.set({"ticket_id": "OPS-3", "gate": "implement", "agent_type": "infra"}, Scope(SID))
    assert "ticket OPS-3" in handle("SessionStart", start(repo))["hookSpecificOutput"]["additionalContext"]
    assert store.get(Scope(SID))["ticket_id"] == "OPS-3" and "ticket_source" not in store.get(Scope(SID))
    store.set({"ticket_id": "OPS-4", "gate": "review", "agent_type": "reviewer"})  # a global context
    handle("SessionStart", start(repo, session=SID2))
    assert store.get(Scope(SID2)) is None, "a global context was set: nothing inferred"


def test_a_context_set_later_wins_over_the_inferred_one_everywhere(tmp_path, store) -> None:
    repo = repo_on(tmp_path / "shop", "feat/FEAT-001-login")
    handle("SessionStart", start(repo))
    resolver = ContextResolver(store)
    assert resolver.resolve(SID).context["ticket_id"] == "FEAT-001"
    # A global context set after the session started: the session's inference yields to it.
    store.set({"ticket_id": "OPS-9", "gate": "implement", "agent_type": "infra"})
    assert resolver.resolve(SID).context["ticket_id"] == "OPS-9"
    store.clear()
    assert resolver.resolve(SID).context["ticket_id"] == "FEAT-001"
    # set_context (the MCP tool, the CLI) replaces it: no mark any more.
    store.set({"ticket_id": "FEAT-002", "gate": "review", "agent_type": "reviewer"}, Scope(SID))
    found = resolver.resolve(SID)
    assert found.context["ticket_id"] == "FEAT-002" and "ticket_source:branch" not in found.tags


def test_subagents_and_the_implementer_keep_the_inferred_mark(tmp_path, store) -> None:
    repo = repo_on(tmp_path / "shop", "FEAT-77")
    handle("SessionStart", start(repo))
    handle("SubagentStart", {**start(repo), "hook_event_name": "SubagentStart", "agent_id": AGENT, "agent_type": "reviewer"})
    sub = store.get(Scope(SID, AGENT))
    assert (sub["ticket_id"], sub["agent_type"], sub["ticket_source"]) == ("FEAT-77", "reviewer", "branch")
    # /backlog-implementer with no ticket keeps the session's ticket: the gate is set, the ticket still inferred.
    handle("UserPromptExpansion", {**start(repo), "hook_event_name": "UserPromptExpansion", "expansion_type": "slash_command",
                                   "command_name": "backlog-implementer", "command_args": "carry on"})
    ctx = store.get(Scope(SID))
    assert (ctx["ticket_id"], ctx["gate"], ctx["ticket_source"]) == ("FEAT-77", "plan", "branch")
    # Named in the arguments, the ticket is set.
    handle("UserPromptExpansion", {**start(repo), "hook_event_name": "UserPromptExpansion", "expansion_type": "slash_command",
                                   "command_name": "backlog-implementer", "command_args": "FEAT-78"})
    assert "ticket_source" not in store.get(Scope(SID))


def test_the_off_switch_and_branches_without_a_ticket(tmp_path, store, backlog_home) -> None:
    repo = repo_on(tmp_path / "shop", "feat/FEAT-001-login")
    (repo / "backlog.config.json").write_text(json.dumps({"attribution": {"inferFromBranch": False}}))
    assert handle("SessionStart", start(repo)) is None
    other = repo_on(tmp_path / "other", "main")
    assert handle("SessionStart", start(other, session=SID2)) is None
    assert store.get(Scope(SID)) is None and store.get(Scope(SID2)) is None
    assert not (backlog_home / "context-history.jsonl").exists()


def run_hook(data: dict, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "backlog-ops"), "hook", "SessionStart"], input=json.dumps(data),
                          capture_output=True, text=True, timeout=30, env=env or os.environ.copy())


def test_a_bad_pattern_is_one_line_for_the_user_and_the_session_goes_on(tmp_path, store) -> None:
    repo = repo_on(tmp_path / "shop", "feat/FEAT-001-login")
    (repo / "backlog.config.json").write_text(json.dumps({"attribution": {"branchTicketPattern": "(unclosed"}}))
    r = run_hook(start(repo))
    assert r.returncode == 0 and r.stderr == ""
    message = json.loads(r.stdout)["systemMessage"]
    assert message.startswith("backlog-ops: the ticket was not inferred from the git branch:")
    assert "attribution.branchTicketPattern: not a valid regular expression" in message and "\n" not in message
    assert store.get(Scope(SID)) is None
    from backlog_ops.claude import sessions

    assert sessions.session_record(SID)["cwd"] == str(repo), "the session is still recorded"


def test_the_hook_path_stays_light_with_branch_inference(tmp_path, backlog_home) -> None:
    """Run as Claude Code runs it, without site (so no editable-install finder imports `re` first)."""
    repo = repo_on(tmp_path / "shop", "feat/FEAT-001-login")
    code = f"import sys; sys.path.insert(0, {str(SRC)!r}); from backlog_ops.hooks.entry import run; run()"
    r = subprocess.run([sys.executable, "-S", "-X", "importtime", "-c", code, "SessionStart"], input=json.dumps(start(repo)),
                       capture_output=True, text=True, timeout=30, env={**os.environ, "BACKLOG_HOME": str(backlog_home)})
    assert r.returncode == 0 and "FEAT-001" in json.loads(r.stdout)["hookSpecificOutput"]["additionalContext"]
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert imported & {"re", "pathlib", "typing", "json", "dataclasses", "subprocess"} == set(), sorted(imported)


# -- the proxy's tags and the ledger ------------------------------------------------------------------


def _tag(tagger: TicketTagger, session: str, caller_tags: list | None = None) -> list:
    data = {"model": "m", "messages": [], "metadata": {"tags": list(caller_tags or [])},
            "proxy_server_request": {"headers": {"x-claude-code-session-id": session}}}
    tagger.tag_request(data, "acompletion")
    return data["metadata"]["tags"]


def test_the_tagger_marks_inferred_tickets_and_never_a_callers_own(tmp_path, store) -> None:
    repo = repo_on(tmp_path / "shop", "feat/FEAT-001-login")
    handle("SessionStart", start(repo))
    tagger = TicketTagger(ContextResolver(store))
    tags = _tag(tagger, SID)
    assert "ticket:FEAT-001" in tags and "ticket_source:branch" in tags
    own = _tag(tagger, SID, ["ticket:OPS-1"])
    assert "ticket:OPS-1" in own and "ticket_source:branch" not in own and "ticket:FEAT-001" not in own
    assert fields_from_tags(tags)["ticket_source"] == "branch"
    assert "ticket_source" not in fields_from_tags(["ticket:X-1", "ticket_source:made-up"]), "unknown marks are dropped"


def test_the_ledger_records_the_mark_and_reports_group_by_it(tmp_path, backlog_home) -> None:
    slo = {"litellm_call_id": "c1", "request_tags": ["ticket:FEAT-001", "gate:unspecified", "agent:main", "ticket_source:branch"],
           "response_cost": 0.02, "prompt_tokens": 10, "completion_tokens": 5, "startTime": 1_780_000_000.0}
    inferred = record_from_logging_object(slo, status="success")
    assert inferred.ticket_source == "branch"
    set_row = call_record(call_id="c2", source="proxy", started=1_780_000_001.0, cost_usd=0.03,
                          context={"ticket_id": "FEAT-001", "gate": "implement", "agent_type": "backend"})
    assert set_row.ticket_source is None
    with SqliteLedger(backlog_home / "ledger.db") as ledger:
        ledger.record_many([inferred, set_row])
        assert {r["call_id"]: r["ticket_source"] for r in ledger.rows()} == {"c1": "branch", "c2": None}
    r = subprocess.run([str(BIN / "backlog-ops"), "spend", "FEAT-001", "--by", "ticket_source", "--json"],
                       capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert r.returncode == 0, r.stderr
    breakdown = {b["ticket_source"]: (b["calls"], b["cost_usd"]) for b in json.loads(r.stdout)["rows"]}
    assert breakdown == {"branch": (1, pytest.approx(0.02)), "set": (1, pytest.approx(0.03))}


def test_a_ledger_from_before_the_mark_gains_the_column(backlog_home) -> None:
    import sqlite3

    from backlog_ops.ledger.migrations import MIGRATIONS, MigrationConnection

    backlog_home.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(backlog_home / "ledger.db")
    db.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, migration in MIGRATIONS[:5]:  # the release before m006_add_ticket_source
        migration(MigrationConnection(db, "sqlite"))
        db.execute("INSERT INTO schema_migrations VALUES (?, 'then')", (name,))
    db.execute("INSERT INTO calls (call_id, started_at, status, ticket_id, cost_usd) VALUES ('old', '2026-01-01', 'success', 'FEAT-1', 1.5)")
    db.commit()
    db.close()
    with SqliteLedger(backlog_home / "ledger.db") as ledger:
        assert "m006_add_ticket_source" in ledger.applied_migrations()
        assert ledger.rows()[0]["ticket_source"] is None
        assert ledger.ticket("FEAT-1", by="ticket_source")["breakdown"][0]["key"] == "set"


@pytest.mark.services
def test_the_redis_store_keeps_the_mark_and_the_same_precedence(redis_url) -> None:
    import uuid

    from backlog_ops.context.redis_store import RedisContextResolver, RedisContextStore
    from backlog_ops.project.branch import inferred_context

    prefix = f"backlog-test-{uuid.uuid4().hex[:8]}:"
    store = RedisContextStore(redis_url, prefix=prefix)
    try:
        resolver = RedisContextResolver(store, max_age=0)
        store.set(inferred_context("FEAT-001", "shop-api"), Scope(SID))
        found = resolver.resolve(SID)
        assert found.context["ticket_source"] == "branch" and "ticket_source:branch" in found.tags
        store.set({"ticket_id": "OPS-9", "gate": "implement", "agent_type": "infra"})
        assert resolver.resolve(SID).context["ticket_id"] == "OPS-9", "a set global context wins over an inferred one"
        store.clear()
        assert resolver.resolve(SID).context["ticket_id"] == "FEAT-001"
    finally:
        for key in store.redis.scan_iter(match=f"{prefix}*"):
            store.redis.delete(key)
