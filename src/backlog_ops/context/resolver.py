"""Which context applies to a request, cheaply enough to run on every LLM call.

Order: the (session, agent) context, then the session's, then the global one; an expired,
absent or unreadable file at one scope passes to the next, and a context inferred from the git
branch yields to one that was set further down (scope.in_force). A file is parsed again only when its
(inode, mtime, size) changed. File mtimes are coarse (a kernel tick), so a file read within
_RACY_NS of its mtime could be rewritten within the same tick with the same signature: such a
read is not trusted and the file is read again next time ("racy git" in git's index has the
same fix).
"""

from __future__ import annotations

import os
import threading
import time

from backlog_ops.context.contextfile import MAX_CONTEXT_FILE_BYTES, parse_context
from backlog_ops.context.fields import context_tags
from backlog_ops.context.file_store import ContextStore
from backlog_ops.context.scope import Scope, in_force, scope_chain
from backlog_ops.errors import ContextFileError

__all__ = ["ContextResolver", "Resolved"]

_RACY_NS = 100_000_000  # 100 ms: several kernel ticks on any configuration


class Resolved:
    """The context in force for a request, the scope it came from and its tags."""

    # A plain class, not a NamedTuple: hooks import this module, and typing costs them ~3 ms.
    __slots__ = ("scope", "context", "tags")

    def __init__(self, scope: Scope, context: dict, tags: tuple) -> None:
        self.scope = scope
        self.context = context
        self.tags = tags

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resolved) and (self.scope, self.context, self.tags) == (other.scope, other.context, other.tags)

    def __repr__(self) -> str:
        return f"Resolved(scope={self.scope!r}, tags={self.tags!r})"


def _context_of(resolved: Resolved) -> dict:
    return resolved.context


class _Entry:
    __slots__ = ("signature", "trusted", "resolved", "expires")

    def __init__(self, signature: tuple, trusted: bool, resolved: Resolved | None, expires: float) -> None:
        self.signature = signature
        self.trusted = trusted
        self.resolved = resolved
        self.expires = expires


class ContextResolver:
    """Resolve contexts for requests, caching parsed files between calls.

    `warn` receives one message per distinct bad file version (not one per request).
    """

    def __init__(self, store: ContextStore | None = None, warn=None) -> None:
        self.store = store if store is not None else ContextStore()
        self._warn = warn
        self._cache: dict[str, _Entry] = {}
        self._absent: set[str] = set()
        self._chains: dict[tuple[str | None, str | None], tuple[tuple[Scope, str], ...]] = {}
        self._warned: set[tuple[str, tuple[int, int, int]]] = set()
        self._lock = threading.Lock()

    def resolve(self, session_id: str | None = None, agent_id: str | None = None) -> Resolved | None:
        """The context in force for (session, agent); ids that are not valid ids are ignored."""
        chain = self._chains.get((session_id, agent_id))
        if chain is None:
            chain = self._chain(session_id, agent_id)
        now = time.time()
        return in_force((self._lookup(scope, path, now) for scope, path in chain), _context_of)

    def _chain(self, session_id: str | None, agent_id: str | None) -> tuple[tuple[Scope, str], ...]:
        chain = tuple((scope, self.store.file_for(scope)) for scope in scope_chain(session_id, agent_id))
        with self._lock:
            if len(self._chains) > 4096:
                self._chains.clear()
            self._chains[(session_id, agent_id)] = chain
        return chain

    def _lookup(self, scope: Scope, path: str, now: float) -> Resolved | None:
        # A scope with no file usually stays that way (most requests have no agent context):
        # access(2) answers "still absent" without the cost of raising FileNotFoundError.
        if path in self._absent:
            if not os.access(path, os.F_OK):
                return None
            self._absent.discard(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            with self._lock:
                if len(self._absent) > 4096:
                    self._absent.clear()
                self._absent.add(path)
            return None
        except OSError as exc:
            self._warn_once(path, (0, 0, 0), f"cannot read context file {path}: {exc.strerror or exc}")
            return None
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        entry = self._cache.get(path)
        if entry is None or entry.signature != signature or not entry.trusted:
            entry = self._load(scope, path, signature, st.st_mtime)
        return entry.resolved if entry.expires > now else None

    def _load(self, scope: Scope, path: str, signature: tuple[int, int, int], mtime: float) -> _Entry:
        read_started = time.time_ns()
        resolved, expires = None, 0.0
        try:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_CONTEXT_FILE_BYTES + 1)
            result = parse_context(raw, path=path, mtime=mtime)
            if result is not None:
                context, expires = result
                resolved = Resolved(scope, context, tuple(context_tags(context)))
        except FileNotFoundError:
            pass  # cleared between stat and open
        except OSError as exc:
            self._warn_once(path, signature, f"cannot read context file {path}: {exc.strerror or exc}")
        except ContextFileError as exc:
            self._warn_once(path, signature, f"ignoring context file: {exc}")
        entry = _Entry(signature, signature[1] < read_started - _RACY_NS, resolved, expires)
        with self._lock:
            self._cache[path] = entry
            if len(self._cache) > 4096:  # sessions come and go; keep the cache bounded
                self._cache.clear()
        return entry

    def _warn_once(self, path: str, signature: tuple[int, int, int], message: str) -> None:
        key = (path, signature)
        with self._lock:
            if key in self._warned:
                return
            if len(self._warned) > 4096:
                self._warned.clear()
            self._warned.add(key)
        if self._warn is not None:
            self._warn(message)
