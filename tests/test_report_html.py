"""`backlog-ops report --html FILE`: one self-contained page, opened in headless Chromium with no network.

The browser tests build a ledger (SQLite, and PostgreSQL in a schema of their own), run the real
console script, load the file in Chromium (tests/browser_support.py) and assert no console
error, no network request, the ticket ids and totals on the page, charts with drawn bars, and a
screenshot in tmp_path. The harness itself is checked against a page that does make a request
and log an error, so "none seen" means none happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from html import escape
from pathlib import Path

import pytest

from backlog_ops.ledger import CallRecord, open_ledger
from backlog_ops.policy.messages import money
from backlog_ops.reports.html.data import periods_between, roll_up_periods, time_unit_for
from backlog_ops.reports.html.page import CSS, CSP, render_page
from browser_support import open_page

BIN = Path(sys.executable).parent
XSS = "<script>alert(1)</script>"


def call(n: int, ticket, cost: float, *, day: str = "2026-11-21", project: str = "my-api", gate: str = "implement",
         model: str = "anthropic/claude-haiku-4-5", agent: str = "backend", **kw) -> CallRecord:
    return CallRecord(call_id=f"c{n}", started_at=f"{day}T10:00:{n % 60:02d}.000+00:00", status=kw.pop("status", "success"),
                      ticket_id=ticket, gate=gate, project=project, agent_type=agent, model=model,
                      prompt_tokens=kw.pop("prompt_tokens", 1000), completion_tokens=100, cost_usd=cost, **kw)


# my-api: FEAT-1 $2.50 over two days (over its $2 budget), the XSS-named ticket $1.10, FEAT-3 $0.30,
# no ticket $0.05; other-api: OTHER-1 $9.00 (filtered out by --project my-api).
CALLS = [
    call(1, "FEAT-1", 1.25, day="2026-11-20", gate="plan", agent="planner", model="anthropic/claude-opus-4-6",
         cache_read_tokens=600, cache_write_tokens=200),
    call(2, "FEAT-1", 0.75, gate="implement", cache_read_tokens=400),
    call(3, "FEAT-1", 0.50, gate="review", agent="reviewer", status="failure", error_class="Timeout"),
    call(4, XSS, 1.10, gate=XSS, model=XSS, agent=XSS),
    call(5, "FEAT-3", 0.30, day="2026-11-22", cache_hit=True),
    call(6, None, 0.05, gate=None, agent=None),
    call(7, "OTHER-1", 9.00, project="other-api"),
]
MY_API_TOTAL = 1.25 + 0.75 + 0.50 + 1.10 + 0.30 + 0.05
CONFIG = {"project": {"name": "my-api"}, "llmOps": {"budgets": {"perTicketUSD": 3, "tickets": {"FEAT-1": 2}}}}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def ledger_backend(request, monkeypatch: pytest.MonkeyPatch):
    """The default SQLite ledger under BACKLOG_HOME, or PostgreSQL in a schema dropped afterwards."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    from backlog_ops.ledger.postgres import PostgresLedger

    url = request.getfixturevalue("postgres_url")
    schema = f"test_html_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("BACKLOG_LEDGER_URL", url)
    monkeypatch.setenv("BACKLOG_LEDGER_SCHEMA", schema)
    yield "postgres"
    PostgresLedger.drop_schema(url, schema)


@pytest.fixture
def project(project_dir: Path) -> Path:
    (project_dir / "backlog.config.json").write_text(json.dumps(CONFIG))
    return project_dir


def record(calls) -> None:
    with open_ledger() as ledger:
        ledger.record_many(list(calls))


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "backlog-ops"), "report", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def assert_clean(visit) -> None:
    assert visit.console_errors == [], visit.console_errors
    assert visit.requests == [], visit.requests
    assert visit.scripts == 0
    assert visit.screenshot is not None and visit.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert visit.screenshot.stat().st_size > 10_000


# -- in the browser ---------------------------------------------------------------------------


def test_report_opens_offline_with_tickets_totals_and_drawn_charts(ledger_backend, project: Path, tmp_path: Path) -> None:
    record(CALLS)
    out = tmp_path / "out" / "spend.html"
    done = cli("--html", str(out), "--project", "my-api", "--top", "2", cwd=project)
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout and out.stat().st_mode & 0o777 == 0o600
    html = out.read_text()
    assert "<script" not in html.lower() and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert escape(XSS) in html

    visit = open_page(out, tmp_path)
    assert_clean(visit)
    text = visit.text
    assert "FEAT-1" in text and XSS in text and "(others)" in text  # FEAT-3 and the no-ticket call are folded
    assert "OTHER-1" not in text and money(9.0) not in text
    assert money(MY_API_TOTAL) in text and money(2.5) in text and money(1.10) in text
    assert money(0.30 + 0.05) in text  # (others): FEAT-3 and the calls with no ticket
    assert "Project: my-api" in text and "Generated" in text
    assert "125.0% OVER" in text and "$2.5000 of $2.0000 (125%)" in text  # FEAT-1 against its own $2 budget
    assert 'llmOps.budgets.tickets["FEAT-1"]' in text and "<span" not in text and "&quot;" not in text  # escaped once
    assert "llmOps.budgets.perTicketUSD" in text  # the XSS-named ticket falls under the per-ticket default
    assert "cache share of input" in text and "33.3%" in text  # FEAT-1: 1,000 cache reads of 3,000 input tokens
    for day in ("2026-11-20", "2026-11-21", "2026-11-22"):
        assert day in text
    charts = {c["label"]: c for c in visit.charts}
    assert charts["cost per ticket"]["bars"] == 3  # FEAT-1, the XSS ticket, (others)
    assert charts["cost per day, stacked by ticket"]["bars"] >= 4
    assert charts["budget used per ticket"]["bars"] == 2
    assert charts["FEAT-1 by gate"]["bars"] == 3 and charts["FEAT-1 by model"]["bars"] == 2
    assert charts["FEAT-1 by agent"]["bars"] == 3 and charts["FEAT-1 per day"]["bars"] == 2
    assert all(c["width"] > 100 and c["height"] > 20 and c["bars"] > 0 for c in visit.charts), visit.charts


def test_an_empty_ledger_says_so_in_the_browser(ledger_backend, project_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    done = cli("--html", str(out), cwd=project_dir)
    assert done.returncode == 0, done.stderr
    visit = open_page(out, tmp_path)
    assert_clean(visit)
    assert "No calls recorded in the ledger for this period" in visit.text and visit.charts == []


def test_the_harness_sees_requests_and_console_errors(tmp_path: Path) -> None:
    """The control: a page that does reach out and does log an error is caught by open_page."""
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><html><body><p>leaky</p><img src="http://example.com/pixel.png">'
                    '<script>console.error("boom")</script></body></html>')
    visit = open_page(page, tmp_path)
    assert "http://example.com/pixel.png" in visit.requests
    assert any("boom" in e for e in visit.console_errors)
    blocked = tmp_path / "blocked.html"
    blocked.write_text(f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{CSP}"></head>'
                       '<body><script>document.title = "ran"</script><p style="color:red">x</p></body></html>')
    visit = open_page(blocked, tmp_path, screenshot="blocked.png")
    assert visit.title != "ran" and visit.console_errors  # our CSP refuses inline script and style attributes, loudly


# -- the CLI's edges --------------------------------------------------------------------------


def test_since_and_until_bound_the_page(ledger_backend, project: Path, tmp_path: Path) -> None:
    record(CALLS)
    out = tmp_path / "period.html"
    done = cli("--html", str(out), "--since", "2026-11-21", "--until", "2026-11-21", cwd=project)  # a date: all of it
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    # 2026-11-21 only: FEAT-1's two calls that day, the XSS ticket, the no-ticket call and OTHER-1.
    assert money(0.75 + 0.50 + 1.10 + 0.05 + 9.00) in html and money(1.25) in html
    assert "2026-11-21 00:00 UTC</b> to <b>2026-11-22 00:00 UTC" in html or "2026-11-21 00:00 UTC to 2026-11-22 00:00 UTC" in html
    assert "2026-11-20" not in html and "2026-11-22<" not in html
    assert "FEAT-3" not in html.split('id="budgets"')[0]


@pytest.mark.services
def test_report_data_is_the_same_on_sqlite_and_postgres(postgres_url: str, project: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from backlog_ops.ledger import SqliteLedger
    from backlog_ops.ledger.postgres import PostgresLedger
    from backlog_ops.reports.html import report_data

    schema = f"test_html_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("BACKLOG_LEDGER_URL", postgres_url)
    monkeypatch.setenv("BACKLOG_LEDGER_SCHEMA", schema)
    try:
        with open_ledger() as pg, SqliteLedger(tmp_path / "l.db") as lite:
            pg.record_many(CALLS)
            lite.record_many(CALLS)
            for top in (1, 2, 10):
                a = report_data(top=top, ledger=pg, now=0)
                b = report_data(top=top, ledger=lite, now=0)
                assert a == b, top
        assert [r["ticket"] for r in a["tickets"]][:2] == ["OTHER-1", "FEAT-1"]
    finally:
        PostgresLedger.drop_schema(postgres_url, schema)


def test_open_writes_under_the_home_and_starts_the_browser(project_dir: Path, tmp_path: Path, backlog_home: Path) -> None:
    record(CALLS[:2])
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    done = cli("--open", cwd=project_dir, env={"BROWSER": str(browser)})
    assert done.returncode == 0, done.stderr
    url = opened.read_text().strip()
    assert url.startswith("file://") and str(backlog_home / "reports") in url
    assert "FEAT-1" in Path(url.removeprefix("file://")).read_text()


def test_no_destination_and_bad_top_are_one_line_errors(project_dir: Path) -> None:
    done = cli(cwd=project_dir)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--html FILE" in done.stderr
    done = cli("--html", "x.html", "--top", "0", cwd=project_dir)
    assert done.returncode == 2 and "--top" in done.stderr and "Traceback" not in done.stderr
    done = cli("--html", "x.html", "--since", "yesterday", cwd=project_dir)
    assert done.returncode == 2 and "since" in done.stderr and "Traceback" not in done.stderr
    done = cli("--html", str(project_dir), cwd=project_dir)  # a directory is no place for the page
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "cannot write" in done.stderr


# -- the renderer on its own ------------------------------------------------------------------


def test_csp_allows_exactly_the_inline_stylesheet() -> None:
    import base64
    import hashlib

    assert CSP.startswith("default-src 'none'; ") and "unsafe" not in CSP and "script-src" not in CSP
    digest = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in CSP


def test_stored_text_is_escaped_everywhere() -> None:
    row = {"ticket": XSS, "calls": 1, "failed_calls": 0, "cache_hits": 0, "input_tokens": 10, "output_tokens": 1,
           "cache_write_tokens": 0, "cache_read_tokens": 0, "cost_usd": 1.0}
    data = {"generated_at": "2026-12-03T09:00:00.000+00:00", "since": None, "until": None, "project": '"><b>p',
            "top": 10, "totals": {k: v for k, v in row.items() if k != "ticket"}, "tickets": [row], "time_unit": "day",
            "periods": ["2026-12-01"], "over_time": [{"ticket": XSS, "period": "2026-12-01", "cost_usd": 1.0}],
            "breakdowns": {g: [{**row, g: XSS}] for g in ("gate", "model", "agent")},
            "budgets": [], "budget_project": None, "budget_problem": f"bad config {XSS}"}
    html = render_page(data)
    assert "<script" not in html and "<b>p" not in html
    assert html.count(escape(XSS)) >= 10


def test_periods_roll_up_to_weeks_and_months() -> None:
    assert time_unit_for(["2026-11-01", "2026-12-31"]) == "day"
    assert time_unit_for(["2026-01-01", "2026-12-31"]) == "week"
    assert time_unit_for(["2024-01-01", "2026-12-31"]) == "month"
    assert periods_between("2026-11-20", "2026-11-23", "day") == ["2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"]
    assert periods_between("2026-11-20", "2026-12-01", "week") == ["2026-11-16", "2026-11-23", "2026-11-30"]
    assert periods_between("2026-01-31", "2026-04-01", "month") == ["2026-01", "2026-02", "2026-03", "2026-04"]
    rows = [{"ticket": "A", "day": "2026-11-30", "cost_usd": 0.1, "calls": 1},
            {"ticket": "A", "day": "2026-12-06", "cost_usd": 0.2, "calls": 2},
            {"ticket": "A", "day": "2026-12-07", "cost_usd": 0.4, "calls": 4}]
    assert roll_up_periods(rows, "week") == [
        {"ticket": "A", "period": "2026-11-30", "cost_usd": 0.3, "calls": 3},
        {"ticket": "A", "period": "2026-12-07", "cost_usd": 0.4, "calls": 4},
    ]


def test_budgets_cover_named_tickets_and_only_this_projects_tickets(project: Path) -> None:
    from backlog_ops.reports.html import report_data

    config = {**CONFIG, "llmOps": {"budgets": {"perTicketUSD": 3, "tickets": {"FEAT-1": 2, "IDLE-1": 1}}}}
    (project / "backlog.config.json").write_text(json.dumps(config))
    record(CALLS)
    budgets = {b["ticket_id"]: b for b in report_data(now=0)["budgets"]}
    # Shown tickets of my-api get the default or their own limit; IDLE-1 has no call yet but a
    # budget of its own; OTHER-1 (other-api) is on the page but my-api's default is not its budget.
    assert set(budgets) == {"FEAT-1", XSS, "FEAT-3", "IDLE-1"}
    assert budgets["FEAT-1"]["over_budget"] and budgets["FEAT-1"]["spent_usd"] == 2.5
    assert budgets["IDLE-1"]["spent_usd"] == 0 and budgets["IDLE-1"]["budget_usd"] == 1
    assert budgets["FEAT-3"]["budget_key"] == "llmOps.budgets.perTicketUSD"
    assert report_data(project="other-api", now=0)["budgets"] == []  # the config's limits are my-api's
