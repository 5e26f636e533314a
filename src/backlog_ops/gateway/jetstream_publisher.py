"""Publish events on NATS JetStream, off the request path: the machinery the quota events
(gateway/quota_publisher.py) and the guardrail alerts (gateway/guardrail_events.py) share.

`enqueue` only appends the event to a bounded in-memory buffer (microseconds). A daemon thread
with its own asyncio loop owns the NATS connection and publishes from that buffer, retrying and
reconnecting with a capped back-off. The proxy's loop never awaits NATS, so a slow, down or
flapping NATS server cannot slow or fail a call; and the connection never depends on a loop that
LiteLLM (or an SDK user's `asyncio.run`) may close.

Exactly once to a consumer: each event is published with the header `Nats-Msg-Id: <eventId>`. A
publish whose ack was lost is retried with the same id, and JetStream drops the copy within the
stream's duplicate window. Events still unpublished when the process stops (after a 3 s drain)
are kept in a spool and published, first, once the next process publishes its first event.

Killed with -9, a process cannot spool: so each event is also appended to a journal
(common/journal.py) when it is buffered, and forgotten once JetStream has acked it. The next
process moves what a dead one left in its journal into its spool and publishes it first; an
event that was in fact published just before the kill carries its id again, and JetStream drops
the copy within the duplicate window.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import threading
import time
from collections import deque

from backlog_ops.common.extras import require
from backlog_ops.common.journal import Journal
from backlog_ops.common.spool import load_spool, spool_lines
from backlog_ops.common.warnings import Warnings

__all__ = ["JetStreamPublisher"]


class JetStreamPublisher:
    """A bounded buffer of events and the thread that publishes them to JetStream.

    A subclass names its events and reads its settings: `_configure` sets url, subject, stream,
    capacity and duplicate_window; `spool_path` is where events left at exit wait.
    """

    noun = "event"  # one event, in logs: "quota event"
    purpose = "events on NATS"  # what needs the nats extra, when it is missing
    logger_name = "backlog_ops.events"
    thread_name = "backlog-events"  # the publisher thread, and its NATS client name with "backlog-ops-"
    subject_env = "BACKLOG_NATS_SUBJECT"  # the setting that names the subject, for a warning

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
        # (eventId, JSON, its journal segment or None): ~1 KB an event
        self._buffer: deque[tuple[str, bytes, object]] = deque()
        self._journal: Journal | None = None
        self.unjournaled = 0  # events held in memory only: the journal could not take them
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._in_flight = 0
        self.published = 0
        self.dropped = 0
        self.connected = False
        self._log = logging.getLogger(self.logger_name)
        # One warning per kind of problem per 30 s: a NATS outage fails every publish.
        self._warnings = Warnings(self._log, interval=30)
        self._atexit = False
        self._spool_loaded = False
        self._task: asyncio.Task | None = None

    # -- settings (read when the first event comes, so tests and the proxy's env apply) --------

    def _configure(self) -> None:  # pragma: no cover - subclasses read their own settings
        raise NotImplementedError

    # -- the buffer -------------------------------------------------------------------------------

    def enqueue(self, event: dict) -> None:
        """Never blocks: past the bound the oldest buffered event is dropped (and counted)."""
        if not self._configured:
            self._configure()
        payload = json.dumps(event, separators=(",", ":"), default=str).encode()
        item = (str(event["eventId"]), payload, self._journal_line(payload))
        with self._lock:
            if len(self._buffer) >= self.capacity:
                _, _, gone = self._buffer.popleft()
                self.dropped += 1
                dropped = self.dropped
            else:
                gone, dropped = None, 0
            self._buffer.append(item)
        if gone is not None:
            self._journal.resolve(gone)  # dropped and counted: not published by a later process either
        if dropped:
            self._warn("full", f"{self.noun} buffer full ({self.capacity}); {dropped} oldest event(s) dropped so far")
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
        spooled = self._save_spool(left) if left else True
        if self._journal is not None:
            # Spooled: the journal's lines are done. Not spooled: the next process adopts them.
            self._journal.close(keep=not spooled)
            self._journal = None

    # -- the spool: events that outlived the process that buffered them ------------------------

    def spool_path(self) -> str:  # pragma: no cover - subclasses name their spool
        raise NotImplementedError

    def journal_dir(self) -> str:
        """Where events wait until JetStream acks them: beside the spool (`x-spool.jsonl` -> `x-journal`)."""
        base = self.spool_path()
        base = base[:-len(".jsonl")] if base.endswith(".jsonl") else base
        return (base[:-len("-spool")] if base.endswith("-spool") else base) + "-journal"

    def _journal_line(self, payload: bytes):
        """Append one event to the journal; its segment, or None when it is held in memory only."""
        try:
            if self._journal is None:
                self._journal = Journal(self.journal_dir(), name=f"{self.noun} journal")
            return self._journal.append(payload + b"\n")
        except Exception as exc:  # noqa: BLE001 - a read-only or full home must not stop the events
            self.unjournaled += 1
            self._warn("journal", f"{self.noun}s held in memory only, a kill -9 would lose them "
                                  f"({self.unjournaled} so far): {exc}")
            return None

    def _save_spool(self, items: list[tuple[str, bytes, object]]) -> bool:
        path = self.spool_path()
        try:
            spool_lines(path, (payload.decode() for _, payload, _ in items))
            self._log.warning("backlog-ops: NATS %s unavailable at exit: %d %s(s) kept in %s, published after the next start",
                              _safe_url(self.url), len(items), self.noun, path)
            return True
        except Exception as exc:  # noqa: BLE001 - exiting: report, never raise
            journaled = sum(1 for _, _, segment in items if segment is not None)
            self._log.warning("backlog-ops: cannot spool %d %s(s) to %s at exit (%s): %d of them stay in the journal "
                              "%s for the next start, %d lost", len(items), self.noun, path, exc, journaled,
                              self.journal_dir(), len(items) - journaled)
            return False

    def _load_spool(self) -> None:
        """Put spooled events (this home's, and any a crashed loader left) back in front of the buffer.

        They keep their eventId, so one that was in fact published before the exit is dropped by
        JetStream's duplicate window.
        """
        if self._journal is not None:
            try:  # what processes killed with -9 left in their journals joins the spool
                self._journal.adopt_orphans(self.spool_path())
            except Exception as exc:  # noqa: BLE001
                self._warn("journal", f"cannot take over the {self.noun} journals of stopped processes: {exc}")
        loaded: list[tuple[str, bytes, object]] = []

        def parse(line: bytes) -> tuple[str, bytes]:
            return str(json.loads(line)["eventId"]), line.rstrip(b"\n")

        # Journaled again as they are loaded: the spool's files go once loaded, and this process
        # could be killed before it publishes them.
        load_spool(self.spool_path(), parse,
                   lambda items: loaded.extend((event_id, payload, self._journal_line(payload)) for event_id, payload in items))
        if loaded:
            beyond = loaded[:-self.capacity]  # past the buffer's bound: dropped and counted, as in enqueue
            for _, _, segment in beyond:
                if segment is not None:
                    self._journal.resolve(segment)
            with self._lock:
                self.dropped += len(beyond)
                self._buffer.extendleft(reversed(loaded[-self.capacity:]))
            self._log.info("backlog-ops: %d spooled %s(s) queued for publishing", len(loaded), self.noun)

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
            self._thread = threading.Thread(target=self._thread_main, args=(ready,), name=self.thread_name, daemon=True)
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
            self._warn("thread", f"{self.noun} publisher stopped: {type(exc).__name__}: {exc}")
        finally:
            self._loop = None
            loop.close()

    def _take(self) -> tuple[str, bytes, object] | None:
        with self._lock:
            if not self._buffer:
                return None
            self._in_flight = 1
            return self._buffer.popleft()

    async def _publisher(self) -> None:
        # Missing: the thread stops with a warning naming the extra, and the next event starts it again.
        nats = require("nats", "nats", self.purpose)

        nc = None
        js = None
        backoff = 0.2
        event: tuple[str, bytes, object] | None = None
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
                        self._log.info("backlog-ops: %ss go to %s subject %s", self.noun, _safe_url(self.url), self.subject)
                    event_id, payload, segment = event
                    await js.publish(self.subject, payload, timeout=3.0, headers={"Nats-Msg-Id": event_id})
                    self.published += 1
                    with self._lock:
                        self._in_flight = 0
                    if segment is not None:
                        self._journal.resolve(segment)
                    event = None
                    backoff = 0.2
                except Exception as exc:  # noqa: BLE001 - keep the event, back off, try again
                    self._warn("publish", f"{self.noun} not published yet ({type(exc).__name__}: {exc}); retrying, {self.pending()} waiting")
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
            name="backlog-ops-" + self.thread_name.removeprefix("backlog-"),
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
                                     f"{', '.join(subjects)}); set {self.subject_env} to one of those, or add "
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
