"""Prometheus metrics with ticket context, label cardinality bounded; shared by our callbacks.

Every series carries `project, ticket, gate, agent` (agent = the context's agent_type). Label
values come from the request's `ticket:/gate:/project:/agent:` tags. Each label admits at most N
distinct values per process (first come, first kept); later values are reported as "other", so a
long-running proxy cannot grow /metrics without bound. Missing values are "none".

    BACKLOG_METRICS_MAX_TICKETS   (default 200)
    BACKLOG_METRICS_MAX_PROJECTS  (default 50)
    BACKLOG_METRICS_MAX_GATES     (default 30)
    BACKLOG_METRICS_MAX_AGENTS    (default 50)
    BACKLOG_METRICS_MAX_MODELS    (default 50)  model_group label
    BACKLOG_METRICS_MAX_KINDS     (default 50)  guardrail alert kinds

Series (counters; the registry is prometheus_client's default, so LiteLLM's own `prometheus`
callback, when enabled, shares the same /metrics):

    backlog_llm_calls_total{project,ticket,gate,agent,model_group,status}
    backlog_llm_spend_usd_total{project,ticket,gate,agent,model_group}
    backlog_llm_tokens_total{project,ticket,gate,agent,model_group,type}   type: prompt|completion|cache_read|cache_write
    backlog_llm_cache_hits_total{project,ticket,gate,agent,model_group}
    backlog_llm_cache_saved_usd_total{project,ticket,gate,agent,model_group}
    backlog_guardrail_alerts_total{project,ticket,gate,agent,kind}
    backlog_budget_refusals_total{project,ticket,gate,agent,reason}
    backlog_compression_saved_tokens_total{project,ticket,gate,agent}      estimated (chars/4)
    backlog_budget_marks_total{project,ticket,gate,agent,mark}             a ticket passed 50/80/100% or
                                                                           has one escalation left
    backlog_runaway_alerts_total{project,ticket,gate,agent,kind,scope}     runaway-spend alerts
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any, Iterable

from backlog_ops.common.extras import require
from backlog_ops.common.settings import env_int
from backlog_ops.common.warnings import Warnings
from backlog_ops.context.fields import fields_from_tags
from backlog_ops.errors import ConfigError, MissingExtra

__all__ = ["LabelLimiter", "Metrics", "context_labels", "get_metrics", "mount_metrics_endpoint"]

log = logging.getLogger("backlog_ops.metrics")

CONTEXT_LABELS = ("project", "ticket", "gate", "agent")
# Context field -> its label, in CONTEXT_LABELS order.
_FIELD_LABELS = (("project", "project"), ("ticket_id", "ticket"), ("gate", "gate"), ("agent_type", "agent"))
OTHER = "other"
NONE = "none"

_DEFAULT_LIMITS = {"ticket": 200, "project": 50, "gate": 30, "agent": 50, "model_group": 50, "kind": 50, "reason": 20,
                   "mark": 10, "scope": 5}
_ENV = {"ticket": "BACKLOG_METRICS_MAX_TICKETS", "project": "BACKLOG_METRICS_MAX_PROJECTS", "gate": "BACKLOG_METRICS_MAX_GATES",
        "agent": "BACKLOG_METRICS_MAX_AGENTS", "model_group": "BACKLOG_METRICS_MAX_MODELS", "kind": "BACKLOG_METRICS_MAX_KINDS"}


class LabelLimiter:
    """At most `limit` distinct values per label name; the rest become "other". Thread-safe."""

    def __init__(self, limits: dict[str, int] | None = None) -> None:
        self.limits = dict(_DEFAULT_LIMITS)
        for name, var in _ENV.items():
            try:
                self.limits[name] = max(0, env_int(var, self.limits[name]))
            except ConfigError as exc:
                log.warning("backlog-ops: ignoring %s", exc)
        self.limits.update(limits or {})
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def value(self, name: str, raw: Any) -> str:
        if raw is None or raw == "":
            return NONE
        value = str(raw)[:128]
        seen = self._seen.get(name)
        if seen is not None and value in seen:
            return value
        with self._lock:
            seen = self._seen.setdefault(name, set())
            if value in seen:
                return value
            if len(seen) >= self.limits.get(name, 100):
                return OTHER
            seen.add(value)
            return value


def context_labels(tags: Iterable[Any] | None) -> dict[str, str | None]:
    """{project, ticket, gate, agent} from ticket:/gate:/project:/agent: tags (first one wins)."""
    fields = fields_from_tags(tags)
    return {label: fields.get(field) for field, label in _FIELD_LABELS}


class Metrics:
    """The counters, created once per process in prometheus_client's default registry."""

    def __init__(self, limiter: LabelLimiter | None = None, registry: Any = None) -> None:
        prometheus_client = require("prometheus_client", "metrics", "Prometheus metrics (the metrics callback)")
        REGISTRY, Counter = prometheus_client.REGISTRY, prometheus_client.Counter

        self.limiter = limiter or LabelLimiter()
        registry = registry if registry is not None else REGISTRY
        ctx = list(CONTEXT_LABELS)

        def counter(name: str, doc: str, extra: list[str]) -> Any:
            return Counter(name, doc, ctx + extra, registry=registry)

        self.calls = counter("backlog_llm_calls", "LLM calls by ticket context and outcome", ["model_group", "status"])
        self.spend = counter("backlog_llm_spend_usd", "LLM spend in USD (LiteLLM's pricing)", ["model_group"])
        self.tokens = counter("backlog_llm_tokens", "LLM tokens by type", ["model_group", "type"])
        self.cache_hits = counter("backlog_llm_cache_hits", "LiteLLM response-cache hits", ["model_group"])
        self.cache_saved = counter("backlog_llm_cache_saved_usd", "USD saved by response-cache hits", ["model_group"])
        self.alerts = counter("backlog_guardrail_alerts", "Guardrail alerts (alert only, never blocked)", ["kind"])
        self.refusals = counter("backlog_budget_refusals", "Requests refused by the ticket policy (HTTP 402)", ["reason"])
        self.compression = counter("backlog_compression_saved_tokens", "Prompt tokens saved by compression (chars/4)", [])
        self.budget_marks = counter("backlog_budget_marks", "Tickets passing 50/80/100% of their budget, or one escalation left", ["mark"])
        self.runaway = counter("backlog_runaway_alerts", "Runaway-spend alerts (sessions or tickets spending too fast)", ["kind", "scope"])

    def _ctx(self, context: dict) -> dict[str, str]:
        lim = self.limiter.value
        return {k: lim(k, context.get(k)) for k in CONTEXT_LABELS}

    def record_call(self, context: dict, record: Any, *, status: str) -> None:
        """Count one call from its ledger row (a CallRecord); `status` may differ from the row's ("refused")."""
        labels = self._ctx(context)
        group = self.limiter.value("model_group", record.model_group)
        self.calls.labels(**labels, model_group=group, status=status).inc()
        if record.cost_usd > 0:
            self.spend.labels(**labels, model_group=group).inc(record.cost_usd)
        tokens = (("prompt", record.prompt_tokens), ("completion", record.completion_tokens),
                  ("cache_read", record.cache_read_tokens), ("cache_write", record.cache_write_tokens))
        for kind, n in tokens:
            if n > 0:
                self.tokens.labels(**labels, model_group=group, type=kind).inc(n)
        if record.cache_hit:
            self.cache_hits.labels(**labels, model_group=group).inc()
            if record.saved_cost_usd > 0:
                self.cache_saved.labels(**labels, model_group=group).inc(record.saved_cost_usd)

    def record_alerts(self, context: dict, kinds: Iterable[str]) -> None:
        labels = self._ctx(context)
        for kind in kinds:
            self.alerts.labels(**labels, kind=self.limiter.value("kind", kind)).inc()

    def record_refusal(self, context: dict, reason: str | None) -> None:
        self.refusals.labels(**self._ctx(context), reason=self.limiter.value("reason", reason or "budget")).inc()

    def record_budget_mark(self, context: dict, mark: str) -> None:
        self.budget_marks.labels(**self._ctx(context), mark=self.limiter.value("mark", mark)).inc()

    def record_runaway(self, context: dict, kind: str, scope: str) -> None:
        lim = self.limiter.value
        self.runaway.labels(**self._ctx(context), kind=lim("kind", kind), scope=lim("scope", scope)).inc()

    def record_compression(self, context: dict, saved_tokens: int) -> None:
        if saved_tokens > 0:
            self.compression.labels(**self._ctx(context)).inc(saved_tokens)


_metrics: Metrics | None = None
_metrics_lock = threading.Lock()


_missing = Warnings("backlog_ops.metrics")


def get_metrics() -> Metrics | None:
    """The process's Metrics, or None when prometheus_client is not installed."""
    global _metrics
    if _metrics is None:
        with _metrics_lock:
            if _metrics is None:
                try:
                    _metrics = Metrics()
                except MissingExtra as exc:
                    _missing.warn(str(exc))
                    return None
    return _metrics


def mount_metrics_endpoint(app: Any = None, path: str = "/metrics") -> bool:
    """Serve the default registry on the LiteLLM proxy's own app at `path` (no auth, as LiteLLM's
    prometheus callback does). No-op when something is mounted there already. True when mounted."""
    if app is None:
        server = sys.modules.get("litellm.proxy.proxy_server")
        app = getattr(server, "app", None)
        if app is None:
            return False
    for route in getattr(app, "routes", ()):
        if getattr(route, "path", None) == path:
            return False
    from prometheus_client import REGISTRY

    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # several uvicorn workers: aggregate their files
        from prometheus_client import CollectorRegistry, multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    try:
        from litellm.integrations.prometheus_metrics_endpoint import (
            make_metrics_asgi_app,
        )

        metrics_app = make_metrics_asgi_app(registry)
    except Exception:  # noqa: BLE001 - an older LiteLLM: prometheus_client's own app
        from prometheus_client import make_asgi_app

        metrics_app = make_asgi_app(registry)
    app.mount(path, metrics_app)
    log.info("backlog-ops: Prometheus metrics on %s", path)
    return True
