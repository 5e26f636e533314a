"""Peak memory of `backlog-ops import transcripts` on a large transcript vs. a small one, same run.

    .venv/bin/python bench/transcript_memory.py [--mb 100] [--small-mb 1]

Writes two Claude Code-like transcripts (each turn: a user line with a 20 KB tool result, then
an assistant response over two lines with usage), imports each in its own process with
`--dry-run` into its own BACKLOG_HOME, and prints each process's peak RSS (ru_maxrss) and the
ratio. A streaming importer's peak does not grow with the file; one that reads whole files does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

BIN = Path(sys.executable).parent / "backlog-ops"
SESSION = "5b0c6a4e-1f2d-4c3b-9a8e-7d6f5e4d3c2b"


def write_transcript(path: Path, megabytes: float) -> int:
    """A transcript of about `megabytes` MB; returns the number of requests in it."""
    target = int(megabytes * 1024 * 1024)
    tool_output = "x" * 20_000
    written = requests = 0
    second = 0
    with open(path, "w") as fh:
        while written < target:
            second += 1
            stamp = f"2026-05-{1 + second // 86400 % 28:02d}T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:{second % 60:02d}.000Z"
            lines = [{"type": "user", "sessionId": SESSION, "timestamp": stamp,
                      "message": {"role": "user", "content": [{"type": "tool_result", "content": tool_output}]}}]
            message_id = f"msg_{uuid.uuid4().hex}"
            for out in (1, 120):
                lines.append({"type": "assistant", "sessionId": SESSION, "timestamp": stamp, "requestId": f"req_{message_id}",
                              "message": {"id": message_id, "model": "claude-sonnet-4-5-20250929", "role": "assistant",
                                          "content": [{"type": "text", "text": "Done." * 50}],
                                          "usage": {"input_tokens": 1200, "output_tokens": out,
                                                    "cache_read_input_tokens": 30000, "cache_creation_input_tokens": 500}}})
            text = "".join(json.dumps(line) + "\n" for line in lines)
            fh.write(text)
            written += len(text)
            requests += 1
    return requests


def peak_rss_mb(path: Path, home: Path) -> tuple[float, dict]:
    """Run the import as its own process; (its peak RSS in MB, its JSON report)."""
    home.mkdir(mode=0o700)
    out = home / "report.json"
    env = {**os.environ, "BACKLOG_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.execve(str(BIN), [str(BIN), "import", "transcripts", str(path), "--dry-run", "--json"], env)
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
    args = parser.parse_args()
    if not (0 < args.small_mb <= args.mb <= 2000):
        parser.error("sizes must satisfy 0 < --small-mb <= --mb <= 2000")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = {}
        for label, size in (("small", args.small_mb), ("large", args.mb)):
            (root / label / "t").mkdir(parents=True)
            path = root / label / "t" / f"{SESSION}.jsonl"
            requests = write_transcript(path, size)
            rss, report = peak_rss_mb(path, root / label / "home")
            assert report["imported"]["requests"] == requests, (report["imported"], requests)
            results[label] = (path.stat().st_size / 2**20, requests, rss)
    print("transcript import, peak RSS of the importing process (--dry-run)")
    for label, (mb, requests, rss) in results.items():
        print(f"  {label:5} transcript {mb:8.1f} MB, {requests:6,} requests: peak RSS {rss:7.1f} MB")
    small, large = results["small"][2], results["large"][2]
    print(f"large over small: x{large / small:.2f} peak RSS for x{results['large'][0] / results['small'][0]:.0f} the file size")
    return 0


if __name__ == "__main__":
    sys.exit(main())
