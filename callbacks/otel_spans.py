"""OtelSpans: one OpenTelemetry span per LLM call, with the ticket context as attributes.

    litellm_settings:
      callbacks:
        - backlog_ops.callbacks.ticket_tagger.ticket_tagger
        - backlog_ops.callbacks.otel_spans.otel_spans

Span `backlog.llm_call`, from the call's start to its end, attributes:
    backlog.ticket_id, backlog.gate, backlog.project, backlog.agent_type, backlog.skill,
    backlog.component, backlog.session_id, backlog.agent_id, backlog.guardrail_alerts,
    backlog.cost_usd, backlog.cache_hit, backlog.status, litellm.call_id, litellm.trace_id,
    gen_ai.system, gen_ai.request.model (the alias / model group), gen_ai.response.model,
    gen_ai.usage.input_tokens, gen_ai.usage.output_tokens, error.type (on failure).

Spans go to the tracer provider in force: the global one (set by your OTel setup, or by the
OTEL_* environment below), or one passed to `OtelSpans(tracer_provider=...)` (tests use the
SDK's InMemorySpanExporter). With no SDK configured, spans are no-ops and cost ~1 µs.

When no global SDK provider is set and OTEL_EXPORTER_OTLP_ENDPOINT is, the first call sets one
up with the OTLP/HTTP exporter (needs `opentelemetry-sdk` and
`opentelemetry-exporter-otlp-proto-http`). BACKLOG_OTEL_CONSOLE=1 prints spans instead.
Needs only `opentelemetry-api` (a LiteLLM dependency) to load.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from backlog_ops.common.settings import env_str
from backlog_ops.context.fields import fields_from_tags

from .base import FinishedCallCallback

__all__ = ["OtelSpans", "otel_spans", "span_attributes"]

log = logging.getLogger("backlog_ops.otel")

SPAN_NAME = "backlog.llm_call"


class OtelSpans(FinishedCallCallback):
    skipped = "span"

    def __init__(self, tracer_provider: Any = None) -> None:
        super().__init__(log)
        self._provider = tracer_provider
        self._tracer: Any = None

    @property
    def tracer(self) -> Any:
        if self._tracer is None:
            from opentelemetry import trace

            provider = self._provider or _default_provider()
            self._tracer = (provider or trace.get_tracer_provider()).get_tracer("backlog_ops")
        return self._tracer

    def _handle(self, slo: dict, status: str, kwargs: dict) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        start = _ns(slo.get("startTime"))
        end = _ns(slo.get("endTime"))
        span = self.tracer.start_span(SPAN_NAME, kind=SpanKind.CLIENT, start_time=start, attributes=span_attributes(slo, status))
        if status == "failure":
            error = slo.get("error_information") or {}
            span.set_status(Status(StatusCode.ERROR, str(error.get("error_class") or "error")))
        span.end(end_time=end if end and start and end >= start else None)


def span_attributes(slo: dict, status: str) -> dict[str, Any]:
    meta = slo.get("metadata") or {}
    spend_meta = meta.get("spend_logs_metadata") or {}
    attrs: dict[str, Any] = {"backlog.status": status}
    for field, value in fields_from_tags(slo.get("request_tags")).items():
        attrs[f"backlog.{field}"] = value
    for key, name in (("backlog_session_id", "backlog.session_id"), ("backlog_agent_id", "backlog.agent_id"),
                      ("backlog_guardrail_alerts", "backlog.guardrail_alerts")):
        if spend_meta.get(key):
            attrs[name] = str(spend_meta[key])
    values = {
        "litellm.call_id": slo.get("litellm_call_id"),
        "litellm.trace_id": slo.get("trace_id"),
        "gen_ai.system": slo.get("custom_llm_provider"),
        "gen_ai.request.model": slo.get("model_group") or slo.get("model"),
        "gen_ai.response.model": slo.get("model"),
        "gen_ai.usage.input_tokens": slo.get("prompt_tokens"),
        "gen_ai.usage.output_tokens": slo.get("completion_tokens"),
        "backlog.cost_usd": slo.get("response_cost"),
        "backlog.cache_hit": bool(slo.get("cache_hit")),
    }
    if status == "failure":
        values["error.type"] = (slo.get("error_information") or {}).get("error_class")
    for name, value in values.items():
        if value is not None and value != "":
            attrs[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return attrs


def _ns(value: Any) -> int | None:
    try:
        return int(float(value) * 1e9) if value else None
    except (TypeError, ValueError):
        return None


def _default_provider() -> Any:
    """The global provider if an SDK one is set; else one built from OTEL_* env; else None (API no-op)."""
    from opentelemetry import trace

    current = trace.get_tracer_provider()
    if type(current).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return current
    console = env_str("BACKLOG_OTEL_CONSOLE") in ("1", "true", "yes")
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or console):
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
        )

        provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "backlog-ops-gateway")}))
        if console:
            exporter: Any = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )

            exporter = OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself
        provider.add_span_processor(BatchSpanProcessor(exporter))  # export off the request path
        return provider
    except ImportError as exc:
        log.warning("backlog-ops: OTel export configured but %s is missing; spans are not exported", exc.name)
        return None


otel_spans = OtelSpans()
