"""Claude Code hook wall time: `backlog-ops hook` per event vs. a bare interpreter start.

    .venv/bin/python bench/hook_walltime.py [--runs 40]

Claude Code waits for every hook, so what matters is the whole process: start, imports, work,
exit. Each event's recorded JSON is piped to the hook command a user-scope install wires (this
interpreter with `-c`, skipping the console script's `import re`) and, for SessionStart, to the
`backlog-ops hook` console script a project-scope install wires, in a temporary BACKLOG_HOME and
project; one more SessionStart runs in a repository on a ticket's branch with no context set,
so the hook infers the ticket. The
baselines are `python -c pass` with this same interpreter (same site-packages, same .pth files)
and `python3 -c pass` as found on PATH. All commands are run interleaved, round after round, so
that machine noise hits them alike; medians and 90th percentiles are in milliseconds, and the
ratio is the event's median over this interpreter's `-c pass` median (goal: <= 1.5); the ratio
of the minimums is shown too, as the least noisy estimate on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SID = "4542a6ff-4e36-481a-b119-ba2bea61312e"


def events(cwd: str) -> dict[str, dict]:
    base = {"session_id": SID, "transcript_path": f"/tmp/{SID}.jsonl", "cwd": cwd}
    return {
        "SessionStart": {**base, "hook_event_name": "SessionStart", "source": "startup"},
        "PreToolUse (MCP tool claim)": {**base, "hook_event_name": "PreToolUse", "tool_name": "mcp__backlog-ops__set_context",
                                        "tool_input": {"ticket_id": "FEAT-1"}, "tool_use_id": "toolu_bench"},
        "UserPromptExpansion (/skill)": {**base, "hook_event_name": "UserPromptExpansion", "expansion_type": "slash_command",
                                         "command_name": "backlog-implementer", "command_args": "FEAT-1"},
        "SubagentStart": {**base, "hook_event_name": "SubagentStart", "agent_id": "a1", "agent_type": "reviewer"},
        "SubagentStop": {**base, "hook_event_name": "SubagentStop", "agent_id": "a1", "agent_type": "reviewer"},
        "SessionEnd": {**base, "hook_event_name": "SessionEnd", "reason": "other"},
    }


def timed(cmd: list[str], stdin, env: dict) -> float:
    stdin = stdin() if callable(stdin) else stdin  # a callable gives each run its own input
    start = time.perf_counter()
    r = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - start
    if r.returncode != 0 or b"systemMessage" in r.stdout:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stdout!r} {r.stderr!r}")
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()

    hook = Path(sys.executable).parent / "backlog-ops"
    if not hook.exists():
        raise SystemExit(f"{hook} not found: run `make install` (or pip install .) first")
    python3 = shutil.which("python3")
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "my-api"
        project.mkdir()
        env = {**os.environ, "BACKLOG_HOME": str(Path(tmp) / "home")}
        commands: dict[str, tuple[list[str], bytes]] = {
            "python -c pass (this interpreter)": ([sys.executable, "-c", "pass"], b""),
        }
        if python3:
            commands["python3 -c pass (PATH)"] = ([python3, "-c", "pass"], b"")
        # The session's ticket is set, so SessionStart also tells the model about it.
        subprocess.run([str(hook), "context", "set", "FEAT-1", "implement", "backend", "--session", SID],
                       env=env, cwd=project, check=True, capture_output=True)
        # Exactly the command `backlog-ops install` wires (this interpreter with -c).
        from backlog_ops.claude.install_content import HOOK_CODE

        for name, data in events(str(project)).items():
            commands[f"hook {name}"] = ([sys.executable, "-c", HOOK_CODE], json.dumps(data).encode())
        commands["hook SessionStart via the console script"] = ([str(hook), "hook"], json.dumps(events(str(project))["SessionStart"]).encode())
        # A repository on a ticket's branch and a new session each run: the hook reads HEAD and
        # sets the inferred context (what a project-scope install runs: the console script).
        repo = Path(tmp) / "shop"
        (repo / ".git").mkdir(parents=True)
        (repo / ".git" / "HEAD").write_text("ref: refs/heads/feat/FEAT-001-login\n")
        fresh = iter(range(1_000_000))

        def branch_start() -> bytes:
            return json.dumps({"session_id": f"branch-{next(fresh)}", "transcript_path": "/tmp/t.jsonl",
                               "cwd": str(repo), "hook_event_name": "SessionStart", "source": "startup"}).encode()

        commands["hook SessionStart, ticket from the branch"] = ([sys.executable, "-c", HOOK_CODE], branch_start)
        commands["  the same via the console script"] = ([str(hook), "hook"], branch_start)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for name, (cmd, stdin) in commands.items():  # warm the page cache and .pyc files
            timed(cmd, stdin, env)
        for _ in range(args.runs):
            for name, (cmd, stdin) in commands.items():
                samples[name].append(timed(cmd, stdin, env))

    base = statistics.median(samples["python -c pass (this interpreter)"])
    print(f"hook wall time, {args.runs} runs each, interleaved; {sys.executable} (Python {sys.version.split()[0]})")
    low = min(samples["python -c pass (this interpreter)"])
    print(f"{'command':44} {'median ms':>10} {'p90 ms':>8} {'min ms':>7} {'x pass':>7} {'x pass (min)':>13}")
    for name, xs in samples.items():
        xs.sort()
        med, p90 = statistics.median(xs), xs[int(0.9 * (len(xs) - 1))]
        print(f"{name:44} {med:10.1f} {p90:8.1f} {xs[0]:7.1f} {med / base:7.2f} {xs[0] / low:13.2f}")


if __name__ == "__main__":
    main()
