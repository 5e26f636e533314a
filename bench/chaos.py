"""Chaos: the real proxy under load while its backends restart, it is killed with -9, and its home turns read-only.

    .venv/bin/python bench/chaos.py [--requests 1200] [--concurrency 8]

Starts its own throwaway PostgreSQL (the ledger), Redis (the contexts) and NATS (quota events) on
free loopback ports — never the shared ones — each with a password or token, and the real LiteLLM
proxy (`backlog-ops proxy`) with the tagger, the ticket policy, the spend ledger and the quota
events, in front of the local mock provider. Five Claude Code-like sessions send a bounded load
(chat and /v1/messages, streamed and not); one ticket, FEAT-CAP, has a small budget with
`onLedgerUnavailable: deny`. During the load, one after the other: PostgreSQL restarts, Redis
restarts, NATS restarts, the proxy is killed with -9 and started again, and the home is made
read-only for a while (a read-only bind mount as root, else chmod 0500).

It prints requests sent and answered 200, ledger rows for the 200s, rows lost, duplicate rows,
quota events lost and duplicated, over-budget calls served, and any secret (database password,
Redis password, NATS token, master key) seen in any output: the proxy's logs, every error
response, the quota events and the `backlog-ops spend` command. Goal: 0 lost, 0 duplicated,
0 over-budget served, 0 secrets, 0 quota events lost or duplicated. Exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import yaml

from backlog_ops.context.redis_store import RedisContextStore
from backlog_ops.context.scope import Scope
from backlog_ops.gateway.process import ProxyProcess, free_port
from backlog_ops.testing.mock_upstream import MockUpstream
from backlog_ops.testing.servers import ThrowawayNats, ThrowawayPostgres, ThrowawayRedis, missing

TICKETS = ["FEAT-CH1", "FEAT-CH2", "FEAT-CH3", "FEAT-CH4", "FEAT-CAP"]
BUDGET_USD = 0.05
KINDS = ["chat", "chat-stream", "messages", "messages-stream"]
SUBJECT, STREAM, SCHEMA, PREFIX = "chaos.quota", "CHAOS_QUOTA", "chaos_ledger", "chaos:"
MARGIN_S = 0.5  # a call counts as over-budget if the spend finished this long before it started was over


class Load:
    """Bounded load: `total` requests from `concurrency` workers, each with its own connection pool."""

    def __init__(self, base_url: str, key: str, sessions: list[str], total: int, concurrency: int, deadline: float) -> None:
        self.base_url, self.key, self.sessions = base_url, key, sessions
        self.total, self.concurrency, self.deadline = total, concurrency, deadline
        self.results: list[dict] = []
        self.bodies: list[str] = []  # every non-200 body, for the secret scan
        self._next = 0
        self._lock = threading.Lock()

    def done(self) -> int:
        with self._lock:
            return len(self.results)

    def run(self) -> None:
        workers = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.concurrency)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.total or time.monotonic() > self.deadline:
                return None
            self._next += 1
            return self._next - 1

    def _worker(self) -> None:
        backoff = 0.2
        with httpx.Client(base_url=self.base_url, timeout=30, headers={"authorization": f"Bearer {self.key}"}) as client:
            while (i := self._take()) is not None:
                session, kind = i % len(self.sessions), KINDS[(i // len(self.sessions)) % len(KINDS)]
                result = {"i": i, "ticket": TICKETS[session], "kind": kind, "status": None, "call_id": None}
                try:
                    result["sent"] = time.monotonic()
                    status, call_id, body = self._send(client, self.sessions[session], kind)
                    result.update(status=status, call_id=call_id, answered=time.monotonic())
                    if status != 200:
                        with self._lock:
                            self.bodies.append(body)
                    backoff = 0.2
                except httpx.HTTPError as exc:
                    result["status"] = f"no answer ({type(exc).__name__})"
                    time.sleep(backoff)  # the proxy is down: bounded retries, not a busy loop
                    backoff = min(backoff * 2, 2.0)
                with self._lock:
                    self.results.append(result)

    @staticmethod
    def _send(client: httpx.Client, session: str, kind: str) -> tuple[int, str | None, str]:
        stream = kind.endswith("stream")
        headers = {"x-claude-code-session-id": session}
        if kind.startswith("chat"):
            path, body = "/v1/chat/completions", {"model": "gpt-4o-mini", "stream": stream,
                                                   "messages": [{"role": "user", "content": "chaos"}]}
        else:
            path, body = "/v1/messages", {"model": "claude-haiku", "stream": stream, "max_tokens": 50,
                                          "messages": [{"role": "user", "content": "chaos"}]}
        with client.stream("POST", path, json=body, headers=headers) as response:
            text = response.read().decode(errors="replace")
            return response.status_code, response.headers.get("x-litellm-call-id"), text


def _unmount(path: Path) -> None:
    """Undo the bind mount. A file the proxy opened through it while it was read-only keeps it busy
    for a moment (EBUSY): retry, then detach it lazily, so no run leaves a mount behind."""
    for _ in range(20):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    if subprocess.run(["umount", "-l", str(path)], capture_output=True).returncode != 0:
        print(f"chaos: could not unmount {path}: run `umount -l {path}`", file=sys.stderr)


@contextlib.contextmanager
def read_only(path: Path):
    """`path` read-only for the block: a read-only bind mount as root (root ignores modes), else chmod 0500."""
    how = None
    if os.geteuid() == 0:
        ok = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True).returncode == 0
        if ok and subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True).returncode == 0:
            how = "read-only bind mount"
        elif ok:
            subprocess.run(["umount", str(path)], capture_output=True)
    else:
        path.chmod(0o500)
        how = "chmod 0500"
    try:
        yield how
    finally:
        if how == "read-only bind mount":
            _unmount(path)
        elif how == "chmod 0500":
            path.chmod(0o700)


def proxy_config(directory: Path, upstream: str) -> Path:
    config = {
        "model_list": [
            {"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": f"{upstream}/v1", "api_key": "mock"}},
            {"model_name": "claude-haiku", "litellm_params": {"model": "anthropic/claude-haiku-4-5", "api_base": upstream, "api_key": "mock"}},
        ],
        "litellm_settings": {
            "callbacks": ["backlog_ops.callbacks.ticket_tagger.ticket_tagger", "backlog_ops.callbacks.ticket_policy.ticket_policy",
                          "backlog_ops.callbacks.spend_ledger.spend_ledger", "backlog_ops.callbacks.quota_events.quota_events"],
            "num_retries": 0,
            "disable_add_user_agent_to_request_tags": True,
        },
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "backlog_ops": {"policy": {"projects": {"chaos": {"ticket_budgets_usd": {"FEAT-CAP": BUDGET_USD},
                                                          "on_ledger_unavailable": "deny"}}}},
    }
    path = directory / "proxy.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def ledger_rows(url: str) -> list[dict]:
    import psycopg

    with psycopg.connect(url) as db:
        cur = db.execute(f'SELECT call_id, status, ticket_id, cost_usd, started_at, latency_ms FROM "{SCHEMA}".calls')
        names = [c.name for c in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def quota_events(url: str) -> list[dict]:
    import nats

    async def run() -> list[dict]:
        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=3)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe(SUBJECT, stream=STREAM)
            events: list[dict] = []
            while True:
                try:
                    msgs = await sub.fetch(500, timeout=2.0)
                except (nats.errors.TimeoutError, asyncio.TimeoutError):
                    return events
                for msg in msgs:
                    events.append(json.loads(msg.data))
                    await msg.ack()
        finally:
            await nc.close()

    return asyncio.run(run())


def over_budget_served(rows: list[dict]) -> int:
    """FEAT-CAP calls served although the spend that had finished before they started was over the budget."""
    from datetime import datetime

    def at(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    done = sorted(((at(r["started_at"]), at(r["started_at"]) + (r["latency_ms"] or 0) / 1000, r["cost_usd"])
                   for r in rows if r["ticket_id"] == "FEAT-CAP" and r["status"] == "success"))
    over = 0
    for start, _, _ in done:
        known = sum(cost for _, end, cost in done if end < start - MARGIN_S)
        if known >= BUDGET_USD:
            over += 1
    return over


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds the load may take at most")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds each backend stays down when it restarts")
    parser.add_argument("--keep", action="store_true", help="keep the proxy logs and the home (path printed at the end)")
    args = parser.parse_args()
    absent = missing()
    if absent:
        print(f"chaos: needs {', '.join(absent)}", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="backlog-chaos-"))
    home = work / "home"
    home.mkdir(mode=0o700)
    pg_password, redis_password, nats_token = (secrets.token_urlsafe(18) for _ in range(3))
    master_key = "sk-chaos-" + secrets.token_hex(16)
    secret_values = {"PostgreSQL password": pg_password, "Redis password": redis_password,
                     "NATS token": nats_token, "master key": master_key}
    faults: list[str] = []
    spans: list[tuple[str, float, float]] = []  # (fault, start, end), monotonic: to place lost rows
    try:
        with ThrowawayPostgres(user="chaos", password=pg_password) as pg, ThrowawayRedis(redis_password) as rs, \
                ThrowawayNats(nats_token) as ns, MockUpstream(prompt_tokens=1000, completion_tokens=200) as upstream:
            env = {"LITELLM_MASTER_KEY": master_key, "BACKLOG_LEDGER_URL": pg.user_url, "BACKLOG_LEDGER_SCHEMA": SCHEMA,
                   "BACKLOG_CONTEXT_URL": rs.url, "BACKLOG_CONTEXT_PREFIX": PREFIX, "BACKLOG_NATS_URL": ns.url,
                   "BACKLOG_NATS_SUBJECT": SUBJECT, "BACKLOG_NATS_STREAM": STREAM}
            config = proxy_config(work, upstream.base_url)
            store = RedisContextStore(rs.url, prefix=PREFIX)
            sessions = [str(uuid.uuid4()) for _ in TICKETS]
            for session, ticket in zip(sessions, TICKETS):
                store.set({"ticket_id": ticket, "gate": "implement", "agent_type": "backend", "project": "chaos"},
                          Scope(session), ttl=3600)
            port = free_port()
            logs = [work / "proxy-1.log"]
            proxy = ProxyProcess(home, config=config, port=port, env=env, log_path=logs[0]).start()
            load = Load(proxy.base_url, master_key, sessions, args.requests, args.concurrency,
                        time.monotonic() + args.time_limit)
            runner = threading.Thread(target=load.run)
            started = time.monotonic()
            runner.start()

            def at(fraction: float) -> None:
                while runner.is_alive() and load.done() < fraction * args.requests:
                    time.sleep(0.05)

            for fraction, name, server in ((0.10, "PostgreSQL", pg), (0.25, "Redis", rs), (0.40, "NATS", ns)):
                at(fraction)
                down = time.monotonic()
                server.stop()
                time.sleep(args.outage)
                server.start()
                faults.append(f"{name} stopped for {args.outage:g} s and started again")
                spans.append((name, down, time.monotonic()))
            at(0.55)
            down = time.monotonic()
            proxy.stop(signal.SIGKILL)
            logs.append(work / "proxy-2.log")
            proxy = ProxyProcess(home, config=config, port=port, env=env, log_path=logs[1]).start()
            faults.append("proxy killed with -9 and started again")
            spans.append(("proxy kill -9", down, time.monotonic()))
            at(0.75)
            with read_only(home) as how:
                if how:
                    spans.append(("home read-only", time.monotonic(), time.monotonic() + 5.0))
                    time.sleep(5.0)
                    faults.append(f"home read-only for 5 s ({how})")
                else:
                    faults.append("home read-only: not possible here")
            runner.join()
            elapsed = time.monotonic() - started
            time.sleep(3.0)  # LiteLLM's logging and the writer catch up, as they would between calls
            proxy.stop(signal.SIGTERM)

            rows = ledger_rows(pg.user_url)
            events = quota_events(ns.url)
            cli_env = {**os.environ, **env, "BACKLOG_HOME": str(home)}
            cli = [subprocess.run([str(Path(sys.executable).parent / "backlog-ops"), "spend", *extra],
                                  capture_output=True, text=True, timeout=120, env=cli_env)
                   for extra in (["--json"], ["FEAT-CAP"])]
    finally:
        outputs = {f"proxy log {p.name}": p.read_text(errors="replace") for p in work.glob("proxy-*.log")}
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    ok = [r for r in load.results if r["status"] == 200]
    by_id: dict[str, list[dict]] = {}
    for row in rows:
        by_id.setdefault(row["call_id"], []).append(row)
    lost = [r for r in ok if r["call_id"] not in by_id]
    wrong_status = [r for r in ok if r["call_id"] in by_id and by_id[r["call_id"]][0]["status"] != "success"]
    duplicates = sum(len(v) - 1 for v in by_id.values())
    untagged = [r for r in ok if r["call_id"] in by_id and by_id[r["call_id"]][0]["ticket_id"] != r["ticket"]]
    success_events = {}
    event_ids: dict[str, int] = {}
    for event in events:
        event_ids[event["eventId"]] = event_ids.get(event["eventId"], 0) + 1
        # The same subject carries budget-threshold and runaway events (gateway/feedback_events.py).
        if event.get("eventType") == "quota.updated" and event["payload"]["status"] == "success":
            success_events[event["correlationId"]] = event
    events_lost = [r for r in ok if r["call_id"] not in success_events]
    events_duplicated = sum(n - 1 for n in event_ids.values())
    over = over_budget_served(rows)
    outputs.update({"error responses": "\n".join(load.bodies), "quota events": json.dumps(events),
                    "backlog-ops spend": "\n".join(c.stdout + c.stderr for c in cli)})
    seen = sorted({f"{name} in {where}" for where, text in outputs.items() for name, value in secret_values.items()
                   if value in text})

    statuses: dict[str, int] = {}
    for r in load.results:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    others = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()) if k != "200")
    cap = [r for r in load.results if r["ticket"] == "FEAT-CAP"]
    cap_codes = ", ".join(f"{k}: {v}" for k, v in sorted({str(s): sum(1 for r in cap if str(r["status"]) == str(s))
                                                         for s in {r["status"] for r in cap}}.items()))
    lines = [
        f"chaos: {len(load.results):,} requests in {elapsed:.0f} s over loopback, concurrency {args.concurrency}",
        "faults, in order: " + "; ".join(faults),
        "",
        f"{'requests sent':<34}{len(load.results):>7,}",
        f"{'answered 200':<34}{len(ok):>7,}   (others: {others or 'none'})",
        f"{'ledger rows for them':<34}{len(ok) - len(lost):>7,}   (status other than success: {len(wrong_status)})",
        f"{'rows lost':<34}{len(lost):>7,}   goal 0",
        f"{'duplicate rows':<34}{duplicates:>7,}   goal 0",
        f"{'over-budget calls served':<34}{over:>7,}   goal 0   (FEAT-CAP, budget ${BUDGET_USD:.2f}, policy deny; its calls: {cap_codes})",
        f"{'quota events lost / duplicated':<34}{len(events_lost):>3,} / {events_duplicated:<3,}   goal 0 / 0   (journaled until acked; a kill -9 loses the events of calls answered in its moment)",
        f"{'secrets seen in any output':<34}{len(seen):>7,}   goal 0   ({'; '.join(seen) if seen else 'checked ' + str(len(secret_values)) + ' secrets in ' + ', '.join(sorted(outputs))})",
        f"{'rows not on their session ticket':<34}{len(untagged):>7,}   (calls made while no context could be read)",
    ]
    timeline = "faults: " + "; ".join(f"{name} {a - started:.1f}-{b - started:.1f} s" for name, a, b in spans)
    if lost:
        lines.append(timeline)
        lines += [f"  lost: {r['call_id']} ({r['kind']}, {r['ticket']}) sent at {r['sent'] - started:.2f} s, "
                  f"answered at {r['answered'] - started:.2f} s" for r in lost[:20]]
    if events_lost:
        where = Counter(" + ".join(name for name, a, b in spans if a <= r["answered"] <= b + 2.0) or "no fault"
                        for r in events_lost)
        lines.append("quota events lost, by the fault they were answered in (or up to 2 s after): "
                     + ", ".join(f"{k}: {v}" for k, v in sorted(where.items())))
        lines.append(f"  first and last lost answered at {min(r['answered'] for r in events_lost) - started:.1f} s "
                     f"and {max(r['answered'] for r in events_lost) - started:.1f} s; " + timeline)
    if args.keep:
        lines.append(f"kept: {work}")
    print("\n".join(lines))
    return 1 if (lost or duplicates or over or seen or events_lost or events_duplicated) else 0


if __name__ == "__main__":
    sys.exit(main())
