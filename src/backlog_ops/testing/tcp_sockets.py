"""The TCP sockets a process holds, read from /proc (Linux): what `ss -tnp` shows, for tests and benchmarks."""

from __future__ import annotations

import os
from typing import NamedTuple

__all__ = ["ESTABLISHED", "LISTEN", "TcpSocket", "tcp_sockets"]

ESTABLISHED, LISTEN = "01", "0A"  # the state column of /proc/net/tcp


class TcpSocket(NamedTuple):
    local_port: int
    state: str
    inode: str


def tcp_sockets(pid: int) -> list[TcpSocket]:
    """The TCP sockets (IPv4 and IPv6) process `pid` holds; [] when it is gone."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[9] in inodes:
                found.append(TcpSocket(int(cols[1].rsplit(":", 1)[1], 16), cols[3], cols[9]))
    return found
