"""SpendLedger: record every LLM call sent to a provider, success or failure, with its ticket context.

Loaded by `litellm --config` through `litellm_settings.callbacks:
backlog_ops.callbacks.spend_ledger.spend_ledger`. It reads LiteLLM's standard logging object,
builds a row and hands it to a background writer, and nothing here can fail the call.

LiteLLM logs a call a few milliseconds after its response went out; so that a proxy killed with
-9 in between loses nothing, the row is also journaled as the response completes (one append to
a file under BACKLOG_HOME: `async_post_call_success_hook`, and the end of a stream), from the
request and the usage in the response. LiteLLM's own row replaces it.
"""

from __future__ import annotations

import logging
from typing import Any

from backlog_ops.capture.proxy_record import reached_provider, record_from_logging_object
from backlog_ops.capture.proxy_writer import proxy_writer
from backlog_ops.capture.response_record import StreamUsage, record_from_response, response_usage
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
            # started: it loads what a stopped or killed proxy left
            self._writer = proxy_writer(on_written=[keeper.written])
        return self._writer

    # -- the journal, as the response completes (before LiteLLM's logging of the call) ----------

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any, response: Any) -> None:
        self._journal_early(data, user_api_key_dict, response_usage, response)
        return None  # the response is left as it is

    async def async_post_call_streaming_iterator_hook(self, user_api_key_dict: Any, response: Any, request_data: dict):
        usage = StreamUsage()
        async for chunk in response:
            try:
                usage.feed(chunk)
            except Exception:  # noqa: BLE001 - reading usage never breaks a stream
                pass
            yield chunk
        # Before the stream's end reaches the client (the proxy sends its last bytes after this).
        self._journal_early(request_data, user_api_key_dict, lambda u: u.usage, usage)

    def _journal_early(self, data: dict, key: Any, read_usage, source: Any) -> None:
        try:
            record = record_from_response(data, read_usage(source), key_alias=getattr(key, "key_alias", None),
                                          team_id=getattr(key, "team_id", None))
            self.writer.submit_early(record)
        except Exception as exc:  # noqa: BLE001 - an observer never breaks the user's call
            self._warn(f"ledger journal skipped: {type(exc).__name__}: {exc}", key="journal")

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
