"""TicketPolicy: refuse calls for a ticket over its budget or its frontier-escalation limit.

Loaded by `litellm --config` through `litellm_settings.callbacks:
backlog_ops.callbacks.ticket_policy.ticket_policy`, listed AFTER the ticket tagger: it reads the
`ticket:` and `project:` tags the tagger put on the request (a caller's own explicit `ticket:`
tag counts too, exactly as the ledger records it).

A request tagged with one of `backlog_ops.routing.critical_tags` is sent to the frontier alias
first: critical work is never served by a cheaper model, and it counts as an escalation.

The limits come from the `backlog_ops.policy` section of the config file the proxy runs
(`backlog-ops config render` writes it from backlog.config.json), or of $BACKLOG_POLICY_FILE;
`backlog_ops.policy.limits_file` reads it again when it changes, at most once a second.

Gateway-wide budgets (`backlog_ops.gateway_budgets`, policy/gateway_budget.py): the overall one
(llmOps.budgets.monthlyUSD) is checked here, before the ticket's, from the ledger; LiteLLM's router
enforces the per-alias and per-provider ones, and its "crossed budget" error is turned into the
same kind of 402 with the key to raise (async_post_call_failure_hook).

A refusal is `fastapi.HTTPException(402)`: both /v1/chat/completions and /v1/messages return its
message to the client (Claude Code prints it), and 402 is not retried the way 429 is. Any other
problem in here lets the call through with one warning in the proxy log: a budget stop is the
only deliberate refusal.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from backlog_ops.common.prices import priciest_token_price
from backlog_ops.common.warnings import Warnings
from backlog_ops.context.fields import fields_from_tags
from backlog_ops.policy.engine import PolicyEngine, Refusal
from backlog_ops.policy.gateway_budget import GatewaySpendGuard, router_refusal
from backlog_ops.policy.limits import TicketPolicy
from backlog_ops.policy.limits_file import PolicyFile
from backlog_ops.policy.redis_counts import shared_counts_factory

from .base import proxy_config_path
from .runaway_watch import RunawayWatch

__all__ = ["TicketPolicyCallback", "ticket_policy"]

log = logging.getLogger("backlog_ops.policy")

_PRICE_TTL = 60.0
_MAX_COMPLETION_ESTIMATE = 4096


class TicketPolicyCallback(CustomLogger):
    def __init__(self, engine: PolicyEngine | None = None, policy_file: str | None = None) -> None:
        super().__init__()
        self._engine = engine
        self._warn = Warnings(log)
        self.limits = PolicyFile(policy_file, proxy_config=proxy_config_path, warn=self._warn)
        self._prices: dict[str, tuple[float, float, float]] = {}  # alias -> (in, out, read at)
        # Runaway-spend alerts (llmOps.alerts.runaway), with the limits read from the same file.
        self.runaway = RunawayWatch(self.limits.runaway_for, warn=self._warn)
        # The gateway's overall budget (llmOps.budgets.monthlyUSD), from the ledger: LiteLLM's own
        # max_budget needs its database.
        self.gateway = GatewaySpendGuard()

    @property
    def engine(self) -> PolicyEngine:
        if self._engine is None:  # first use, not import: BACKLOG_HOME may not be final at import
            # With the team's Redis configured, reservations are shared by every process and replica.
            self._engine = PolicyEngine(shared=shared_counts_factory())
        return self._engine

    # -- proxy hooks -----------------------------------------------------------------------------

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: str) -> dict:
        refusal = None
        try:
            # A paused session (runaway alert, policy pause) is refused before anything is reserved.
            refusal = self.runaway.before_call(data, _request_tags(data))
        except Exception as exc:  # noqa: BLE001
            self._warn(f"runaway watch skipped, call goes on: {type(exc).__name__}: {exc}")
        try:
            refusal = refusal or self.gateway.check(self.limits.gateway_budgets(), self.limits.path())
        except Exception as exc:  # noqa: BLE001
            self._warn(f"gateway budget check skipped, call goes on: {type(exc).__name__}: {exc}")
        try:
            refusal = refusal or self.decide(data)
        except Exception as exc:  # noqa: BLE001 - an internal error never fails the user's call
            self._warn(f"ticket policy skipped, call goes on: {type(exc).__name__}: {exc}")
        if refusal is not None:
            from fastapi import HTTPException

            log.warning("backlog-ops: refused: %s", refusal.message)
            raise HTTPException(status_code=refusal.status, detail=refusal.detail())
        return data

    async def async_log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        try:
            slo = kwargs.get("standard_logging_object") or {}
            call_id = kwargs.get("litellm_call_id") or slo.get("litellm_call_id")
            if not call_id:
                return
            cost = slo.get("response_cost")
            if cost is None:
                cost = kwargs.get("response_cost")
            self.gateway.settle(str(call_id), float(cost or 0.0))
            self.engine.settle(
                str(call_id),
                float(cost or 0.0),
                model_group=slo.get("model_group") or None,
                model=slo.get("model") or None,
                cache_hit=bool(slo.get("cache_hit")),
            )
        except Exception as exc:  # noqa: BLE001
            self._warn(f"ticket policy could not settle a call: {type(exc).__name__}: {exc}")
        try:
            self.runaway.after_call(kwargs)
        except Exception as exc:  # noqa: BLE001
            self._warn(f"runaway watch could not count a call: {type(exc).__name__}: {exc}")

    async def async_post_call_failure_hook(
        self, request_data: dict, original_exception: Exception, user_api_key_dict: Any, traceback_str: str | None = None
    ) -> None:
        # The request failed for good (retries and fallbacks are over): nothing was spent.
        try:
            call_id = request_data.get("litellm_call_id")
            if call_id:
                self.engine.release(str(call_id))
        except Exception as exc:  # noqa: BLE001
            self._warn(f"ticket policy could not release a call: {type(exc).__name__}: {exc}")
        # LiteLLM's router refused for a per-alias or per-provider budget: say so plainly (402, the
        # budget and the key that raises it) instead of its "No deployments available" text.
        try:
            refusal = router_refusal(str(original_exception), self.limits.gateway_budgets(), self.limits.path())
        except Exception as exc:  # noqa: BLE001
            self._warn(f"could not explain a budget refusal: {type(exc).__name__}: {exc}")
            refusal = None
        if refusal is not None:
            from fastapi import HTTPException

            log.warning("backlog-ops: refused: %s", refusal.message)
            return HTTPException(status_code=refusal.status, detail=refusal.detail())
        return None

    # -- the decision ----------------------------------------------------------------------------

    def decide(self, data: dict) -> Refusal | None:
        tags = _request_tags(data)
        frontier, critical = self.limits.routing()
        if critical and data.get("model") != frontier and any(t in critical for t in tags):
            # Critical work stays on the frontier model, whatever alias it asked for.
            data["model"] = frontier
        fields = fields_from_tags(tags)
        ticket = fields.get("ticket_id")
        if ticket is None:
            return None
        policy = self.limits.policy_for(fields.get("project"))
        if policy is None or not policy.limited:
            return None
        call_id = str(data.get("litellm_call_id") or f"policy-{time.time_ns()}")
        model = data.get("model")
        escalation = policy.is_escalation(model)
        budget, _ = policy.budget_for(ticket)
        estimate = self._estimate(model, data) if budget is not None else 0.0
        return self.engine.check(
            call_id, ticket, policy, escalation=escalation, estimate_usd=estimate, config_hint=self.limits.path()
        )

    def policies(self) -> dict[str, TicketPolicy]:
        """{project: limits} from the policy file, as the next request sees them."""
        return self.limits.policies()

    # -- a cost estimate to reserve while a call runs --------------------------------------------

    def _estimate(self, alias: Any, data: dict) -> float:
        if not isinstance(alias, str):
            return 0.0
        try:
            price_in, price_out = self._price(alias)
        except Exception as exc:  # noqa: BLE001
            self._warn(f"no price for {alias!r}, in-flight calls reserve $0: {type(exc).__name__}: {exc}")
            return 0.0
        headers = (data.get("proxy_server_request") or {}).get("headers") or {}
        try:
            size = int(headers.get("content-length") or 0)
        except (TypeError, ValueError):
            size = 0
        if size <= 0:
            size = len(json.dumps([data.get("messages"), data.get("system"), data.get("tools")], default=str))
        prompt_tokens = size // 4
        try:
            completion = int(data.get("max_tokens") or data.get("max_completion_tokens") or 1024)
        except (TypeError, ValueError):
            completion = 1024
        return prompt_tokens * price_in + min(completion, _MAX_COMPLETION_ESTIMATE) * price_out

    def _price(self, alias: str) -> tuple[float, float]:
        """(input, output) USD per token of the priciest deployment behind an alias, cached a minute."""
        cached = self._prices.get(alias)
        now = time.monotonic()
        if cached and now - cached[2] < _PRICE_TTL:
            return cached[0], cached[1]
        from litellm.proxy import proxy_server

        router = proxy_server.llm_router
        deployments = (router.get_model_list(model_name=alias) if router is not None else None) or []
        price_in, price_out = priciest_token_price(deployments)
        if (price_in, price_out) == (0.0, 0.0):
            raise LookupError(f"no deployment of {alias!r} has a price")
        if len(self._prices) > 1000:
            self._prices.clear()
        self._prices[alias] = (price_in, price_out, now)
        return price_in, price_out


def _request_tags(data: dict) -> list[str]:
    """The request's tags after the tagger ran: chat keeps them in metadata, /v1/messages in litellm_metadata."""
    tags: list[str] = []
    for key in ("litellm_metadata", "metadata"):
        meta = data.get(key)
        if isinstance(meta, dict) and isinstance(meta.get("tags"), list):
            tags.extend(t for t in meta["tags"] if isinstance(t, str))
    body = data.get("tags")
    if isinstance(body, list):
        tags.extend(t for t in body if isinstance(t, str))
    return tags


ticket_policy = TicketPolicyCallback()
