"""What-if, not shipped: an MCP server forked from a process that has already imported the SDK.

    .venv/bin/python bench/mcp_preforked.py [--starts 9]

The official `mcp` SDK's import is the floor of `backlog-ops mcp`'s start (bench/mcp_roundtrip.py):
no server on it answers `initialize` in 0.3 s from a fresh interpreter. This measures the one design
that would: a resident process per user that has imported the SDK and the tools' work once, and
forks one server per connection. A small front process (what `backlog-ops mcp` would become) hands
it the stdin/stdout/stderr Claude Code gave it over a Unix socket and waits. Interleaved in the
same rounds: `python -c pass`, and `backlog-ops mcp` as shipped. A real version would also need the
front to pass its environment, directory and Claude Code process key, a check that the resident
process runs this very code (or fall back and restart it), an idle exit, a same-user check on the
socket, and the child's exit when the front dies; none of that is here.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mcp_roundtrip as rt

PRELOADED = """
import os, signal, socket, sys
import anyio, mcp.server.stdio
from backlog_ops.mcp_server import core, server
listener = socket.socket(socket.AF_UNIX)
listener.bind(sys.argv[1])
listener.listen(16)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
print("ready", flush=True)
while True:
    conn, _ = listener.accept()
    _, fds, _, _ = socket.recv_fds(conn, 16, 3)
    if os.fork() == 0:
        listener.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        try:
            server.main()
        finally:
            os._exit(0)
    for fd in fds:
        os.close(fd)
    conn.close()
"""

FRONT = """
import socket, sys
front = socket.socket(socket.AF_UNIX)
front.connect(sys.argv[1])
socket.send_fds(front, [b"x"], [0, 1, 2])
front.recv(1)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "my-api"
        project.mkdir()
        sock = str(Path(tmp) / "mcp.sock")
        env = {**os.environ, "BACKLOG_HOME": str(Path(tmp) / "home"), "CLAUDE_CODE_SESSION_ID": "bench-session"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        preloaded = subprocess.Popen([sys.executable, "-c", PRELOADED, sock], env=env, cwd=project,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            assert preloaded.stdout.readline().strip() == b"ready", "the preloaded process did not start"
            shipped = list(rt.SERVER)
            samples: dict[str, list[tuple[float, ...]]] = {"pass": [], "shipped": [], "forked": []}
            for i in range(max(7, args.starts) + 1):  # round 0 warms up
                bare = rt.process_run([sys.executable, "-c", "pass"], env)
                rt.SERVER[:] = shipped
                cold = rt.server_start(env, str(project))
                rt.SERVER[:] = [sys.executable, "-c", FRONT, sock]
                warm = rt.server_start(env, str(project))
                if i:
                    samples["pass"].append((bare,))
                    samples["shipped"].append(cold)
                    samples["forked"].append(warm)
        finally:
            preloaded.send_signal(signal.SIGTERM)
            preloaded.wait(timeout=30)
    base = statistics.median(x[0] for x in samples["pass"])
    print(f"what-if: MCP server forked from a preloaded process; Python {sys.version.split()[0]}; "
          f"{len(samples['pass'])} interleaved rounds; {rt._load()}")
    print(f"python -c pass (exit): median {base:.0f} ms")
    for label, key in (("backlog-ops mcp as shipped", "shipped"), ("front + fork of the preloaded process", "forked")):
        rows = samples[key]
        init, listed, called = (statistics.median(r[j] for r in rows) for j in range(3))
        print(f"{label:40} initialize {init:6.0f} ms ({init / base:4.1f}x pass), tools/list {listed:6.0f} ms, "
              f"first call {called:6.0f} ms; initialize p90 {rt.pct([r[0] for r in rows], 0.9):.0f} ms")


if __name__ == "__main__":
    main()
