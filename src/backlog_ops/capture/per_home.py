"""Where tracked calls go: one context resolver and one ledger writer per BACKLOG_HOME.

Tests and tools switch homes within one process, so each home gets its own. Rows are handed to
a LedgerWriter (a queue and a background thread, flushed at interpreter exit); a row whose cost
is unknown is priced on that thread, so LiteLLM's ~3 s import never lands on the caller's path.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from backlog_ops.capture.tracking_log import warn

__all__ = ["close_all", "flush", "resolver", "submit"]

_per_home: dict[tuple, Any] = {}
_per_home_lock = threading.Lock()


def resolver():
    """The configured context resolver (files, or Redis when BACKLOG_CONTEXT_URL is set)."""
    from backlog_ops.context.backend import make_resolver

    return _for_home("resolver", lambda root: make_resolver(warn=lambda m: warn("context", m)))


def submit(record: Any, price_with: list[str] | None = None) -> None:
    """Queue a row for the ledger; `price_with`: the models to price it with on the writer thread."""
    record._price_with = price_with or None
    _writer().submit(record)


def flush(timeout: float = 10.0) -> bool:
    """Wait until every row handed over so far is in the ledger (tests, short scripts)."""
    ok = True
    for writer in _writers():
        ok = writer.flush(timeout) and ok
    return ok


def close_all() -> None:
    """Close every writer and forget every per-home object (tests switch homes)."""
    for writer in _writers():
        writer.close()
    with _per_home_lock:
        _per_home.clear()


def _writers() -> list:
    with _per_home_lock:
        return [obj for (kind, _), obj in _per_home.items() if kind == "writer"]


def _for_home(kind: str, make: Callable[[Any], Any]) -> Any:
    """One `kind` object per BACKLOG_HOME, made by `make(home)` on first use."""
    from backlog_ops.common.home import home

    key = (kind, home())
    found = _per_home.get(key)
    if found is None:
        with _per_home_lock:
            found = _per_home.get(key)
            if found is None:
                found = _per_home[key] = make(key[1])
    return found


def _writer():
    from backlog_ops.ledger import LedgerWriter, open_ledger

    def make(root: Any) -> LedgerWriter:
        # Import LiteLLM (~3 s, for its prices) in the background now, not when the writer first
        # prices a row: that may be at interpreter exit, when LiteLLM can no longer be imported.
        threading.Thread(target=_warm_up_pricing, name="backlog-ops-pricing-warmup", daemon=True).start()
        # The configured ledger: SQLite under this home, or PostgreSQL (BACKLOG_LEDGER_URL).
        return LedgerWriter(lambda: _PricingLedger(open_ledger()), spool_path=root / "ledger-spool.jsonl")

    return _for_home("writer", make)


def _warm_up_pricing() -> None:
    from backlog_ops.common.prices import import_litellm

    try:
        import_litellm()
    except Exception:  # noqa: BLE001 - pricing will warn when it needs it
        pass


class _PricingLedger:
    """The ledger as the writer thread sees it: prices rows just before writing them."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger

    def record_many(self, records: list) -> int:
        for record in records:
            models = getattr(record, "_price_with", None)
            if models:
                try:
                    record.cost_usd = _price(models, record)
                except Exception as exc:  # noqa: BLE001
                    warn("price", f"could not price {models[0]}: {type(exc).__name__}: {exc}")
                record._price_with = None
        return self._ledger.record_many(records)

    def close(self) -> None:
        self._ledger.close()


def _price(models: list[str], record: Any) -> float:
    from backlog_ops.common.prices import price_usage

    cost = price_usage(models, record.provider, record.prompt_tokens, record.completion_tokens,
                       record.cache_read_tokens, record.cache_write_tokens)
    if cost is None:
        warn(f"price:{models[0]}", f"LiteLLM has no price for model {models[0]!r}: recorded with cost 0", level=logging.INFO)
        return 0.0
    return cost
