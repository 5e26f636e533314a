"""Gateway-wide budgets (llmOps.budgets.monthlyUSD, perAliasUSD, perProviderUSD): who enforces which.

- per alias and per provider: LiteLLM's router (`max_budget`/`budget_duration` on each alias's
  deployment, `router_settings.provider_budget_config`), which needs no database: it counts spend
  in memory, in Redis when the proxy has one (the response cache's). Over budget, the router finds
  no deployment; `router_refusal` turns that into a clear HTTP 402 naming the key to raise.
- the overall budget (monthlyUSD): LiteLLM's `litellm_settings.max_budget` is enforced only with
  its own database (without one it logs that it will not be), so `GatewaySpendGuard` enforces it
  here from the spend ledger: every proxy call of the last `period`, all projects.

`config render` writes the limits into the proxy config's `backlog_ops.gateway_budgets` section.
Imports neither litellm nor pydantic: the ticket-policy callback runs it on every request.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from backlog_ops.common.times import format_time, parse_duration
from backlog_ops.common.warnings import Warnings
from backlog_ops.errors import ConfigError
from backlog_ops.policy.engine import Refusal, ledger_query_reader
from backlog_ops.policy.messages import alias_budget_message, monthly_budget_message, provider_budget_message

__all__ = ["GATEWAY_SECTION", "GatewayBudgets", "GatewaySpendGuard", "parse_gateway_budgets", "router_refusal"]

GATEWAY_SECTION = "gateway_budgets"  # inside the proxy config's backlog_ops section
# LiteLLM's budget resets by name, as `duration_problem` accepts them.
_NAMED_PERIODS = {"hourly": "1h", "daily": "1d", "weekly": "1w", "monthly": "1mo"}
# What LiteLLM's router says when budgets leave no deployment (RouterErrors.no_deployments_with_provider_budget_routing).
ROUTER_BUDGET_ERROR = "No deployments available - crossed budget"
_PROVIDER_OVER = re.compile(r"Exceeded budget for provider ([\w.-]+): ([0-9.eE+-]+) >= ([0-9.eE+-]+)")
log = logging.getLogger("backlog_ops.policy")
_ALIAS_OVER = re.compile(r"Exceeded budget for deployment model_name: ([^,]+), litellm_params\.model: ([^,]+),")


@dataclass(frozen=True)
class GatewayBudgets:
    """The gateway-wide limits of a rendered config, and the backlog.config.json they came from."""

    monthly_usd: float | None = None
    period: str = "30d"
    per_alias_usd: dict[str, float] = field(default_factory=dict)
    per_provider_usd: dict[str, float] = field(default_factory=dict)
    source: str | None = None

    @property
    def period_seconds(self) -> int:
        return parse_duration(_NAMED_PERIODS.get(self.period, self.period), allow_bare_seconds=False)


def parse_gateway_budgets(section: Any) -> GatewayBudgets | None:
    """`backlog_ops.gateway_budgets` -> GatewayBudgets (None when absent); ConfigError names the key."""
    entry = (section or {}).get(GATEWAY_SECTION) if isinstance(section, dict) else None
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise ConfigError(f"{GATEWAY_SECTION}: must be a mapping")

    def usd(value: Any, key: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{GATEWAY_SECTION}.{key}: must be a positive number of USD or null, got {value!r}")
        return float(value)

    def per(key: str) -> dict[str, float]:
        raw = entry.get(key) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{GATEWAY_SECTION}.{key}: must map names to USD")
        return {str(k): usd(v, f"{key}.{k}") for k, v in raw.items() if v is not None}

    budgets = GatewayBudgets(
        monthly_usd=usd(entry.get("monthly_usd"), "monthly_usd"),
        period=str(entry.get("period") or "30d"),
        per_alias_usd=per("per_alias_usd"),
        per_provider_usd=per("per_provider_usd"),
        source=str(entry["source"]) if entry.get("source") else None,
    )
    try:
        budgets.period_seconds
    except ValueError as exc:
        raise ConfigError(f"{GATEWAY_SECTION}.period: {exc}") from None
    return budgets


def router_refusal(error_text: str, budgets: GatewayBudgets | None, config_hint: str | None) -> Refusal | None:
    """The clear refusal for LiteLLM's 'crossed budget' routing error (None for any other error)."""
    if ROUTER_BUDGET_ERROR not in error_text:
        return None
    budgets = budgets or GatewayBudgets()
    if m := _PROVIDER_OVER.search(error_text):
        provider, spent, limit = m.group(1), float(m.group(2)), float(m.group(3))
        return Refusal("gateway_budget", None, None,
                       provider_budget_message(provider, spent, limit, budgets, config_hint), spent, limit)
    if m := _ALIAS_OVER.search(error_text):
        alias = m.group(1).strip()
        limit = budgets.per_alias_usd.get(alias)
        return Refusal("gateway_budget", None, None,
                       alias_budget_message(alias, m.group(2).strip(), limit, budgets, config_hint), limit or 0.0, limit or 0.0)
    return None


class GatewaySpendGuard:
    """The overall budget: proxy spend of the last `period` (ledger + calls finished here since the read).

    The ledger is read at most every `refresh_seconds` (a sum over a month of rows: too much for
    every request), and the calls this process finished meanwhile are added until the ledger has
    them, so one proxy cannot overshoot by more than the calls running at once. Other replicas'
    calls count from the next read. A ledger that cannot be read keeps the last figure plus the
    calls counted here, with a warning in the proxy log (at most one a minute).
    """

    def __init__(self, reader: Callable[[str, list[str]], dict] | None = None, *, refresh_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 warn: Callable[[str], object] | None = None) -> None:
        once_a_minute = Warnings(log, interval=60)
        self._warn = warn or (lambda message: once_a_minute(message, key="gateway-budget-ledger"))
        self._reader = reader or ledger_query_reader(lambda ledger, since, ids: ledger.gateway_spend(since, ids))
        self._refresh = refresh_seconds
        self._clock, self._wall = clock, wall
        self._lock = threading.Lock()
        self._ledger_cost = 0.0
        self._read_at = float("-inf")
        self._period: int | None = None
        self._settled: dict[str, tuple[float, float]] = {}  # call_id -> (cost, wall time)
        self._settled_usd = 0.0  # their sum, kept as they come and go: no walk over them per call

    def spent(self, budgets: GatewayBudgets) -> float:
        """USD spent through the gateway within the period, as far as this process knows."""
        period = budgets.period_seconds
        with self._lock:
            now = self._clock()
            if period != self._period or now - self._read_at >= self._refresh:
                since = self._wall() - period
                try:
                    result = self._reader(format_time(since), list(self._settled))
                except Exception as exc:  # noqa: BLE001 - keep the last figure, and say so
                    result = None
                    self._read_at = now  # try again after refresh_seconds, not on every call
                    self._warn(f"the gateway's overall budget is checked against the last spend read "
                               f"(${self._ledger_cost:.4f}) plus this proxy's calls since: the ledger cannot be read "
                               f"({type(exc).__name__}: {exc})")
                if result is not None:
                    self._ledger_cost, self._read_at, self._period = float(result["cost_usd"]), now, period
                    for call_id in result["present"]:
                        self._forget(call_id)
                    for call_id, (_, at) in list(self._settled.items()):
                        if at < since:
                            self._forget(call_id)
                    self._settled_usd = sum(c for c, _ in self._settled.values())  # no drift from float sums
            return self._ledger_cost + self._settled_usd

    def check(self, budgets: GatewayBudgets | None, config_hint: str | None) -> Refusal | None:
        if budgets is None or budgets.monthly_usd is None:
            return None
        spent = self.spent(budgets)
        if spent >= budgets.monthly_usd:
            return Refusal("gateway_budget", None, None,
                           monthly_budget_message(spent, budgets.monthly_usd, budgets, config_hint), spent, budgets.monthly_usd)
        return None

    def settle(self, call_id: str, cost: float) -> None:
        """A call finished: count its cost until the ledger has it."""
        if cost > 0:
            with self._lock:
                self._forget(call_id)
                self._settled[call_id] = (cost, self._wall())
                self._settled_usd += cost
                if len(self._settled) > 100_000:  # bounded even if the ledger never catches up
                    self._forget(next(iter(self._settled)))

    def _forget(self, call_id: str) -> None:
        entry = self._settled.pop(call_id, None)
        if entry is not None:
            self._settled_usd -= entry[0]
