"""`backlog-ops doctor [--json]`: print what the checks found and what to run for each problem."""

from __future__ import annotations

import json
import sys

__all__ = ["run_doctor"]

_MARKS = {"ok": "ok  ", "problem": "FIX ", "info": "--  "}
_AREAS = {"state": "State", "gateway": "Proxy", "claude": "Claude Code"}


def run_doctor(*, url: str | None = None, as_json: bool = False) -> int:
    """Exit 0 when nothing needs fixing, 1 otherwise."""
    from backlog_ops.doctor import run_checks

    report = run_checks(url=url)
    if as_json:
        # ensure_ascii: nothing read from a file reaches the terminal as a control character.
        print(json.dumps(report.as_dict(), indent=2))
        return 0 if report.healthy else 1
    area = None
    for check in report.checks:
        if check.area != area:
            area = check.area
            print(("" if check is report.checks[0] else "\n") + _AREAS.get(area, area))
        print(f"  {_MARKS.get(check.status, '    ')}{_printable(check.name)}: {_printable(check.summary)}")
        if check.fix:
            print(f"        fix: {_printable(check.fix)}")
    problems = len(report.problems)
    print("\n" + ("all is well." if not problems else f"{problems} thing{'s' if problems > 1 else ''} to fix (see 'fix:' above)."))
    sys.stdout.flush()
    return 0 if report.healthy else 1


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
