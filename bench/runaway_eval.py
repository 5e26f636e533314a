"""Runaway-spend alerts: false alarms on normal traffic, and how soon scripted runaways are caught.

    .venv/bin/python bench/runaway_eval.py [--skip-tests] [--skip-demo]

Everything goes through the real proxy (`backlog-ops proxy`, the offline config with the ticket
policy and so the runaway watch, in front of the local mock provider), with the default limits
of llmOps.alerts.runaway (8 near-identical requests among the last 16, 60 calls a minute, $5 in
10 minutes, policy alert):

false alarms (must be 0)
    demo         `backlog-ops demo --keep-home`: its two sessions, their gates and a subagent
    tests        the test files whose proxies load the ticket policy, run with pytest into one
                 temporary directory; every proxy log and session-alerts file there is read
                 (the loop test that raises an alert on purpose is left out)
    sessions     three Claude Code-shaped sessions doing varied work, 30 steps each, with
                 retries of one step now and then

detection (calls and seconds from the start of the runaway to the alert)
    loop         an agent running the same failing command again and again
    burst        one session firing distinct requests as fast as the proxy answers
    burn         one session sending huge prompts to the frontier alias
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from backlog_ops.context.file_store import ContextStore
from backlog_ops.context.scope import Scope
from backlog_ops.gateway.process import ProxyProcess

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TEST_FILES = [
    "tests/test_gateway_proxy.py",
    "tests/test_observability.py",
    "tests/test_dev_proxy.py",
    "tests/test_demo.py",
    "tests/test_budget_callback.py",
    "tests/test_feedback_proxy.py::test_ordinary_sessions_raise_no_alert",
    "tests/test_feedback_proxy.py::test_a_ticket_hears_50_80_and_100_percent_once_before_the_402",
    "tests/test_claude_feedback.py",
]
ALERT = "runaway spend alert"


def alerts_under(root: Path) -> tuple[int, int, list[str]]:
    """(alert lines in proxy logs, session alert files, examples) under `root`."""
    lines, examples = 0, []
    for log in root.rglob("proxy.log"):
        for line in log.read_text(errors="replace").splitlines():
            if ALERT in line:
                lines += 1
                examples.append(f"{log}: {line[:200]}")
    files = list(root.rglob("session-alerts/*.json"))
    return lines, len(files), examples[:5]


def ledger_calls(root: Path) -> tuple[int, int]:
    """(calls, sessions) in every SQLite ledger under `root`."""
    import sqlite3

    calls = sessions = 0
    for db in root.rglob("ledger.db"):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                calls += conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
                sessions += conn.execute("SELECT COUNT(DISTINCT session_id) FROM calls").fetchone()[0]
        except sqlite3.Error:
            continue
    return calls, sessions


def demo_traffic() -> str:
    r = subprocess.run([str(BIN / "backlog-ops"), "demo", "--keep-home"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        return f"demo failed: {r.stderr[-500:]}"
    home = Path(re.search(r"demo home \(temporary\): (\S+)", r.stdout).group(1))
    try:
        lines, files, examples = alerts_under(home)
        calls, sessions = ledger_calls(home)
        return f"demo: {lines + files} alerts over {calls} calls in {sessions} sessions" + "".join(f"\n    {e}" for e in examples)
    finally:
        import shutil

        shutil.rmtree(home, ignore_errors=True)


def test_traffic() -> str:
    with tempfile.TemporaryDirectory(prefix="runaway-tests-") as tmp:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", tmp, *TEST_FILES],
                           capture_output=True, text=True, timeout=3600, cwd=REPO)
        summary = (r.stdout.strip().splitlines() or ["?"])[-1]
        lines, files, examples = alerts_under(Path(tmp))
        calls, sessions = ledger_calls(Path(tmp))
        return (f"tests ({len(TEST_FILES)} files/tests, pytest: {summary}): {lines + files} alerts over {calls} calls "
                f"in {sessions} sessions" + "".join(f"\n    {e}" for e in examples))


class Proxy:
    """The offline proxy in a home of its own, and a client speaking Claude Code's API."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.proc = ProxyProcess(self.home, cwd=root).start()
        self.client = httpx.Client(base_url=self.proc.base_url, timeout=120,
                                   headers={"authorization": f"Bearer {self.proc.master_key}", "anthropic-version": "2023-06-01"})
        self.store = ContextStore(self.home)

    def session(self, ticket: str) -> str:
        sid = str(uuid.uuid4())
        self.store.set({"ticket_id": ticket, "gate": "implement", "agent_type": "backend", "project": "bench"}, Scope(sid))
        return sid

    def send(self, sid: str, messages: list[dict], model: str = "cheap") -> int:
        body = {"model": model, "max_tokens": 200, "messages": messages}
        return self.client.post("/v1/messages", json=body, headers={"x-claude-code-session-id": sid}).status_code

    def alerts(self, sid: str) -> list[dict]:
        path = self.home / "session-alerts" / f"{sid}.json"
        return json.loads(path.read_text())["alerts"] if path.exists() else []

    def close(self) -> None:
        self.client.close()
        self.proc.stop()


def step(history: list[dict], command: str, output: str) -> list[dict]:
    tool_id = f"toolu_{uuid.uuid4().hex[:16]}"
    return history + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": command}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": output}]},
    ]


def until_alert(proxy: Proxy, sid: str, next_messages, limit: int, model: str = "cheap") -> str:
    start = time.monotonic()
    for n in range(1, limit + 1):
        status = proxy.send(sid, next_messages(n), model)
        alerts = proxy.alerts(sid)
        if alerts:
            a = alerts[0]
            return f"alert {a['kind']} at call {n}, {time.monotonic() - start:.1f} s after it began (status {status})"
    return f"NO alert after {limit} calls ({time.monotonic() - start:.1f} s)"


def scripted(root: Path) -> list[str]:
    proxy = Proxy(root)
    out = []
    try:
        # Normal work: three sessions, varied commands and outputs, a retried step now and then.
        calm = [proxy.session(f"CALM-{i}") for i in range(3)]
        histories = {sid: [{"role": "user", "content": f"implement task {i}"}] for i, sid in enumerate(calm)}
        calls = 0
        for k in range(30):
            for i, sid in enumerate(calm):
                command = "pytest -x" if k % 7 == 3 else f"sed -n {k},{k + 40}p src/mod_{(k + i) % 9}.py"
                histories[sid] = step(histories[sid], command, f"output {k} of session {i}: {k * 37 % 101} lines")
                proxy.send(sid, histories[sid])
                calls += 1
        quiet = sum(len(proxy.alerts(sid)) for sid in calm)
        out.append(f"sessions: {quiet} alerts over {calls} calls in {len(calm)} sessions")

        loop_sid = proxy.session("LOOP-1")
        history = [{"role": "user", "content": "make the build pass"}]

        def loop(n: int) -> list[dict]:
            nonlocal history
            history = step(history, "make", f"cc: error: undefined symbol foo (took 0.{n}s)")
            return history

        out.append("loop:  " + until_alert(proxy, loop_sid, loop, 40))
        burst_sid = proxy.session("BURST-1")
        out.append("burst: " + until_alert(proxy, burst_sid, lambda n: [{"role": "user", "content": f"question {n}: {uuid.uuid4()}"}], 200))
        burn_sid = proxy.session("BURN-1")
        big = "def f():\n    return 1\n" * 12000  # ~60k tokens a request to the frontier alias
        out.append("burn:  " + until_alert(proxy, burn_sid, lambda n: [{"role": "user", "content": f"{uuid.uuid4()}\n{big}"}], 60, model="frontier"))
    finally:
        proxy.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-tests", action="store_true", help="do not run the test files (minutes)")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    print("false alarms (goal: 0)")
    if not args.skip_demo:
        print("  " + demo_traffic())
    if not args.skip_tests:
        print("  " + test_traffic())
    with tempfile.TemporaryDirectory(prefix="runaway-bench-") as tmp:
        results = scripted(Path(tmp))
    print("  " + results[0])
    print("detection (default limits: 8 repeats among 16, 60 calls/min, $5 in 10 min)")
    for line in results[1:]:
        print("  " + line)


if __name__ == "__main__":
    main()
