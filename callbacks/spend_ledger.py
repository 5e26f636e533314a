"""SpendLedger: record every LLM call, success or failure, with its ticket context.

Loaded by `litellm --config` through `litellm_settings.callbacks:
backlog_ops.callbacks.spend_ledger.spend_ledger`. It reads LiteLLM's standard logging object,
builds a row and hands it to a background writer: nothing here touches the disk on the request
path, and nothing here can fail the call.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from backlog_ops.common.home import home
from backlog_ops.capture.proxy_record import HEALTH_CHECK_TAG, record_from_logging_object
from backlog_ops.ledger import CallRecord, LedgerWriter, open_ledger


__all__ = ["SpendLedger", "spend_ledger"]

log = logging.getLogger("backlog_ops.ledger")



class SpendLedger(CustomLogger):
    """Writes one ledger row per call id; both the sync and async events may fire, rows are upserts."""

    def __init__(self, writer: LedgerWriter | None = None, *, source: str | None = None) -> None:
        super().__init__()
        self._writer = writer
        self._source = source
        self._resolver = None
        self._warned_at = 0.0

    @property
    def writer(self) -> LedgerWriter:
        if self._writer is None:
            root = home()
            self._writer = LedgerWriter(open_ledger, spool_path=root / "ledger-spool.jsonl")
        return self._writer

    async def async_log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, "success")

    async def async_log_failure_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, "failure")

    def log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, "success")

    def log_failure_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, "failure")

    def _attribute(self, record: CallRecord) -> None:
        if self._resolver is None:
            from backlog_ops.context.backend import make_resolver

            self._resolver = make_resolver(warn=lambda m: log.warning("backlog-ops: %s", m))
        found = self._resolver.resolve(record.session_id, record.agent_id)
        if found is not None:
            for field in ("ticket_id", "gate", "project", "agent_type", "skill", "component"):
                setattr(record, field, found.context.get(field))

    def _record(self, kwargs: dict, status: str) -> None:
        try:
            slo = kwargs.get("standard_logging_object")
            if not isinstance(slo, dict):
                return  # LiteLLM builds it for every completed call; without it there is nothing to record
            if HEALTH_CHECK_TAG in (slo.get("request_tags") or ()):
                return  # the proxy probing its deployments (GET /health), not anybody's work
            source = self._source or ("proxy" if (kwargs.get("litellm_params") or {}).get("proxy_server_request") else "sdk")
            record = record_from_logging_object(slo, status=status, source=source)
            if status == "failure" and record.gate is None:
                # A call refused in a pre-call hook (a budget stop) is logged without the tags
                # the tagger added: attribute it to the context in force now, milliseconds later.
                self._attribute(record)
            self.writer.submit(record)
        except Exception as exc:  # noqa: BLE001 - the ledger must never break the user's call
            now = time.monotonic()
            if now - self._warned_at >= 30 or self._warned_at == 0:
                self._warned_at = now
                log.warning("backlog-ops: ledger row skipped: %s: %s", type(exc).__name__, exc)


spend_ledger = SpendLedger()
