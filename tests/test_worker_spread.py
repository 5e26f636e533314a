"""`backlog-ops proxy --workers 2` spreads keep-alive connections over both workers.

Before: the workers were uvicorn's, accepting on one shared socket, and the idle one took every
waiting connection; kept alive, they stayed with it (one worker got all 16 connections in 2 of 6
rounds of bench/replica_throughput.py). Now each worker listens on a socket of its own bound with
SO_REUSEPORT, and the kernel hashes each new connection to one of them.

Seen the way an operator would: which process holds each listening socket and each established
connection on the proxy's port (/proc/PID/fd against /proc/net/tcp, what `ss -tlnp` and
`ss -tnp` show). With 16 connections hashed
over 2 workers, all on one happens with probability 2 / 2**16.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from backlog_ops.gateway.process import ProxyProcess
from backlog_ops.testing.mock_upstream import MockUpstream
from backlog_ops.testing.tcp_sockets import ESTABLISHED, LISTEN, tcp_sockets
from proxy_support import worker_pids, write_config

pytestmark = [pytest.mark.proxy]

CONNECTIONS = 16


def sockets_on(port: int, pid: int, state: str) -> set[str]:
    """The inodes of the sockets on local `port` in `state` that process `pid` holds."""
    return {sock.inode for sock in tcp_sockets(pid) if sock.local_port == port and sock.state == state}


def test_two_workers_both_serve_concurrent_keep_alive_connections(tmp_path: Path) -> None:
    key = "sk-test-" + uuid.uuid4().hex
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with MockUpstream() as upstream:
        config = write_config(tmp_path / "cfg", upstream.base_url)
        proxy = ProxyProcess(tmp_path / "home", config=config, workers=2, env={"LITELLM_MASTER_KEY": key})
        clients = [httpx.Client(base_url=proxy.base_url, headers={"authorization": f"Bearer {key}"}, timeout=120)
                   for _ in range(CONNECTIONS)]
        try:
            proxy.start(timeout=400)  # returns once both workers listen
            workers = worker_pids(proxy.process.pid)
            assert len(workers) == 2, workers
            # Each worker listens on a socket of its own (uvicorn's workers shared one inherited socket).
            listening = [sockets_on(proxy.port, pid, LISTEN) for pid in workers]
            assert all(len(found) == 1 for found in listening) and listening[0] != listening[1], listening
            with ThreadPoolExecutor(CONNECTIONS) as pool:
                # Twice on each client: the second call goes over the kept-alive connection.
                for _ in range(2):
                    answers = list(pool.map(lambda c: c.post("/v1/chat/completions", json=body), clients))
                    assert [r.status_code for r in answers] == [200] * CONNECTIONS, [r.text[:200] for r in answers]
            held = {pid: len(sockets_on(proxy.port, pid, ESTABLISHED)) for pid in workers}
            assert sum(held.values()) == CONNECTIONS, held
            assert all(held.values()), f"one worker holds every connection: {held}"

            # A second proxy with workers on the same port is refused, instead of taking half of the connections.
            second = subprocess.run(
                [sys.executable, "-m", "backlog_ops.cli.main", "proxy", "--config", str(config), "--host", "127.0.0.1",
                 "--port", str(proxy.port), "--workers", "2"],
                env={**proxy.env, "BACKLOG_HOME": str(tmp_path / "home-2")}, capture_output=True, text=True,
                timeout=300)
            assert second.returncode != 0, second.stderr[-2000:]
            assert f"cannot listen on 127.0.0.1:{proxy.port}" in second.stderr, second.stderr[-2000:]
            assert "Traceback" not in second.stderr
        finally:
            for client in clients:
                client.close()
            status = proxy.stop()
    assert status == 0, proxy.log()[-2000:]
