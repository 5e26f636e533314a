"""SemanticCache: answer a paraphrased repeat from the cache, per project, offline.

    litellm_settings:
      callbacks:
        - backlog_ops.callbacks.ticket_tagger.ticket_tagger   # first: the project tag scopes entries
        - backlog_ops.callbacks.semantic_cache.semantic_cache
        - backlog_ops.callbacks.spend_ledger.spend_ledger

Each project's settings are `backlog_ops.policy.projects.<project>.semantic_cache` in the proxy
config ($BACKLOG_POLICY_FILE, else the config the proxy runs), which `backlog-ops config render`
writes from backlog.config.json's `llmOps.cachePolicy.semanticCache` and the offline
`backlog-ops proxy` from ./backlog.config.json. Nothing happens until a project turns it on:
then, before that project's first request goes out, the backend
(backlog_ops.gateway.semantic_cache.backend) becomes LiteLLM's cache, in front of any exact
response cache the config has, and the embedding model loads in a background thread. A hit is
LiteLLM's own cache hit: the ledger row has cache_hit 1 and cost $0.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from backlog_ops.gateway.semantic_cache.backend import SemanticCacheBackend
from backlog_ops.gateway.semantic_cache.embedder import get_embedder
from backlog_ops.policy.limits_file import PolicyFile

from .base import Callback, proxy_config_path

__all__ = ["SemanticCacheCallback", "install_semantic_cache", "semantic_cache"]

log = logging.getLogger("backlog_ops.semantic_cache")


def install_semantic_cache(backend: SemanticCacheBackend) -> SemanticCacheBackend:
    """Make `backend` LiteLLM's cache, keeping an exact cache already configured in front of it.

    An existing `litellm.Cache` keeps its namespace, TTL and call types; only its storage is
    wrapped. The proxy's router passes `caching=` from a flag it set when it started, so that
    flag is switched on as LiteLLM's own cache settings endpoint does.
    """
    import litellm
    from litellm.caching.caching import Cache

    current = litellm.cache
    if current is not None and isinstance(current.cache, SemanticCacheBackend):
        return current.cache
    if current is not None:
        backend.exact = current.cache
        current.cache = backend
    else:
        litellm.cache = Cache(type="local", _backend=backend)
    try:
        from litellm.proxy import proxy_server

        if proxy_server.llm_router is not None:
            proxy_server.llm_router.cache_responses = True
    except Exception:  # noqa: BLE001 - outside the proxy there is no router to switch
        pass
    return backend


class SemanticCacheCallback(Callback):
    def __init__(self, policy_file: str | None = None) -> None:
        super().__init__(log)
        self.policy = PolicyFile(policy_file, proxy_config=proxy_config_path, warn=self._warn)
        self.backend: SemanticCacheBackend | None = None
        self._lock = threading.Lock()

    def ensure_installed(self) -> SemanticCacheBackend | None:
        """Install the backend once any project has the cache on; None while none has."""
        if self.backend is not None:
            return self.backend
        projects = self.policy.semantic_cache_projects()
        if not projects:
            return None
        with self._lock:
            if self.backend is None:
                self.backend = install_semantic_cache(SemanticCacheBackend(self.policy.semantic_cache_for))
                embedders = {self.policy.semantic_cache_for(p).embedder for p in projects}
                threading.Thread(target=_warm, args=(sorted(embedders),), name="semantic-cache-warm",
                                 daemon=True).start()
                log.warning("backlog-ops: semantic cache on for %s", ", ".join(projects))
        return self.backend

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: str) -> dict:
        try:
            self.ensure_installed()
        except Exception as exc:  # noqa: BLE001 - without the cache the request goes on as usual
            self._warn(f"semantic cache not installed: {type(exc).__name__}: {exc}")
        return data


def _warm(names: list[str]) -> None:
    for name in names:
        try:
            get_embedder(name).load()
        except Exception as exc:  # noqa: BLE001 - lookups report the problem, counted, when they run
            log.warning("backlog-ops: semantic cache embedder %s did not load: %s: %s", name, type(exc).__name__, exc)


semantic_cache = SemanticCacheCallback()
