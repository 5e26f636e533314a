"""The one place that picks the context backend: Redis when BACKLOG_CONTEXT_URL is set, else files."""

from __future__ import annotations

from backlog_ops.common.settings import settings

__all__ = ["make_resolver", "open_store"]


def open_store():
    """The configured store: Redis for a team gateway, else files under BACKLOG_HOME.

    BACKLOG_CONTEXT_PREFIX (default 'backlog:') namespaces the keys, for several teams on one Redis.
    """
    conf = settings()
    if conf.context_url:
        from backlog_ops.context.redis_store import RedisContextStore

        return RedisContextStore(conf.context_url, prefix=conf.context_prefix)
    from backlog_ops.context.file_store import ContextStore

    return ContextStore()


def make_resolver(warn=None):
    """The hot-path resolver for the configured store (what the tagger asks on every call)."""
    conf = settings()
    if conf.context_url:
        from backlog_ops.context.redis_store import RedisContextResolver

        return RedisContextResolver(open_store(), warn=warn)
    from backlog_ops.context.resolver import ContextResolver

    return ContextResolver(warn=warn)
