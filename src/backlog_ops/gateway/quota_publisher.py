"""Publish quota.updated events on NATS JetStream, off the request path.

`enqueue` only appends the event to a bounded in-memory buffer (microseconds). A daemon thread
with its own asyncio loop owns the NATS connection and publishes from that buffer, retrying and
reconnecting with a capped back-off. The proxy's loop never awaits NATS, so a slow, down or
flapping NATS server cannot slow or fail a call; and the connection never depends on a loop that
LiteLLM (or an SDK user's `asyncio.run`) may close.

Exactly once to a consumer: each event is published with the header `Nats-Msg-Id: <eventId>`. A
publish whose ack was lost is retried with the same id, and JetStream drops the copy within the
stream's duplicate window.

Environment:
    BACKLOG_NATS_URL          nats://127.0.0.1:4222
    BACKLOG_NATS_SUBJECT      quota.updated (the service brief's subject; set llm.quota.updated to keep
                              the subject releases before this one used)
    BACKLOG_NATS_STREAM       LLM_QUOTA (created on first connect if absent; "" = never create)
    BACKLOG_NATS_BUFFER       10000 events held while NATS is unreachable; past it the oldest go
    BACKLOG_NATS_DUP_WINDOW   120 seconds (the stream's duplicate window, when this creates it)
    BACKLOG_NATS_SPOOL        BACKLOG_HOME/quota-events-spool.jsonl: events still unpublished when
                              the process stops (after a 3 s drain) are kept there and published,
                              first, once the next process publishes its first event
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import threading
import time
from collections import deque

from backlog_ops.common.extras import require
from backlog_ops.common.home import home_dir
from backlog_ops.common.settings import env_int, env_str
from backlog_ops.common.spool import load_spool, spool_lines
from backlog_ops.common.warnings import Warnings
from backlog_ops.errors import ConfigError

__all__ = ["DEFAULT_SUBJECT", "QuotaEventPublisher"]

log = logging.getLogger("backlog_ops.quota_events")

# The subject the service brief names (litellm-proxy-service-brief.md: "emit quota.updated events").
DEFAULT_SUBJECT = "quota.updated"


def _positive_setting(name: str, default: int) -> int:
    # A value that is not a whole number falls back to the default: a typo must not stop the events.
    try:
        return max(1, env_int(name, default))
    except ConfigError:
        return default


class QuotaEventPublisher:
    """A bounded buffer of events and the thread that publishes them to JetStream."""

    def __init__(
        self,
        *,
        url: str | None = None,
        subject: str | None = None,
        stream: str | None = None,
        buffer: int | None = None,
        duplicate_window: float | None = None,
    ) -> None:
        self._settings = dict(url=url, subject=subject, stream=stream, buffer=buffer, duplicate_window=duplicate_window)
        self._configured = False
        self._lock = threading.Lock()
        self._buffer: deque[tuple[str, bytes]] = deque()  # (eventId, JSON): ~1 KB an event
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._in_flight = 0
        self.published = 0
        self.dropped = 0
        self.connected = False
        # One warning per kind of problem per 30 s: a NATS outage fails every publish.
        self._warnings = Warnings(log, interval=30)
        self._atexit = False
        self._spool_loaded = False
        self._task: asyncio.Task | None = None

    # -- settings (read when the first event comes, so tests and the proxy's env apply) --------

    def _configure(self) -> None:
        s = self._settings
        self.url = s["url"] or env_str("BACKLOG_NATS_URL", "nats://127.0.0.1:4222")
        self.subject = s["subject"] or env_str("BACKLOG_NATS_SUBJECT", DEFAULT_SUBJECT)
        # Read directly: set but empty means "never create a stream", which env_str treats as unset.
        stream = s["stream"] if s["stream"] is not None else os.environ.get("BACKLOG_NATS_STREAM", "LLM_QUOTA")
        self.stream = stream or None
        self.capacity = s["buffer"] or _positive_setting("BACKLOG_NATS_BUFFER", 10000)
        self.duplicate_window = s["duplicate_window"] or float(_positive_setting("BACKLOG_NATS_DUP_WINDOW", 120))
        self._configured = True

    # -- the buffer -------------------------------------------------------------------------------

    def enqueue(self, event: dict) -> None:
        """Never blocks: past the bound the oldest buffered event is dropped (and counted)."""
        if not self._configured:
            self._configure()
        item = (str(event["eventId"]), json.dumps(event, separators=(",", ":"), default=str).encode())
        with self._lock:
            if len(self._buffer) >= self.capacity:
                self._buffer.popleft()
                self.dropped += 1
                dropped = self.dropped
            else:
                dropped = 0
            self._buffer.append(item)
        if dropped:
            self._warn("full", f"quota event buffer full ({self.capacity}); {dropped} oldest event(s) dropped so far")
        self._ensure_thread()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:
                pass  # the loop is closing (interpreter exit)

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer) + self._in_flight

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait (bounded) until every buffered event is published; True when none is left."""
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.pending()

    def close(self, timeout: float = 3.0) -> None:
        """Flush for at most `timeout` s, stop the publisher, and spool what is left for the next start."""
        if self._thread is None:
            return
        self.flush(timeout)
        self._stopping = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)  # also interrupts a connect or publish in progress
            except RuntimeError:
                pass
        self._thread.join(timeout=3.0)
        self._thread = None
        with self._lock:
            left = list(self._buffer)
            self._buffer.clear()
        if left:
            self._save_spool(left)

    # -- the spool: events that outlived the process that buffered them ------------------------

    def spool_path(self) -> str:
        return env_str("BACKLOG_NATS_SPOOL") or os.path.join(home_dir(), "quota-events-spool.jsonl")

    def _save_spool(self, items: list[tuple[str, bytes]]) -> None:
        path = self.spool_path()
        try:
            spool_lines(path, (payload.decode() for _, payload in items))
            log.warning("backlog-ops: NATS %s unavailable at exit: %d quota event(s) kept in %s, published after the next start",
                        _safe_url(self.url), len(items), path)
        except Exception as exc:  # noqa: BLE001 - exiting: report, never raise
            log.warning("backlog-ops: %d quota event(s) lost at exit (cannot spool to %s: %s)", len(items), path, exc)

    def _load_spool(self) -> None:
        """Put spooled events (this home's, and any a crashed loader left) back in front of the buffer.

        They keep their eventId, so one that was in fact published before the exit is dropped by
        JetStream's duplicate window.
        """
        loaded: list[tuple[str, bytes]] = []
        load_spool(self.spool_path(), lambda line: (str(json.loads(line)["eventId"]), line), loaded.extend)
        if loaded:
            with self._lock:
                self._buffer.extendleft(reversed(loaded[-self.capacity:]))
            log.info("backlog-ops: %d spooled quota event(s) queued for publishing", len(loaded))

    # -- the publisher thread ---------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        if not self._spool_loaded:
            self._spool_loaded = True
            self._load_spool()
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            ready = threading.Event()
            self._stopping = False
            self._thread = threading.Thread(target=self._thread_main, args=(ready,), name="backlog-quota-events", daemon=True)
            self._thread.start()
        ready.wait(2.0)
        if not self._atexit:
            self._atexit = True
            atexit.register(self.close)

    def _thread_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._wake = asyncio.Event()
        ready.set()
        self._task = loop.create_task(self._publisher())
        try:
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001
            self._warn("thread", f"quota event publisher stopped: {type(exc).__name__}: {exc}")
        finally:
            self._loop = None
            loop.close()

    def _take(self) -> tuple[str, bytes] | None:
        with self._lock:
            if not self._buffer:
                return None
            self._in_flight = 1
            return self._buffer.popleft()

    async def _publisher(self) -> None:
        # Missing: the thread stops with a warning naming the extra, and the next event starts it again.
        nats = require("nats", "nats", "quota.updated events on NATS")

        nc = None
        js = None
        backoff = 0.2
        event: tuple[str, bytes] | None = None
        try:
            while not self._stopping:
                if event is None:
                    event = self._take()
                if event is None:
                    await self._wait_for_events()
                    continue
                try:
                    if nc is None or nc.is_closed:
                        nc = await self._connect(nats)
                        js = nc.jetstream()
                        self.connected = True
                        await self._ensure_stream(js)
                        log.info("backlog-ops: quota events go to %s subject %s", _safe_url(self.url), self.subject)
                    event_id, payload = event
                    await js.publish(self.subject, payload, timeout=3.0, headers={"Nats-Msg-Id": event_id})
                    self.published += 1
                    with self._lock:
                        self._in_flight = 0
                    event = None
                    backoff = 0.2
                except Exception as exc:  # noqa: BLE001 - keep the event, back off, try again
                    self._warn("publish", f"quota event not published yet ({type(exc).__name__}: {exc}); retrying, {self.pending()} waiting")
                    if nc is not None and not nc.is_connected and not nc.is_reconnecting:
                        await _close(nc)
                        nc = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            if event is not None:  # stopping with an event in hand: give it back for pending()
                with self._lock:
                    self._buffer.appendleft(event)
                    self._in_flight = 0
            if nc is not None:
                await _close(nc)

    async def _wait_for_events(self) -> None:
        self._wake.clear()
        if self.pending():
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=1.0)
        except asyncio.TimeoutError:
            pass

    async def _connect(self, nats):
        # Bounded: nats-py would otherwise keep retrying a first connect forever.
        return await asyncio.wait_for(nats.connect(
            self.url,
            name="backlog-ops-quota-events",
            connect_timeout=2,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=self._nats_error,
            disconnected_cb=self._nats_disconnected,
            reconnected_cb=self._nats_reconnected,
        ), timeout=5.0)

    async def _ensure_stream(self, js) -> None:
        if not self.stream:
            return
        try:
            info = await js.stream_info(self.stream)
        except Exception:  # noqa: BLE001 - not found (or no JetStream): try to create it
            info = None
        if info is not None:
            subjects = list(getattr(info.config, "subjects", None) or [])
            if subjects and not any(_subject_matches(s, self.subject) for s in subjects):
                # e.g. a stream made for the old default subject llm.quota.updated: every publish
                # would fail with "no responders", so say which setting fixes it.
                self._warn("stream", f"stream {self.stream} does not take subject {self.subject} (it takes "
                                     f"{', '.join(subjects)}); set BACKLOG_NATS_SUBJECT to one of those, or add "
                                     f"{self.subject} to the stream's subjects")
            return
        try:
            await js.add_stream(name=self.stream, subjects=[self.subject], duplicate_window=self.duplicate_window)
        except Exception as exc:  # noqa: BLE001 - e.g. another stream already takes the subject
            self._warn("stream", f"cannot create stream {self.stream} for {self.subject}: {exc}")

    async def _nats_error(self, exc: Exception) -> None:
        self._warn("nats", f"NATS {_safe_url(self.url)}: {type(exc).__name__}: {exc}")

    async def _nats_disconnected(self) -> None:
        self.connected = False

    async def _nats_reconnected(self) -> None:
        self.connected = True

    def _warn(self, kind: str, message: str) -> None:
        self._warnings(message, key=kind)


async def _close(nc) -> None:
    try:
        await asyncio.wait_for(nc.close(), timeout=2.0)
    except Exception:  # noqa: BLE001
        pass


def _subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, a final `>` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def _safe_url(url: str) -> str:
    """The server URL without credentials, for logs."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url
