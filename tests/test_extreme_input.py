"""Extreme input ends in a clear one-line error or a report, never a traceback, a hang or a memory blow-up.

`--since` far beyond any real span (CLI and the MCP tool), and `import transcripts` on what is
not a regular file (a link to /dev/zero, a FIFO, a socket, named *.jsonl) or on lines too long
to read. Subprocesses run with a memory limit and a timeout, so a regression fails the test
instead of the machine.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from backlog_ops.mcp_server.caller import CallerResolver
from backlog_ops.mcp_server.server import build_server

BIN = Path(sys.executable).parent
SESSION = "5b0c6a4e-1f2d-4c3b-9a8e-7d6f5e4d3c2b"
MEMORY_LIMIT = 2 * 1024**3  # far above what the CLI needs, far below what reading /dev/zero takes


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([str(BIN / "backlog-ops"), *args], capture_output=True, text=True, timeout=timeout,
                          env=env, preexec_fn=_limited)


def _one_line_error(r: subprocess.CompletedProcess, code: int, *phrases: str) -> str:
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr and "Error:" not in r.stderr.replace("error:", ""), r.stderr
    last = r.stderr.strip().splitlines()[-1]
    for phrase in phrases:
        assert phrase in last, last
    return last


# -- --since ---------------------------------------------------------------------------------------

HUGE_SPANS = ["999999999999999999999d", "99999999999999999999mo", "9" * 400 + "w", "3650001d"]
BAD_DATES = ["0001-01-01T00:00+01:00", "9999-12-31T23:59:59-23:00", "99999-01-01", "1e400d"]


@pytest.mark.parametrize("since", HUGE_SPANS)
@pytest.mark.parametrize("command", [["spend"], ["spend", "FEAT-1"], ["context", "history"]], ids=["spend", "ticket", "history"])
def test_cli_since_beyond_any_span_is_a_clear_error(command, since) -> None:
    _one_line_error(_cli(*command, "--since", since), 2, "too long a duration", "--since")


@pytest.mark.parametrize("since", BAD_DATES)
def test_cli_since_dates_that_overflow_are_a_clear_error(since) -> None:
    _one_line_error(_cli("spend", "--since", since), 2, "is not a date")


def test_a_long_but_possible_span_works() -> None:
    r = _cli("spend", "--since", "36500d")
    assert r.returncode == 0 and "no calls recorded" in r.stdout, r.stderr


@pytest.mark.parametrize("since", HUGE_SPANS + BAD_DATES)
def test_mcp_ticket_spend_since_beyond_any_span_is_a_tool_error(project_dir, since) -> None:
    server = build_server(CallerResolver(env={}, process_key="1-1", cwd=str(project_dir)))

    async def go():
        async with Client(server) as client:
            return await client.call_tool("ticket_spend", {"ticket_id": "FEAT-1", "since": since})

    result = anyio.run(go)
    assert result.is_error
    text = result.content[0].text
    assert "Invalid arguments" in text and ("too long a duration" in text or "is not a date" in text), text
    assert "Overflow" not in text and "Traceback" not in text


# -- import transcripts: what is not a regular file --------------------------------------------------


def _line(**entry) -> str:
    return json.dumps(entry) + "\n"


def _assistant(message_id: str, at: str = "2026-05-01T10:00:00.000Z", out: int = 10) -> str:
    return _line(type="assistant", sessionId=SESSION, timestamp=at, requestId=f"req_{message_id}",
                 message={"id": message_id, "model": "claude-sonnet-4-5-20250929",
                          "usage": {"input_tokens": 100, "output_tokens": out}})


@pytest.fixture
def odd_files(tmp_path: Path) -> Path:
    root = tmp_path / "projects" / "-proj"
    root.mkdir(parents=True)
    (root / f"{SESSION}.jsonl").write_text(_assistant("msg_ok"))
    (root / "zero.jsonl").symlink_to("/dev/zero")
    (root / "null.jsonl").symlink_to("/dev/null")
    os.mkfifo(root / "fifo.jsonl")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.jsonl"))
    (root / "dangling.jsonl").symlink_to(tmp_path / "nowhere")
    (root / "link.jsonl").symlink_to(root / f"{SESSION}.jsonl")  # a link to a regular file is read
    yield tmp_path / "projects"
    sock.close()


def test_import_skips_devices_fifos_and_sockets_and_says_why(odd_files) -> None:
    r = _cli("import", "transcripts", str(odd_files), "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["files"] == {"found": 7, "read": 2, "unchanged": 0}
    assert report["imported"]["requests"] == 1  # the link's copy is the same request
    skipped = report["unattributed"]["not_regular"]
    assert skipped["count"] == 4
    reasons = {Path(e.split(": ", 1)[0]).name: e.split(": ", 1)[1] for e in skipped["examples"]}
    assert reasons == {
        "zero.jsonl": "not a regular file (a character device)",
        "null.jsonl": "not a regular file (a character device)",
        "fifo.jsonl": "not a regular file (a FIFO)",
        "sock.jsonl": "not a regular file (a socket)",
    }
    assert report["unattributed"]["unreadable"]["count"] == 1  # the dangling link
    text = _cli("import", "transcripts", str(odd_files), "--dry-run").stdout
    assert "not regular files (FIFOs, devices, sockets): 4 files, skipped unread" in text


@pytest.mark.parametrize("target", ["fifo.jsonl", "zero.jsonl", "sock.jsonl"])
def test_import_of_one_special_file_is_a_clear_error(odd_files, target) -> None:
    path = odd_files / "-proj" / target
    kind = {"fifo.jsonl": "a FIFO", "zero.jsonl": "a character device", "sock.jsonl": "a socket"}[target]
    _one_line_error(_cli("import", "transcripts", str(path)), 1, f"is {kind}, not a transcript")


# -- import transcripts: streamed, bounded -----------------------------------------------------------


def test_an_over_long_line_is_skipped_and_reported(tmp_path, monkeypatch, backlog_home) -> None:
    from backlog_ops.capture.transcripts import files, import_transcripts

    monkeypatch.setattr(files, "MAX_LINE_BYTES", 4096)
    path = tmp_path / "t" / f"{SESSION}.jsonl"
    path.parent.mkdir()
    long_user = _line(type="user", sessionId=SESSION, timestamp="2026-05-01T10:00:00.000Z",
                      message={"role": "user", "content": "x" * 100_000})
    path.write_text(_assistant("msg_1") + long_user + _assistant("msg_2", out=20) + long_user[:5000])
    report = import_transcripts(path)
    assert report["imported"]["requests"] == 2
    malformed = report["unattributed"]["malformed"]
    assert malformed["count"] == 1 and malformed["examples"][0] == f"{path}:2: longer than 4,096 bytes, not read"
    # The unfinished long line at the end is left for next time; once finished, it is skipped too.
    with open(path, "a") as fh:
        fh.write(long_user[5000:] + _assistant("msg_3", out=30))
    again = import_transcripts(path)
    assert again["imported"]["requests"] == 1 and again["unattributed"]["malformed"]["count"] == 1


def _write_transcript(path: Path, megabytes: int) -> int:
    big = "y" * 20_000
    requests, written, n = 0, 0, 0
    with open(path, "w") as fh:
        while written < megabytes * 2**20:
            n += 1
            at = f"2026-05-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000Z"
            text = _line(type="user", sessionId=SESSION, timestamp=at, message={"role": "user", "content": big})
            text += _assistant(f"msg_{n}", at=at, out=1) + _assistant(f"msg_{n}", at=at, out=50)
            fh.write(text)
            written += len(text)
            requests += 1
    return requests


def _peak_rss_kb(path: Path, home: Path) -> int:
    env = {**os.environ, "BACKLOG_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen([str(BIN / "backlog-ops"), "import", "transcripts", str(path), "--dry-run", "--json"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_limited)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return usage.ru_maxrss


def test_import_memory_does_not_grow_with_the_file(tmp_path) -> None:
    """A 40 MB transcript costs the importing process no more than a 1 MB one, give or take 12 MB."""
    sizes = {}
    for mb in (1, 40):
        path = tmp_path / str(mb) / f"{SESSION}.jsonl"
        path.parent.mkdir()
        assert _write_transcript(path, mb) > 0
        sizes[mb] = _peak_rss_kb(path, tmp_path / f"home{mb}")
    assert sizes[40] - sizes[1] < 12 * 1024, f"peak RSS {sizes[1] // 1024} MB for 1 MB, {sizes[40] // 1024} MB for 40 MB"
