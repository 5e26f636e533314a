"""The resident MCP server process: imports the SDK and the server once, forks one server per session.

Started by a launcher that found none (launcher.py), detached: its own session, stdin and stdout
/dev/null, stderr BACKLOG_HOME/mcp/<key>.log (its own start, exit and refusals; never an
environment value). One per key: it holds BACKLOG_HOME/mcp/<key>.lock for life, so launchers
racing to start one start one. It listens on BACKLOG_HOME/mcp/<key>.sock (0600, directory 0700)
and serves only peers of its own uid (SO_PEERCRED).

For each launcher it checks that both run the same code (the launcher's fingerprint equals its
own, and no backlog-ops module it has loaded changed on disk since), forks, and the child takes
the launcher's stdio, environment, directory and umask and runs server.main exactly as the cold
path does. The resident reports the child's exit status to the launcher, and stops the child if
the launcher goes away.

It exits after BACKLOG_MCP_PREFORK_IDLE (default 8 h) without a session (the length of a working
day: the day's first session pays the cold start, the others are forked; it costs ~60 MB of
memory and no CPU while it waits), as soon as its code changes on disk (an upgrade), when its
socket is removed, and on SIGTERM. Sessions it forked live on without it.
"""

from __future__ import annotations

import atexit
import fcntl
import gc
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import traceback

from backlog_ops.claude import mcp_prefork

__all__ = ["main"]

DEFAULT_IDLE = 8 * 3600
CHECK_EVERY = 60.0  # seconds between the resident's checks of its idle time, code and socket (at most)
REQUEST_TIMEOUT = 5.0  # seconds a connected launcher has to send its request


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} resident {os.getpid()}: {message}", file=sys.stderr, flush=True)


def main() -> int:
    directory = mcp_prefork.socket_dir()
    fingerprint = mcp_prefork.fingerprint()
    key = mcp_prefork.key_of(fingerprint)
    lock_fd = os.open(os.path.join(directory, key + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        return 0  # another launcher started it first
    try:
        os.ftruncate(2, 0)  # the log is this resident's; the previous one's is of no use now
    except OSError:
        pass
    try:
        idle = _idle_seconds()
        # What a server needs before it answers initialize and tools/list, and its first call's models.
        import anyio._backends._asyncio  # noqa: F401
        import mcp.server.stdio  # noqa: F401

        from . import core, server  # noqa: F401
        _sweep(directory, key)
        return Resident(directory, key, fingerprint, lock_fd, idle).run()
    except Exception:  # noqa: BLE001 - a bug of ours: launchers fall back to the cold start
        traceback.print_exc()
        return 1
    finally:
        os.close(lock_fd)


def _sweep(directory: str, key: str) -> None:
    """Remove the files of residents of other code that are gone (their lock is free)."""
    for name in os.listdir(directory):
        stem, dot, ext = name.rpartition(".")
        if ext != "lock" or stem == key:
            continue
        try:
            fd = os.open(os.path.join(directory, name), os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            for suffix in (".sock", ".log", ".lock"):
                try:
                    os.unlink(os.path.join(directory, stem + suffix))
                except OSError:
                    pass
        except OSError:
            pass  # alive (or draining its sessions): it removes nothing of ours either
        finally:
            os.close(fd)


def _idle_seconds() -> int:
    from backlog_ops.common.times import parse_duration

    raw = (os.environ.get(mcp_prefork.IDLE_ENV) or "").strip()
    if not raw:
        return DEFAULT_IDLE
    try:
        return parse_duration(raw)
    except ValueError as exc:
        _log(f"{mcp_prefork.IDLE_ENV}: {exc}; using 8h")
        return DEFAULT_IDLE


class Resident:
    def __init__(self, directory: str, key: str, fingerprint: str, lock_fd: int, idle: int) -> None:
        self.path = os.path.join(directory, key + ".sock")
        self.key, self.fingerprint, self.lock_fd, self.idle = key, fingerprint, lock_fd, idle
        self.check_every = min(CHECK_EVERY, max(1.0, idle / 4))  # a short idle time is kept to within a quarter
        self.loaded = _loaded_files()
        self.children: dict[int, socket.socket] = {}
        self.started = self.last_session = time.time()
        self.served = 0
        self.listener: socket.socket | None = None
        self.inode = 0
        self.selector = selectors.DefaultSelector()
        self.wakeup_r, self.wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # -- life -------------------------------------------------------------------------------------

    def run(self) -> int:
        signal.set_wakeup_fd(self.wakeup_w)
        # Handled in the loop, woken through the wakeup fd. SIGTERM/SIGHUP: exit now (the sessions
        # it forked live on, each until its stdin closes).
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.selector.register(self.wakeup_r, selectors.EVENT_READ, "wakeup")
        self._listen()
        gc.freeze()  # the imported modules' objects stay shared with each child, not copied on write
        _log(f"serving {self.path} (idle exit after {self.idle} s)")
        next_check = time.monotonic() + self.check_every
        try:
            while (self.listener is not None or self.children) and not _term_received:
                for selected, _ in self.selector.select(timeout=max(0.0, next_check - time.monotonic())):
                    if selected.data == "wakeup":
                        self._signals()
                    elif selected.data == "listener":
                        self._accept()
                    else:
                        self._launcher_event(selected.data)
                if time.monotonic() >= next_check:
                    self._check()
                    next_check = time.monotonic() + self.check_every
        finally:
            self._stop_listening("SIGTERM" if _term_received else "exit")
        return 0

    def _listen(self) -> None:
        if os.path.lexists(self.path):
            os.unlink(self.path)  # we hold the lock: whoever bound it is gone
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target, dir_fd = mcp_prefork.short_path(self.path)
        old = os.umask(0o177)
        try:
            listener.bind(target)
        finally:
            os.umask(old)
            if dir_fd is not None:
                os.close(dir_fd)
        os.chmod(self.path, 0o600)
        self.inode = os.stat(self.path).st_ino
        listener.listen(64)
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, "listener")

    def _stop_listening(self, why: str) -> None:
        """No new sessions: the socket goes, and the lock with it, so that a new resident may start now."""
        if self.listener is None:
            return
        _log(f"stops listening: {why}")
        self.selector.unregister(self.listener)
        self.listener.close()
        self.listener = None
        try:
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        except OSError:
            pass
        fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    def _check(self) -> None:
        if self.listener is None:
            return
        try:
            moved = os.stat(self.path).st_ino != self.inode
        except OSError:
            moved = True
        if moved:
            self._stop_listening("its socket was removed")
        elif not self._fresh():
            self._stop_listening("its code changed on disk")
        elif not self.children and time.time() - self.last_session >= self.idle:
            self._stop_listening(f"no session for {self.idle} s")

    def _fresh(self) -> bool:
        return mcp_prefork.fingerprint() == self.fingerprint and _loaded_files() == self.loaded

    def _signals(self) -> None:
        try:
            while os.read(self.wakeup_r, 512):
                pass
        except BlockingIOError:
            pass
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = self.children.pop(pid, None)
            if conn is not None:
                try:
                    self.selector.unregister(conn)
                except (KeyError, ValueError):
                    pass
                try:
                    conn.sendall(b"exit %d\n" % status)
                except OSError:
                    pass
                conn.close()

    # -- sessions ---------------------------------------------------------------------------------

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(REQUEST_TIMEOUT)
            pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            if uid != os.getuid():
                _log(f"refused a connection from uid {uid} (pid {pid})")
                return
            fields, fds = _read_request(conn)
            if fields[1:2] == [b"status"]:
                conn.sendall(self._status().encode() + b"\n")
                return
            if fields[1:2] != [b"serve"] or len(fds) != 4 or len(fields) < 6:
                conn.sendall(b"refused bad-request\n")
                return
            if os.fsdecode(fields[2]) != self.fingerprint:
                conn.sendall(b"refused other-code\n")
                return
            if not self._fresh():
                conn.sendall(b"refused stale\n")
                self._stop_listening("its code changed on disk")
                return
            if threading.active_count() != 1:  # forking a threaded process is unsafe: never do it
                conn.sendall(b"refused threads\n")
                self._stop_listening("a thread is running")
                return
            self._fork(conn, fds, fields)
            conn = None  # the child's now
        except Exception as exc:  # noqa: BLE001 - one launcher's trouble (it serves cold), never the resident's end
            _log(f"dropped a launcher's request: {exc.__class__.__name__}")  # the name only: a message could quote its environment
        finally:
            for fd in fds:
                os.close(fd)
            if conn is not None:
                conn.close()

    def _fork(self, conn: socket.socket, fds: list[int], fields: list[bytes]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(conn, fds, fields, self._closables(conn))  # never returns
        conn.settimeout(None)
        self.children[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, pid)
        self.served += 1
        self.last_session = time.time()

    def _launcher_event(self, pid: int) -> None:
        """A launcher's end of the connection is readable: it went away (killed): stop its child."""
        conn = self.children.get(pid)
        if conn is None:
            return
        try:
            data = conn.recv(64)
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(conn)
            try:
                os.kill(pid, signal.SIGTERM)  # not reaped yet (it is in self.children): still our child
            except OSError:
                pass

    def _closables(self, keep: socket.socket) -> list:
        items = [self.selector, *(c for c in self.children.values() if c is not keep)]
        if self.listener is not None:
            items.append(self.listener)
        return items + [_Fd(self.lock_fd), _Fd(self.wakeup_r), _Fd(self.wakeup_w)]

    def _status(self) -> str:
        children = ",".join(str(p) for p in sorted(self.children)) or "-"
        return (f"status pid={os.getpid()} key={self.key} since={int(self.started)} served={self.served} "
                f"sessions={len(self.children)} children={children} idle_exit={self.idle}")


class _Fd:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        os.close(self.fd)


_term_received = False


def _on_term(*_: object) -> None:
    global _term_received
    _term_received = True


def _read_request(conn: socket.socket) -> tuple[list[bytes], list[int]]:
    data, fds, flags, _ = socket.recv_fds(conn, 65536, 4)
    if flags & socket.MSG_CTRUNC:
        for fd in fds:
            os.close(fd)
        raise ValueError("descriptors truncated")
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        if len(data) >= 4 and int.from_bytes(data[:4], "big") > mcp_prefork.MAX_REQUEST:
            raise ValueError("request too large")
        chunk = conn.recv(65536)
        if not chunk:
            raise ValueError("request cut short")
        data += chunk
    fields = data[4 : 4 + int.from_bytes(data[:4], "big")].split(b"\0")
    if fields[0] != mcp_prefork.PROTOCOL:
        raise ValueError("another protocol")
    return fields, list(fds)


def _loaded_files() -> dict[str, tuple[int, int, int]]:
    """(inode, mtime, size) of each backlog-ops module this process has imported."""
    out = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.split(".", 1)[0] == "backlog_ops" and path:
            try:
                st = os.stat(path)
            except OSError:
                out[path] = (0, 0, 0)
                continue
            out[path] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


# -- the forked child ------------------------------------------------------------------------------


def _child(conn: socket.socket, fds: list[int], fields: list[bytes], closables: list) -> None:
    """Become the launcher's server: its stdio, environment, directory and umask; then serve; never return."""
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for item in closables:
            item.close()
        os.setsid()  # the resident's process group is the resident's business, not this session's
        *stdio, go = fds
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        for fd in stdio:
            if fd > 2:
                os.close(fd)
        _, _, _, cwd, ppid, umask, *env = fields
        os.umask(int(umask))
        os.chdir(cwd)
        os.environb.clear()
        os.environb.update(entry.split(b"=", 1) for entry in env if b"=" in entry)
        conn.sendall(b"ready %d\n" % os.getpid())
        # The launcher's go: without it (it gave up waiting and serves cold) the stdio stays untouched.
        if os.read(go, 1) != b"g":
            raise EOFError("the launcher serves this session itself")
        os.close(go)
    except BaseException:  # noqa: BLE001 - nothing read from stdin yet: the launcher serves cold
        os._exit(mcp_prefork.SETUP_FAILED)
    code = 1
    try:
        from backlog_ops.claude import sessions

        from .server import main as serve

        code = serve(process_key=sessions.claude_process_key(int(ppid)))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        code = -signal.SIGINT
    except BaseException:  # noqa: BLE001 - as an uncaught exception ends the cold server: traceback, 1
        traceback.print_exc()
        code = 1
    _exit_like_python(code)


def _exit_like_python(code: int) -> None:
    """What the interpreter does at exit (atexit: the ledger writer flushes there), then leave."""
    try:
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code & 0xFF)
