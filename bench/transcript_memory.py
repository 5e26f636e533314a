"""Peak memory of `backlog-ops import transcripts` on a large transcript vs. a small one, same run.

    .venv/bin/python bench/transcript_memory.py [--mb 100] [--small-mb 1] [--spread 40] [--dry-run]

Writes two Claude Code-shaped transcripts (bench/transcript_corpus.py: one session each, ~400
requests per MB, responses over several lines, tool results with no usage), imports each in its
own process into its own BACKLOG_HOME (a fresh ledger; `--dry-run` to write nothing), and prints
each process's peak RSS (ru_maxrss), the ratio, and the goal: a 100 MB transcript under 150 MB.
A streaming importer's peak grows with the number of requests (kept to be merged and attributed),
not with the file's size.

A large import of many files is read by worker processes: the same --mb spread over --spread files
is imported too (with --jobs 2), and for every run the peak of the whole process tree is sampled every 20 ms
from /proc: the sum of the processes' RSS (an upper bound: pages a forked worker shares with the
importer count twice) and of their PSS (shared pages split between the processes sharing them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transcript_corpus import write_corpus  # noqa: E402

BIN = Path(sys.executable).parent / "backlog-ops"
GOAL_MB = 150
REQUESTS_PER_MB = 400  # about the issue 13 corpus's 97,500 requests in ~210 MB, a little denser


def write_transcripts(directory: Path, megabytes: float, files: int = 1) -> tuple[Path, int]:
    """About `megabytes` MB of transcripts in `files` files; (the file, or the projects directory, the number of requests)."""
    corpus = write_corpus(directory, files=files, megabytes=megabytes,
                          requests=max(1, int(megabytes * REQUESTS_PER_MB)), seed=7)
    return (corpus.largest if files == 1 else corpus.root), corpus.requests


def _tree(pid: int) -> list[int]:
    """pid and its descendants (from each process's parent in /proc/<n>/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    ppid = int(fh.read().rpartition(b")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(parents.get(p, ()))
    return found


def _rss_pss_kb(pid: int) -> tuple[int, int]:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            sizes = {key: rest for key, _, rest in (line.partition(":") for line in fh) if key in ("Rss", "Pss")}
        return int(sizes["Rss"].split()[0]), int(sizes["Pss"].split()[0])
    except (OSError, KeyError, ValueError):
        return 0, 0


def peak_rss_mb(path: Path, home: Path, dry_run: bool, extra: list[str]) -> tuple[float, float, float, int, dict]:
    """Run the import as its own process; (its peak RSS, the tree's peak summed RSS and PSS in MB,
    the most processes seen at once, its JSON report)."""
    home.mkdir(mode=0o700)
    out = home / "report.json"
    env = {**os.environ, "BACKLOG_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "BACKLOG_PROGRESS": "0"}
    argv = [str(BIN), "import", "transcripts", str(path), "--json"] + (["--dry-run"] if dry_run else []) + extra
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.execve(str(BIN), argv, env)
        finally:
            os._exit(127)
    tree_rss = tree_pss = 0
    most = 1
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        procs = _tree(pid)
        sizes = [_rss_pss_kb(p) for p in procs]
        tree_rss, tree_pss = max(tree_rss, sum(r for r, _ in sizes)), max(tree_pss, sum(p for _, p in sizes))
        most = max(most, len(procs))
        time.sleep(0.02)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"import of {path} failed with status {status}")
    own = usage.ru_maxrss / 1024
    return own, max(tree_rss / 1024, own), max(tree_pss / 1024, 0.0), most, json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0)
    parser.add_argument("--small-mb", type=float, default=1.0)
    parser.add_argument("--spread", type=int, default=40, help="the large size again over this many files (0: not)")
    parser.add_argument("--dry-run", action="store_true", help="import with --dry-run (no ledger written)")
    args = parser.parse_args()
    if not (0 < args.small_mb <= args.mb <= 2000) or not 0 <= args.spread <= 2000:
        parser.error("sizes must satisfy 0 < --small-mb <= --mb <= 2000, and --spread 0..2000")
    cases = [("small", args.small_mb, 1), ("large", args.mb, 1)] + ([("spread", args.mb, args.spread)] if args.spread else [])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = {}
        for label, size, files in cases:
            path, requests = write_transcripts(root / label / "claude", size, files)
            # --jobs 2 for the spread: its workers are what it measures, whatever the load (the default
            # starts them only with an idle core).
            extra = ["--jobs", "2"] if files > 1 else []
            own, tree_rss, tree_pss, procs, report = peak_rss_mb(path, root / label / "home", args.dry_run, extra)
            assert report["imported"]["requests"] == requests, (report["imported"], requests)
            mb = sum(f.stat().st_size for f in Path(path).rglob("*.jsonl")) if files > 1 else path.stat().st_size
            results[label] = (mb / 1e6, files, requests, own, tree_rss, tree_pss, report["reading_processes"])
    mode = "--dry-run" if args.dry_run else "into a fresh ledger"
    print(f"transcript import ({mode}): peak RSS of the importing process; of the process tree (importer + workers),"
          " summed RSS and PSS sampled every 20 ms")
    for label, (mb, files, requests, own, tree_rss, tree_pss, readers) in results.items():
        print(f"  {label:6} {mb:8.1f} MB in {files:3} file(s), {requests:6,} requests, read by {readers} process(es): "
              f"peak RSS {own:6.1f} MB; tree {tree_rss:6.1f} MB RSS, {tree_pss:6.1f} MB PSS")
    small, large = results["small"][3], results["large"][4]
    print(f"large over small: x{large / small:.2f} peak RSS for x{results['large'][0] / results['small'][0]:.0f} the file size")
    if args.mb >= 100:
        verdict = "met" if large < GOAL_MB else "NOT met"
        print(f"goal: a {args.mb:.0f} MB transcript under {GOAL_MB} MB peak RSS (the whole tree): {verdict}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
