"""`backlog-ops mcp`: hand Claude Code's stdio to a server forked by the resident process, or serve here.

Claude Code waits for this server before a session's first request, and the official `mcp` SDK's
import alone takes longer than the 0.3 s goal. So this launcher imports nothing heavy (no mcp, no
pydantic: `python -X importtime` shows it) and asks the resident (resident.py; the socket, the
code's fingerprint and the wire are in backlog_ops/claude/mcp_prefork.py), which has imported the
SDK and the server once, to fork a server for it: the child takes this process's
stdin/stdout/stderr, environment, directory, umask and parent pid (the caller resolver keys the
Claude Code process by it), and serves exactly what the cold path serves. This process stays as
Claude Code's handle on it: it relays SIGTERM/SIGINT/SIGHUP to the child and exits with its
status; if it is killed, the resident stops the child (and the child ends on stdin EOF anyway).

Failing open: with no resident, a stale socket, a resident of other code, or any error before the
child took the stdio, the server runs here as it always did, and a resident is started in the
background for the next sessions. BACKLOG_MCP_PREFORK=0 turns the resident off; platforms without
fork and SO_PEERCRED (Windows, macOS) always run here.
"""

from __future__ import annotations

import os
import sys

from backlog_ops.claude import mcp_prefork

__all__ = ["main"]

# What the resident may see of the environment it starts with: what decides which code it
# imports, and nothing else (no keys: each session's own environment goes to its own child).
_RESIDENT_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV", "BACKLOG_HOME",
                 "PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE", "PYTHONSAFEPATH", "PYTHONDONTWRITEBYTECODE",
                 "PYTHONPYCACHEPREFIX", "PYTHONUTF8", "PYTHONIOENCODING")
_RELAYED = ("SIGTERM", "SIGINT", "SIGHUP")
READY_TIMEOUT = 10.0  # seconds for the resident to fork a child; a fork takes milliseconds even on a loaded machine


def main() -> int:
    if mcp_prefork.enabled() and mcp_prefork.available():
        try:
            status = _through_resident()
        except Exception:  # noqa: BLE001 - anything before the hand-over: serve here instead
            status = None
        if status is not None:
            return status
        _start_resident()
    from .server import main as serve

    return serve()


# -- a session through the resident --------------------------------------------------------------


def _through_resident() -> int | None:
    """The child's exit status, or None when no child took the stdio (the caller then serves here)."""
    import socket

    fingerprint = mcp_prefork.fingerprint()
    path = mcp_prefork.socket_path(fingerprint)
    directory = os.path.dirname(path)
    try:
        st = os.stat(directory)
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o077 or not os.path.exists(path):
        return None  # no resident; or a directory someone else could have put a socket in
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    go = None
    try:
        target, dir_fd = mcp_prefork.short_path(path)
        try:
            conn.connect(target)
        except OSError:
            return None  # a socket left by a resident that died
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        if _peer_uid(socket, conn) != os.getuid():
            return None
        # The child waits for a byte on this pipe before it touches the stdio: once this process
        # gives up on a resident that does not answer (and serves here), no child can start.
        go_read, go = os.pipe()
        try:
            _send_request(socket, conn, fingerprint, go_read)
        finally:
            os.close(go_read)
        return _relay(conn, go)
    finally:
        if go is not None:
            os.close(go)
        conn.close()


def _peer_uid(socket, conn) -> int:
    cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)  # struct ucred: pid, uid, gid
    return int.from_bytes(cred[4:8], sys.byteorder)


def _send_request(socket, conn, fingerprint: str, go_read: int) -> None:
    umask = os.umask(0o077)
    os.umask(umask)
    fields = [mcp_prefork.PROTOCOL, b"serve", os.fsencode(fingerprint), os.fsencode(os.getcwd()),
              b"%d" % os.getppid(), b"%d" % umask]
    fields += [key + b"=" + value for key, value in os.environb.items()]
    payload = b"\0".join(fields)
    message = len(payload).to_bytes(4, "big") + payload
    sent = socket.send_fds(conn, [message], [0, 1, 2, go_read])
    if sent < len(message):
        conn.sendall(message[sent:])


def _relay(conn, go: int) -> int | None:
    """Wait for the child's 'ready <pid>' (then let it go) and 'exit <status>', relaying signals meanwhile."""
    import signal

    child: dict[str, object] = {"pid": None, "pidfd": None}
    pending: list[int] = []

    def relay(signum, frame):  # noqa: ARG001 - a signal handler's signature
        if child["pid"] is None:
            pending.append(signum)
        else:
            _signal_child(signal, child, signum)

    previous = {name: signal.signal(getattr(signal, name), relay) for name in _RELAYED}
    buffered = b""
    conn.settimeout(READY_TIMEOUT)
    try:
        while True:
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                return None  # a resident that does not answer: serve here (the caller closes `go` unwritten)
            if not chunk:
                # Every holder of the resident's end is gone: before 'ready', no child took the
                # stdio (serve here); after it, the child ended and the resident died meanwhile.
                return None if child["pid"] is None else 0
            buffered += chunk
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                word, _, value = line.partition(b" ")
                if word == b"ready" and child["pid"] is None:
                    pid = int(value)
                    os.write(go, b"g")  # fails only if the child is gone, before it touched the stdio
                    conn.settimeout(None)  # from here the session is the child's, however long it lasts
                    child["pid"] = pid
                    try:
                        child["pidfd"] = os.pidfd_open(child["pid"])  # signals then never reach a reused pid
                    except (AttributeError, OSError):
                        pass
                    for signum in pending:
                        _signal_child(signal, child, signum)
                elif word == b"exit":
                    if child["pid"] is None:
                        return None  # the child could not take over (setup failed): serve here
                    return _exit_status(signal, int(value))
                elif word == b"refused" and child["pid"] is None:
                    return None
    except Exception:
        if child["pid"] is None:
            raise  # nothing handed over: the caller serves here
        _wait_gone(child)  # the session is the child's: never a second server on its stdin
        return 1
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)
        if child["pidfd"] is not None:
            os.close(child["pidfd"])


def _wait_gone(child: dict) -> None:
    """Block until the child ends (its pidfd becomes readable; without one, poll its pid)."""
    import select
    import time

    if child["pidfd"] is not None:
        select.select([child["pidfd"]], [], [])
        return
    while True:
        try:
            os.kill(child["pid"], 0)
        except OSError:
            return
        time.sleep(1.0)


def _signal_child(signal, child: dict, signum: int) -> None:
    try:
        if child["pidfd"] is not None:
            signal.pidfd_send_signal(child["pidfd"], signum)
        else:
            os.kill(child["pid"], signum)
    except OSError:
        pass  # it has ended already


def _exit_status(signal, wait_status: int) -> int:
    """Exit as the child did: with its code, or killed by the same signal."""
    code = os.waitstatus_to_exitcode(wait_status)
    if code >= 0:
        return code
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    return 128 - code


# -- starting the resident -----------------------------------------------------------------------


def _start_resident() -> None:
    """Start the resident for the next sessions: detached (own session, stdin /dev/null, no fd of ours)."""
    log = null = None
    try:
        from backlog_ops.common.home import ensure_dir

        fingerprint = mcp_prefork.fingerprint()
        directory = ensure_dir(os.path.abspath(mcp_prefork.socket_dir()))
        st = os.stat(directory)
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            return
        log = os.open(os.path.join(directory, mcp_prefork.key_of(fingerprint) + ".log"),
                      os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        null = os.open(os.devnull, os.O_RDWR)
        env = {name: value for name, value in os.environ.items() if name in _RESIDENT_ENV or name.startswith("LC_")
               or name == mcp_prefork.IDLE_ENV}
        env["BACKLOG_HOME"] = os.path.dirname(directory)  # absolute: the resident runs in that directory
        argv = [sys.executable, "-c", "from backlog_ops.mcp_server.resident import main; raise SystemExit(main())"]
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # a double fork: the resident is nobody's child and holds no terminal
            try:
                os.setsid()
                if os.fork() == 0:
                    os.dup2(null, 0)
                    os.dup2(null, 1)
                    os.dup2(log, 2)
                    os.closerange(3, _max_fd())
                    os.chdir(directory)
                    os.execve(sys.executable, argv, env)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    except Exception:  # noqa: BLE001 - the next session tries again; this one is served either way
        pass
    finally:
        for fd in (log, null):
            if fd is not None:
                os.close(fd)


def _max_fd() -> int:
    try:
        return min(os.sysconf("SC_OPEN_MAX"), 65536)
    except (OSError, ValueError):
        return 1024
