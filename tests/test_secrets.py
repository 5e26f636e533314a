"""No database password in any form reaches a CLI error, the proxy log or an MCP tool result.

Each surface is tried with each DSN form: a URL's userinfo, a `?password=` URL, a libpq
`key=value` string (one malformed, so that libpq's own error quotes a piece of it), and
Redis's `redis://:pw@` and `?password=` forms.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client

from backlog_ops.common.secrets import MASK, dsn_secrets, scrub_dsn
from backlog_ops.gateway.process import ProxyProcess
from backlog_ops.mcp_server.caller import CallerResolver
from backlog_ops.mcp_server.server import build_server
from backlog_ops.testing.mock_upstream import MockUpstream

from proxy_support import write_config

PW = "pw-" + secrets.token_hex(8)
CLOSED = "127.0.0.1:1"  # nothing listens on port 1: every connection is refused at once

POSTGRES_FORMS = {
    "userinfo": f"postgresql://backlog:{PW}@{CLOSED}/ledger",
    "query": f"postgresql://backlog@{CLOSED}/ledger?sslmode=disable&password={PW}",
    "keyvalue": f"host=127.0.0.1 port=1 user=backlog password={PW} dbname=ledger connect_timeout=2",
    "keyvalue-quoted": f"host=127.0.0.1 port=1 password='{PW} x' dbname=ledger",
    # An unquoted password with a space: libpq answers 'missing "=" after "<the rest>"'.
    "keyvalue-malformed": f"host=127.0.0.1 port=1 password=ab {PW} dbname=ledger",
}
REDIS_FORMS = {
    "colon": f"redis://:{PW}@{CLOSED}/0",
    "user": f"redis://default:{PW}@{CLOSED}/0",
    "query": f"redis://{CLOSED}/0?password={PW}",
}


def _clean(text: str) -> None:
    assert PW not in text, text
    assert PW[3:] not in text, text  # not even the random part


# -- the scrubber ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dsn", [*POSTGRES_FORMS.values(), *REDIS_FORMS.values(), f"nats://{PW}@127.0.0.1:4222"],
                         ids=[*POSTGRES_FORMS, *(f"redis-{k}" for k in REDIS_FORMS), "nats-token"])
def test_scrub_dsn_masks_every_form_as_written(dsn) -> None:
    shown = scrub_dsn(f"cannot open {dsn}: failed", dsn)
    _clean(shown)
    assert MASK in shown
    if dsn != POSTGRES_FORMS["keyvalue-malformed"]:  # which word is a password there, only the DSN knows
        _clean(scrub_dsn(f"cannot open {dsn}: failed"))
    _clean(scrub_dsn(f"driver said {PW!r}", dsn))  # an echo of the value alone, given the DSN
    assert PW in dsn_secrets(dsn)


def test_scrub_dsn_keeps_what_helps_find_the_server() -> None:
    assert scrub_dsn("postgresql://postgres@127.0.0.1:5432/test") == "postgresql://postgres@127.0.0.1:5432/test"
    assert scrub_dsn(f"postgresql://u:{PW}@db.example:5432/x?sslmode=require") == "postgresql://u:***@db.example:5432/x?sslmode=require"
    assert scrub_dsn(f"host=db port=5432 password={PW} dbname=x") == "host=db port=5432 password=*** dbname=x"
    assert scrub_dsn(f"redis://127.0.0.1:6379/0?password={PW}&db=1") == "redis://127.0.0.1:6379/0?password=***&db=1"
    # Percent-encoded in the URL, decoded in the driver's message: both go.
    assert PW not in scrub_dsn(f"bad password p@{PW}", f"postgresql://u:p%40{PW}@h/db")


def test_secrets_from_the_environment_are_masked_without_being_passed(monkeypatch) -> None:
    monkeypatch.setenv("BACKLOG_LEDGER_URL", POSTGRES_FORMS["keyvalue"])
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-" + PW)
    _clean(scrub_dsn(f"connection to server failed near '{PW}' with key sk-{PW}"))


# -- the CLI's errors ------------------------------------------------------------------------------


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "backlog-ops"), *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("form", list(POSTGRES_FORMS))
def test_cli_errors_never_show_a_ledger_password(form) -> None:
    for args in (["spend"], ["spend", "FEAT-1", "--by", "gate"]):
        r = _cli({"BACKLOG_LEDGER_URL": POSTGRES_FORMS[form]}, *args)
        assert r.returncode == 1, r.stderr
        _clean(r.stdout + r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("backlog-ops: error: cannot open ledger "), r.stderr
        assert "Traceback" not in r.stderr


@pytest.mark.parametrize("form", list(REDIS_FORMS))
def test_cli_errors_never_show_a_context_store_password(form) -> None:
    r = _cli({"BACKLOG_CONTEXT_URL": REDIS_FORMS[form]}, "context", "set", "FEAT-1", "plan", "backend", "--project", "p")
    assert r.returncode == 1
    _clean(r.stdout + r.stderr)
    assert r.stderr.startswith("backlog-ops: error: context store redis://") and "unavailable" in r.stderr
    r = _cli({"BACKLOG_CONTEXT_URL": REDIS_FORMS[form]}, "context", "show")
    _clean(r.stdout + r.stderr)
    assert "context store unavailable" in r.stderr


def test_a_redis_url_that_is_not_one_is_a_one_line_error() -> None:
    r = _cli({"BACKLOG_CONTEXT_URL": f"redis://:{PW}@127.0.0.1:notaport/0"}, "context", "set", "FEAT-1", "plan", "backend", "--project", "p")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    _clean(r.stderr)
    assert r.stderr.startswith("backlog-ops: error: BACKLOG_CONTEXT_URL redis://:***@127.0.0.1:notaport/0 is not a Redis URL")


def test_the_ledger_where_hides_every_form(postgres_url) -> None:
    """Against the real PostgreSQL: the ledger opens with a ?password= URL, and `where` shows none."""
    from backlog_ops.ledger.postgres import PostgresLedger

    schema = "t_secrets_" + uuid.uuid4().hex[:8]
    # The shared server trusts loopback: a password is sent and ignored.
    url = postgres_url.replace("postgres@", f"postgres:{PW}@") + f"?application_name=x&password={PW}"
    try:
        ledger = PostgresLedger(url, schema=schema)
        _clean(ledger.where)
        assert ledger.where.startswith("postgresql://127.0.0.1:5432/test?application_name=x&password=***")
        ledger.close()
    finally:
        PostgresLedger.drop_schema(postgres_url, schema)


# -- MCP ticket_spend ------------------------------------------------------------------------------


@pytest.mark.parametrize("form", list(POSTGRES_FORMS))
def test_mcp_ticket_spend_never_shows_a_ledger_password(monkeypatch, project_dir, form) -> None:
    monkeypatch.setenv("BACKLOG_LEDGER_URL", POSTGRES_FORMS[form])
    server = build_server(CallerResolver(env={}, process_key="1-1", cwd=str(project_dir)))

    async def go():
        async with Client(server) as client:
            return await client.call_tool("ticket_spend", {"ticket_id": "FEAT-1"})

    result = anyio.run(go)
    assert result.is_error
    text = result.content[0].text
    assert "cannot read the spend ledger" in text and "cannot open ledger" in text
    _clean(text)


# -- the proxy log ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", list(POSTGRES_FORMS))
def test_ledger_writer_warnings_never_show_a_password(monkeypatch, caplog, form) -> None:
    """What the proxy logs when the ledger cannot be written, per DSN form (the same writer, in process)."""
    from backlog_ops.ledger import CallRecord, LedgerWriter, open_ledger

    monkeypatch.setenv("BACKLOG_LEDGER_URL", POSTGRES_FORMS[form])
    writer = LedgerWriter(open_ledger, spool_path=Path(os.environ["BACKLOG_HOME"]) / "spool.jsonl")
    with caplog.at_level("WARNING", logger="backlog_ops.ledger"):
        writer.submit(CallRecord(call_id="c1", started_at="2026-01-01T00:00:00.000+00:00", status="success"))
        end = time.monotonic() + 20
        while time.monotonic() < end and "cannot write" not in caplog.text:
            time.sleep(0.05)
        writer.close(timeout=2)
    assert "cannot write 1 ledger rows" in caplog.text and "cannot open ledger" in caplog.text, caplog.text
    _clean(caplog.text)


@pytest.mark.parametrize("form", list(REDIS_FORMS))
def test_tagger_warnings_never_show_a_context_store_password(monkeypatch, caplog, form) -> None:
    """What the proxy logs when the Redis context store is down, per URL form (the tagger, in process)."""
    from backlog_ops.callbacks.ticket_tagger import TicketTagger

    monkeypatch.setenv("BACKLOG_CONTEXT_URL", REDIS_FORMS[form])
    with caplog.at_level("WARNING", logger="backlog_ops.tagger"):
        TicketTagger().tag_request({"metadata": {}, "proxy_server_request": {"headers": {"x-backlog-session": "s1"}}})
    assert "context store unavailable" in caplog.text, caplog.text
    _clean(caplog.text)


@pytest.mark.proxy
@pytest.mark.parametrize("ledger_form,redis_form", [("keyvalue-malformed", "query")])
def test_the_proxy_log_never_shows_a_password(tmp_path, ledger_form, redis_form) -> None:
    """The real proxy with both backends down: calls are served, the log names both, no secret."""
    env = {"LITELLM_MASTER_KEY": "sk-test-" + secrets.token_hex(16),
           "BACKLOG_LEDGER_URL": POSTGRES_FORMS[ledger_form], "BACKLOG_CONTEXT_URL": REDIS_FORMS[redis_form]}
    with MockUpstream() as upstream:
        config = write_config(tmp_path / "config", upstream.base_url)
        with ProxyProcess(tmp_path / "home", config=config, env=env) as proxy:
            with httpx.Client(base_url=proxy.base_url, headers={"authorization": f"Bearer {proxy.master_key}"}, timeout=60) as client:
                for _ in range(2):
                    r = client.post("/v1/chat/completions", headers={"x-claude-code-session-id": str(uuid.uuid4())},
                                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
                    assert r.status_code == 200, r.text  # neither backend being down fails the call
            end = time.monotonic() + 20
            while time.monotonic() < end and "cannot write" not in proxy.log():
                time.sleep(0.2)
    log = proxy.log()
    assert "cannot write" in log and "cannot open ledger" in log, log[-3000:]
    assert "context store unavailable" in log, log[-3000:]
    _clean(log)
