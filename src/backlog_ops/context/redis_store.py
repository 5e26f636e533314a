"""The context store in Redis, for a team gateway: BACKLOG_CONTEXT_URL=redis://host:6379/0.

Hooks and MCP servers on developers' machines and a proxy on another host then share one set of
contexts. Same scopes, validation, TTLs, history and audit copy as the file store:

- a context is a string key holding the same JSON as a context file, expiring in Redis at its
  expires_at (so Redis itself drops stale contexts);
- every set and clear runs one Lua script that reads the old value, writes or deletes the key,
  appends {at, scope, old, new} to the history list and publishes the change, atomically, so
  concurrent writers on different machines never lose an entry;
- readers on the proxy's hot path cache what they read and drop it when the change is
  published (ContextResolver below), with a short maximum age in case a message is missed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from backlog_ops.common.extras import require
from backlog_ops.common.secrets import scrub_dsn
from backlog_ops.common.times import format_time
from backlog_ops.context.change import ContextChange, check_ttl, update_audit_copy
from backlog_ops.context.contextfile import (
    MAX_CONTEXT_FILE_BYTES,
    parse_context,
    render_context,
)
from backlog_ops.context.fields import context_tags
from backlog_ops.context.resolver import Resolved
from backlog_ops.context.scope import Scope, in_force, scope_chain
from backlog_ops.errors import ConfigError, ContextFileError, HomeError

__all__ = ["RedisContextResolver", "RedisContextStore"]

log = logging.getLogger("backlog_ops.context.redis_store")

_HISTORY_LIMIT = 500_000  # entries kept in the history list (about 200 MB at the very most)

# KEYS: context key, history key. ARGV: new JSON ('' to clear), expiry in ms since the epoch,
# history entry JSON without "old", history limit, channel.
_WRITE = """
local old = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
end
local entry = cjson.decode(ARGV[3])
if old then
  local ok, decoded = pcall(cjson.decode, old)
  if ok then entry['old'] = decoded else entry['old_unreadable'] = true end
end
redis.call('RPUSH', KEYS[2], cjson.encode(entry))
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
redis.call('PUBLISH', ARGV[5], KEYS[1])
return old
"""


class RedisContextStore:
    """Contexts in Redis under `prefix` (default 'backlog:')."""

    def __init__(self, url: str, *, prefix: str = "backlog:", socket_timeout: float = 2.0) -> None:
        redis = require("redis", "redis", "The Redis context store (BACKLOG_CONTEXT_URL)")

        self.url = url
        self.prefix = prefix
        try:
            self.redis = redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout)
        except ValueError as exc:
            raise ConfigError(f"BACKLOG_CONTEXT_URL {scrub_dsn(url)} is not a Redis URL: {scrub_dsn(exc, url)}") from None
        self.history_key = f"{prefix}ctx-history"
        self.channel = f"{prefix}ctx-changed"
        self._write_script = self.redis.register_script(_WRITE)

    def key(self, scope: Scope) -> str:
        if scope.agent_id is not None:
            return f"{self.prefix}ctx:agent:{scope.session_id}~{scope.agent_id}"
        if scope.session_id is not None:
            return f"{self.prefix}ctx:session:{scope.session_id}"
        return f"{self.prefix}ctx:global"

    # -- reads -------------------------------------------------------------------------------

    def get(self, scope: Scope = Scope(), *, now: float | None = None) -> dict | None:
        raw = self._call(self.redis.get, self.key(scope))
        return _parse(raw, self.key(scope), time.time() if now is None else now)

    def session_has_contexts(self, session_id: str) -> bool:
        """Cheap enough to ask Redis: the session's key or any agent key of it."""
        if self._call(self.redis.exists, self.key(Scope(session_id))):
            return True
        pattern = f"{self.prefix}ctx:agent:{session_id}~*"
        return bool(self._call(lambda: next(iter(self.redis.scan_iter(match=pattern, count=500)), None)))

    def history(self, since: float | None = None) -> Iterator[dict]:
        for raw in self._call(self.redis.lrange, self.history_key, 0, -1):
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if since is None or entry.get("at_epoch", 0) >= since:
                yield entry

    # -- writes ------------------------------------------------------------------------------

    def set(self, fields: dict, scope: Scope = Scope(), *, ttl: int | None = None,
            project_dir: Path | None = None, now: float | None = None) -> ContextChange:
        now = time.time() if now is None else now
        ttl = check_ttl(ttl)
        new = render_context(fields, now=now, ttl=ttl)
        change = self._write(scope, new, now, now + ttl)
        update_audit_copy(project_dir, change)
        return change

    def clear(self, scope: Scope = Scope(), *, project_dir: Path | None = None, now: float | None = None) -> ContextChange:
        now = time.time() if now is None else now
        change = self._write(scope, None, now, now)
        update_audit_copy(project_dir, change)
        return change

    def clear_session(self, session_id: str, *, project_dir: Path | None = None) -> list[ContextChange]:
        session = Scope(session_id)
        scopes = [session]
        pattern = f"{self.prefix}ctx:agent:{session_id}~*"
        for key in sorted(self._call(lambda: list(self.redis.scan_iter(match=pattern, count=500)))):
            agent_id = key.decode().rsplit("~", 1)[1]
            scopes.append(Scope(session_id, agent_id))
        return [self.clear(scope, project_dir=project_dir) for scope in scopes]

    def _write(self, scope: Scope, new: dict | None, now: float, expires: float) -> ContextChange:
        entry = {"at": format_time(now), "at_epoch": now, "action": "clear" if new is None else "set",
                 **scope.as_dict(), "old": None, "new": new}
        old_raw = self._call(
            self._write_script,
            keys=[self.key(scope), self.history_key],
            args=["" if new is None else json.dumps(new), int(expires * 1000), json.dumps(entry), _HISTORY_LIMIT, self.channel],
        )
        change = ContextChange(scope, None, new)
        try:
            change.old = _parse(old_raw, self.key(scope), now)
        except ContextFileError as exc:
            change.warnings.append(f"replaced an unreadable context: {exc}")
        return change

    def _call(self, fn: Callable, *args, **kwargs):
        import redis

        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise HomeError(f"context store {scrub_dsn(self.url)} is unavailable: {scrub_dsn(exc, self.url)}") from None


class RedisContextResolver:
    """Hot-path resolution against Redis: one MGET for the whole scope chain on a cache miss.

    Cached answers are read again when a writer publishes a change, and are at most `max_age`
    seconds old in any case. When Redis is unreachable the resolver answers from its cache, or
    "no context" (calls go on untagged, one warning), at once, and asks again after a back-off
    (0.25 s, doubling up to `retry_after`), so an outage never adds a network timeout to every
    LLM call and a restarted Redis is used again within a moment. The subscription reconnects
    with the same back-off and drops the cache each time it subscribes again: changes published
    while it was away are not missed.
    """

    def __init__(self, store: RedisContextStore, warn: Callable[[str], None] | None = None,
                 *, max_age: float = 1.0, retry_after: float = 5.0) -> None:
        import redis

        self.store = store
        # The hot path must never wait long: a short timeout of its own.
        self._redis = redis.Redis.from_url(store.url, socket_timeout=0.25, socket_connect_timeout=0.25)
        self._warn = warn
        self._max_age = max_age
        self._retry_after = retry_after
        self._cache: dict[tuple, tuple[float, Resolved | None, float]] = {}  # fetched, found, expires
        self._down_until = 0.0
        self._backoff = 0.25
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None

    def resolve(self, session_id: str | None = None, agent_id: str | None = None) -> Resolved | None:
        now = time.monotonic()
        key = (session_id, agent_id)
        cached = self._cache.get(key)
        if cached is not None and (now - cached[0] < self._max_age or now < self._down_until):
            return cached[1] if cached[2] > time.time() else None
        if now < self._down_until:
            return None
        self._ensure_listener()
        chain = scope_chain(session_id, agent_id)
        try:
            raws = self._redis.mget([self.store.key(scope) for scope in chain])
        except Exception as exc:  # noqa: BLE001 - an outage must not fail the call
            self._down_until = now + self._backoff
            self._backoff = min(self._backoff * 2, self._retry_after)
            self._report(f"context store unavailable, calls go untagged (or on cached contexts) until it answers: {exc}")
            return cached[1] if cached and cached[2] > time.time() else None
        self._backoff = 0.25
        wall = time.time()
        candidates = []
        for scope, raw in zip(chain, raws):
            try:
                parsed = _parse_with_expiry(raw, self.store.key(scope), wall)
            except ContextFileError as exc:
                self._report(f"ignoring context: {exc}")
                continue
            if parsed is not None:
                candidates.append((Resolved(scope, parsed[0], tuple(context_tags(parsed[0]))), parsed[1]))
        chosen = in_force(candidates, lambda candidate: candidate[0].context)
        found, expires = chosen if chosen is not None else (None, 0.0)
        with self._lock:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = (now, found, expires)
        return found

    def _ensure_listener(self) -> None:
        if self._listener is not None:
            return
        self._listener = threading.Thread(target=self._listen, name="backlog-ops-ctx-listener", daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        """Invalidate the whole cache on every published change (changes are rare; lookups are not)."""
        import redis

        backoff = 0.25
        while True:
            client = pubsub = None
            try:
                client = redis.Redis.from_url(self.store.url, socket_connect_timeout=2, health_check_interval=30)
                pubsub = client.pubsub()
                pubsub.subscribe(self.store.channel)
                for message in pubsub.listen():
                    kind = message.get("type") if message else None
                    # "subscribe" also comes when the client subscribes again after a reconnect:
                    # what was published meanwhile is unknown, so everything cached goes.
                    if kind in ("message", "subscribe"):
                        self._invalidate(server_answers=kind == "subscribe")
                        backoff = 0.25
            except Exception:  # noqa: BLE001 - reconnect; max_age bounds staleness meanwhile
                pass
            for closable in (pubsub, client):
                try:
                    if closable is not None:
                        closable.close()
                except Exception:  # noqa: BLE001 - a dead connection may fail to close
                    pass
            time.sleep(backoff)
            backoff = min(backoff * 2, self._retry_after)

    def _invalidate(self, *, server_answers: bool) -> None:
        """Read everything from Redis again; the old answers stay only as a fallback while it is down."""
        with self._lock:
            self._cache = {key: (float("-inf"), found, expires) for key, (_, found, expires) in self._cache.items()}
            if server_answers:
                self._down_until, self._backoff = 0.0, 0.25

    def _report(self, message: str) -> None:
        if self._warn is not None:
            self._warn(message)
        else:
            log.warning("backlog-ops: %s", message)


def _parse_with_expiry(raw: bytes | None, label: str, now: float) -> tuple[dict, float] | None:
    if raw is None:
        return None
    if len(raw) > MAX_CONTEXT_FILE_BYTES:
        raise ContextFileError(f"{label} is {len(raw)} bytes; a context is at most {MAX_CONTEXT_FILE_BYTES} bytes")
    parsed = parse_context(raw, path=label, mtime=now)
    return parsed if parsed is not None and parsed[1] > now else None


def _parse(raw: bytes | None, label: str, now: float) -> dict | None:
    parsed = _parse_with_expiry(raw, label, now)
    return parsed[0] if parsed is not None else None
