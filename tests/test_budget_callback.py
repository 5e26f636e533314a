"""The ticket-policy callback in-process: refusals, critical routing, and internal errors that
must let the call through with a single warning."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no ~7 s price-map download attempt
pytest.importorskip("litellm")

from backlog_ops.policy.engine import PolicyEngine  # noqa: E402
from backlog_ops.callbacks.ticket_policy import TicketPolicyCallback  # noqa: E402

SECTION = {
    "routing": {"frontier_alias": "frontier", "critical_tags": ["critical"]},
    "policy": {"projects": {"my-api": {"ticket_budget_usd": 1.0, "max_escalations_per_ticket": 1}}},
}


def policy_file(tmp_path: Path, section=SECTION) -> str:
    path = tmp_path / "proxy.yaml"
    path.write_text(yaml.safe_dump({"model_list": [], "backlog_ops": section}))
    return str(path)


def request(model: str = "cheap", tags=("ticket:T-1", "project:my-api"), call_id: str = "c1") -> dict:
    return {"model": model, "litellm_call_id": call_id, "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"tags": list(tags)}, "proxy_server_request": {"headers": {"content-length": "400"}}}


def hook(cb: TicketPolicyCallback, data: dict) -> dict:
    return asyncio.run(cb.async_pre_call_hook(None, None, data, "acompletion"))


def spent(amount: float):
    return lambda ticket, project, policy, ids: (amount, 0, set())


def test_over_budget_raises_a_402_the_client_shows(tmp_path: Path) -> None:
    from fastapi import HTTPException

    cb = TicketPolicyCallback(PolicyEngine(spent(1.5)), policy_file=policy_file(tmp_path))
    with pytest.raises(HTTPException) as caught:
        hook(cb, request())
    assert caught.value.status_code == 402
    detail = caught.value.detail
    assert detail["type"] == "ticket_budget_exceeded" and detail["ticket"] == "T-1" and detail["limit"] == 1.0
    assert "T-1" in detail["error"] and "$1.5000 of $1.0000" in detail["error"]


def test_under_budget_passes_unchanged(tmp_path: Path) -> None:
    cb = TicketPolicyCallback(PolicyEngine(spent(0.5)), policy_file=policy_file(tmp_path))
    data = request()
    assert hook(cb, data) is data and data["model"] == "cheap"


def test_critical_tag_moves_the_request_to_frontier_and_counts_as_escalation(tmp_path: Path) -> None:
    from fastapi import HTTPException

    cb = TicketPolicyCallback(PolicyEngine(spent(0.0)), policy_file=policy_file(tmp_path))
    data = hook(cb, request("cheap", tags=("ticket:T-2", "project:my-api", "critical"), call_id="a"))
    assert data["model"] == "frontier"
    with pytest.raises(HTTPException) as caught:  # max_escalations_per_ticket: 1, one in flight
        hook(cb, request("balanced", tags=("ticket:T-2", "project:my-api", "critical"), call_id="b"))
    assert caught.value.detail["type"] == "ticket_escalations_exceeded"
    # untagged critical work of no ticket is still routed, never limited
    data = hook(cb, request("cheap", tags=("critical",), call_id="c"))
    assert data["model"] == "frontier"


def test_requests_of_other_projects_or_without_ticket_pass(tmp_path: Path) -> None:
    cb = TicketPolicyCallback(PolicyEngine(spent(99.0)), policy_file=policy_file(tmp_path))
    hook(cb, request(tags=("ticket:T-1", "project:other")))
    hook(cb, request(tags=("project:my-api",)))


def test_an_unreadable_ledger_lets_calls_through_with_one_loud_counted_alert_by_default(tmp_path: Path, caplog) -> None:
    def broken(*args):
        raise RuntimeError("ledger is on fire")

    cb = TicketPolicyCallback(PolicyEngine(broken), policy_file=policy_file(tmp_path))
    with caplog.at_level(logging.WARNING, logger="backlog_ops.policy"):
        for i in range(5):
            data = request(call_id=f"c{i}")
            assert hook(cb, data) is data
        cb.engine._unchecked.report_rest()  # what the next alert (or the recovery) would say
    alerts = [r for r in caplog.records if "spend ledger cannot be read" in r.getMessage()]
    assert [r.levelname for r in alerts] == ["ERROR", "ERROR"], "said at once, then with the count, not per call"
    assert "ledger is on fire" in alerts[0].getMessage() and "onLedgerUnavailable: allow" in alerts[0].getMessage()
    assert "5 calls of limited tickets were let through so far" in alerts[-1].getMessage()


def test_an_unreadable_ledger_refuses_limited_calls_with_503_under_deny(tmp_path: Path) -> None:
    from fastapi import HTTPException

    def broken(*args):
        raise RuntimeError("connection refused")

    section = {"policy": {"projects": {"my-api": {"ticket_budget_usd": 1.0, "on_ledger_unavailable": "deny"}}}}
    cb = TicketPolicyCallback(PolicyEngine(broken), policy_file=policy_file(tmp_path, section))
    with pytest.raises(HTTPException) as caught:
        hook(cb, request())
    assert caught.value.status_code == 503
    detail = caught.value.detail
    assert detail["type"] == "ticket_limit_unverifiable" and detail["ticket"] == "T-1"
    for part in ("T-1", "cannot be read", "Try again", 'llmOps.budgets.onLedgerUnavailable to "allow"'):
        assert part in detail["error"], (part, detail["error"])
    assert "connection refused" not in detail["error"], "the cause stays in the proxy log"
    # a ticket with no limit, or no ticket at all, is never refused for it
    hook(cb, request(tags=("ticket:T-1", "project:other")))
    hook(cb, request(tags=("project:my-api",)))


def test_unreadable_policy_keeps_the_last_good_limits(tmp_path: Path, caplog) -> None:
    from fastapi import HTTPException

    path = policy_file(tmp_path)
    cb = TicketPolicyCallback(PolicyEngine(spent(2.0)), policy_file=path)
    with pytest.raises(HTTPException):
        hook(cb, request(call_id="x"))
    Path(path).write_text("backlog_ops: [this is: not: valid")
    cb.limits.expire()  # skip the once-a-second recheck delay
    with caplog.at_level(logging.WARNING, logger="backlog_ops.policy"):
        with pytest.raises(HTTPException):
            hook(cb, request(call_id="y"))
    assert any("ignoring the policy" in r.getMessage() for r in caplog.records)


def test_no_policy_file_means_no_limits(tmp_path: Path) -> None:
    cb = TicketPolicyCallback(PolicyEngine(spent(99.0)), policy_file=str(tmp_path / "missing.yaml"))
    data = request()
    assert hook(cb, data) is data


def test_success_and_final_failure_events_settle_and_release(tmp_path: Path) -> None:
    engine = PolicyEngine(spent(0.0))
    cb = TicketPolicyCallback(engine, policy_file=policy_file(tmp_path))
    hook(cb, request("frontier", call_id="ok"))
    policy = cb.policies()["my-api"]
    assert engine.usage("T-1", policy)[1] == 1
    asyncio.run(cb.async_log_success_event(
        {"litellm_call_id": "ok", "standard_logging_object": {"response_cost": 0.25, "model_group": "frontier"}}, None, 0, 0
    ))
    assert engine.usage("T-1", policy) == (pytest.approx(0.25), 1)
    cb._prices["cheap"] = (1e-6, 5e-6, time.monotonic())  # the proxy reads it from its router
    hook(cb, request("cheap", tags=("ticket:T-3", "project:my-api"), call_id="bad"))
    # reserved while it runs: 400 bytes ~ 100 prompt tokens, plus 1024 completion tokens
    assert engine.usage("T-3", policy)[0] == pytest.approx(100 * 1e-6 + 1024 * 5e-6)
    asyncio.run(cb.async_post_call_failure_hook({"litellm_call_id": "bad"}, RuntimeError("x"), None))
    assert engine.usage("T-3", policy)[0] == 0.0
