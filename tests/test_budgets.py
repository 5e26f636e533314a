"""Per-ticket budgets and escalation limits, without the proxy: the engine, the ledger query,
ticket_budget() (backlog_ops.reports.ticket) for the MCP tool and `backlog-ops spend`, and the policy section's parsing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from backlog_ops.cli.spend_cmd import format_budget
from backlog_ops.policy.engine import PolicyEngine
from backlog_ops.policy.limits import TicketPolicy, parse_policy_section, parse_routing_section
from backlog_ops.reports.ticket import ticket_budget
from backlog_ops.errors import ConfigError
from backlog_ops.ledger import CallRecord, SqliteLedger

POLICY = TicketPolicy(
    project="my-api",
    ticket_budget_usd=1.0,
    ticket_budgets_usd={"BIG-1": 10.0},
    max_escalations_per_ticket=2,
    frontier_models=("anthropic/claude-opus-4-6",),
    source="/p/backlog.config.json",
)


class FakeLedger:
    """A usage reader: what the ledger holds per ticket, and which call ids it has."""

    def __init__(self) -> None:
        self.cost: dict[str, float] = {}
        self.escalations: dict[str, int] = {}
        self.ids: set[str] = set()
        self.reads = 0

    def __call__(self, ticket, project, policy, call_ids):
        self.reads += 1
        return self.cost.get(ticket, 0.0), self.escalations.get(ticket, 0), {c for c in call_ids if c in self.ids}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def engine(ledger=None, clock=None, **kw) -> PolicyEngine:
    return PolicyEngine(ledger or FakeLedger(), clock=clock or Clock(), **kw)


def test_under_budget_passes_and_at_budget_is_refused_with_the_fix() -> None:
    ledger = FakeLedger()
    ledger.cost["T-1"] = 0.99
    e = engine(ledger)
    assert e.check("c1", "T-1", POLICY, escalation=False, estimate_usd=0.0) is None
    ledger.cost["T-1"] = 1.0
    e = engine(ledger)
    refusal = e.check("c2", "T-1", POLICY, escalation=False, estimate_usd=0.0, config_hint="/etc/litellm.yaml")
    assert refusal is not None and refusal.kind == "budget"
    assert refusal.detail()["type"] == "ticket_budget_exceeded" and refusal.detail()["ticket"] == "T-1"
    for part in ("T-1", "my-api", "$1.0000 of $1.0000", 'llmOps.budgets.tickets["T-1"]', "llmOps.budgets.perTicketUSD",
                 "/p/backlog.config.json", "--output /etc/litellm.yaml"):
        assert part in refusal.message, (part, refusal.message)


def test_per_ticket_override_beats_the_default() -> None:
    ledger = FakeLedger()
    ledger.cost["BIG-1"] = 5.0
    assert engine(ledger).check("c", "BIG-1", POLICY, escalation=False, estimate_usd=0) is None
    assert POLICY.budget_for("BIG-1") == (10.0, 'llmOps.budgets.tickets["BIG-1"]')
    assert POLICY.budget_for("OTHER") == (1.0, "llmOps.budgets.perTicketUSD")


def test_in_flight_reservations_stop_concurrent_requests_from_slipping_past() -> None:
    e = engine()
    barrier = threading.Barrier(20)
    results = []

    def one(i: int) -> None:
        barrier.wait()
        results.append(e.check(f"c{i}", "T-1", POLICY, escalation=False, estimate_usd=0.3))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 0 -> 0.3 -> 0.6 -> 0.9 pass; at 1.2 reserved the ticket has reached its $1 budget
    assert sum(r is None for r in results) == 4
    refusal = next(r for r in results if r is not None)
    assert "reserved for calls still running" in refusal.message


def test_escalations_count_in_flight_and_settled_calls_until_the_ledger_has_them() -> None:
    ledger, clock = FakeLedger(), Clock()
    e = engine(ledger, clock, refresh_seconds=2.0)
    policy = TicketPolicy(project="p", max_escalations_per_ticket=2)
    assert e.check("a", "T", policy, escalation=True, estimate_usd=0) is None
    assert e.check("b", "T", policy, escalation=True, estimate_usd=0) is None
    refusal = e.check("c", "T", policy, escalation=True, estimate_usd=0)
    assert refusal is not None and refusal.kind == "escalations" and "2 of them still running" in refusal.message
    assert e.check("d", "T", policy, escalation=False, estimate_usd=0) is None, "cheaper aliases stay open"

    e.release("b")  # failed for good: gives its escalation back
    assert e.check("b2", "T", policy, escalation=True, estimate_usd=0) is None
    e.settle("a", 0.01, model_group="frontier")
    e.settle("b2", 0.01, model_group="frontier")
    assert e.usage("T", policy) == (pytest.approx(0.02), 2)
    # The ledger catches up: the settled calls are now counted there, not twice.
    clock.now += 5
    ledger.cost["T"], ledger.escalations["T"], ledger.ids = 0.02, 2, {"a", "b2"}
    assert e.usage("T", policy) == (pytest.approx(0.02), 2)
    assert e.check("e", "T", policy, escalation=True, estimate_usd=0) is not None


def test_settled_cost_replaces_the_estimate_and_cache_hits_do_not_escalate() -> None:
    e = engine()
    policy = TicketPolicy(project="p", ticket_budget_usd=1.0, max_escalations_per_ticket=5, frontier_models=("anthropic/claude-opus-4-6",))
    e.check("x", "T", policy, escalation=False, estimate_usd=0.5)
    assert e.usage("T", policy) == (pytest.approx(0.5), 0)
    e.settle("x", 0.002, model_group="balanced", model="claude-opus-4-6")  # served by the frontier model
    assert e.usage("T", policy) == (pytest.approx(0.002), 1)
    e.check("y", "T", policy, escalation=True, estimate_usd=0.1)
    e.settle("y", 0.0, model_group="frontier", cache_hit=True)
    assert e.usage("T", policy) == (pytest.approx(0.002), 1)


def test_the_ledger_is_read_at_most_once_per_refresh_interval() -> None:
    ledger, clock = FakeLedger(), Clock()
    e = engine(ledger, clock, refresh_seconds=2.0)
    for i in range(50):
        e.check(f"c{i}", "T", POLICY, escalation=False, estimate_usd=0)
    assert ledger.reads == 1
    clock.now += 2.5
    e.check("later", "T", POLICY, escalation=False, estimate_usd=0)
    assert ledger.reads == 2


def test_reservations_whose_events_never_came_expire() -> None:
    clock = Clock()
    e = engine(clock=clock, stale_seconds=60, refresh_seconds=1)
    e.check("lost", "T", POLICY, escalation=False, estimate_usd=0.9)
    assert e.usage("T", POLICY)[0] == pytest.approx(0.9)
    clock.now += 120
    assert e.usage("T", POLICY)[0] == 0.0


def test_no_limit_means_no_ledger_read() -> None:
    ledger = FakeLedger()
    e = engine(ledger)
    assert e.check("c", "T", TicketPolicy(project="p"), escalation=True, estimate_usd=1.0) is None
    assert e.check("c", "T", TicketPolicy(project="p", max_escalations_per_ticket=1), escalation=False, estimate_usd=1) is None
    assert ledger.reads == 0


# -- the policy section --------------------------------------------------------------------------


def test_policy_section_round_trip_and_errors_name_the_key() -> None:
    policies = parse_policy_section(
        {"policy": {"projects": {"my-api": {"ticket_budget_usd": 2, "ticket_budgets_usd": {"F-1": 9}, "max_escalations_per_ticket": 3}}}}
    )
    assert policies["my-api"].budget_for("F-1") == (9.0, 'llmOps.budgets.tickets["F-1"]')
    assert policies["my-api"].max_escalations_per_ticket == 3
    assert parse_policy_section(None) == {} and parse_policy_section({}) == {}
    with pytest.raises(ConfigError, match=r"policy.projects.p.ticket_budget_usd: must be a number"):
        parse_policy_section({"policy": {"projects": {"p": {"ticket_budget_usd": "lots"}}}})
    with pytest.raises(ConfigError, match=r"policy.projects.p.ticket_budgets_usd: ticket_id"):
        parse_policy_section({"policy": {"projects": {"p": {"ticket_budgets_usd": {"bad id!": 1}}}}})
    with pytest.raises(ConfigError, match=r"max_escalations_per_ticket: must be a whole number"):
        parse_policy_section({"policy": {"projects": {"p": {"max_escalations_per_ticket": 1.5}}}})
    assert parse_routing_section({"routing": {"frontier_alias": "frontier", "critical_tags": ["critical"]}}) == ("frontier", ("critical",))
    assert parse_routing_section({}) == ("frontier", ())


# -- the ledger query ----------------------------------------------------------------------------


def row(call_id: str, ticket: str | None, cost: float, *, group="cheap", model="anthropic/claude-haiku-4-5", status="success", hit=False, project="my-api") -> CallRecord:
    return CallRecord(call_id=call_id, started_at="2026-01-01T00:00:00.000Z", status=status, ticket_id=ticket,
                      project=project, model_group=group, model=model, cost_usd=cost, cache_hit=hit)


def test_ticket_usage_counts_cost_and_frontier_calls(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        assert "m003_index_ticket_policy" in ledger.applied_migrations()
        ledger.record_many([
            row("1", "T", 0.5),
            row("2", "T", 1.0, group="frontier", model="anthropic/claude-opus-4-6"),
            row("3", "T", 0.0, group="frontier", status="failure"),  # failed: no escalation
            row("4", "T", 0.0, group="frontier", hit=True),  # cache hit: no escalation
            row("5", "T", 0.2, group="gpt", model="claude-opus-4-6"),  # the frontier model by name
            row("6", "T", 9.0, project="other"),
            row("7", "U", 3.0),
        ])
        usage = ledger.ticket_usage("T", project="my-api", frontier_models=["anthropic/claude-opus-4-6"], call_ids=["2", "99"])
        assert usage == {"cost_usd": pytest.approx(1.7), "escalations": 2, "present": ["2"]}
        assert ledger.ticket_usage("T")["cost_usd"] == pytest.approx(10.7)
        assert ledger.ticket_usage("NONE") == {"cost_usd": 0.0, "escalations": 0, "present": []}


# -- ticket_budget() and its rendering -------------------------------------------------------------


def write_project(directory: Path, budgets: dict, routing: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = {"project": {"name": "my-api"}, "llmOps": {"budgets": budgets, "routing": routing or {}}}
    (directory / "backlog.config.json").write_text(json.dumps(config))
    return directory


def test_ticket_budget_reports_spent_remaining_and_escalations(tmp_path: Path, backlog_home: Path) -> None:
    project = write_project(tmp_path / "proj", {"perTicketUSD": 2, "tickets": {"BIG-1": 10}}, {"maxEscalationsPerTicket": 3})
    with SqliteLedger(backlog_home / "ledger.db") as ledger:
        ledger.record_many([row("1", "T-1", 0.5), row("2", "T-1", 2.0, group="frontier", model="anthropic/claude-opus-4-6")])
    status = ticket_budget("T-1", project)
    assert status == {
        "ticket_id": "T-1", "project": "my-api", "budget_usd": 2.0, "spent_usd": 2.5, "remaining_usd": 0.0,
        "over_budget": True, "budget_key": "llmOps.budgets.perTicketUSD", "escalations": 1, "max_escalations": 3,
        "escalations_remaining": 2, "escalation_key": "llmOps.routing.maxEscalationsPerTicket",
        "config": str((project / "backlog.config.json").resolve()),
    }
    text = format_budget(status)
    assert "OVER BUDGET" in text and "$2.5000 of $2.0000" in text and "1 of 3 frontier calls, 2 remaining" in text
    big = ticket_budget("BIG-1", project)
    assert (big["budget_usd"], big["remaining_usd"], big["budget_key"]) == (10.0, 10.0, 'llmOps.budgets.tickets["BIG-1"]')
    assert "$10.0000 remaining" in format_budget(big)


def test_ticket_budget_is_none_without_limits_or_config(tmp_path: Path) -> None:
    assert ticket_budget("T-1", tmp_path) is None
    assert ticket_budget("T-1", write_project(tmp_path / "p", {}, {"maxEscalationsPerTicket": None})) is None
    assert format_budget(None) == ""


def test_ticket_budget_defaults_to_the_current_directory(project_dir: Path) -> None:
    write_project(project_dir, {"perTicketUSD": 1})
    assert ticket_budget("T-9")["remaining_usd"] == 1.0


# -- while the ledger cannot be read (llmOps.budgets.onLedgerUnavailable) -------------------------


def test_on_ledger_unavailable_is_validated_rendered_and_parsed(tmp_path: Path) -> None:
    from backlog_ops.gateway.render import render_proxy_config
    from backlog_ops.project.schema import load_backlog_config

    project = write_project(tmp_path / "p", {"perTicketUSD": 2, "onLedgerUnavailable": "deny"})
    section = render_proxy_config(load_backlog_config(project / "backlog.config.json"))["backlog_ops"]
    assert section["policy"]["projects"]["my-api"]["on_ledger_unavailable"] == "deny"
    assert parse_policy_section(section)["my-api"].on_ledger_unavailable == "deny"
    default = write_project(tmp_path / "d", {"perTicketUSD": 2})
    section = render_proxy_config(load_backlog_config(default / "backlog.config.json"))["backlog_ops"]
    assert parse_policy_section(section)["my-api"].on_ledger_unavailable == "allow"
    bad = write_project(tmp_path / "b", {"onLedgerUnavailable": "maybe"})
    with pytest.raises(ConfigError, match=r"llmOps.budgets.onLedgerUnavailable: .*fix: use \"allow\""):
        load_backlog_config(bad / "backlog.config.json")
    with pytest.raises(ConfigError, match=r"policy.projects.p.on_ledger_unavailable: must be 'allow' or 'deny'"):
        parse_policy_section({"policy": {"projects": {"p": {"on_ledger_unavailable": "yes"}}}})


class FlakyLedger(FakeLedger):
    """A usage reader whose ledger can be switched off."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def __call__(self, *args):
        if self.down:
            self.reads += 1
            raise ConnectionError("server closed the connection unexpectedly")
        return super().__call__(*args)


@pytest.mark.parametrize("mode", ["allow", "deny"])
def test_an_unreadable_ledger_never_lets_a_ticket_known_over_its_limit_through(mode: str) -> None:
    ledger, clock = FlakyLedger(), Clock()
    policy = TicketPolicy(project="p", ticket_budget_usd=1.0, on_ledger_unavailable=mode)
    e = engine(ledger, clock, refresh_seconds=1.0)
    ledger.cost["OVER"] = 1.5
    assert e.check("a", "OVER", policy, escalation=False, estimate_usd=0).kind == "budget"
    ledger.down = True
    clock.now += 5
    refusal = e.check("b", "OVER", policy, escalation=False, estimate_usd=0)
    assert refusal.kind == "budget" and refusal.status == 402, "the last figures read still count"
    under = e.check("c", "UNDER", policy, escalation=False, estimate_usd=0)
    if mode == "deny":
        assert under.kind == "ledger_unavailable" and under.status == 503
    else:
        assert under is None
    ledger.down = False
    clock.now += 5
    assert e.check("d", "UNDER", policy, escalation=False, estimate_usd=0) is None


def test_the_ledger_reader_reconnects_at_once_then_backs_off() -> None:
    from backlog_ops.errors import LedgerError
    from backlog_ops.policy.engine import ledger_usage_reader

    class Ledger:
        def __init__(self, broken: bool) -> None:
            self.broken = broken

        def ticket_usage(self, ticket, **kw):
            if self.broken:
                raise ConnectionError("terminating connection due to administrator command")
            return {"cost_usd": 0.5, "escalations": 0, "present": []}

        def close(self) -> None:
            pass

    opened = []
    server = {"up": True}

    def open_ledger():
        if not server["up"]:
            raise LedgerError("cannot open ledger: connection refused")
        opened.append(Ledger(broken=False))
        return opened[-1]

    clock = Clock()
    read = ledger_usage_reader(open_ledger, clock=clock)
    assert read("T", "p", POLICY, [])[0] == 0.5
    opened[-1].broken = True  # the server restarted under the open connection
    assert read("T", "p", POLICY, [])[0] == 0.5 and len(opened) == 2, "a new connection at once"
    opened[-1].broken = True
    server["up"] = False  # now it is really down
    with pytest.raises(LedgerError, match="connection refused"):
        read("T", "p", POLICY, [])
    attempts = len(opened)
    with pytest.raises(LedgerError, match="next try in"):
        read("T", "p", POLICY, [])  # within the back-off: no connection attempt
    server["up"] = True
    clock.now += 0.6
    assert read("T", "p", POLICY, [])[0] == 0.5 and len(opened) == attempts + 1


# -- the gateway's overall budget (policy/gateway_budget.py) ---------------------------------------


def test_the_overall_budget_counts_proxy_calls_of_the_period_and_those_not_yet_written(tmp_path: Path) -> None:
    from backlog_ops.common.times import format_time
    from backlog_ops.policy.engine import ledger_query_reader
    from backlog_ops.policy.gateway_budget import GatewayBudgets, GatewaySpendGuard

    now = 1_800_000_000.0
    path = tmp_path / "ledger.db"
    with SqliteLedger(path) as ledger:
        ledger.record_many([
            CallRecord(call_id="old", started_at=format_time(now - 31 * 86400), status="success", cost_usd=50.0),
            CallRecord(call_id="a", started_at=format_time(now - 86400), status="success", cost_usd=0.6, project="p1"),
            CallRecord(call_id="b", started_at=format_time(now - 60), status="success", cost_usd=0.3, project="p2"),
            CallRecord(call_id="sdk", started_at=format_time(now - 60), status="success", cost_usd=9.0, source="direct"),
        ])
    clock = Clock()
    read = ledger_query_reader(lambda ledger, since, ids: ledger.gateway_spend(since, ids), lambda: SqliteLedger(path))
    guard = GatewaySpendGuard(read, refresh_seconds=10, clock=clock, wall=lambda: now)
    budgets = GatewayBudgets(monthly_usd=1.0, period="30d", source="/p/backlog.config.json")
    assert guard.spent(budgets) == pytest.approx(0.9)  # the last 30 days, proxy calls, every project
    assert guard.check(budgets, "/p/litellm.yaml") is None
    guard.settle("c", 0.2)  # finished here, not in the ledger yet
    refusal = guard.check(budgets, "/p/litellm.yaml")
    assert refusal is not None and refusal.status == 402 and refusal.used == pytest.approx(1.1)
    assert "overall budget: spent $1.1000 of $1.0000 in the last 30d (all projects)" in refusal.message
    assert "llmOps.budgets.monthlyUSD" in refusal.message and "/p/litellm.yaml" in refusal.message
    # Once the ledger has the call it is counted once, not twice.
    with SqliteLedger(path) as ledger:
        ledger.record_many([CallRecord(call_id="c", started_at=format_time(now), status="success", cost_usd=0.2)])
    clock.now += 11
    assert guard.spent(budgets) == pytest.approx(1.1)
    assert guard.check(GatewayBudgets(monthly_usd=None), None) is None
    assert guard.check(GatewayBudgets(monthly_usd=2.0, period="monthly"), None) is None


def test_litellm_router_budget_errors_become_clear_refusals() -> None:
    from backlog_ops.policy.gateway_budget import GatewayBudgets, router_refusal

    budgets = GatewayBudgets(per_alias_usd={"frontier": 300.0}, per_provider_usd={"openai": 200.0}, source="/p/backlog.config.json")
    provider = ("litellm.BadRequestError: No deployments available - crossed budget: Exceeded budget for provider "
                "openai: 200.0123 >= 200.0\n")
    refusal = router_refusal(provider, budgets, "/p/litellm.yaml")
    assert refusal.status == 402 and (refusal.used, refusal.limit) == (200.0123, 200.0)
    assert "provider openai has reached its budget: spent $200.01 of $200.00" in refusal.message
    assert "llmOps.budgets.perProviderUSD.openai in /p/backlog.config.json" in refusal.message
    alias = ("No deployments available - crossed budget: Exceeded budget for deployment model_name: frontier, "
             "litellm_params.model: anthropic/claude-opus-4-6, model_id: abc: 300.2 >= 30d")
    refusal = router_refusal(alias, budgets, None)
    assert "the frontier model (anthropic/claude-opus-4-6) has used its budget of $300.00" in refusal.message
    assert "llmOps.budgets.perAliasUSD.frontier" in refusal.message and "restart the proxy" in refusal.message
    assert router_refusal("litellm.InternalServerError: boom", budgets, None) is None


def test_gateway_budgets_section_errors_name_the_key() -> None:
    from backlog_ops.policy.gateway_budget import parse_gateway_budgets

    assert parse_gateway_budgets({}) is None
    assert parse_gateway_budgets({"gateway_budgets": {"monthly_usd": 5, "period": "1mo"}}).period_seconds == 30 * 86400
    for bad, message in (({"monthly_usd": -1}, "gateway_budgets.monthly_usd: must be a positive number"),
                         ({"per_provider_usd": {"openai": "lots"}}, "gateway_budgets.per_provider_usd.openai"),
                         ({"period": "soon"}, "gateway_budgets.period")):
        with pytest.raises(ConfigError, match=message):
            parse_gateway_budgets({"gateway_budgets": bad})


def test_the_overall_budget_keeps_the_last_figure_and_says_so_while_the_ledger_is_down() -> None:
    from backlog_ops.policy.gateway_budget import GatewayBudgets, GatewaySpendGuard

    state = {"up": True}
    warnings: list[str] = []

    def read(since, ids):
        if not state["up"]:
            raise ConnectionError("connection refused")
        return {"cost_usd": 0.8, "present": []}

    clock = Clock()
    guard = GatewaySpendGuard(read, refresh_seconds=10, clock=clock, warn=warnings.append)
    budgets = GatewayBudgets(monthly_usd=1.0)
    assert guard.check(budgets, None) is None
    state["up"] = False
    clock.now += 11
    guard.settle("x", 0.25)
    refusal = guard.check(budgets, None)  # last figure read + this proxy's call: over
    assert refusal is not None and refusal.used == pytest.approx(1.05)
    assert len(warnings) == 1 and "the ledger cannot be read (ConnectionError: connection refused)" in warnings[0]
    guard.check(budgets, None)
    assert len(warnings) == 1, "not retried (nor told) on every call"
