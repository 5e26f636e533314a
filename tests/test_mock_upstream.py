"""The local mock provider as the demo and the benchmarks run it: its own process, its own output."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import urllib.request


def test_a_client_hanging_up_mid_request_prints_no_traceback_and_the_next_request_is_served():
    proc = subprocess.Popen([sys.executable, "-m", "backlog_ops.testing.mock_upstream"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line
        base_url = line.split("listening on ", 1)[1].strip()
        port = int(base_url.rsplit(":", 1)[1].split("/")[0])

        # Half a request line, then a reset (SO_LINGER 0): the server's read fails with
        # ConnectionResetError, as when LiteLLM drops a pooled connection or a load generator stops.
        for _ in range(3):
            client = socket.create_connection(("127.0.0.1", port))
            client.sendall(b"POST /v1/chat/comp")
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()

        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            data=json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert json.load(reply)["choices"][0]["message"]["content"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Traceback" not in err and "ConnectionResetError" not in err, err
