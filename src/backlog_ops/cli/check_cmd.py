"""`backlog-ops check-direct-calls`: print what backlog_ops.checks.direct_calls finds, and the exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from backlog_ops.checks.direct_calls import check_paths

__all__ = ["run_check"]


def run_check(paths: list[str], strict: bool, out: TextIO | None = None) -> int:
    """Print the findings; 0 (warning only), 1 with --strict when any is found, 2 for a missing path."""
    out = out or sys.stdout
    missing = [p for p in paths if not Path(p).exists()]
    for p in missing:
        print(f"backlog-ops: check-direct-calls: no such file or directory: {p}", file=sys.stderr)
    findings, count, problems = check_paths([p for p in paths if p not in missing])
    for problem in problems:
        print(f"backlog-ops: check-direct-calls: {problem}", file=sys.stderr)
    if not findings:
        print(f"check-direct-calls: {count} files checked, no direct LLM calls", file=out)
        return 2 if missing else 0
    files = sorted({f.path for f in findings})
    print("⚠️  DIRECT LLM CALLS DETECTED" + ("" if strict else " (warning only: this check does not block the commit)"), file=out)
    for path in files:
        print(f"\n  {path}:", file=out)
        for f in findings:
            if f.path == path:
                print(f"    Line {f.line}: {f.provider}: {f.pattern} — {f.reason}", file=out)
    print(
        f"\n{len(findings)} direct call{'s' if len(findings) != 1 else ''} in {len(files)} file{'s' if len(files) != 1 else ''} "
        "bypass the gateway and track_llm_call: their cost is missing from `backlog-ops spend`.\n"
        "Route the client through the gateway (base_url = the LiteLLM proxy) or wrap the call:\n"
        "    with track_llm_call(model=...) as call:  call.record(client....create(...))\n"
        "A deliberate exception: add  # backlog-ops: allow-direct  on the call's line.",
        file=out,
    )
    if strict:
        return 1
    return 2 if missing else 0
