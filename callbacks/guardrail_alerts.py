"""GuardrailAlerts: scan what a request newly brings (user turns, tool results) for prompt
injection, PII and secrets, and raise an ALERT. Never blocks, never changes the prompt.

    litellm_settings:
      callbacks:
        - backlog_ops.callbacks.ticket_tagger.ticket_tagger      # first: the alert carries the context
        - backlog_ops.callbacks.guardrail_alerts.guardrail_alerts
        - backlog_ops.callbacks.spend_ledger.spend_ledger
      backlog_guardrails:            # optional; or a JSON/YAML file named by $BACKLOG_GUARDRAILS_FILE
        scan: last_turn              # last_turn (default: what this request adds) | all (every user/tool message)
        disabled: [pii.phone]        # kinds or families to skip
        patterns: {injection.custom: ["(?i)\\bexfil-me\\b"]}
        allow_email_domains: [mycompany.test]
        nats: {subject: guardrail.alert, stream: LLM_GUARDRAILS}   # optional: alerts on JetStream

An alert is, all at once:
  1. one WARNING line on the `backlog_ops.gateway.guardrails` logger: kinds, counts, masked previews and
     the ticket context; never the matched text;
  2. a flag that travels with the call: `spend_logs_metadata.backlog_guardrail_alerts` =
     "kind,kind" (LiteLLM's spend logs show it; the ledger reads it into `guardrail_alerts`);
  3. an event: every callable in `on_alert` gets an `Alert`; with `nats` configured (or
     BACKLOG_GUARDRAIL_NATS_SUBJECT set) a `guardrail.alert` event with ticket, gate, agent and the
     rules that fired goes to NATS JetStream, off the request path (gateway/guardrail_events.py);
  4. a metric: `backlog_guardrail_alerts_total{project,ticket,gate,agent,kind}`.

Only the new part of the conversation is scanned by default (messages after the last assistant
turn): an agent re-sends its whole history on every call, and re-scanning it would repeat old
alerts and cost O(turns²).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from backlog_ops.common.settings import env_str
from backlog_ops.gateway.guardrails import Detector, Finding, iter_texts
from backlog_ops.gateway.observability import context_labels, get_metrics

from .base import Callback, add_spend_logs_metadata, request_metadata

__all__ = ["Alert", "GuardrailAlerts", "SPEND_LOG_ALERTS", "guardrail_alerts", "request_new_texts"]

log = logging.getLogger("backlog_ops.gateway.guardrails")

SPEND_LOG_ALERTS = "backlog_guardrail_alerts"
CONFIG_ENV = "BACKLOG_GUARDRAILS_FILE"
SETTINGS_KEY = "backlog_guardrails"  # litellm_settings key (LiteLLM sets it as litellm.backlog_guardrails)


@dataclass
class Alert:
    call_id: str | None
    kinds: list[str]
    counts: dict[str, int]
    masked: list[str]  # previews; never the matched text
    context: dict = field(default_factory=dict)  # project, ticket, gate, agent
    model: str | None = None
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict:
        return asdict(self)


class GuardrailAlerts(Callback):
    def __init__(self, detector: Detector | None = None, *, scan: str | None = None) -> None:
        super().__init__(log)
        self._detector = detector
        self._scan = scan
        self.on_alert: list[Callable[[Alert], Any]] = []
        self.publisher: Any = None  # the JetStream publisher, when alerts go to NATS

    # -- configuration (first use: litellm_settings are applied after callbacks are imported) ----

    def _configure(self) -> None:
        config: dict = {}
        path = env_str(CONFIG_ENV)
        try:
            if path:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
                if path.endswith(".json"):
                    config = json.loads(text)
                else:
                    import yaml

                    config = yaml.safe_load(text) or {}
            else:
                import litellm

                config = getattr(litellm, SETTINGS_KEY, None) or {}
        except Exception as exc:  # noqa: BLE001
            self._warn(f"guardrail config unreadable, defaults used: {type(exc).__name__}: {exc}")
            config = {}
        if self._detector is None:
            self._detector = Detector.from_config(config)
        self._subscribe_nats(config.get("nats"))
        if self._scan is None:
            self._scan = str(config.get("scan") or "last_turn")

    def _subscribe_nats(self, setting: Any) -> None:
        """Publish alerts on JetStream when the config has `nats` (true or {subject, stream, url})
        or BACKLOG_GUARDRAIL_NATS_SUBJECT is set."""
        if not setting and not env_str("BACKLOG_GUARDRAIL_NATS_SUBJECT"):
            return
        from backlog_ops.gateway.guardrail_events import (
            GuardrailAlertPublisher,
            build_alert_event,
        )

        options = setting if isinstance(setting, dict) else {}
        publisher = GuardrailAlertPublisher(url=options.get("url"), subject=options.get("subject"), stream=options.get("stream"))
        self.publisher = publisher
        self.on_alert.append(lambda alert: publisher.enqueue(build_alert_event(alert.as_dict())))

    @property
    def detector(self) -> Detector:
        if self._detector is None or self._scan is None:
            self._configure()
        return self._detector  # type: ignore[return-value]

    # -- proxy hook ----------------------------------------------------------------------------

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: str) -> dict:
        try:
            self.check(data, call_type)
        except Exception as exc:  # noqa: BLE001 - an alert-only guardrail never breaks the call
            self._warn(f"guardrail scan skipped: {type(exc).__name__}: {exc}")
        return data

    def check(self, data: dict, call_type: Any = None) -> Alert | None:
        detector = self.detector
        findings: list[Finding] = []
        for text in request_new_texts(data, everything=self._scan == "all"):
            findings.extend(detector.scan(text))
        if not findings:
            return None
        meta = request_metadata(data, call_type)
        counts: dict[str, int] = {}
        for f in findings:
            counts[f.kind] = counts.get(f.kind, 0) + 1
        kinds = sorted(counts)
        context = context_labels(meta.get("tags") or data.get("tags"))
        alert = Alert(
            call_id=data.get("litellm_call_id"),
            kinds=kinds,
            counts=counts,
            masked=[f.masked for f in findings[:10]],
            context=context,
            model=data.get("model") if isinstance(data.get("model"), str) else None,
        )
        # 2. the flag on the call (ledger row, LiteLLM spend logs)
        add_spend_logs_metadata(meta, {SPEND_LOG_ALERTS: ",".join(kinds)})
        # 1. the log line (structured: `extra` carries the alert for JSON log handlers)
        log.warning(
            "backlog-ops: guardrail alert (not blocked): %s call_id=%s ticket=%s gate=%s project=%s agent=%s model=%s masked=%s",
            ",".join(f"{k}x{counts[k]}" for k in kinds), alert.call_id, context["ticket"], context["gate"],
            context["project"], context["agent"], alert.model, alert.masked,
            extra={"backlog_guardrail_alert": alert.as_dict()},
        )
        # 4. the metric
        metrics = get_metrics()
        if metrics is not None:
            metrics.record_alerts(context, kinds)
        # 3. the event
        for subscriber in list(self.on_alert):
            try:
                subscriber(alert)
            except Exception as exc:  # noqa: BLE001
                self._warn(f"guardrail alert subscriber failed: {type(exc).__name__}: {exc}")
        return alert


def request_new_texts(data: dict, *, everything: bool = False) -> list[str]:
    """User-side text of a chat or Anthropic request: by default only what follows the last
    assistant turn (the new user message, tool results); with everything=True all user/tool turns.
    System prompts and tool definitions are not scanned: they are the operator's, not the user's."""
    messages = data.get("messages")
    if not isinstance(messages, list):
        return []
    start = 0
    if not everything:
        for i in range(len(messages) - 1, -1, -1):
            m = messages[i]
            if isinstance(m, dict) and m.get("role") == "assistant":
                start = i + 1
                break
    texts: list[str] = []
    for m in messages[start:]:
        if not isinstance(m, dict) or m.get("role") not in ("user", "tool", "function"):
            continue
        content = m.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(iter_texts(content))
    return texts


guardrail_alerts = GuardrailAlerts()
