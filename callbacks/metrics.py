"""Metrics: Prometheus counters with project/ticket/gate/agent labels, on the proxy's own /metrics.

    litellm_settings:
      callbacks:
        - backlog_ops.callbacks.ticket_tagger.ticket_tagger
        - backlog_ops.callbacks.metrics.metrics

Needs `prometheus_client` (pip install prometheus_client). Loaded by the proxy, it mounts
/metrics on LiteLLM's app (unless something, e.g. LiteLLM's own `prometheus` callback, already
serves it: both then share one registry). Like LiteLLM's, the endpoint has no auth: bind the proxy
to 127.0.0.1 or put it behind your network policy. Series and label bounds: see
backlog_ops.gateway.observability.

Counted from LiteLLM's success/failure events (one per request; a retried call that failed then
succeeded counts once per event, as LiteLLM logs it). A ticket-policy refusal (HTTP 402 raised in
the pre-call hook: error_class HTTPException/ProxyException, error_code 402) is counted as
`backlog_budget_refusals_total`; its ticket comes from the request tags, else from the 402's detail.
"""

from __future__ import annotations

import logging
import sys

from backlog_ops.capture.proxy_record import record_from_logging_object
from backlog_ops.gateway.observability import (
    context_labels,
    get_metrics,
    mount_metrics_endpoint,
)

from .base import FinishedCallCallback

__all__ = ["MetricsCallback", "metrics"]

log = logging.getLogger("backlog_ops.metrics")


_REFUSAL_CLASSES = ("HTTPException", "ProxyException")


class MetricsCallback(FinishedCallCallback):
    skipped = "metrics"

    def __init__(self, *, mount: bool = True) -> None:
        super().__init__(log)
        if mount and "litellm.proxy.proxy_server" in sys.modules:
            # Loaded by the proxy (its config names us): serve /metrics on the proxy's own port.
            try:
                mount_metrics_endpoint()
            except Exception as exc:  # noqa: BLE001
                self._warn(f"/metrics not mounted: {type(exc).__name__}: {exc}")

    def _handle(self, slo: dict, status: str, kwargs: dict) -> None:
        m = get_metrics()
        if m is None:
            return
        context = context_labels(slo.get("request_tags"))
        if status == "failure":
            refusal = _refusal(slo, kwargs)
            if refusal is not None:
                for key in ("ticket", "project"):
                    if context.get(key) is None and refusal.get(key):
                        context[key] = str(refusal[key])
                m.record_refusal(context, refusal.get("type"))
                status = "refused"
        # The same reading of LiteLLM's logging object as the ledger's: one parser, one truth.
        row = record_from_logging_object(slo, status="failure" if status == "refused" else status)
        m.record_call(context, row, status=status)


def _refusal(slo: dict, kwargs: dict) -> dict | None:
    """The 402 detail of a ticket-policy refusal ({} when it carries none), else None."""
    error = slo.get("error_information") or {}
    exc = kwargs.get("exception")
    code = str(error.get("error_code") or getattr(exc, "status_code", "") or getattr(exc, "code", "") or "")
    cls = error.get("error_class") or (type(exc).__name__ if exc is not None else "")
    if code != "402" or cls not in _REFUSAL_CLASSES:
        return None
    detail = getattr(exc, "detail", None)
    return detail if isinstance(detail, dict) else {}


metrics = MetricsCallback()
