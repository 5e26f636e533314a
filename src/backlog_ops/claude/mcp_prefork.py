"""What the MCP launcher and its resident process share: where the socket lives, which code it serves, the wire.

A resident process ("the resident", mcp_server/resident.py) has imported the official `mcp` SDK
and the server once; each `backlog-ops mcp` (mcp_server/launcher.py) hands it the stdin/stdout/stderr Claude Code gave
it, its environment, directory, umask and parent pid over a Unix socket, and the resident forks
one server for it. That skips the SDK's import (~0.5 s on a quiet machine), the floor of any
server on it started from a fresh interpreter.

Light on purpose: the launcher imports this module, and nothing here imports more than os, sys
and backlog_ops.common.settings (no socket: only the functions that talk import it). It lives in
the core, not in mcp_server/, because `backlog-ops doctor` asks the resident how it is too.

The socket lives at BACKLOG_HOME/mcp/<key>.sock (directory 0700, socket 0600). The key names the
code a resident runs: the interpreter, the backlog-ops version and files, and the directory the
`mcp` SDK is installed in (its mtime changes whenever a package is installed or removed there). A
launcher only talks to the resident of its own key, and the resident checks the launcher's full
fingerprint again, so an upgrade never serves old code: the first session after it starts cold.
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "DISABLE_ENV",
    "IDLE_ENV",
    "PROTOCOL",
    "SETUP_FAILED",
    "available",
    "enabled",
    "fingerprint",
    "key_of",
    "short_path",
    "socket_dir",
    "socket_path",
    "status",
]

PROTOCOL = b"backlog-ops-mcp/1"
DISABLE_ENV = "BACKLOG_MCP_PREFORK"  # 0 / false / no / off: every session starts its own interpreter
IDLE_ENV = "BACKLOG_MCP_PREFORK_IDLE"  # how long the resident waits for a session before it exits
SETUP_FAILED = 203  # a forked child that could not take over the launcher's stdio/env/cwd exits with this
MAX_REQUEST = 1 << 20  # bytes: an environment larger than this is refused (the launcher then starts cold)
_AF_UNIX_MAX = 100  # bytes of a socket path bind/connect accept (108 on Linux, 104 on macOS)


def available() -> bool:
    """Whether this platform can run a resident: fork, fd passing and a peer's uid (SO_PEERCRED: Linux)."""
    if not hasattr(os, "fork") or sys.platform != "linux":
        return False
    import socket

    return hasattr(socket, "send_fds") and hasattr(socket, "SO_PEERCRED")


def enabled(environ=None) -> bool:
    env = os.environ if environ is None else environ
    return (env.get(DISABLE_ENV) or "").strip().lower() not in ("0", "false", "no", "off")


def socket_dir(environ=None) -> str:
    """BACKLOG_HOME/mcp."""
    from backlog_ops.common.settings import Settings

    return os.path.join(Settings(environ).home, "mcp")


def fingerprint() -> str:
    """What identifies the code a server started now would run (one line, no secret: paths and stats)."""
    import backlog_ops

    files = [backlog_ops.__file__, __file__]
    for entry in backlog_ops.__path__:  # the mcp_server face, found without importing it
        if os.path.isdir(os.path.join(entry, "mcp_server")):
            files += [os.path.join(entry, "mcp_server", name) for name in ("launcher.py", "resident.py", "server.py")]
            break
    sdk = _sdk_dir()
    if sdk:
        files.append(sdk)
    parts = [sys.executable, sys.prefix, sys.version.split()[0], backlog_ops.__version__]
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            parts.append(f"{path}:missing")
            continue
        parts.append(f"{path}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}")
    return "|".join(parts).replace("\n", " ")


def key_of(print_: str) -> str:
    """A 16-hex name for a fingerprint (64-bit FNV-1a: zlib and hashlib cost the launcher more than the hash)."""
    h = 0xCBF29CE484222325
    for byte in print_.encode(errors="surrogateescape"):
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def socket_path(print_: str | None = None, environ=None) -> str:
    return os.path.join(socket_dir(environ), key_of(fingerprint() if print_ is None else print_) + ".sock")


def short_path(path: str) -> tuple[str, int | None]:
    """A name bind/connect accept for `path`, and a directory fd to close after (None if not needed).

    A Unix socket's path must fit in ~100 bytes; a deep BACKLOG_HOME does not, so a long path is
    reached through /proc/self/fd/<fd of its directory>/<name>.
    """
    if len(os.fsencode(path)) <= _AF_UNIX_MAX:
        return path, None
    fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{os.path.basename(path)}", fd


def status(path: str | None = None, timeout: float = 3.0) -> dict[str, str] | None:
    """What the resident at `path` (default: this code's) says of itself, or None if none answers.

    {"pid", "key", "since", "served", "sessions", "children", "idle_exit"}: served counts the
    sessions it forked, sessions those still running.
    """
    import socket

    path = socket_path() if path is None else path
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        target, dir_fd = short_path(path)
        try:
            conn.connect(target)
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        payload = PROTOCOL + b"\0status"
        conn.sendall(len(payload).to_bytes(4, "big") + payload)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
    except OSError:
        return None
    finally:
        conn.close()
    words = reply.decode(errors="replace").split()
    if words[:1] != ["status"]:
        return None
    return dict(word.split("=", 1) for word in words[1:] if "=" in word)


def _sdk_dir() -> str | None:
    """The directory the `mcp` package is installed in, found without importing it."""
    for entry in sys.path:
        if os.path.isfile(os.path.join(entry or ".", "mcp", "__init__.py")):
            return os.path.abspath(entry or ".")
    return None
