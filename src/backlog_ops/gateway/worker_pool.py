"""`backlog-ops proxy --workers N`: N uvicorn servers, each accepting on a listening socket of its own.

Why not uvicorn's own workers (LiteLLM's --num_workers): they all accept on one shared socket, and
whichever is idle takes every connection waiting, and keeps it while it is kept alive. Claude Code
keeps a few long-lived connections, so one worker could serve them all (bench/replica_throughput.py
saw one worker get all 16 connections in 2 of 6 rounds). Here each worker binds its own socket
with SO_REUSEPORT to the same address, and the kernel spreads new connections over the listening
sockets by a hash of each connection's addresses and ports.

Each worker is a fresh interpreter (multiprocessing's spawn, as uvicorn's) running one
`uvicorn.Server` with LiteLLM's app and lifespan, after `proxy_workers.in_worker` set it up.

The parent starts them, relays SIGTERM or SIGINT to them (as SIGTERM: a second SIGINT would make
uvicorn drop the calls in flight), and waits for them to finish. A worker that ends before it
served (a config it cannot load, a port it cannot bind) stops the others, and the parent exits 1;
one that ends after it served (killed, crashed) is replaced, once per death, so that its
successor takes over its ledger journal at once.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from backlog_ops.errors import ConfigError

__all__ = ["SERVING", "WorkerPool", "check_port_free", "listening_socket"]

SERVING = "worker processes serving on"  # in the line printed once every worker listens

_POLL = 0.5  # seconds between looks at the signal flags while waiting on the workers


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on.

    Without this, a second `--workers` proxy on the same port would bind beside the first one
    (SO_REUSEPORT, same user) and take half of its connections instead of failing.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT does not count
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port with SO_REUSEPORT; uvicorn makes it listen once the app has started."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def serve_one(host: str, port: int, uvicorn_args: dict[str, Any], ready: Connection) -> None:
    """The body of one worker process: set up ours, then serve LiteLLM's app on a socket of its own."""
    import uvicorn

    from backlog_ops.gateway.proxy_workers import in_worker, stop_the_proxy

    try:
        sock = listening_socket(host, port)
    except OSError as exc:  # taken since the parent looked (check_port_free)
        stop_the_proxy([f"cannot listen on {host}:{port}: {exc.strerror or exc}"])
    in_worker()
    config = uvicorn.Config(**uvicorn_args)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # the lifespan ran (LiteLLM loaded its config) and the socket listens
                try:
                    ready.send(True)
                    ready.close()
                except OSError:  # the parent is gone: serve on until stopped
                    pass

    server = Server(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE


@dataclass
class _Worker:
    process: Any
    ready_end: Connection | None
    served: bool = False


@dataclass
class WorkerPool:
    """`count` worker processes serving host:port; `run` returns why they stopped, if not by a signal."""

    count: int
    host: str
    port: int
    uvicorn_args: dict[str, Any]
    workers: list[_Worker] = field(default_factory=list)
    stopping: bool = False
    failed: list[str] = field(default_factory=list)

    def run(self) -> list[str]:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.workers = [self._start() for _ in range(self.count)]
            if self.stopping:  # a signal came while they were starting
                self._stop()
            announced = False
            while True:
                self._wait_once()
                if not announced and not self.stopping and all(w.served for w in self.workers):
                    announced = True
                    print(f"backlog-ops: {self.count} {SERVING} http://{self.host}:{self.port} "
                          f"(pids {', '.join(str(w.process.pid) for w in self.workers)}), each on its own "
                          f"SO_REUSEPORT socket", file=sys.stderr, flush=True)
                if self.stopping and all(w.process.exitcode is not None for w in self.workers):
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.failed

    def _start(self) -> _Worker:
        context = multiprocessing.get_context("spawn")
        ready_end, ready_send = context.Pipe(duplex=False)
        process = context.Process(target=serve_one, args=(self.host, self.port, self.uvicorn_args, ready_send),
                                  name="backlog-ops-proxy-worker")
        process.start()
        ready_send.close()  # the worker holds the other copy: EOF here when it ends
        return _Worker(process, ready_end)

    def _wait_once(self) -> None:
        waiting = [w.ready_end for w in self.workers if w.ready_end is not None]
        wait([w.process.sentinel for w in self.workers] + waiting, timeout=_POLL)
        for worker in list(self.workers):
            if worker.ready_end is not None and worker.ready_end.poll():
                try:
                    worker.served = bool(worker.ready_end.recv())
                except EOFError:
                    pass
                worker.ready_end.close()
                worker.ready_end = None
            if worker.process.exitcode is None or self.stopping:
                continue
            how = _how_it_ended(worker.process.exitcode)
            if worker.served:
                print(f"backlog-ops: worker process {worker.process.pid} ended ({how}) after serving; "
                      f"starting another", file=sys.stderr, flush=True)
                self.workers[self.workers.index(worker)] = self._start()
            else:
                self.failed.append(f"worker process {worker.process.pid} ended ({how}) before it served")
                self._stop()

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stopping:  # a second Ctrl-C or SIGTERM: do not wait for the calls in flight
            for worker in self.workers:
                if worker.process.exitcode is None:
                    worker.process.kill()
            return
        self._stop()

    def _stop(self) -> None:
        self.stopping = True
        for worker in self.workers:
            if worker.process.exitcode is None:
                worker.process.terminate()  # SIGTERM: uvicorn finishes the calls in flight, then LiteLLM's shutdown


def _how_it_ended(exitcode: int) -> str:
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"status {exitcode}"
