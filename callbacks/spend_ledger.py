"""SpendLedger: record every LLM call sent to a provider, success or failure, with its ticket context.

Loaded by `litellm --config` through `litellm_settings.callbacks:
backlog_ops.callbacks.spend_ledger.spend_ledger`. It reads LiteLLM's standard logging object,
builds a row and hands it to a background writer: nothing here touches the disk on the request
path, and nothing here can fail the call.
"""

from __future__ import annotations

import logging
from typing import Any

from backlog_ops.capture.proxy_record import (
    reached_provider,
    record_from_logging_object,
)
from backlog_ops.common.home import home
from backlog_ops.context.fields import CONTEXT_FIELDS
from backlog_ops.ledger import CallRecord, LedgerWriter, open_ledger

from .base import FinishedCallCallback
from .feedback import totals_keeper

__all__ = ["SpendLedger", "spend_ledger"]

log = logging.getLogger("backlog_ops.ledger")


class SpendLedger(FinishedCallCallback):
    """Writes one ledger row per call id; both the sync and async events may fire, rows are upserts."""

    skipped = "ledger row"

    def __init__(self, writer: LedgerWriter | None = None, *, source: str | None = None) -> None:
        # One warning per 30 s at most: a broken ledger fails every call.
        super().__init__(log, interval=30)
        self._writer = writer
        self._source = source
        self._resolver = None

    @property
    def writer(self) -> LedgerWriter:
        if self._writer is None:
            # The ticket totals the status line and the hooks read, kept after each written batch;
            # made before the writer so that, at exit, it writes after the writer's last flush.
            keeper = totals_keeper(open_ledger)
            self._writer = LedgerWriter(open_ledger, spool_path=home() / "ledger-spool.jsonl")
            self._writer.on_written.append(keeper.written)
        return self._writer

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
            for field in CONTEXT_FIELDS:
                setattr(record, field, found.context.get(field))

    def _handle(self, slo: dict, status: str, kwargs: dict) -> None:
        if status == "failure" and not reached_provider(slo):
            # Refused before any provider was asked (no or wrong key, unknown model, a budget
            # stop): not a call, so not a row; the proxy log has a line for each.
            return
        source = self._source or ("proxy" if (kwargs.get("litellm_params") or {}).get("proxy_server_request") else "sdk")
        record = record_from_logging_object(slo, status=status, source=source)
        if status == "failure" and record.gate is None:
            # A failure LiteLLM logged without the request's tags: attribute it to the context
            # in force now, milliseconds later.
            self._attribute(record)
        self.writer.submit(record)


spend_ledger = SpendLedger()
