"""Caller tags that break the field rules, through the real proxy; and what `spend` prints of them.

A request's own `ticket:` tag wins over the stored context, so its value must obey the same
rules as a context's: a tag that does not (`../../x`, NUL and ANSI escapes, a megabyte) is dropped
from the request, the call goes on attributed to the stored context, and the proxy log says so
once, escaped. Whatever is in the ledger, `spend` never prints a control character.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from backlog_ops.context.fields import fields_from_tags, tag_problem
from backlog_ops.context.file_store import ContextStore
from backlog_ops.context.scope import Scope
from backlog_ops.ledger import CallRecord, SqliteLedger
from backlog_ops.testing.mock_upstream import MockUpstream

from proxy_support import start_proxy, wait_for_probe, wait_for_rows, write_config

ESCAPES = "\x00\x1b[31mRED\x1b]0;owned\x07\x9b2J"
HUGE = "A" * (1024 * 1024)
BAD_VALUES = ["../../x", "FEAT-1" + ESCAPES, HUGE, "FEAT 1", "/etc/passwd"]
CONTROL = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))]


def _has_control(text: str) -> bool:
    return any(c in text for c in CONTROL)


# -- the rule, in plain Python ---------------------------------------------------------------------


@pytest.mark.parametrize("value", BAD_VALUES, ids=["dotdot", "escapes", "1MB", "space", "path"])
def test_a_tag_value_that_breaks_the_rule_is_not_a_field(value) -> None:
    assert tag_problem(f"ticket:{value}") is not None
    # The next ticket: tag (the tagger's own, from the stored context) applies instead.
    assert fields_from_tags([f"ticket:{value}", "gate:plan", "ticket:FEAT-9"]) == {"ticket_id": "FEAT-9", "gate": "plan"}


def test_valid_and_foreign_tags_are_left_alone() -> None:
    for tag in ("ticket:OPS-9", "skill:backlog-ops:backlog-implementer", "ticket:", "critical", "free text \x1b", 42):
        assert tag_problem(tag) is None
    assert fields_from_tags(["ticket:OPS-9", "skill:a:b"]) == {"ticket_id": "OPS-9", "skill": "a:b"}


# -- through the real proxy ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    root = tmp_path_factory.mktemp("caller-tags")
    with MockUpstream() as upstream:
        config = write_config(root / "config", upstream.base_url, extra_callbacks=["slo_probe.probe"])
        proc = start_proxy(root / "home", config, probe_file=root / "probe.jsonl")
        proc.probe_file = root / "probe.jsonl"
        proc.store = ContextStore(root / "home")
        proc.ledger_path = root / "home" / "ledger.db"
        try:
            with httpx.Client(base_url=proc.base_url, headers={"authorization": f"Bearer {proc.master_key}"}, timeout=60) as client:
                proc.client = client
                yield proc
        finally:
            proc.stop()


def _session(proxy) -> str:
    sid = str(uuid.uuid4())
    proxy.store.set({"ticket_id": "FEAT-1", "gate": "implement", "agent_type": "backend", "project": "my-api"}, Scope(sid))
    return sid


def _chat(proxy, sid: str, headers: dict | None = None, **body) -> str:
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **body}
    r = proxy.client.post("/v1/chat/completions", headers={"x-claude-code-session-id": sid, **(headers or {})}, json=payload)
    assert r.status_code == 200, r.text[:500]
    return r.headers["x-litellm-call-id"]


def _messages(proxy, sid: str, **body) -> str:
    payload = {"model": "claude-haiku", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **body}
    headers = {"x-claude-code-session-id": sid, "anthropic-version": "2023-06-01"}
    r = proxy.client.post("/v1/messages", headers=headers, json=payload)
    assert r.status_code == 200, r.text[:500]
    return r.headers["x-litellm-call-id"]


def _assert_attributed_to_the_stored_context(proxy, call_id: str, bad: str) -> None:
    row = wait_for_rows(proxy.ledger_path, [call_id])[call_id]
    assert (row["ticket_id"], row["gate"], row["project"]) == ("FEAT-1", "implement", "my-api")
    logged = wait_for_probe(proxy.probe_file, [call_id])[call_id]
    assert bad not in logged["request_tags"], "the bad tag reached LiteLLM's spend logs"
    assert "ticket:FEAT-1" in logged["request_tags"]


@pytest.mark.parametrize("value", BAD_VALUES, ids=["dotdot", "escapes", "1MB", "space", "path"])
def test_bad_ticket_tags_in_the_body_are_dropped(proxy, value) -> None:
    sid = _session(proxy)
    bad = f"ticket:{value}"
    call_id = _chat(proxy, sid, tags=[bad, "experiment"])
    _assert_attributed_to_the_stored_context(proxy, call_id, bad)
    assert "experiment" in wait_for_probe(proxy.probe_file, [call_id])[call_id]["request_tags"]


@pytest.mark.parametrize("value", BAD_VALUES, ids=["dotdot", "escapes", "1MB", "space", "path"])
def test_bad_tags_in_metadata_are_dropped_on_both_routes(proxy, value) -> None:
    sid = _session(proxy)
    bad = f"gate:{value}"
    call_id = _chat(proxy, sid, metadata={"tags": [f"ticket:{value}", bad]})
    _assert_attributed_to_the_stored_context(proxy, call_id, bad)
    call_id = _messages(proxy, sid, metadata={"tags": [f"ticket:{value}"]})
    _assert_attributed_to_the_stored_context(proxy, call_id, f"ticket:{value}")


@pytest.mark.parametrize("value", ["../../x", "FEAT-1\x1b[31mRED", "B" * 5000, "FEAT 1"], ids=["dotdot", "escape", "5k", "space"])
def test_bad_tags_in_the_x_litellm_tags_header_are_dropped(proxy, value) -> None:
    sid = _session(proxy)
    bad = f"ticket:{value}"
    # httpx sends bytes as they are; NUL cannot travel in a header at all.
    call_id = _chat(proxy, sid, headers={"x-litellm-tags": f"{bad},experiment".encode("latin-1")})
    _assert_attributed_to_the_stored_context(proxy, call_id, bad)


def test_a_valid_caller_ticket_still_wins_and_a_bad_session_id_is_not_stored(proxy) -> None:
    sid = _session(proxy)
    call_id = _chat(proxy, sid, tags=["ticket:OPS-9"])
    assert wait_for_rows(proxy.ledger_path, [call_id])[call_id]["ticket_id"] == "OPS-9"

    user_id = json.dumps({"session_id": "S\x1b[31m" + "x" * 10000})
    call_id = _messages(proxy, "", metadata={"user_id": user_id})
    row = wait_for_rows(proxy.ledger_path, [call_id])[call_id]
    assert row["session_id"] is None and row["ticket_id"] is None


def test_the_proxy_log_says_so_once_and_escaped(proxy) -> None:
    sid = _session(proxy)
    for _ in range(3):
        _chat(proxy, sid, tags=["skill:" + ESCAPES])
    log = proxy.log()
    assert "ignored a caller's tag 'skill:\\x00\\x1b[31mRED" in log
    assert log.count("ignored a caller's tag 'skill:") == 1
    # LiteLLM's own banner has colours; the caller's escapes must not reach the log raw.
    assert "\x1b[31mRED" not in log and "\x00" not in log and "\x07" not in log


# -- what `spend` prints of whatever is in the ledger ----------------------------------------------


@pytest.fixture
def dirty_ledger(backlog_home: Path) -> Path:
    """A ledger written before validation existed (or by hand): raw values in every text column."""
    path = backlog_home / "ledger.db"
    with SqliteLedger(path) as ledger:
        for i, ticket in enumerate(["FEAT-1" + ESCAPES, "\u202eevil", "T" * 200]):
            ledger.record_many([CallRecord(call_id=f"c{i}", started_at="2026-01-01T00:00:00.000+00:00", status="success",
                                     ticket_id=ticket, gate="g" + ESCAPES, project="p\x1b[2J", model="m\r\nX",
                                     prompt_tokens=10, completion_tokens=5, cost_usd=0.01)])
    return path


def _spend(*args: str) -> str:
    r = subprocess.run([str(Path(sys.executable).parent / "backlog-ops"), "spend", *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not _has_control(r.stderr)
    return r.stdout


def test_spend_table_and_csv_print_no_control_character(dirty_ledger) -> None:
    for args in ([], ["--csv"]):
        out = _spend(*args)
        assert not _has_control(out.replace("\r\n", "").replace("\n", "")), repr(out[:300])
        assert "\u202e" not in out
    table = _spend()
    assert "FEAT-1\\x00\\x1b[31mRED" in table and "\\u202eevil" in table
    assert "T" * 77 + "..." in table and "T" * 78 not in table  # long cells are cut in the table
    rows = list(csv.reader(io.StringIO(_spend("--csv"))))
    assert rows[0][:3] == ["ticket", "cost_usd", "calls"] and len(rows) == 4
    assert all(not _has_control("".join(r)) for r in rows)


def test_spend_breakdown_escapes_keys(dirty_ledger) -> None:
    with SqliteLedger(dirty_ledger) as ledger:
        ledger.record_many([CallRecord(call_id="c9", started_at="2026-01-01T00:00:00.000+00:00", status="success",
                                 ticket_id="FEAT-2", gate="g" + ESCAPES, model="m\r\nX", cost_usd=0.01)])
    for by in ("gate", "model"):
        for fmt in ([], ["--csv"]):
            out = _spend("FEAT-2", "--by", by, *fmt)
            assert not _has_control(out.replace("\r\n", "").replace("\n", "")), repr(out[:300])
    assert "m\\x0d\\x0aX" in _spend("FEAT-2", "--by", "model")


def test_spend_json_stays_valid_and_exact(dirty_ledger) -> None:
    out = _spend("--json")
    assert not _has_control(out.replace("\n", "")) and "\u202e" not in out
    tickets = {t["ticket"] for t in json.loads(out)["rows"]}
    assert tickets == {"FEAT-1" + ESCAPES, "\u202eevil", "T" * 200}
