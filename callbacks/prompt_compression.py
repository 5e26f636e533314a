"""PromptCompression: opt-in offline compression of the newest user/tool content of a request.

    litellm_settings:
      callbacks:
        - backlog_ops.callbacks.ticket_tagger.ticket_tagger      # first: tags decide who is compressed
        - backlog_ops.callbacks.prompt_compression.prompt_compression
        - backlog_ops.callbacks.spend_ledger.spend_ledger
      backlog_compression:
        aliases: [cheap]               # requests for these model names (aliases) are compressed
        tags: [compress, gate:review]  # ... and requests carrying any of these tags
        max_lines: 160                 # optional tuning, see CompressionOptions
        respect_cache_control: true

or, without touching the config: BACKLOG_COMPRESSION_ALIASES=cheap,balanced and/or
BACKLOG_COMPRESSION_TAGS=compress (a caller opts one request in with `x-litellm-tags: compress`).
Nothing is compressed unless an alias or a tag matches.

Works on /chat/completions and /v1/messages bodies alike. Never touches `system`, `tools`, the
earlier turns, or anything up to the last cache_control breakpoint: provider prompt caching sees
the same prefix bytes as without compression (backlog_ops.gateway.compression). A compressed call
carries `spend_logs_metadata.backlog_compression = "<chars before>-><chars after>"`, and
`backlog_compression_saved_tokens_total` counts the estimated tokens saved (chars/4).
"""

from __future__ import annotations

import logging
from typing import Any

from backlog_ops.common.settings import env_str
from backlog_ops.gateway.compression import CompressionOptions, compress_request
from backlog_ops.gateway.observability import context_labels, get_metrics

from .base import Callback, add_spend_logs_metadata, metadata_key

__all__ = ["PromptCompression", "prompt_compression"]

log = logging.getLogger("backlog_ops.gateway.compression")

SETTINGS_KEY = "backlog_compression"
SPEND_LOG_KEY = "backlog_compression"
_OPTION_NAMES = {f for f in CompressionOptions.__dataclass_fields__}


class PromptCompression(Callback):
    def __init__(self, *, aliases: list[str] | None = None, tags: list[str] | None = None,
                 options: CompressionOptions | None = None) -> None:
        super().__init__(log)
        self._aliases = set(aliases) if aliases is not None else None
        self._tags = set(tags) if tags is not None else None
        self._options = options

    def _configure(self) -> None:
        import litellm

        config = getattr(litellm, SETTINGS_KEY, None) or {}
        if not isinstance(config, dict):
            config = {}

        def listed(key: str, env: str) -> set[str]:
            values = set(config.get(key) or ())
            values |= {v.strip() for v in (env_str(env) or "").split(",") if v.strip()}
            return values

        if self._aliases is None:
            self._aliases = listed("aliases", "BACKLOG_COMPRESSION_ALIASES")
        if self._tags is None:
            self._tags = listed("tags", "BACKLOG_COMPRESSION_TAGS")
        if self._options is None:
            self._options = CompressionOptions(**{k: v for k, v in config.items() if k in _OPTION_NAMES})

    def wanted(self, data: dict, tags: list) -> bool:
        if self._options is None:
            self._configure()
        if data.get("model") in self._aliases:
            return True
        return bool(self._tags) and any(t in self._tags for t in tags if isinstance(t, str))

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: str) -> dict:
        try:
            self.apply(data, call_type)
        except Exception as exc:  # noqa: BLE001 - on any problem the request goes on uncompressed
            self._warn(f"compression skipped: {type(exc).__name__}: {exc}")
        return data

    def apply(self, data: dict, call_type: Any = None) -> Any:
        meta_key = metadata_key(data, call_type)
        meta = data.get(meta_key) if isinstance(data.get(meta_key), dict) else {}
        tags = list(meta.get("tags") or []) + list(data.get("tags") or [])
        if not self.wanted(data, tags):
            return None
        stats = compress_request(data, self._options)
        if stats.saved_chars <= 0:
            return stats
        if meta_key not in data or not isinstance(data.get(meta_key), dict):
            data[meta_key] = meta
        add_spend_logs_metadata(meta, {SPEND_LOG_KEY: f"{stats.chars_before}->{stats.chars_after}"})
        metrics = get_metrics()
        if metrics is not None:
            metrics.record_compression(context_labels(tags), stats.saved_chars // 4)
        log.debug("backlog-ops: compressed %s -> %s chars (%s)", stats.chars_before, stats.chars_after, stats.folds)
        return stats


prompt_compression = PromptCompression()
