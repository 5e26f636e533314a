"""`backlog-ops import transcripts`: Claude Code transcripts attributed by time, nothing counted twice."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from backlog_ops.cli.main import main  # noqa: E402
from backlog_ops.common.times import format_time  # noqa: E402
from backlog_ops.context.scope import Scope
from backlog_ops.ledger import CallRecord, SqliteLedger  # noqa: E402
from backlog_ops.common.prices import cost_from_usage  # noqa: E402
from backlog_ops.reports.views import spend_view  # noqa: E402
from backlog_ops.context.file_store import ContextStore
from backlog_ops.capture.transcripts import import_transcripts, render_report  # noqa: E402
from backlog_ops.cli.import_cmd import file_progress  # noqa: E402

T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z
MODEL = "claude-sonnet-4-5-20250929"
CWD = "/home/dev/my-api"
S1 = "5b0c6a4e-1f2d-4c3b-9a8e-7d6f5e4d3c2b"  # main + subagent, attributed by time
S2 = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"  # before any context, and an unpriced model
S3 = "9e8d7c6b-5a49-4837-a625-1403f2e1d0c9"  # partly through the proxy
S4 = "77777777-8888-4999-aaaa-bbbbbbbbbbbb"  # through an old proxy that recorded no session id
AGENT = "a4f2e91c07b3d5e86"


# -- realistic transcripts ------------------------------------------------------------------


def usage(inp: int, out: int, read: int = 0, write: int = 0) -> dict:
    return {
        "input_tokens": inp, "cache_creation_input_tokens": write, "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": write, "ephemeral_1h_input_tokens": 0},
        "output_tokens": out, "service_tier": "standard",
    }


def assistant(session: str, at: float, request_id: str | None, message_id: str, u: dict, *, model: str = MODEL,
              block: str = "text", agent: str | None = None, stop: str | None = "end_turn") -> dict:
    content = {"thinking": {"type": "thinking", "thinking": "...", "signature": "sig"},
               "text": {"type": "text", "text": "Done."},
               "tool_use": {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": "Read",
                            "input": {"file_path": f"{CWD}/app.py"}}}[block]
    entry = {
        "parentUuid": str(uuid.uuid4()), "isSidechain": agent is not None, "userType": "external", "cwd": CWD,
        "sessionId": session, "version": "2.1.197", "gitBranch": "main",
        "message": {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": [content],
                    "stop_reason": stop, "stop_sequence": None, "usage": u},
        "type": "assistant", "uuid": str(uuid.uuid4()), "timestamp": format_time(at).replace("+00:00", "Z"),
    }
    if request_id is not None:
        entry["requestId"] = request_id
    if agent is not None:
        entry["agentId"] = agent
    return entry


def user(session: str, at: float, text: str, agent: str | None = None) -> dict:
    entry = {"parentUuid": None, "isSidechain": agent is not None, "userType": "external", "cwd": CWD,
             "sessionId": session, "version": "2.1.197", "type": "user",
             "message": {"role": "user", "content": text}, "uuid": str(uuid.uuid4()),
             "timestamp": format_time(at).replace("+00:00", "Z")}
    if agent:
        entry["agentId"] = agent
    return entry


def write_jsonl(path: Path, lines: list, tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text + tail)


TORN = json.dumps(assistant(S1, T0 + 1300, "req_m4", "msg_m4", usage(9, 40, 1000, 0)))


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    """~/.claude/projects with one project: three sessions, a subagent, and the messes real files have."""
    root = tmp_path / "claude" / "projects"
    proj = root / "-home-dev-my-api"
    write_jsonl(proj / f"{S1}.jsonl", [
        {"type": "summary", "summary": "Implement FEAT-2", "leafUuid": str(uuid.uuid4())},
        {"type": "file-history-snapshot", "messageId": str(uuid.uuid4()), "snapshot": {}},
        user(S1, T0 + 40, "plan it"),
        assistant(S1, T0 + 50, "req_m1", "msg_m1", usage(12, 300, 5000, 2000)),           # global: FEAT-1 plan
        user(S1, T0 + 140, "implement it"),
        # One response over three lines (thinking, text, tool_use); output grows as it streams.
        assistant(S1, T0 + 150, "req_m2", "msg_m2", usage(3, 5, 20000, 1500), block="thinking", stop=None),
        assistant(S1, T0 + 150.4, "req_m2", "msg_m2", usage(3, 5, 20000, 1500), block="text", stop=None),
        assistant(S1, T0 + 151, "req_m2", "msg_m2", usage(3, 120, 20000, 1500), block="tool_use", stop="tool_use"),
        {"type": "progress", "hookEvent": "PostToolUse"},
        '{"type": "assistant", "message": {"id": "msg_tor',                                # torn by a crash
        assistant(S1, T0 + 1200, "req_m3", "msg_m3", usage(7, 60, 21000, 0)),             # after the clear: global
        assistant(S1, T0 + 1250, None, "msg_syn", usage(0, 0), model="<synthetic>"),      # an API error placeholder
        "[1, 2, 3]",
        assistant(S1, T0 + 1260, "req_bad", "msg_bad", {"input_tokens": "12", "output_tokens": 3}),
    ], tail=TORN[:40])  # a line still being written: left for the next run
    write_jsonl(proj / S1 / "subagents" / f"agent-{AGENT}.jsonl", [
        user(S1, T0 + 240, "review the diff", agent=AGENT),
        assistant(S1, T0 + 250, "req_s1", "msg_s1", usage(4, 80, 9000, 300), agent=AGENT),       # agent scope
        assistant(S1, T0 + 600, None, "msg_s2", usage(5, 90, 9500, 0), agent=AGENT),             # agent expired
    ])
    (proj / S1 / "subagents" / f"agent-{AGENT}.meta.json").write_text('{"agentType": "reviewer"}')
    write_jsonl(proj / f"{S2}.jsonl", [
        assistant(S2, T0 - 7200, "req_n1", "msg_n1", usage(100, 10)),                            # no context yet
        assistant(S2, T0 + 60, "req_k1", "msg_k1", usage(100, 10), model="kimi-for-coding"),      # no price
    ])
    write_jsonl(proj / f"{S3}.jsonl", [
        assistant(S3, T0 + 300, "req_p1", "msg_p1", usage(10, 50, 3000, 100)),
        assistant(S3, T0 + 360, "req_p2", "msg_p2", usage(11, 70, 3100, 0)),
        assistant(S3, T0 + 420, "req_p3", "msg_p3", usage(12, 75, 3200, 0)),   # the proxy counted it otherwise
        assistant(S3, T0 + 7200, "req_p4", "msg_p4", usage(13, 80, 3300, 0)),  # resumed later, straight to Anthropic
    ])
    write_jsonl(proj / f"{S4}.jsonl", [assistant(S4, T0 + 500, "req_q1", "msg_q1", usage(20, 30, 400, 0))])
    return root


@pytest.fixture
def history() -> None:
    """The context history, written by the real store at the times the story happened."""
    store = ContextStore()
    store.set({"ticket_id": "FEAT-1", "gate": "plan", "agent_type": "planner", "project": "my-api"}, now=T0 - 3600)
    store.set({"ticket_id": "FEAT-2", "gate": "implement", "agent_type": "backend", "project": "my-api",
               "skill": "implementer"}, Scope(S1), now=T0 + 100)
    store.set({"ticket_id": "FEAT-2", "gate": "review", "agent_type": "reviewer", "project": "my-api"},
              Scope(S1, AGENT), ttl=300, now=T0 + 200)
    store.set({"ticket_id": "FEAT-3", "gate": "implement", "agent_type": "backend"}, Scope(S3), now=T0 + 10)
    store.clear(Scope(S1), now=T0 + 1000)


@pytest.fixture
def proxy_rows(backlog_home: Path) -> None:
    """What the gateway recorded for S3 (until it was resumed elsewhere) and for S4."""
    def row(call_id, session, at, prompt, completion, model="claude-sonnet-4-5"):
        return CallRecord(call_id=call_id, started_at=format_time(at), status="success", source="proxy",
                          session_id=session, ticket_id="FEAT-3", gate="implement", model=model,
                          provider="anthropic", prompt_tokens=prompt, completion_tokens=completion, cost_usd=0.01)
    with SqliteLedger(backlog_home / "ledger.db") as ledger:
        ledger.record_many([
            row("litellm-1", S3, T0 + 297, 10 + 3000 + 100, 50),
            row("litellm-2", S3, T0 + 358, 11 + 3100, 70),
            row("litellm-3", S3, T0 + 418, 12 + 3200, 74),  # one token off: no row-by-row match
            row("litellm-4", None, T0 + 498, 20 + 400, 30),
        ])


def ledger_rows(home: Path, source: str = "transcript") -> dict[str, dict]:
    with SqliteLedger(home / "ledger.db") as ledger:
        return {r["call_id"]: r for r in ledger.rows("WHERE source = ?", (source,))}


def price(inp, out, read=0, write=0, model=MODEL):
    return cost_from_usage(model, "anthropic", inp + read + write, out, read, write)


# -- tests ----------------------------------------------------------------------------------------


def test_import_attributes_each_request_to_its_context_at_that_time(projects, history, proxy_rows, backlog_home) -> None:
    report = import_transcripts(projects)
    rows = ledger_rows(backlog_home)
    attributed = {cid.removeprefix("transcript:"): (r["ticket_id"], r["gate"], r["agent_type"], r["agent_id"])
                  for cid, r in rows.items()}
    assert attributed == {
        "req_m1": ("FEAT-1", "plan", "planner", None),             # global: S1 had no context yet
        "req_m2": ("FEAT-2", "implement", "backend", None),        # S1's session context
        "req_m3": ("FEAT-1", "plan", "planner", None),             # S1 cleared: back to global
        "req_s1": ("FEAT-2", "review", "reviewer", AGENT),         # the subagent's own context
        "msg_s2": ("FEAT-2", "implement", "backend", AGENT),       # agent context expired: the session's
        "req_n1": (None, None, None, None),                        # before anything was set
        "req_k1": ("FEAT-1", "plan", "planner", None),
        "req_p4": ("FEAT-3", "implement", "backend", None),        # S3 resumed without the proxy
    }
    m2 = rows["transcript:req_m2"]
    # Three lines, one request, the final output count; prompt tokens include the cache, as LiteLLM counts.
    assert (m2["prompt_tokens"], m2["completion_tokens"], m2["cache_read_tokens"], m2["cache_write_tokens"]) == (
        3 + 20000 + 1500, 120, 20000, 1500)
    assert m2["cost_usd"] == pytest.approx(price(3, 120, 20000, 1500))
    assert m2["cost_usd"] < cost_from_usage(MODEL, "anthropic", 3 + 20000 + 1500, 120)  # cache reads are cheaper
    assert (m2["source"], m2["session_id"], m2["skill"], m2["provider"], m2["model"]) == (
        "transcript", S1, "implementer", "anthropic", MODEL)
    assert rows["transcript:req_m2"]["started_at"] == format_time(T0 + 150)
    assert rows["transcript:req_k1"]["cost_usd"] == 0.0

    assert report["imported"]["requests"] == 8 and report["imported"]["subagent_requests"] == 2
    assert report["imported"]["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows.values()))
    assert report["skipped"] == {"proxied_matched": 3, "proxied_session": 1, "duplicate": 0, "synthetic": 1}
    assert report["lines_merged"] == 2
    un = report["unattributed"]
    assert un["no_context"]["count"] == 1 and f"{S2}.jsonl:1" in un["no_context"]["examples"][0]
    assert un["unknown_price"]["count"] == 1 and un["unknown_price"]["models"] == {"kimi-for-coding": 1}
    assert un["malformed"]["count"] == 3
    assert [e.split(".jsonl:")[1] for e in un["malformed"]["examples"]] == [
        "10: not JSON", "13: not a JSON object", "14: usage.input_tokens is not a token count: '12'"]
    text = render_report(report)
    assert "    3 already recorded by the proxy" in text and "kimi-for-coding (1)" in text and "malformed: 3 lines" in text


def test_reimport_adds_nothing_and_appended_lines_are_picked_up(projects, history, proxy_rows, backlog_home) -> None:
    import_transcripts(projects)
    before = ledger_rows(backlog_home)
    again = import_transcripts(projects)
    assert again["files"]["unchanged"] == again["files"]["found"] == 5 and again["files"]["read"] == 0
    assert again["imported"]["requests"] == 0
    assert ledger_rows(backlog_home) == before

    # Claude Code goes on writing: the torn line is completed, a later snapshot of m3 arrives, and
    # a new request. Only this file is read again, from where the last run stopped.
    main_file = next(projects.rglob(f"{S1}.jsonl"))
    with open(main_file, "a") as fh:
        fh.write(TORN[40:] + "\n")
        fh.write(json.dumps(assistant(S1, T0 + 1201, "req_m3", "msg_m3", usage(7, 95, 21000, 0), block="tool_use")) + "\n")
    third = import_transcripts(projects)
    assert third["files"]["read"] == 1 and third["files"]["unchanged"] == 4
    assert third["unattributed"]["malformed"]["count"] == 0  # old malformed lines are not read again
    after = ledger_rows(backlog_home)
    assert set(after) - set(before) == {"transcript:req_m4"}
    assert after["transcript:req_m3"]["completion_tokens"] == 95  # the larger count wins
    assert after["transcript:req_m3"]["started_at"] == before["transcript:req_m3"]["started_at"]
    assert after["transcript:req_m4"]["ticket_id"] == "FEAT-1"
    assert import_transcripts(projects)["imported"]["requests"] == 0


def test_a_replaced_file_is_read_again_without_duplicates(projects, history, backlog_home) -> None:
    import_transcripts(projects)
    count = len(ledger_rows(backlog_home))
    f = next(projects.rglob(f"{S2}.jsonl"))
    content = f.read_text()
    f.unlink()  # rewritten by a sync tool, one line longer AT THE START (the inode may well be reused)
    f.write_text(json.dumps(assistant(S2, T0 - 7300, "req_n0", "msg_n0", usage(100, 10))) + "\n" + content)
    report = import_transcripts(projects)
    assert report["files"]["read"] == 1 and report["imported"]["requests"] == 3
    assert report["unattributed"]["malformed"]["count"] == 0  # not read from the old offset, mid-line
    assert len(ledger_rows(backlog_home)) == count + 1


def test_a_resumed_session_copy_counts_once(tmp_path, history, backlog_home) -> None:
    proj = tmp_path / "projects" / "p"
    line = assistant(S2, T0 + 5, "req_r1", "msg_r1", usage(10, 10))
    write_jsonl(proj / f"{S2}.jsonl", [line])
    write_jsonl(proj / "ffffffff-0000-4000-8000-000000000000.jsonl", [line])
    report = import_transcripts(tmp_path / "projects")
    assert report["imported"]["requests"] == 1 and report["skipped"]["duplicate"] == 1
    assert len(ledger_rows(backlog_home)) == 1


def test_spend_counts_proxy_direct_and_transcript_once_each(projects, history, proxy_rows, backlog_home) -> None:
    with SqliteLedger(backlog_home / "ledger.db") as ledger:
        ledger.record_many([CallRecord(call_id="direct:1", started_at=format_time(T0 + 30), status="success",
                                       source="direct", ticket_id="FEAT-3", gate="implement", model="gpt-4o-mini",
                                       prompt_tokens=100, completion_tokens=10, cost_usd=0.5)])
    import_transcripts(projects)
    import_transcripts(projects)
    report = spend_view(ticket="FEAT-3", by="source")
    by_source = {r["source"]: (r["calls"], round(r["cost_usd"], 6)) for r in report["rows"]}
    assert by_source["proxy"] == (4, 0.04)
    assert by_source["direct"] == (1, 0.5)
    assert by_source["transcript"] == (1, round(price(13, 80, 3300), 6))  # only req_p4: the rest went through the proxy


def test_cli_dry_run_json_then_import(projects, history, backlog_home) -> None:
    cli = Path(sys.executable).parent / "backlog-ops"
    env = {**os.environ, "BACKLOG_HOME": str(backlog_home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    r = subprocess.run([str(cli), "import", "transcripts", str(projects), "--dry-run", "--json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["dry_run"] and report["imported"]["requests"] == 12
    assert not (backlog_home / "ledger.db").exists() and not (backlog_home / "transcripts-import.json").exists()

    out = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, out
    try:
        assert main(["import", "transcripts", str(projects)]) == 0
    finally:
        sys.stdout = sys_stdout
    assert "imported 12 requests (2 from subagents)" in out.getvalue()
    assert "no context at that time: 1 request (" in out.getvalue()
    assert len(ledger_rows(backlog_home)) == 12
    assert main(["import", "transcripts", str(projects / "nope")]) == 1


def test_default_root_follows_claude_config_dir(projects, history, backlog_home, monkeypatch) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(projects.parent))
    report = import_transcripts(None)
    assert report["root"] == str(projects) and report["imported"]["requests"] == 12
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(projects.parent / "empty"))
    assert import_transcripts(None)["files"]["found"] == 0


def test_progress_bar_on_large_directories(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("BACKLOG_PROGRESS", raising=False)

    def shown(count: int, tty: bool) -> str:
        stream = io.StringIO()
        assert list(file_progress(stream, tty=tty)(list(range(count)))) == list(range(count))
        return stream.getvalue()

    tty = shown(25, tty=True)
    assert "\r  [" in tty and tty.endswith("25/25 files\n")
    assert shown(5, tty=True) == ""  # a handful of files: no bar

    log = shown(2000, tty=False)
    lines = log.splitlines()
    assert 10 <= len(lines) <= 12 and "\r" not in log  # a CI log gets a line per 10%
    assert lines[-1] == "  2000/2000 files (100%)"
    assert shown(999, tty=False) == ""

    monkeypatch.setenv("BACKLOG_PROGRESS", "1")
    assert shown(5, tty=True).endswith("5/5 files\n")
    monkeypatch.setenv("BACKLOG_PROGRESS", "0")
    assert shown(25, tty=True) == ""


def test_many_files_import_then_reimport_reads_none_of_them(tmp_path, history, backlog_home) -> None:
    # How fast is measured in bench/transcript_import.py, never asserted here.
    root = tmp_path / "projects"
    for n in range(300):
        sid = f"{n:08d}-0000-4000-8000-000000000000"
        write_jsonl(root / "p" / f"{sid}.jsonl", [
            user(sid, T0 + n, "hi"),
            *(assistant(sid, T0 + n + k, f"req_{n}_{k}", f"msg_{n}_{k}", usage(5, 10, 100)) for k in range(10)),
        ])
    first = import_transcripts(root)
    second = import_transcripts(root)
    assert first["imported"]["requests"] == 3000 and len(ledger_rows(backlog_home)) == 3000
    assert second["files"] == {"found": 300, "read": 0, "unchanged": 300} and second["imported"]["requests"] == 0


def test_lines_without_usage_are_skipped_unparsed_and_broken_ones_still_reported(tmp_path, backlog_home) -> None:
    """The cheap test before parsing: "usage" in a tool result is not a request; a torn line is still malformed."""
    sid = str(uuid.uuid4())
    quoting = user(sid, T0 + 1, "x")
    quoting["message"]["content"] = [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": '{"usage": {"input_tokens": 999, "output_tokens": 999}}'}]
    user_with_usage = {**user(sid, T0 + 2, "y"), "message": {"role": "user", "content": "z", "usage": usage(5, 5)}}
    no_usage = assistant(sid, T0 + 3, "req_nu", "msg_nu", usage(1, 1))
    del no_usage["message"]["usage"]
    root = tmp_path / "projects"
    write_jsonl(root / "p" / f"{sid}.jsonl", [
        quoting,                                                            # 1: the word "usage" in a tool result
        user_with_usage,                                                    # 2: usage on a user line: not a response
        json.dumps(user(sid, T0 + 4, "torn"))[:-5],                          # 3: torn, no usage in it
        "  " + json.dumps(user(sid, T0 + 5, "indented")),                    # 4: not starting with '{': parsed, fine
        no_usage,                                                           # 5: an assistant line without usage
        "",                                                                 # blank: not a line
        assistant(sid, T0 + 6, "req_ok", "msg_ok", usage(7, 8, 9, 10)),      # 7: the one request
        "[1]",                                                              # 8
        assistant(sid, T0 + 7, "req_min", "msg_min", {"input_tokens": 3, "output_tokens": 4}),  # 9: no cache counts
    ])
    report = import_transcripts(root)
    rows = ledger_rows(backlog_home)
    assert sorted(rows) == ["transcript:req_min", "transcript:req_ok"]
    assert (rows["transcript:req_ok"]["prompt_tokens"], rows["transcript:req_ok"]["completion_tokens"]) == (7 + 9 + 10, 8)
    assert [rows["transcript:req_min"][k] for k in ("prompt_tokens", "completion_tokens", "cache_read_tokens")] == [3, 4, 0]
    assert report["lines"] == 8
    assert [e.split(".jsonl:")[1] for e in report["unattributed"]["malformed"]["examples"]] == [
        "3: not JSON", "5: assistant message without usage", "8: not a JSON object"]


def test_claude_code_timestamps_take_the_fast_path_with_the_same_result() -> None:
    from datetime import datetime

    from backlog_ops.common.times import iso_to_epoch

    for text in ("2026-05-28T20:26:40.123Z", "2024-02-29T23:59:59.999Z", "1999-12-31T00:00:00.000Z"):
        assert iso_to_epoch(text) == pytest.approx(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp(), abs=1e-6)
    with pytest.raises(ValueError):
        iso_to_epoch("2026-02-30T10:00:00.000Z")  # no such day, whichever path reads it


# -- no context at all: the ticket the line's git branch names ---------------------------------------


def on_branch(entry: dict, branch: str, cwd: Path) -> dict:
    return {**entry, "gitBranch": branch, "cwd": str(cwd)}


def test_requests_nothing_attributed_take_the_ticket_of_their_branch(tmp_path, backlog_home) -> None:
    shop, plain, broken = tmp_path / "shop", tmp_path / "plain", tmp_path / "broken"
    for directory in (shop, plain, broken):
        directory.mkdir()
    (shop / "backlog.config.json").write_text(json.dumps({"project": {"name": "shop-api"}}))
    (plain / "backlog.config.json").write_text(json.dumps({"attribution": {"inferFromBranch": False}}))
    (broken / "backlog.config.json").write_text(json.dumps({"attribution": {"branchTicketPattern": "(oops"}}))
    s5, s6, s7 = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    # Session s5 has a context set from T0 + 100 on: before it, only its branch says the ticket.
    ContextStore().set({"ticket_id": "FEAT-500", "gate": "implement", "agent_type": "backend"}, Scope(s5), now=T0 + 100)
    root = tmp_path / "projects"
    write_jsonl(root / "-shop" / f"{s5}.jsonl", [
        on_branch(assistant(s5, T0, "req_b1", "msg_b1", usage(10, 20)), "feat/FEAT-404-search", shop),
        on_branch(assistant(s5, T0 + 150, "req_b2", "msg_b2", usage(10, 20)), "feat/FEAT-404-search", shop),
        on_branch(assistant(s5, T0 - 50, "req_b3", "msg_b3", usage(10, 20)), "main", shop),
    ])
    write_jsonl(root / "-shop" / s5 / "subagents" / f"agent-{AGENT}.jsonl", [
        on_branch(assistant(s5, T0 + 10, "req_b4", "msg_b4", usage(10, 20), agent=AGENT), "feat/FEAT-404-search", shop),
    ])
    write_jsonl(root / "-plain" / f"{s6}.jsonl", [
        on_branch(assistant(s6, T0, "req_b5", "msg_b5", usage(10, 20)), "feat/FEAT-405", plain)])
    write_jsonl(root / "-broken" / f"{s7}.jsonl", [
        on_branch(assistant(s7, T0, "req_b6", "msg_b6", usage(10, 20)), "feat/FEAT-406", broken),
        on_branch(assistant(s7, T0 + 1, "req_b7", "msg_b7", usage(10, 20)), "feat/FEAT-406", broken)])

    report = import_transcripts(root)
    rows = {cid.removeprefix("transcript:"): (r["ticket_id"], r["gate"], r["agent_type"], r["project"], r["ticket_source"])
            for cid, r in ledger_rows(backlog_home).items()}
    assert rows == {
        "req_b1": ("FEAT-404", "unspecified", "main", "shop-api", "branch"),      # nothing set: the branch's ticket
        "req_b2": ("FEAT-500", "implement", "backend", None, None),               # a set context wins
        "req_b3": (None, None, None, None, None),                                 # main names no ticket
        "req_b4": ("FEAT-404", "unspecified", "subagent", "shop-api", "branch"),
        "req_b5": (None, None, None, None, None),                                 # inferFromBranch: false
        "req_b6": (None, None, None, None, None),                                 # settings that cannot be read
        "req_b7": (None, None, None, None, None),
    }
    assert report["imported"]["inferred_from_branch"] == 2
    assert report["unattributed"]["no_context"]["count"] == 4
    config = report["unattributed"]["config"]
    assert config["count"] == 1 and "attribution.branchTicketPattern: not a valid regular expression" in config["examples"][0]
    text = render_report(report)
    assert "2 on tickets inferred from the git branch" in text
    assert "project settings that could not be read: 1 file, no ticket inferred from their branches" in text


def test_bulk_writes_defer_checkpoints_and_restore_them(tmp_path) -> None:
    """The import's ledger block: no automatic WAL checkpoint inside, the usual one after, rows kept."""
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        with ledger.bulk_writes():
            assert ledger.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
            ledger.record_many([CallRecord(call_id=f"c{i}", started_at=format_time(T0 + i), status="success",
                                           source="transcript") for i in range(3)])
        assert ledger.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        assert len(ledger.rows()) == 3


# -- read by worker processes ---------------------------------------------------------------------


def _busy_projects(projects: Path) -> Path:
    """The `projects` fixture and more: a dozen sessions whose responses span lines, one copied into a
    resumed session's transcript, a FIFO, a dangling link and a file of broken lines."""
    proj = projects / "-home-dev-other"
    for n in range(12):
        sid = f"{n:08d}-1111-4000-8000-000000000000"
        write_jsonl(proj / f"{sid}.jsonl", [
            user(sid, T0 + n, "go"),
            *(assistant(sid, T0 + n * 10 + k, f"req_b{n}_{k // 2}", f"msg_b{n}_{k // 2}", usage(5 + k, 10 * k, 100, 7),
                        block="text" if k % 2 else "thinking") for k in range(8)),
        ])
    first = json.loads((proj / "00000000-1111-4000-8000-000000000000.jsonl").read_text().splitlines()[1])
    write_jsonl(proj / "ffffffff-1111-4000-8000-000000000000.jsonl", [first])  # a resumed session's copy
    os.mkfifo(proj / "fifo.jsonl")
    (proj / "dangling.jsonl").symlink_to(projects / "nowhere")
    write_jsonl(proj / "broken.jsonl", ['{"type": "assistant", "message": {"id"', "[1]"])
    return projects


def test_workers_and_one_process_write_the_same_rows_and_report(projects, history, proxy_rows, backlog_home,
                                                                tmp_path, monkeypatch) -> None:
    import shutil

    _busy_projects(projects)
    other_home = tmp_path / "other-home"
    shutil.copytree(backlog_home, other_home)  # the same context history and proxy rows
    alone = import_transcripts(projects, jobs=1)
    monkeypatch.setenv("BACKLOG_HOME", str(other_home))
    workers = import_transcripts(projects, jobs=3)

    assert alone["reading_processes"] == 1 and workers["reading_processes"] == 3
    assert {**workers, "reading_processes": 1} == alone
    with SqliteLedger(backlog_home / "ledger.db") as a, SqliteLedger(other_home / "ledger.db") as b:
        rows_alone, rows_workers = a.rows("ORDER BY call_id", ()), b.rows("ORDER BY call_id", ())
    assert rows_workers == rows_alone and len(rows_alone) == 12 * 4 + 8 + 4  # the new sessions, the fixture's, the proxy's
    assert alone["skipped"]["duplicate"] == 1 and alone["lines_merged"] >= 12 * 4


def test_a_bad_file_read_by_a_worker_is_counted_and_named(projects, backlog_home) -> None:
    _busy_projects(projects)
    report = import_transcripts(projects, jobs=2)
    assert report["reading_processes"] == 2
    un = report["unattributed"]
    assert un["not_regular"]["count"] == 1 and un["not_regular"]["examples"][0].endswith(
        "fifo.jsonl: not a regular file (a FIFO)")
    assert un["unreadable"]["count"] == 1 and "dangling.jsonl: " in un["unreadable"]["examples"][0]
    broken = [e for e in un["malformed"]["examples"] if "broken.jsonl" in e]
    assert [e.split("broken.jsonl:")[1] for e in broken] == ["1: not JSON", "2: not a JSON object"]
    text = render_report(report)
    assert "read (by 2 processes)" in text and "fifo.jsonl" in text
    # Nothing changed: nothing read again, no process started (the FIFO and the link are only
    # looked at, and said again), nothing imported twice.
    again = import_transcripts(projects, jobs=2)
    assert again["imported"]["requests"] == 0 and again["files"]["read"] == 0 and again["reading_processes"] == 1
    assert again["unattributed"]["not_regular"]["count"] == again["unattributed"]["unreadable"]["count"] == 1


_READ_IN_WORKER = None  # the real one, while a test has workers die


def _dies_on_one_file(path: str, prior):
    if path.endswith("00000003-1111-4000-8000-000000000000.jsonl"):
        os._exit(3)  # killed: out of memory, or by the user
    return _READ_IN_WORKER(path, prior)


def test_a_worker_that_dies_loses_no_file(projects, backlog_home, monkeypatch) -> None:
    import multiprocessing

    from backlog_ops.capture.transcripts import reading

    _busy_projects(projects)
    expected = import_transcripts(projects, jobs=1, dry_run=True)["imported"]
    monkeypatch.setattr(sys.modules[__name__], "_READ_IN_WORKER", reading._read_in_worker)
    monkeypatch.setattr(reading, "_read_in_worker", _dies_on_one_file)
    # fork: the workers run the modules as patched here
    monkeypatch.setattr(reading, "_start_method", lambda: multiprocessing.get_context("fork"))
    read_here: list[str] = []  # files this process read itself (a worker's list is its own)
    real_read_file = reading.read_file
    monkeypatch.setattr(reading, "read_file", lambda path, prior: read_here.append(path.name) or real_read_file(path, prior))
    report = import_transcripts(projects, jobs=2)
    assert report["imported"] == expected and len(ledger_rows(backlog_home)) == expected["requests"]
    assert "00000003-1111-4000-8000-000000000000.jsonl" in read_here  # the dead worker's file, read again here


def test_workers_are_chosen_for_a_large_import_with_idle_cores(monkeypatch) -> None:
    from backlog_ops.capture.transcripts import reading

    monkeypatch.setattr(reading, "_cores", lambda: 4)
    large = reading.PARALLEL_MIN_BYTES
    for load, workers in ((0.2, 4), (1.4, 4), (1.6, 3), (2.9, 2), (3.4, 2), (3.6, 0), (12.0, 0)):
        monkeypatch.setattr(reading, "_load_average", lambda load=load: load)
        assert reading.worker_count(None, 100, large) == workers, load
    monkeypatch.setattr(reading, "_load_average", lambda: 0.0)
    assert reading.worker_count(None, 100, large - 1) == 0  # small: one process
    assert reading.worker_count(None, 1, large * 10) == 0  # one file: one process
    assert reading.worker_count(2, 100, 1) == 2 and reading.worker_count(1, 100, large) == 0  # as asked
    assert reading.worker_count(2, 100, 0) == 0  # nothing to parse (FIFOs, dangling links): looked at here
