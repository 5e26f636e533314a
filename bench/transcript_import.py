"""`backlog-ops import transcripts` vs. ccusage 15 `session --json`, same corpus, same run.

    .venv/bin/python bench/transcript_import.py [--ccusage PATH] [--rounds 1] [--files 400] [--mb 186]
                                                [--requests 97500] [--seed 13] [--corpus DIR] [--one-process]
                                                [--jobs N]

Writes a Claude Code-shaped corpus (bench/transcript_corpus.py; by default the shape of issue
13's: 400 files, ~290k lines, 97,500 requests, subagent transcripts, responses over several lines
sharing a message id) into a temporary CLAUDE_CONFIG_DIR, then times, each as its own process
with that CLAUDE_CONFIG_DIR:

  ccusage   `ccusage session --json --offline`
  ours      `backlog-ops import transcripts --json` into a fresh BACKLOG_HOME (a new ledger)
  re-import the same command again, nothing changed
  (ours runs with the command's default, which starts worker processes only with an idle core;
  --jobs N passes --jobs N to it)
  one process (with --one-process) the import with `--jobs 1`, into another fresh BACKLOG_HOME: what
            the worker processes gain over reading every file in the importer

`--rounds N` alternates the order round after round and reports medians. For each: wall time,
CPU time (user + system of the process and of its worker processes: the fairer figure when the
machine is shared) and peak RSS (of the importing process). Then every session's token totals in our ledger (input, output, cache creation, cache read)
are compared with ccusage's — grouped as ccusage 15 groups them: a project directory's main
transcripts together, and each session's subagents together — and the bench fails if any differs.

ccusage is looked up as --ccusage, $CCUSAGE, `ccusage` on PATH, then /tmp/ccu/node_modules/.bin/ccusage;
without it the bench says how to install it and times only ours. The corpus is data this
project wrote itself: a regression guard, not evidence about anyone's real transcripts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transcript_corpus import write_corpus  # noqa: E402

BIN = Path(sys.executable).parent / "backlog-ops"
INSTALL = "npm install --prefix /tmp/ccu ccusage@15   # then: --ccusage /tmp/ccu/node_modules/.bin/ccusage"
COUNTS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")


def find_ccusage(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("CCUSAGE"), shutil.which("ccusage"), "/tmp/ccu/node_modules/.bin/ccusage"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def run(argv: list[str], env: dict, out: Path) -> dict:
    """Run argv with stdout to `out`; its wall time, CPU time (s) and peak RSS (MB)."""
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed with status {os.waitstatus_to_exitcode(status)}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024}


def project_of(root: Path) -> dict[str, str]:
    """Session id -> project directory, from the layout (<project>/<session>.jsonl)."""
    return {f.stem: f.parent.name for f in root.glob("*/*.jsonl")}


def our_sessions(ledger: Path, projects: dict[str, str]) -> dict[tuple[str, str], tuple[int, ...]]:
    """Our ledger's token totals keyed as ccusage 15 keys its sessions: (projectPath, sessionId)."""
    totals: dict[tuple[str, str], list[int]] = {}
    with sqlite3.connect(ledger) as db:
        rows = db.execute(
            "SELECT session_id, agent_id IS NOT NULL, SUM(prompt_tokens - cache_read_tokens - cache_write_tokens),"
            " SUM(completion_tokens), SUM(cache_write_tokens), SUM(cache_read_tokens)"
            " FROM calls WHERE source = 'transcript' GROUP BY session_id, agent_id IS NOT NULL").fetchall()
    for session, subagent, *counts in rows:
        project = projects.get(session, "?")
        # ccusage 15 takes the directory above a file as its "session": the project directory for a main
        # transcript, 'subagents' (under <project>/<session>) for a subagent's.
        key = (f"{project}/{session}", "subagents") if subagent else ("Unknown Project", project)
        acc = totals.setdefault(key, [0, 0, 0, 0])
        for i, value in enumerate(counts):
            acc[i] += value or 0
    return {k: tuple(v) for k, v in totals.items()}


def their_sessions(report: Path) -> dict[tuple[str, str], tuple[int, ...]]:
    data = json.loads(report.read_text())
    return {(s["projectPath"], s["sessionId"]): tuple(s[c] for c in COUNTS) for s in data["sessions"]}


def show(label: str, results: list[dict]) -> dict:
    med = {k: statistics.median(r[k] for r in results) for k in ("wall", "cpu", "rss")}
    print(f"  {label:34} wall {med['wall']:7.2f} s   CPU {med['cpu']:7.2f} s   peak RSS {med['rss']:6.0f} MB")
    return med


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ccusage")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--mb", type=float, default=186.0)
    parser.add_argument("--requests", type=int, default=97_500)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--corpus", type=Path, help="an existing CLAUDE_CONFIG_DIR to use instead of writing one")
    parser.add_argument("--one-process", action="store_true", help="also time the import with --jobs 1")
    parser.add_argument("--jobs", type=int, help="--jobs for ours (default: the command's own choice)")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 10 or not 1 <= args.files <= 10_000 or not 1 <= args.requests <= 2_000_000:
        parser.error("--rounds 1..10, --files 1..10000, --requests 1..2000000")
    ccusage = find_ccusage(args.ccusage)
    if ccusage is None:
        print(f"ccusage not found: timing ours only. To compare, install it:\n  {INSTALL}")

    with tempfile.TemporaryDirectory(prefix="transcript-bench-") as tmp:
        tmp_path = Path(tmp)
        config = args.corpus
        if config is None:
            config = tmp_path / "claude"
            started = time.perf_counter()
            corpus = write_corpus(config, files=args.files, megabytes=args.mb, requests=args.requests, seed=args.seed)
            print(f"corpus: {corpus.files} files, {corpus.bytes / 1e6:.1f} MB, {corpus.lines:,} lines, "
                  f"{corpus.requests:,} requests (written in {time.perf_counter() - started:.0f} s)")
        env = {**os.environ, "CLAUDE_CONFIG_DIR": str(config), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "BACKLOG_PROGRESS": "0"}
        runs: dict[str, list[dict]] = {"ccusage": [], "ours": [], "again": [], "serial": []}
        for round_ in range(args.rounds):
            home = tmp_path / f"home{round_}"
            home.mkdir(mode=0o700)
            ours_env = {**env, "BACKLOG_HOME": str(home)}
            ours_argv = [str(BIN), "import", "transcripts", "--json"] + (["--jobs", str(args.jobs)] if args.jobs else [])
            steps = [("ours", ours_argv, ours_env, home / "report.json"),
                     ("again", ours_argv, ours_env, home / "again.json")]
            if args.one_process:
                serial_home = tmp_path / f"serial{round_}"
                serial_home.mkdir(mode=0o700)
                serial = ("serial", [str(BIN), "import", "transcripts", "--json", "--jobs", "1"], {**env, "BACKLOG_HOME": str(serial_home)},
                          serial_home / "report.json")
                steps = steps + [serial] if round_ % 2 == 0 else [serial] + steps
            if ccusage:
                theirs = ("ccusage", [ccusage, "session", "--json", "--offline"], env, tmp_path / "ccusage.json")
                steps = steps + [theirs] if round_ % 2 else [theirs] + steps
            for name, argv, step_env, out in steps:
                runs[name].append(run(argv, step_env, out))
            report = json.loads((home / "report.json").read_text())
            again = json.loads((home / "again.json").read_text())
            if again["imported"]["requests"] or again["files"]["read"]:
                raise SystemExit(f"the re-import read {again['files']['read']} files, imported {again['imported']['requests']}")

        print(f"import of {report['files']['found']} files, {report['imported']['requests']:,} requests "
              f"({report['lines']:,} lines), median of {args.rounds} round(s):")
        ours = show(f"backlog-ops import transcripts ({report['reading_processes']} readers)", runs["ours"])
        again = show("  re-import, nothing changed", runs["again"])
        if runs["serial"]:
            serial = show("  --jobs 1 (one process)", runs["serial"])
            print(f"  workers vs. --jobs 1: x{serial['wall'] / ours['wall']:.2f} wall, "
                  f"x{serial['cpu'] / ours['cpu']:.2f} CPU")
        failed = False
        if ccusage:
            theirs = show("ccusage session --json --offline", runs["ccusage"])
            mine = our_sessions(tmp_path / f"home{args.rounds - 1}" / "ledger.db", project_of(config / "projects"))
            peer = their_sessions(tmp_path / "ccusage.json")
            differ = sorted(k for k in set(mine) | set(peer) if mine.get(k, (0,) * 4) != peer.get(k, (0,) * 4))
            total_ours = [sum(v[i] for v in mine.values()) for i in range(4)]
            total_peer = [sum(v[i] for v in peer.values()) for i in range(4)]
            print(f"per-session token totals (input, output, cache creation, cache read): {len(peer)} ccusage sessions, "
                  f"{len(differ)} differ; totals ours {total_ours}, ccusage {total_peer}")
            for key in differ[:5]:
                print(f"    {key}: ours {mine.get(key)}, ccusage {peer.get(key)}")
            failed = bool(differ)
            print(f"speed vs. ccusage: x{theirs['wall'] / ours['wall']:.2f} wall, x{theirs['cpu'] / ours['cpu']:.2f} CPU "
                  f"(above 1: ours is faster); re-import x{theirs['wall'] / again['wall']:.0f} faster than ccusage's run")
        load = os.getloadavg()[0]
        print(f"load average at the end: {load:.1f} on {os.cpu_count()} CPUs"
              + (" (a shared machine: compare the CPU figures)" if load > (os.cpu_count() or 1) else ""))
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
