"""Peak memory of `backlog-ops import transcripts` on a large transcript vs. a small one, same run.

    .venv/bin/python bench/transcript_memory.py [--mb 100] [--small-mb 1] [--dry-run]

Writes two Claude Code-shaped transcripts (bench/transcript_corpus.py: one session each, ~400
requests per MB, responses over several lines, tool results with no usage), imports each in its
own process into its own BACKLOG_HOME (a fresh ledger; `--dry-run` to write nothing), and prints
each process's peak RSS (ru_maxrss), the ratio, and the goal: a 100 MB transcript under 150 MB.
A streaming importer's peak grows with the number of requests (kept to be merged and attributed),
not with the file's size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transcript_corpus import write_corpus  # noqa: E402

BIN = Path(sys.executable).parent / "backlog-ops"
GOAL_MB = 150
REQUESTS_PER_MB = 400  # about the issue 13 corpus's 97,500 requests in ~210 MB, a little denser


def write_transcript(directory: Path, megabytes: float) -> tuple[Path, int]:
    """One main-session transcript of about `megabytes` MB; (its path, the number of requests in it)."""
    corpus = write_corpus(directory, files=1, megabytes=megabytes, requests=max(1, int(megabytes * REQUESTS_PER_MB)),
                          seed=7)
    return corpus.largest, corpus.requests


def peak_rss_mb(path: Path, home: Path, dry_run: bool) -> tuple[float, dict]:
    """Run the import as its own process; (its peak RSS in MB, its JSON report)."""
    home.mkdir(mode=0o700)
    out = home / "report.json"
    env = {**os.environ, "BACKLOG_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "BACKLOG_PROGRESS": "0"}
    argv = [str(BIN), "import", "transcripts", str(path), "--json"] + (["--dry-run"] if dry_run else [])
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.execve(str(BIN), argv, env)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"import of {path} failed with status {status}")
    return usage.ru_maxrss / 1024, json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0)
    parser.add_argument("--small-mb", type=float, default=1.0)
    parser.add_argument("--dry-run", action="store_true", help="import with --dry-run (no ledger written)")
    args = parser.parse_args()
    if not (0 < args.small_mb <= args.mb <= 2000):
        parser.error("sizes must satisfy 0 < --small-mb <= --mb <= 2000")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = {}
        for label, size in (("small", args.small_mb), ("large", args.mb)):
            path, requests = write_transcript(root / label / "claude", size)
            rss, report = peak_rss_mb(path, root / label / "home", args.dry_run)
            assert report["imported"]["requests"] == requests, (report["imported"], requests)
            results[label] = (path.stat().st_size / 1e6, requests, rss)
    mode = "--dry-run" if args.dry_run else "into a fresh ledger"
    print(f"transcript import ({mode}), peak RSS of the importing process")
    for label, (mb, requests, rss) in results.items():
        print(f"  {label:5} transcript {mb:8.1f} MB, {requests:6,} requests: peak RSS {rss:7.1f} MB")
    small, large = results["small"][2], results["large"][2]
    print(f"large over small: x{large / small:.2f} peak RSS for x{results['large'][0] / results['small'][0]:.0f} the file size")
    if args.mb >= 100:
        verdict = "met" if large < GOAL_MB else "NOT met"
        print(f"goal: a {args.mb:.0f} MB transcript under {GOAL_MB} MB peak RSS: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
