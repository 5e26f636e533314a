"""`backlog-ops mcp` through its resident process (mcp_server/launcher.py, resident.py), as Claude Code runs it.

Every session here goes through the real `mcp` client over stdio to the console script. A first
session starts cold and leaves a resident; the next ones are forked by it. What is checked: the
session is the launcher's (its environment, directory and Claude Code process), not the
resident's; concurrent sessions are each their own; a resident killed -9 costs one cold start;
a killed launcher takes its server with it; only the resident of this very code is used; the
socket is private; the launcher imports nothing heavy. No test asserts a timing.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_support import BACKLOG_OPS, start_resident, stop_residents, wait_for

from backlog_ops.claude import sessions
from backlog_ops.common.home import ensure_dir
from backlog_ops.context.file_store import ContextStore
from backlog_ops.context.scope import Scope
from backlog_ops.claude import mcp_prefork

pytestmark = pytest.mark.skipif(not mcp_prefork.available(), reason="the resident needs fork and SO_PEERCRED (Linux)")

RESIDENT_SESSION = "33333333-aaaa-4bbb-8ccc-000000000003"
SESSION_A, SESSION_B = "44444444-aaaa-4bbb-8ccc-00000000000a", "55555555-aaaa-4bbb-8ccc-00000000000b"
HOOKS_SESSION = "66666666-aaaa-4bbb-8ccc-000000000006"
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}
CONTEXT = {"ticket_id": "FEAT-21", "gate": "implement", "agent_type": "backend"}


@pytest.fixture
def env(backlog_home) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_CODE_", "BACKLOG_SESSION", "BACKLOG_AGENT"))}
    return {**base, "BACKLOG_HOME": str(backlog_home)}


@pytest.fixture
def resident(env, tmp_path) -> dict:
    """A resident started by a session of another project with another session id: none of it may leak."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return start_resident({**env, "CLAUDE_CODE_SESSION_ID": RESIDENT_SESSION}, str(elsewhere))


def status() -> dict:
    info = mcp_prefork.status()
    assert info is not None, "the resident does not answer"
    return info


def params(env: dict, cwd: Path, **extra: str) -> StdioServerParameters:
    return StdioServerParameters(command=BACKLOG_OPS, args=["mcp"], env={**env, **extra}, cwd=str(cwd))


def structured(result) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def spawn(env: dict, cwd: Path) -> subprocess.Popen:
    """A launcher with its initialize answered (its server is up)."""
    proc = subprocess.Popen([BACKLOG_OPS, "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=cwd)
    proc.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
    proc.stdin.flush()
    answer = json.loads(proc.stdout.readline())
    assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"] == "backlog-ops", answer
    return proc


def gone(pid: int) -> bool:
    try:
        with open(f"{proc_dir(pid)}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has ended
    except OSError:
        return True


def test_a_forked_session_is_the_launchers_own_not_the_residents(resident, env, project_dir, backlog_home) -> None:
    before = int(resident["served"])

    async def go():
        async with Client(params(env, project_dir, CLAUDE_CODE_SESSION_ID=SESSION_A), read_timeout_seconds=60) as client:
            listed = sorted(t.name for t in (await client.list_tools()).tools)
            during = status()
            spawned = await client.call_tool("set_context", CONTEXT)
            # The hooks recorded a newer session for the Claude Code process: this test's process,
            # the launcher's parent (the forked server's own parent is the resident).
            sessions.record_process(sessions.claude_process_key(os.getpid()), HOOKS_SESSION, cwd=str(project_dir))
            followed = await client.call_tool("get_context", {})
            return listed, during, spawned, followed

    listed, during, spawned, followed = anyio.run(go)
    assert listed == ["clear_context", "get_context", "set_context", "spend_report", "ticket_spend"]
    assert int(during["served"]) == before + 1 and during["sessions"] == "1", "the session was forked by the resident"
    out = structured(spawned)
    assert (out["session_id"], out["attributed_via"]) == (SESSION_A, "CLAUDE_CODE_SESSION_ID at server start")
    assert "project:my-api" in out["tags"], "the launcher's directory, not the resident's"
    assert ContextStore(backlog_home).get(Scope(SESSION_A))["ticket_id"] == "FEAT-21"
    assert ContextStore(backlog_home).get(Scope(RESIDENT_SESSION)) is None
    assert (structured(followed)["session_id"], structured(followed)["attributed_via"]) == (HOOKS_SESSION, "Claude Code process (hooks)")
    assert wait_for(lambda: status()["sessions"] == "0", "the session's end")


def test_two_concurrent_sessions_each_get_their_own(resident, env, tmp_path, backlog_home) -> None:
    one, two = tmp_path / "api-one", tmp_path / "api-two"
    one.mkdir()
    two.mkdir()
    before = int(resident["served"])

    async def go():
        async with Client(params(env, one, CLAUDE_CODE_SESSION_ID=SESSION_A), read_timeout_seconds=60) as a, \
                Client(params(env, two, CLAUDE_CODE_SESSION_ID=SESSION_B), read_timeout_seconds=60) as b:
            both = status()
            return both, await a.call_tool("set_context", CONTEXT), await b.call_tool("set_context", {**CONTEXT, "ticket_id": "FEAT-22"})

    both, first, second = anyio.run(go)
    assert both["sessions"] == "2" and int(both["served"]) == before + 2
    assert (structured(first)["session_id"], structured(second)["session_id"]) == (SESSION_A, SESSION_B)
    assert "project:api-one" in structured(first)["tags"] and "project:api-two" in structured(second)["tags"]
    store = ContextStore(backlog_home)
    assert (store.get(Scope(SESSION_A))["ticket_id"], store.get(Scope(SESSION_B))["ticket_id"]) == ("FEAT-21", "FEAT-22")


def test_a_resident_killed_mid_life_costs_one_cold_start(resident, env, project_dir) -> None:
    async def session(kill: int | None = None):
        async with Client(params(env, project_dir, CLAUDE_CODE_SESSION_ID=SESSION_A), read_timeout_seconds=60) as client:
            await client.list_tools()
            if kill:
                os.kill(kill, signal.SIGKILL)
                wait_for(lambda: gone(kill), "the resident's end")
            return await client.call_tool("get_context", {})

    old = int(resident["pid"])
    # The session it forked lives on without it, and its launcher ends as the session does.
    assert structured(anyio.run(session, old))["session_id"] == SESSION_A
    assert mcp_prefork.status() is None and os.path.exists(mcp_prefork.socket_path()), "a stale socket is left"
    # The next session finds the stale socket, runs cold, and starts a new resident.
    assert structured(anyio.run(session))["session_id"] == SESSION_A
    new = wait_for(mcp_prefork.status, "a new resident")
    assert int(new["pid"]) != old and new["served"] == "0", "the session after the kill was served cold"
    assert structured(anyio.run(session))["session_id"] == SESSION_A
    assert status()["served"] == "1"


def test_a_killed_launcher_takes_its_server_with_it(resident, env, project_dir) -> None:
    proc = spawn(env, project_dir)
    child = int(status()["children"])
    proc.kill()
    proc.wait(timeout=60)
    wait_for(lambda: gone(child), "the forked server's end")
    assert wait_for(lambda: status()["sessions"] == "0", "the resident to reap it")


def test_sigterm_to_the_launcher_reaches_its_server_and_comes_back_as_its_status(resident, env, project_dir) -> None:
    proc = spawn(env, project_dir)
    child = int(status()["children"])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM, "the launcher ends as its server did: killed by SIGTERM"
    assert gone(child)
    proc.stdin.close()
    proc.stdout.close()


def test_a_clean_end_of_stdin_ends_server_and_launcher_with_status_0(resident, env, project_dir) -> None:
    proc = spawn(env, project_dir)
    child = int(status()["children"])
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    assert gone(child)
    proc.stdout.close()


def test_the_socket_and_its_directory_are_private(resident, backlog_home) -> None:
    directory = backlog_home / "mcp"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    sock = Path(mcp_prefork.socket_path())
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def proc_dir(pid: int) -> str:
    """/proc's entry for a pid of this process's pid namespace, also where /proc belongs to an outer one
    (a sandbox's pid namespace without its own /proc): there the entry is found by its NSpid line."""
    if os.readlink("/proc/self") == str(os.getpid()):
        return f"/proc/{pid}"
    depth = len(_ns_pids("/proc/self"))
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ids = _ns_pids(f"/proc/{entry}")
            except OSError:
                continue
            if len(ids) == depth and ids[-1] == pid:
                return f"/proc/{entry}"
    return f"/proc/{pid}/.gone"  # no such process: any open of it fails


def _ns_pids(proc: str) -> list[int]:
    with open(f"{proc}/status") as fh:
        for line in fh:
            if line.startswith("NSpid:"):
                return [int(n) for n in line.split()[1:]]
    return []


def test_the_resident_holds_nothing_of_the_session_that_started_it(resident, backlog_home) -> None:
    """Detached: its own session, stdin and stdout /dev/null, stderr its log, no other descriptor of the launcher's."""
    pid = int(resident["pid"])
    session = os.getsid(pid)  # the system call, not /proc: numbers as this process sees them
    assert session not in (0, os.getsid(0), pid), "a session of its own, and not its leader: it can take no terminal"
    proc = proc_dir(pid)
    fds = {int(fd): os.readlink(f"{proc}/fd/{fd}") for fd in os.listdir(f"{proc}/fd")}
    assert fds[0] == fds[1] == os.devnull and fds[2] == str(backlog_home / "mcp" / (resident["key"] + ".log"))
    others = sorted(target for fd, target in fds.items() if fd > 2)
    assert all(t.startswith(("socket:", "pipe:", "anon_inode:")) or t.endswith(".lock") for t in others), others
    assert sum(t.startswith("pipe:") for t in others) == 2, "its signal wakeup pipe only"


def test_a_resident_of_other_code_is_never_used(env, project_dir, backlog_home, tmp_path) -> None:
    """An older version's resident answering on this version's socket path: the launcher serves cold."""
    ensure_dir(backlog_home / "mcp")
    old_code = "import backlog_ops; backlog_ops.__version__ = '0.0.1'; from backlog_ops.mcp_server.resident import main; main()"
    old = subprocess.Popen([sys.executable, "-c", old_code], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        current = Path(mcp_prefork.socket_path())
        old_socket = wait_for(lambda: [p for p in (backlog_home / "mcp").glob("*.sock") if p != current], "the old resident")[0]
        old_socket.rename(current)  # it now answers where this code's launcher looks
        assert status()["key"] != mcp_prefork.key_of(mcp_prefork.fingerprint())

        async def session():
            async with Client(params(env, project_dir, CLAUDE_CODE_SESSION_ID=SESSION_A), read_timeout_seconds=60) as client:
                return await client.call_tool("set_context", CONTEXT)

        assert structured(anyio.run(session))["session_id"] == SESSION_A
        fresh = wait_for(lambda: (s := mcp_prefork.status()) and s["key"] == mcp_prefork.key_of(mcp_prefork.fingerprint()) and s,
                         "this code's resident")
        assert fresh["served"] == "0" and int(fresh["pid"]) != old.pid, "the session ran cold, then a resident of this code started"
    finally:
        old.kill()
        old.wait(timeout=60)


def test_backlog_mcp_prefork_0_starts_no_resident(env, project_dir, backlog_home) -> None:
    async def session():
        async with Client(params(env, project_dir, CLAUDE_CODE_SESSION_ID=SESSION_A, BACKLOG_MCP_PREFORK="0"),
                          read_timeout_seconds=60) as client:
            return await client.call_tool("set_context", CONTEXT)

    assert structured(anyio.run(session))["session_id"] == SESSION_A
    assert not (backlog_home / "mcp").exists()


def test_the_launcher_imports_neither_the_sdk_nor_pydantic(resident, env, project_dir) -> None:
    """Python lists every module the launcher imports (the forked server, started without the flag, lists none)."""
    before = int(resident["served"])
    run = subprocess.run([BACKLOG_OPS, "mcp"], input=json.dumps(INITIALIZE).encode() + b"\n", capture_output=True,
                         env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, cwd=project_dir, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.splitlines()[0])["result"]["serverInfo"]["name"] == "backlog-ops"
    assert int(status()["served"]) == before + 1
    imported = {line.rsplit(b"|", 1)[1].strip().decode() for line in run.stderr.splitlines() if line.startswith(b"import time:")}
    assert "backlog_ops.mcp_server.launcher" in imported
    heavy = sorted(m for m in imported if m.split(".")[0] in ("mcp", "mcp_types", "pydantic", "pydantic_core", "anyio", "starlette")
                   or m in ("backlog_ops.mcp_server.server", "backlog_ops.mcp_server.core", "json", "subprocess"))
    assert heavy == []


def test_doctor_says_whether_a_resident_runs(env, project_dir, tmp_path) -> None:
    def check(**extra: str) -> dict:
        run = subprocess.run([BACKLOG_OPS, "doctor", "--json", "--url", "http://127.0.0.1:9"], env={**env, **extra},
                             cwd=project_dir, capture_output=True, text=True, timeout=120)
        assert "Traceback" not in run.stderr, run.stderr
        return next(c for c in json.loads(run.stdout)["checks"] if c["name"] == "MCP resident")

    off = check(BACKLOG_MCP_PREFORK="0")
    assert (off["status"], off["facts"]["enabled"]) == ("info", False) and "BACKLOG_MCP_PREFORK=0" in off["summary"]
    idle = check()
    assert (idle["status"], idle["facts"]["running"]) == ("info", False) and "starts one" in idle["summary"]
    (tmp_path / "other").mkdir()
    running = start_resident(env, str(tmp_path / "other"))
    found = check()
    assert found["status"] == "ok" and found["facts"]["pid"] == int(running["pid"]) and found["facts"]["socket"] == mcp_prefork.socket_path()


def test_a_resident_that_does_not_answer_costs_a_cold_start_and_never_a_second_server(resident, env, project_dir) -> None:
    """Stopped (SIGSTOP) past the launcher's wait: the session is served cold, and the child forked late never starts."""
    pid = int(resident["pid"])
    os.kill(pid, signal.SIGSTOP)
    try:
        async def session():
            async with Client(params(env, project_dir, CLAUDE_CODE_SESSION_ID=SESSION_A), read_timeout_seconds=60) as client:
                first = await client.call_tool("set_context", CONTEXT)
                os.kill(pid, signal.SIGCONT)  # now it forks a child for the launcher that gave up on it
                wait_for(lambda: (s := mcp_prefork.status()) and s["served"] == "1" and s["sessions"] == "0", "the late child's end")
                return first, await client.call_tool("get_context", {}), (await client.list_tools()).tools

        first, again, tools = anyio.run(session)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert structured(first)["session_id"] == SESSION_A and structured(again)["context"]["ticket_id"] == "FEAT-21"
    assert len(tools) == 5, "one server answered each request, once"


def residents(home: Path) -> dict[str, dict]:
    """Every resident answering under `home`, by socket path."""
    found = {str(p): mcp_prefork.status(str(p), timeout=1.0) for p in (home / "mcp").glob("*.sock")}
    return {path: info for path, info in found.items() if info}


def test_two_residents_starting_at_once_make_one(env, backlog_home, tmp_path) -> None:
    """As when several sessions start cold together: each launcher starts one; the lock lets one serve."""
    ensure_dir(backlog_home / "mcp")
    code = "from backlog_ops.mcp_server.resident import main; raise SystemExit(main())"
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    procs = []
    for log in logs:
        with open(log, "wb") as err:
            procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=err, start_new_session=True))
    try:
        info = wait_for(mcp_prefork.status, "a resident")
        loser = wait_for(lambda: next((p for p in procs if p.poll() is not None), None), "the second one's exit")
        assert loser.returncode == 0 and int(info["pid"]) != loser.pid
        assert [b"serving" in log.read_bytes() for log in logs].count(True) == 1, "only the winner ever listened"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=60)


def test_an_idle_resident_exits_by_itself(env, project_dir, backlog_home) -> None:
    info = start_resident({**env, mcp_prefork.IDLE_ENV: "5"}, str(project_dir))
    wait_for(lambda: gone(int(info["pid"])), "the idle resident's exit")
    log = (backlog_home / "mcp" / (info["key"] + ".log")).read_text()
    assert "stops listening: no session for 5 s" in log
    assert not Path(mcp_prefork.socket_path()).exists()


def test_an_upgrade_of_the_sdks_directory_retires_the_resident(env, project_dir, backlog_home, tmp_path) -> None:
    """A package installed where the SDK lives changes the code's key: the old resident stops, the next session starts cold."""
    import mcp

    sdk = tmp_path / "site"
    sdk.mkdir()
    (sdk / "mcp").symlink_to(Path(mcp.__file__).parent)  # the SDK, found first, in a directory this test can change
    env = {**env, "PYTHONPATH": str(sdk), mcp_prefork.IDLE_ENV: "60", "CLAUDE_CODE_SESSION_ID": SESSION_A}
    subprocess.run([BACKLOG_OPS, "mcp"], stdin=subprocess.DEVNULL, env=env, cwd=project_dir, timeout=120, check=True)
    (path, old), = wait_for(lambda: residents(backlog_home), "the resident").items()

    async def session():
        async with Client(params(env, project_dir), read_timeout_seconds=60) as client:
            return await client.call_tool("get_context", {})

    assert structured(anyio.run(session))["session_id"] == SESSION_A
    assert residents(backlog_home)[path]["served"] == "1", "launchers with this PYTHONPATH use it"
    (sdk / "another_package-1.0.dist-info").mkdir()  # what `pip install` does next to the SDK
    wait_for(lambda: gone(int(old["pid"])), "the old resident's exit")
    assert "stops listening: its code changed on disk" in (backlog_home / "mcp" / (old["key"] + ".log")).read_text()
    assert structured(anyio.run(session))["session_id"] == SESSION_A
    (_, new), = wait_for(lambda: residents(backlog_home), "the new resident").items()
    assert new["key"] != old["key"] and new["served"] == "0", "the session after the upgrade was served cold"


def test_a_relative_backlog_home_reaches_the_same_resident(env, project_dir) -> None:
    """BACKLOG_HOME=state, relative to the session's directory: the resident (which runs elsewhere) uses the same one."""
    env = {**env, "BACKLOG_HOME": "state", "CLAUDE_CODE_SESSION_ID": SESSION_A}
    state = project_dir / "state"
    try:
        subprocess.run([BACKLOG_OPS, "mcp"], stdin=subprocess.DEVNULL, env=env, cwd=project_dir, timeout=120, check=True)
        path = mcp_prefork.socket_path(environ={"BACKLOG_HOME": str(state)})
        wait_for(lambda: mcp_prefork.status(path), "the resident")

        async def session():
            async with Client(params(env, project_dir), read_timeout_seconds=60) as client:
                return await client.call_tool("set_context", CONTEXT)

        assert structured(anyio.run(session))["session_id"] == SESSION_A
        assert mcp_prefork.status(path)["served"] == "1"
        assert ContextStore(state).get(Scope(SESSION_A))["ticket_id"] == "FEAT-21"
    finally:
        stop_residents(state)
