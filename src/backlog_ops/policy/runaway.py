"""Runaway spend: a session or ticket spending faster than anyone working would.

Three signs, each with its own limit (llmOps.alerts.runaway in backlog.config.json; None turns a
sign off):

    usd_per_window      a session or a ticket spent more than this many USD within window_seconds
    calls_per_minute    a session made more calls than this within the last 60 seconds
    repeated_requests   one session's (or one subagent's) request ended the same way this many
                        times among its last 2x that many requests: an agent stuck in a loop.
                        "The same way": the last two messages without their ids, the same tool
                        calls exactly, and the same texts and tool results but for their digits
                        (timings, counters, line numbers)

The detector only counts and decides; `callbacks/runaway_watch.py` says it (log, metric, NATS,
the session's next hook output) and, under policy "pause", refuses the session's calls until
`backlog-ops context resume` or the pause expires. An alert for one sign of one session or ticket
is raised at most once per window (or per minute), however long the sign lasts.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Callable

from backlog_ops.common.times import parse_duration
from backlog_ops.errors import ConfigError

__all__ = [
    "POLICIES",
    "Alert",
    "RunawayDetector",
    "RunawaySettings",
    "default_settings",
    "parse_runaway",
    "parse_runaway_section",
    "request_fingerprint",
]

POLICIES = ("alert", "pause", "off")
_IDS = frozenset(("id", "tool_use_id", "tool_call_id", "cache_control", "signature"))
_EXACT = frozenset(("input", "arguments"))  # a tool call's input (Anthropic) or arguments (OpenAI)
_DIGITS = re.compile(r"\d+")
_MAX_HASHED = 256 * 1024  # characters of a request's ending hashed (its start and its end)


@dataclass(frozen=True)
class RunawaySettings:
    """One project's runaway limits (the rendered form of llmOps.alerts.runaway)."""

    policy: str
    window_seconds: int
    usd_per_window: float | None
    calls_per_minute: int | None
    repeated_requests: int | None
    pause_seconds: int


def default_settings() -> RunawaySettings:
    """What applies to a project whose rendered policy says nothing: llmOps.alerts.runaway's defaults."""
    from backlog_ops.project.schema import RunawayAlerts, runaway_entry

    return parse_runaway(runaway_entry(RunawayAlerts()))


def parse_runaway(entry: Any, where: str = "runaway") -> RunawaySettings:
    """The `runaway` entry of a project's rendered policy -> RunawaySettings; ConfigError names the key.

    A key the entry leaves out takes its default (None: every default).
    """
    if entry is None:
        return default_settings()
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a mapping")
    from backlog_ops.project.schema import RunawayAlerts, runaway_entry

    defaults = runaway_entry(RunawayAlerts())
    policy = entry.get("policy", defaults["policy"])
    if policy not in POLICIES:
        raise ConfigError(f"{where}.policy: must be one of {', '.join(POLICIES)}, got {policy!r}")

    def limit(key: str, integer: bool) -> float | int | None:
        value = entry.get(key, defaults[key])
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (integer and int(value) != value):
            kind = "a whole number" if integer else "a number"
            raise ConfigError(f"{where}.{key}: must be {kind} > 0, or null to turn it off; got {value!r}")
        return int(value) if integer else float(value)

    def seconds(key: str) -> int:
        value = entry.get(key, defaults[key])
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f"{where}.{key}: {exc}") from None

    repeated = limit("repeated_requests", True)
    if repeated is not None and repeated < 2:
        raise ConfigError(f"{where}.repeated_requests: must be at least 2, got {repeated!r}")
    return RunawaySettings(
        policy=policy,
        window_seconds=seconds("window_seconds"),
        usd_per_window=limit("usd_per_window", False),
        calls_per_minute=limit("calls_per_minute", True),
        repeated_requests=repeated,
        pause_seconds=seconds("pause_seconds"),
    )


@dataclass(frozen=True)
class Alert:
    """One runaway sign, raised once: what was seen, against which limit, and what the policy does."""

    kind: str  # usd_per_window | calls_per_minute | repeated_requests
    scope: str  # session | ticket
    session_id: str | None
    agent_id: str | None
    ticket_id: str | None
    project: str | None
    observed: float
    limit: float
    window_seconds: int
    policy: str
    at: float
    pause_seconds: int = 0

    @property
    def id(self) -> str:
        who = self.session_id if self.scope == "session" else f"{self.project or '-'}~{self.ticket_id}"
        return f"{self.scope}:{who}:{self.kind}:{int(self.at * 1000)}"

    def as_dict(self) -> dict:
        return {**asdict(self), "id": self.id, "message": self.message()}

    def what(self) -> str:
        """The sign in words: '9 near-identical requests among its last 16'."""
        if self.kind == "repeated_requests":
            return (f"sent {int(self.observed)} near-identical requests among its last {2 * int(self.limit)} "
                    f"(limit {int(self.limit)}): an agent may be stuck in a loop")
        if self.kind == "calls_per_minute":
            return f"made {int(self.observed)} LLM calls in the last minute (limit {int(self.limit)})"
        return f"spent ${self.observed:,.4f} in the last {_span(self.window_seconds)} (limit ${self.limit:,.2f})"

    def message(self) -> str:
        """What the log, the event and the session say."""
        who = (f"session {self.session_id}" if self.scope == "session"
               else f"ticket {self.ticket_id}" + (f" (project {self.project})" if self.project else ""))
        on = f" on ticket {self.ticket_id}" if self.scope == "session" and self.ticket_id else ""
        text = f"backlog-ops: runaway spend alert: {who}{on} {self.what()}."
        if self.policy == "pause" and self.session_id:
            text += (f" Its LLM calls are paused for {_span(self.pause_seconds)}; resume them with "
                     f"`backlog-ops context resume --session {self.session_id}`.")
        else:
            text += " Check what it is doing; if this pace is expected, raise llmOps.alerts.runaway in backlog.config.json."
        return text


class _Stream:
    """What the detector remembers of one session, subagent or ticket."""

    __slots__ = ("calls", "costs", "spent", "prints", "seen")

    def __init__(self) -> None:
        self.calls: deque[float] = deque()
        self.costs: deque[tuple[float, float]] = deque()
        self.spent = 0.0
        self.prints: deque[str] = deque()
        self.seen = 0.0


class RunawayDetector:
    """Counts calls, costs and request endings per session, subagent and ticket; thread-safe.

    Memory is bounded: at most `max_streams` streams are kept (the idlest are forgotten first),
    each holding at most the last minute of calls (capped), a window of costs and 2N endings.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, max_streams: int = 20_000) -> None:
        self._clock = clock
        self._max = max_streams
        self._lock = threading.Lock()
        self._streams: dict[tuple, _Stream] = {}
        self._alerted: dict[tuple, float] = {}

    def on_request(
        self, *, session: str | None, agent: str | None, ticket: str | None, project: str | None,
        fingerprint: str | None, settings: RunawaySettings,
    ) -> list[Alert]:
        """A request is about to go out: count it and look at its ending."""
        if settings.policy == "off" or session is None:
            return []
        now = self._clock()
        alerts: list[Alert] = []
        with self._lock:
            stream = self._stream(("session", session), now)
            if settings.calls_per_minute is not None:
                calls = stream.calls
                calls.append(now)
                while calls and now - calls[0] > 60:
                    calls.popleft()
                while len(calls) > settings.calls_per_minute + 1:  # bounded: only "over the limit" matters
                    calls.popleft()
                if len(calls) > settings.calls_per_minute:
                    alerts += self._raise("calls_per_minute", "session", session, agent, ticket, project,
                                          len(calls), settings.calls_per_minute, settings, now)
            if settings.repeated_requests is not None and fingerprint is not None:
                n = settings.repeated_requests
                prints = self._stream(("agent", session, agent), now).prints
                prints.append(fingerprint)
                while len(prints) > 2 * n:
                    prints.popleft()
                same = sum(1 for p in prints if p == fingerprint)
                if same >= n:
                    alerts += self._raise("repeated_requests", "session", session, agent, ticket, project,
                                          same, n, settings, now)
                    if alerts and alerts[-1].kind == "repeated_requests":
                        prints.clear()  # the next alert needs a fresh run of repeats
            self._prune(now)
        return alerts

    def on_cost(
        self, *, session: str | None, agent: str | None, ticket: str | None, project: str | None,
        cost: float, settings: RunawaySettings,
    ) -> list[Alert]:
        """A call finished with `cost` USD: add it to its session's and its ticket's window."""
        if settings.policy == "off" or settings.usd_per_window is None or not cost or cost <= 0:
            return []
        now = self._clock()
        alerts: list[Alert] = []
        with self._lock:
            targets = []
            if session is not None:
                targets.append((("session", session), "session"))
            if ticket is not None:
                targets.append((("ticket", project, ticket), "ticket"))
            for key, scope in targets:
                stream = self._stream(key, now)
                stream.costs.append((now, cost))
                stream.spent += cost
                while stream.costs and now - stream.costs[0][0] > settings.window_seconds:
                    stream.spent -= stream.costs.popleft()[1]
                while len(stream.costs) > 100_000:  # a bound even for absurd call rates
                    stream.spent -= stream.costs.popleft()[1]
                if stream.spent > settings.usd_per_window:
                    alerts += self._raise("usd_per_window", scope, session, agent, ticket, project,
                                          round(stream.spent, 6), settings.usd_per_window, settings, now)
            self._prune(now)
        return alerts

    def forget_session(self, session: str) -> None:
        """A paused session was resumed: start counting it afresh."""
        with self._lock:
            for key in [k for k in self._streams if k[1] == session]:
                del self._streams[key]
            for key in [k for k in self._alerted if k[1] == session and k[0] == "session"]:
                del self._alerted[key]

    # -- internals -------------------------------------------------------------------------------

    def _stream(self, key: tuple, now: float) -> _Stream:
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
        stream.seen = now
        return stream

    def _raise(self, kind: str, scope: str, session, agent, ticket, project, observed, limit,
               settings: RunawaySettings, now: float) -> list[Alert]:
        who = ("session", session) if scope == "session" else ("ticket", f"{project}~{ticket}")
        key = (*who, kind)
        quiet = max(60.0, float(settings.window_seconds))
        last = self._alerted.get(key)
        if last is not None and now - last < quiet:
            return []
        self._alerted[key] = now
        return [Alert(kind, scope, session, agent, ticket, project, float(observed), float(limit),
                      settings.window_seconds, settings.policy, now, settings.pause_seconds)]

    def _prune(self, now: float) -> None:
        if len(self._streams) <= self._max and len(self._alerted) <= self._max:
            return
        for key in sorted(self._streams, key=lambda k: self._streams[k].seen)[: len(self._streams) // 2]:
            del self._streams[key]
        for key in sorted(self._alerted, key=self._alerted.__getitem__)[: len(self._alerted) // 2]:
            del self._alerted[key]


def parse_runaway_section(section: Any) -> dict[str, RunawaySettings]:
    """{project: RunawaySettings} from the `backlog_ops` section of a proxy config (every project it lists)."""
    policy = section.get("policy") if isinstance(section, dict) else None
    projects = policy.get("projects") if isinstance(policy, dict) else None
    if not isinstance(projects, dict):
        return {}
    return {
        str(name): parse_runaway(entry.get("runaway") if isinstance(entry, dict) else None,
                                 f"policy.projects.{name}.runaway")
        for name, entry in projects.items()
    }


def request_fingerprint(data: dict) -> str | None:
    """How a request ends (its last two messages: see repeated_requests above), hashed; None without messages."""
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    try:
        text = json.dumps([data.get("model"), _shape(messages[-2:], exact=False)], sort_keys=True, default=str)
    except (TypeError, ValueError, RecursionError):
        return None
    if len(text) > _MAX_HASHED:
        text = text[: _MAX_HASHED // 2] + text[-_MAX_HASHED // 2:]
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _shape(value: Any, *, exact: bool) -> Any:
    """Ids dropped; digits masked in texts and results, kept in tool call inputs (reading file 1,
    then file 2, is progress; running the same command and getting the same error is not)."""
    if isinstance(value, dict):
        return {k: _shape(v, exact=exact or k in _EXACT) for k, v in value.items() if k not in _IDS}
    if isinstance(value, list):
        return [_shape(v, exact=exact) for v in value]
    if isinstance(value, str) and not exact:
        return _DIGITS.sub("#", value[:_MAX_HASHED])
    return value


def _span(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"

