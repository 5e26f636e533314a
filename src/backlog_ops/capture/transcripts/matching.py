"""Nothing counted twice: transcript requests that already have a proxy row.

Per session and in time order, a transcript request is matched one-to-one with an unclaimed
proxy row of the same session whose start lies within 10 minutes before (2 after) the transcript
line, with the same completion tokens and the same prompt tokens in one of the ways they are
counted (input + cache read + cache write, as LiteLLM counts Anthropic; input + cache read;
input). A matched request is skipped. An unmatched request of a session the proxy saw within
15 minutes of it is skipped too: Claude Code sends all of a process's requests to one base URL,
so it went through the gateway even if its counts differ (an unrecorded proxy row is the lesser
harm than a double count). Proxy rows without a session id are matched on the counts alone, in
the same window, when the model agrees. Everything else is imported.
"""

from __future__ import annotations

import bisect

from backlog_ops.capture.transcripts.parse import Request
from backlog_ops.common.times import format_time, parse_time

__all__ = ["MATCHED", "SAME_SESSION", "ProxyRows", "proxy_rows_near"]

MATCH_BEFORE = 600.0  # a proxy row starts at most this long before the transcript line
MATCH_AFTER = 120.0  # ... or this long after it (clock skew between processes)
SESSION_WINDOW = 900.0  # a session the proxy saw this close to a request was proxied
MATCHED = "matched"  # a proxy row has this very request
SAME_SESSION = "session"  # the proxy saw the session then


def proxy_rows_near(ledger, requests: list[Request]) -> list[dict]:
    """The ledger's proxy rows close enough in time to any of `requests` to matter."""
    if ledger is None or not requests:
        return []
    lo = format_time(min(r.at for r in requests) - SESSION_WINDOW - MATCH_BEFORE)
    hi = format_time(max(r.at for r in requests) + SESSION_WINDOW + MATCH_AFTER)
    return ledger.rows("WHERE source = 'proxy' AND started_at >= ? AND started_at <= ?", (lo, hi))


class ProxyRows:
    """Proxy rows by session, each claimed by at most one transcript request."""

    def __init__(self, rows: list[dict]) -> None:
        self.by_session: dict[str, list[dict]] = {}
        self.anonymous: list[dict] = []
        self.claimed: set[str] = set()
        for row in rows:
            try:
                row["_at"] = parse_time(row["started_at"], "started_at")
            except (ValueError, KeyError):
                continue
            (self.by_session.setdefault(row["session_id"], []) if row.get("session_id") else self.anonymous).append(row)
        for rows_ in self.by_session.values():
            rows_.sort(key=lambda r: r["_at"])
        self._times = {s: [r["_at"] for r in rs] for s, rs in self.by_session.items()}

    def match(self, req: Request) -> str | None:
        """MATCHED, SAME_SESSION or None (not proxied)."""
        rows = self.by_session.get(req.session_id)
        for candidates, require_model in ((rows, False), (self.anonymous, True)):
            row = self._best(candidates, req, require_model=require_model) if candidates else None
            if row is not None:
                self.claimed.add(row["call_id"])
                return MATCHED
        if rows:
            times = self._times[req.session_id]
            i = bisect.bisect_left(times, req.at - SESSION_WINDOW)
            if i < len(times) and times[i] <= req.at + SESSION_WINDOW:
                return SAME_SESSION
        return None

    def _best(self, rows: list[dict], req: Request, *, require_model: bool) -> dict | None:
        """The unclaimed row nearest in time with the same counts (and model, if required)."""
        prompts = {req.input_tokens + req.cache_read + req.cache_write, req.input_tokens + req.cache_read, req.input_tokens}
        best, best_gap = None, None
        for row in rows:
            gap = req.at - row["_at"]
            if gap > MATCH_BEFORE or gap < -MATCH_AFTER or row["call_id"] in self.claimed:
                continue
            if row.get("status") != "success" or row.get("completion_tokens") != req.output_tokens:
                continue
            if row.get("prompt_tokens") not in prompts:
                continue
            if require_model and not same_model(row.get("model"), req.model):
                continue
            if best_gap is None or abs(gap) < best_gap:
                best, best_gap = row, abs(gap)
        return best


def same_model(a: str | None, b: str | None) -> bool:
    """Whether two model names are the same model, provider prefixes and date suffixes aside."""
    if not a or not b:
        return False
    a, b = a.rsplit("/", 1)[-1], b.rsplit("/", 1)[-1]
    return a == b or a.startswith(b) or b.startswith(a)
