"""Proxy throughput with 2 proxy workers vs 1, budgets shared through Redis, same run.

    .venv/bin/python bench/replica_throughput.py [--rounds 4] [--requests 300] [--concurrency 16]

Two real `backlog-ops proxy` processes on 127.0.0.1, one with --workers 1 and one with
--workers 2, configured as a team gateway: contexts and per-ticket reservations in the Redis on
6379 (a key prefix of this run's own), the ledger in the PostgreSQL on 5432 (a schema of its
own), the ticket-policy callback on with a budget on the ticket (large enough never to refuse),
so every call takes the shared reservation path. One mock provider in a process of its own.
Rounds alternate between the two proxies so load from elsewhere on the machine hits both alike;
each round sends a fixed number of /v1/chat/completions requests at fixed concurrency, over
keep-alive connections opened at the round's start. Prints each proxy's throughput (median over
rounds), the ratio, the machine's load average, and rows lost: requests answered minus rows in
the ledger, per proxy (each has a ticket of its own).

Where the CPU goes: each round's CPU time (/proc/PID/stat utime + stime) of the proxy's workers,
its supervisor, the load generator (this process), the mock provider, Redis (the whole server:
shared) and the PostgreSQL backends serving the proxies, and the rest of the machine; per request,
and the ceiling 2 cores allow each proxy given the apparatus' share (a worker uses at most one
core). Also each worker's share of the 2-worker proxy's CPU per round, and the workers' CPU with
no requests at all.

Bounded in count (rounds x requests) and time (--max-seconds for the measured rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from backlog_ops.context.redis_store import RedisContextStore  # noqa: E402
from backlog_ops.context.scope import Scope  # noqa: E402
from backlog_ops.gateway.process import ProxyProcess, free_port  # noqa: E402
from backlog_ops.testing.tcp_sockets import tcp_sockets  # noqa: E402
from proxy_support import write_config  # noqa: E402

REDIS = "redis://127.0.0.1:6379/0"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
POLICY = "backlog_ops.callbacks.ticket_policy.ticket_policy"
IDLE_SECONDS = 5.0


def serve_mock(port: int) -> None:
    from backlog_ops.testing.mock_upstream import MockUpstream

    sys.stderr = open(os.devnull, "w")  # a proxy stopping resets its idle connections: not news
    with MockUpstream(port=port):
        while True:
            time.sleep(3600)


def encoded_requests(port: int, key: str, session: str, count: int) -> list[bytes]:
    """Every request of a round as the bytes sent, made before the clock starts."""
    requests = []
    for i in range(count):
        body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"request {i}"}]}).encode()
        requests.append((f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
                         f"authorization: Bearer {key}\r\nx-claude-code-session-id: {session}\r\n"
                         f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body)
    return requests


async def one_round(port: int, requests: list[bytes], concurrency: int) -> tuple[float, list[str]]:
    """(requests per second, call ids answered); any failed request stops the bench.

    The load generator is the cheapest client that still reads every answer: raw asyncio streams,
    one keep-alive connection per concurrent sender, requests encoded beforehand, only the status
    line and the two headers it needs parsed (an HTTP client library costs ~1.5 ms of CPU a
    request here, a tenth of what the proxy spends, on the cores the proxy needs).
    """
    ids: list[str] = []
    pending = list(reversed(requests))

    async def sender() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while pending:
                writer.write(pending.pop())
                head = await reader.readuntil(b"\r\n\r\n")
                status, length, call_id = int(head[9:12]), None, None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"x-litellm-call-id":
                        call_id = value.strip().decode()
                if length is None:
                    raise RuntimeError(f"answer without content-length: {head[:300]!r}")
                body = await reader.readexactly(length)
                if status != 200 or call_id is None:
                    raise RuntimeError(f"request failed: {status} {body[:300]!r}")
                ids.append(call_id)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return len(requests) / (time.perf_counter() - start), ids


# -- where the CPU goes: /proc/PID/stat utime + stime of every process the bench involves ------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 once it is gone)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS if fields else 0.0


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(root: int) -> list[int]:
    parents = {pid: int(f[1]) for pid in _all_pids() if (f := _stat(pid))}
    found, frontier = [], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += frontier
    return found


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def named(command: str) -> list[int]:
    """Processes whose command name starts with `command` (redis-server, postgres): the shared servers."""
    pids = []
    for pid in _all_pids():
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().startswith(command):
                    pids.append(pid)
        except OSError:
            pass
    return pids


def local_ports(pids: list[int]) -> set[int]:
    """The local TCP ports of the sockets these processes hold."""
    return {sock.local_port for pid in pids for sock in tcp_sockets(pid)}


def postgres_backends(clients: list[int]) -> list[int]:
    """The PostgreSQL backends serving these processes: a backend's title names its client's port."""
    ports = local_ports(clients)
    found = []
    for pid in named("postgres"):
        title = command_line(pid)
        start = title.find("127.0.0.1(")
        if start >= 0 and title[start + 10:].split(")", 1)[0].isdigit() and int(title[start + 10:].split(")", 1)[0]) in ports:
            found.append(pid)
    return found


def machine_busy_seconds() -> float:
    """CPU time every core spent not idle since boot (all processes, this bench's and everyone else's)."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


class CpuAccount:
    """CPU seconds per group of processes over one round: the proxy's workers, the apparatus, the rest."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups

    def snapshot(self) -> dict[str, float]:
        shot = {name: sum(cpu_seconds(pid) for pid in pids()) for name, pids in self.groups.items()}
        shot["machine"] = machine_busy_seconds()
        return shot

    def per_worker(self) -> dict[int, float]:
        """CPU seconds of each serving process: how evenly the kernel spread the connections."""
        return {pid: cpu_seconds(pid) for pid in self.groups["proxy workers"]()}

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        spent = {name: after[name] - before[name] for name in before}
        spent["other"] = spent.pop("machine") - sum(spent.values())  # everything else on the machine
        return spent


def ledger_count(schema: str, ticket: str, expected: int, timeout: float = 60.0) -> int:
    from backlog_ops.ledger.postgres import PostgresLedger

    deadline = time.monotonic() + timeout
    while True:
        with PostgresLedger(POSTGRES, schema=schema) as ledger:
            found = len(ledger.rows("WHERE ticket_id = ?", (ticket,)))
        if found >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def apparatus_groups(proc: ProxyProcess, mock_pid: int) -> dict[str, Callable[[], list[int]]]:
    """The processes one proxy's rounds involve, by role; pids looked up at each snapshot."""
    pid = proc.process.pid
    if proc.workers == 1:  # uvicorn serves in the proxy's own process
        serving, supervisor = (lambda: [pid, *descendants(pid)]), (lambda: [])
    else:  # the proxy's process supervises; its children serve (and multiprocessing's resource tracker idles)
        serving, supervisor = (lambda: [p for p in descendants(pid) if "spawn_main" in command_line(p)]), (lambda: [pid])
    return {"proxy workers": serving, "proxy supervisor": supervisor, "load generator": lambda: [os.getpid()],
            "mock provider": lambda: [mock_pid], "redis (whole server)": lambda: named("redis-server"),
            "postgres (its backends)": lambda: postgres_backends([pid, *descendants(pid)])}


def print_cpu(cpu: dict[str, dict[str, float]], walls: dict[str, float], requests: dict[str, int]) -> None:
    """CPU per request by role, and the throughput 2 cores allow each proxy given what the rest takes."""
    cores = os.cpu_count() or 1
    print(f"CPU per request (ms) over the measured rounds, and cores busy on average ({cores} CPUs):")
    groups = list(next(iter(cpu.values())))
    print(f"{'':26}" + "".join(f"{name:>22}" for name in cpu))
    for group in groups:
        print(f"{group:26}" + "".join(
            f"{1000 * cpu[name][group] / requests[name]:10.2f} ms {cpu[name][group] / walls[name]:5.2f} c  " for name in cpu))
    ceilings = {}
    for name in cpu:
        n = requests[name]
        serving = cpu[name]["proxy workers"] / n
        rest = sum(v for g, v in cpu[name].items() if g not in ("proxy workers", "other")) / n
        workers = 1 if name.startswith("1") else 2
        # A worker cannot use more than one core; all of it shares the machine's cores.
        ceilings[name] = min(workers / serving, cores / (serving + rest))
        print(f"{name}: {1000 * serving:.2f} ms in the proxy's workers + {1000 * rest:.2f} ms in the apparatus "
              f"(load generator, mock, supervisor, redis, postgres) a request: at most {ceilings[name]:.0f} req/s "
              f"on {cores} cores with nothing else running")
    one, two = ceilings.get("1 worker"), ceilings.get("2 workers")
    if one and two:
        print(f"ceiling of the ratio on this machine with this apparatus: {two / one:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop starting rounds after this long")
    args = parser.parse_args()

    import socket

    from backlog_ops.ledger.postgres import PostgresLedger

    for service, port in (("Redis", 6379), ("PostgreSQL", 5432)):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError as exc:
            sys.exit(f"replica throughput needs {service} on 127.0.0.1:{port} ({exc})")
    prefix = f"bench-replicas-{uuid.uuid4().hex[:8]}:"
    schema = f"bench_replicas_{uuid.uuid4().hex[:8]}"
    mock_port = free_port()
    mock = multiprocessing.get_context("fork").Process(target=serve_mock, args=(mock_port,), daemon=True)
    mock.start()
    store = RedisContextStore(REDIS, prefix=prefix)
    proxies: dict[str, ProxyProcess] = {}
    sessions: dict[str, str] = {}
    sent: dict[str, list[str]] = {}
    results: dict[str, list[float]] = {}
    cpu: dict[str, dict[str, float]] = {"1 worker": {}, "2 workers": {}}  # group -> CPU seconds, measured rounds
    walls = {"1 worker": 0.0, "2 workers": 0.0}
    splits: dict[str, list[list[float]]] = {"1 worker": [], "2 workers": []}  # each round: the workers' CPU shares
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        policy = tmp_path / "policy.yaml"
        policy.write_text(yaml.safe_dump({"backlog_ops": {"policy": {"projects": {"bench": {"ticket_budget_usd": 1_000_000.0}}}}}))
        env = {"LITELLM_MASTER_KEY": "sk-bench-" + uuid.uuid4().hex, "BACKLOG_POLICY_FILE": str(policy),
               "BACKLOG_CONTEXT_URL": REDIS, "BACKLOG_CONTEXT_PREFIX": prefix,
               "BACKLOG_LEDGER_URL": POSTGRES, "BACKLOG_LEDGER_SCHEMA": schema}
        config = write_config(tmp_path / "cfg", f"http://127.0.0.1:{mock_port}", extra_callbacks=[POLICY])
        try:
            for name, workers in (("1 worker", 1), ("2 workers", 2)):
                proxies[name] = ProxyProcess(tmp_path / f"home-{workers}", config=config, env=env, workers=workers).start(timeout=600)
                sessions[name] = str(uuid.uuid4())
                store.set({"ticket_id": f"BENCH-{workers}", "gate": "implement", "agent_type": "backend", "project": "bench"},
                          Scope(sessions[name]))
                sent[name], results[name] = [], []
            for name, proc in proxies.items():  # warm-up: lazy imports, every worker's connections
                _, ids = asyncio.run(one_round(proc.port, encoded_requests(proc.port, proc.master_key, sessions[name], 100),
                                               args.concurrency))
                sent[name] += ids
            accounts = {name: CpuAccount(apparatus_groups(proc, mock.pid)) for name, proc in proxies.items()}
            # What each proxy's workers spend with no request at all (LiteLLM's and our background work).
            idle_before = {name: account.snapshot() for name, account in accounts.items()}
            time.sleep(IDLE_SECONDS)
            idle = {name: (account.snapshot()["proxy workers"] - idle_before[name]["proxy workers"]) / IDLE_SECONDS
                    for name, account in accounts.items()}
            began = time.monotonic()
            for _ in range(args.rounds):
                if time.monotonic() - began > args.max_seconds:
                    break
                for name, proc in proxies.items():
                    requests = encoded_requests(proc.port, proc.master_key, sessions[name], args.requests)
                    before, start = accounts[name].snapshot(), time.perf_counter()
                    each = accounts[name].per_worker()
                    rps, ids = asyncio.run(one_round(proc.port, requests, args.concurrency))
                    wall = time.perf_counter() - start
                    each = sorted((seconds - each.get(pid, 0.0) for pid, seconds in accounts[name].per_worker().items()),
                                  reverse=True)
                    splits[name].append([x / (sum(each) or 1) for x in each])
                    for group, seconds in CpuAccount.spent(before, accounts[name].snapshot()).items():
                        cpu[name][group] = cpu[name].get(group, 0.0) + seconds
                    walls[name] += wall
                    results[name].append(rps)
                    sent[name] += ids
                    loads.append(os.getloadavg()[0])
            lost = {name: len(set(ids)) - ledger_count(schema, f"BENCH-{name[0]}", len(set(ids))) for name, ids in sent.items()}
        finally:
            for proc in proxies.values():
                proc.stop()
            mock.terminate()
            for key in store.redis.scan_iter(match=f"{prefix}*"):
                store.redis.delete(key)
            try:
                PostgresLedger.drop_schema(POSTGRES, schema)
            except Exception as exc:  # noqa: BLE001 - report, do not hide
                print(f"could not drop schema {schema}: {exc}")

    one, two = statistics.median(results["1 worker"]), statistics.median(results["2 workers"])
    rounds = len(results["1 worker"])
    print(f"replica throughput: {rounds} alternating rounds x {args.requests} requests, concurrency {args.concurrency}, "
          f"mock upstream, shared Redis reservations, PostgreSQL ledger, {os.cpu_count()} CPUs")
    print(f"{'proxy':10} {'req/s':>8}   rounds")
    for name, values in results.items():
        print(f"{name:10} {statistics.median(values):8.1f}   " + " ".join(f"{v:.1f}" for v in values))
    print(f"throughput ratio (2 workers / 1 worker): {two / one:.2f}")
    print(f"load average (1 min) during the run: min {min(loads):.1f}, max {max(loads):.1f}")
    print_cpu(cpu, walls, {name: rounds * args.requests for name in cpu})
    # Each worker accepts on a SO_REUSEPORT socket of its own: the kernel hashes each new connection
    # to one of them, so the 16 keep-alive connections split about evenly, not always 8 / 8.
    print("per round, 2 workers vs. 1, and how the 2-worker proxy's CPU fell to its workers (connections stay "
          "with the worker that accepted them):")
    for i, (r1, r2, split) in enumerate(zip(results["1 worker"], results["2 workers"], splits["2 workers"]), 1):
        print(f"  round {i}: {r2 / r1:.2f}  ({r2:.1f} vs. {r1:.1f} req/s)  workers " +
              " / ".join(f"{100 * x:.0f}%" for x in split))
    spread = [r2 / r1 for r1, r2, split in zip(results["1 worker"], results["2 workers"], splits["2 workers"])
              if min(split) >= 0.25]
    print(f"rounds with both workers serving (each >= 25% of the CPU): {len(spread)} of {rounds}" +
          (f", median ratio {statistics.median(spread):.2f}" if spread else ""))
    print("idle proxy workers (no requests, after the warm-up): " + ", ".join(
        f"{name}: {value:.3f} cores" for name, value in idle.items()) + f" over {IDLE_SECONDS:.0f} s")
    print("rows lost: " + ", ".join(f"{name}: {n}" for name, n in lost.items()) + f" (of {sum(len(v) for v in sent.values())} answered)")


if __name__ == "__main__":
    main()
