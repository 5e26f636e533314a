"""What the backlog-ops LiteLLM callbacks share.

`Callback` gives each callback a warning helper that says each problem once (a callback that
fails on every call must not flood the proxy log). `FinishedCallCallback` turns LiteLLM's success
and failure events into one `_handle(slo, status, kwargs)` call with LiteLLM's standard logging
object, skipping LiteLLM's own health-check probes and turning any exception into a warning: an
observer of a call never breaks it.
"""

from __future__ import annotations

import logging
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from backlog_ops.capture.proxy_record import HEALTH_CHECK_TAG
from backlog_ops.common.settings import env_str
from backlog_ops.common.warnings import Warnings

__all__ = ["Callback", "FinishedCallCallback", "add_spend_logs_metadata", "logging_object", "metadata_key",
           "proxy_config_path", "request_metadata"]


def logging_object(kwargs: dict) -> dict | None:
    """LiteLLM's standard logging object of a finished call; None when absent or a health-check probe."""
    slo = kwargs.get("standard_logging_object")
    if not isinstance(slo, dict):
        return None  # LiteLLM builds it for every completed call; without it there is nothing to read
    if HEALTH_CHECK_TAG in (slo.get("request_tags") or ()):
        return None  # the proxy probing its deployments (GET /health), not anybody's work
    return slo


def proxy_config_path() -> str | None:
    """The config file the running proxy was started with (None outside the proxy)."""
    try:
        from litellm.proxy import proxy_server

        return proxy_server.user_config_file_path or env_str("CONFIG_FILE_PATH")
    except Exception:  # noqa: BLE001 - not running inside the proxy
        return env_str("CONFIG_FILE_PATH")


def metadata_key(data: dict, call_type: Any) -> str:
    """Where LiteLLM reads a request's metadata (tags, spend-log fields) in a request body.

    `litellm_metadata` on /v1/messages, whose `metadata` is Anthropic's own object; `metadata` elsewhere.
    """
    if "litellm_metadata" in data or str(getattr(call_type, "value", call_type)) == "anthropic_messages":
        return "litellm_metadata"
    request = data.get("proxy_server_request") or {}
    url = str(request.get("url") or "")
    return "litellm_metadata" if url.rstrip("/").endswith("/messages") else "metadata"


def request_metadata(data: dict, call_type: Any) -> dict:
    """The request's LiteLLM metadata dict (see `metadata_key`), created in `data` if missing."""
    key = metadata_key(data, call_type)
    meta = data.get(key)
    if not isinstance(meta, dict):
        meta = {}
        data[key] = meta
    return meta


def add_spend_logs_metadata(meta: dict, values: dict) -> None:
    """Add `values` to the request's spend_logs_metadata, which LiteLLM's spend logs and our ledger read."""
    spend_meta = meta.get("spend_logs_metadata")
    spend_meta = dict(spend_meta) if isinstance(spend_meta, dict) else {}
    spend_meta.update(values)
    meta["spend_logs_metadata"] = spend_meta


class Callback(CustomLogger):
    """A LiteLLM callback with `_warn(message)`: once per message, or at most every `interval` seconds."""

    def __init__(self, logger: logging.Logger, *, interval: float | None = None) -> None:
        super().__init__()
        self._warn = Warnings(logger, interval=interval)
        self._warn_interval = interval


class FinishedCallCallback(Callback):
    """A callback that acts on every finished call, success or failure, through `_handle`."""

    # What a failed `_handle` skips, for its warning ("metrics skipped: …").
    skipped = "call"

    async def async_log_success_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, "success")

    async def async_log_failure_event(self, kwargs: dict, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, "failure")

    def _record(self, kwargs: dict, status: str) -> None:
        try:
            slo = logging_object(kwargs)
            if slo is not None:
                self._handle(slo, status, kwargs)
        except Exception as exc:  # noqa: BLE001 - an observer never breaks the user's call
            # Under an interval every skip shares one key: a failing backend repeats with varying text.
            key = self.skipped if self._warn_interval is not None else None
            self._warn(f"{self.skipped} skipped: {type(exc).__name__}: {exc}", key=key)

    def _handle(self, slo: dict, status: str, kwargs: dict) -> None:
        """Act on one finished call; `slo` is LiteLLM's standard logging object."""
        raise NotImplementedError
