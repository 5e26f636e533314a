"""The LiteLLM cache backend that serves paraphrased repeats (a `BaseCache`, wrapped in `litellm.Cache`).

LiteLLM's caching layer asks it for a response before a call goes out and hands it the response
after: a hit goes back to the client as LiteLLM's own cache hit, so the call is logged with
`cache_hit` and $0 cost, and the ledger row says so through the usual path. An exact response
cache configured in the proxy (Redis or in-memory) is kept in front: it is asked first and
written too, so turning the semantic cache on never turns the exact one off; its keys then get
the same scope (project, key, team), so an identical request is not served across them either.

Nothing here fails a call: an error in embedding or in the index is a miss, counted and warned
about once per kind. Index calls run in a worker thread, never on the proxy's event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter, OrderedDict
from typing import Any, Callable

from litellm.caching.base_cache import BaseCache

from backlog_ops.common.settings import env_str, settings
from backlog_ops.common.warnings import Warnings
from backlog_ops.errors import ConfigError
from backlog_ops.gateway.semantic_cache.embedder import get_embedder
from backlog_ops.gateway.semantic_cache.policy import Lookup, SemanticSettings, prepare, request_scope

__all__ = ["SQLITE_FILE", "URL_ENV", "SemanticCacheBackend", "open_index"]

log = logging.getLogger("backlog_ops.semantic_cache")

SQLITE_FILE = "semantic-cache.db"
URL_ENV = "BACKLOG_SEMANTIC_CACHE_URL"
_KEPT_VECTORS = 256
PREFIX_ENV = "BACKLOG_SEMANTIC_CACHE_PREFIX"  # Redis key prefix (default backlog:semantic)


def open_index(kind: str):
    """The index of that kind: SQLite under BACKLOG_HOME; PostgreSQL or Redis at $BACKLOG_SEMANTIC_CACHE_URL,
    else the ledger's PostgreSQL ($BACKLOG_LEDGER_URL) or the contexts' Redis ($BACKLOG_CONTEXT_URL)."""
    if kind == "redis":
        from backlog_ops.gateway.semantic_cache.index_redis import PREFIX, RedisIndex

        url = env_str(URL_ENV) or settings().context_url
        if not url or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"semanticCache.index \"redis\" needs {URL_ENV} (or BACKLOG_CONTEXT_URL) set to a "
                              f"redis:// URL")
        return RedisIndex(url, prefix=env_str(PREFIX_ENV) or PREFIX)
    if kind == "postgres":
        from backlog_ops.gateway.semantic_cache.index_postgres import PostgresIndex

        url = env_str(URL_ENV) or settings().ledger_url
        if not url:
            raise ConfigError(f"semanticCache.index \"postgres\" needs {URL_ENV} (or BACKLOG_LEDGER_URL) set to a "
                              f"postgresql:// URL")
        return PostgresIndex(url, schema=settings().ledger_schema)
    from backlog_ops.gateway.semantic_cache.index_sqlite import SqliteVecIndex

    return SqliteVecIndex(os.path.join(settings().home, SQLITE_FILE))


class SemanticCacheBackend(BaseCache):
    """Paraphrase lookups per scope; `settings_for(project)` gives a project's SemanticSettings or None."""

    def __init__(self, settings_for: Callable[[str], SemanticSettings | None], *, exact: BaseCache | None = None,
                 index_factory: Callable[[str], Any] = open_index) -> None:
        super().__init__()
        self._settings_for = settings_for
        self.exact = exact
        self._index_factory = index_factory
        self._indexes: dict[str, Any] = {}
        self._vectors: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.counts: Counter = Counter()
        self._warn = Warnings(log, interval=30)

    # -- the parts ---------------------------------------------------------------------------

    def _index(self, kind: str):
        with self._lock:
            if kind not in self._indexes:
                self._indexes[kind] = self._index_factory(kind)
            return self._indexes[kind]

    def _prepared(self, kwargs: dict) -> tuple[Lookup | None, SemanticSettings | None]:
        project, key, team = request_scope(kwargs)
        found = self._settings_for(project) or SemanticSettings()
        lookup, why = prepare(kwargs, found, project, key, team)
        if lookup is None:
            self.counts[f"skipped:{why}"] += 1
        return lookup, found

    def _vector(self, embedder: str, text: str):
        """The text's embedding; the last few are kept, since a miss embeds the same text again to store it."""
        key = (embedder, text)
        with self._lock:
            if key in self._vectors:
                self._vectors.move_to_end(key)
                return self._vectors[key]
        vector = get_embedder(embedder).embed([text])[0]
        with self._lock:
            self._vectors[key] = vector
            while len(self._vectors) > _KEPT_VECTORS:
                self._vectors.popitem(last=False)
        return vector

    def _find(self, lookup: Lookup, found: SemanticSettings) -> dict | None:
        vector = self._vector(found.embedder, lookup.text)
        hit = self._index(found.index).lookup(lookup.bucket, vector, found.similarity_threshold)
        if hit is None:
            self.counts["misses"] += 1
            return None
        self.counts["hits"] += 1
        log.debug("backlog-ops: semantic cache hit (similarity %.3f) for project %r", hit[0], lookup.project)
        return json.loads(hit[1])

    def _put(self, lookup: Lookup, found: SemanticSettings, value: Any) -> None:
        vector = self._vector(found.embedder, lookup.text)
        stored = json.dumps(value, default=str)
        self._index(found.index).store(lookup.bucket, lookup.project, vector, stored, found.ttl_seconds,
                                       found.max_entries_per_scope)
        self.counts["stored"] += 1

    def _failed(self, what: str, exc: BaseException) -> None:
        self.counts[f"errors:{what}"] += 1
        self._warn(f"semantic cache {what} skipped: {type(exc).__name__}: {exc}", key=what)

    @staticmethod
    def _exact_key(key: Any, kwargs: dict) -> str:
        scope = hashlib.sha256(json.dumps(request_scope(kwargs)).encode()).hexdigest()[:16]
        return f"{key}:{scope}"

    # -- BaseCache ---------------------------------------------------------------------------

    async def async_get_cache(self, key, **kwargs):
        if self.exact is not None:
            value = await self.exact.async_get_cache(self._exact_key(key, kwargs), **kwargs)
            if value is not None:
                return value
        try:
            lookup, found = self._prepared(kwargs)
            if lookup is None:
                return None
            return await asyncio.to_thread(self._find, lookup, found)
        except Exception as exc:  # noqa: BLE001 - a cache problem is a miss, never a failed call
            self._failed("lookup", exc)
            return None

    async def async_set_cache(self, key, value, **kwargs):
        if self.exact is not None:
            await self.exact.async_set_cache(self._exact_key(key, kwargs), value, **kwargs)
        try:
            lookup, found = self._prepared(kwargs)
            if lookup is not None:
                await asyncio.to_thread(self._put, lookup, found, value)
        except Exception as exc:  # noqa: BLE001
            self._failed("store", exc)

    def get_cache(self, key, **kwargs):
        if self.exact is not None:
            value = self.exact.get_cache(self._exact_key(key, kwargs), **kwargs)
            if value is not None:
                return value
        try:
            lookup, found = self._prepared(kwargs)
            return None if lookup is None else self._find(lookup, found)
        except Exception as exc:  # noqa: BLE001
            self._failed("lookup", exc)
            return None

    def set_cache(self, key, value, **kwargs):
        if self.exact is not None:
            self.exact.set_cache(self._exact_key(key, kwargs), value, **kwargs)
        try:
            lookup, found = self._prepared(kwargs)
            if lookup is not None:
                self._put(lookup, found, value)
        except Exception as exc:  # noqa: BLE001
            self._failed("store", exc)

    async def async_set_cache_pipeline(self, cache_list, **kwargs):
        for key, value in cache_list:
            await self.async_set_cache(key, value, **kwargs)

    async def disconnect(self):
        with self._lock:
            for index in self._indexes.values():
                index.close()
            self._indexes.clear()
        if self.exact is not None:
            await self.exact.disconnect()

    def stats(self) -> dict:
        return {"at": time.time(), **self.counts}
