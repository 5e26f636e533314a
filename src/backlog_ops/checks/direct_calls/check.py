"""Run the check over source text or over files and directories; returns findings, prints nothing."""

from __future__ import annotations

from typing import Iterable

from backlog_ops.checks.direct_calls.allowlist import gateway_urls
from backlog_ops.checks.direct_calls.files import is_js, iter_files
from backlog_ops.checks.direct_calls.finding import Finding
from backlog_ops.checks.direct_calls.javascript import check_js
from backlog_ops.checks.direct_calls.python_scan import FileChecker

__all__ = ["check_paths", "check_source"]


def check_source(source: str, path: str = "<source>", *, all_gateway: set[str] = frozenset(),
                 gateway: Iterable[str] | None = None) -> list[Finding]:
    """Findings for one file's text (Python, or JS/TS when `path` says so)."""
    urls = list(gateway) if gateway is not None else gateway_urls()
    if is_js(path):
        return check_js(source, path, urls)
    return FileChecker(source, path, urls).findings(set(all_gateway))


def check_paths(paths: Iterable[str]) -> tuple[list[Finding], int, list[str]]:
    """(findings, files checked, problems such as syntax errors) for files and directories."""
    urls = gateway_urls()
    checkers: list[FileChecker] = []
    js: list[tuple[str, str]] = []
    problems: list[str] = []
    count = 0
    for file in iter_files(paths):
        count += 1
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{file}: cannot read: {exc}")
            continue
        if is_js(file.name):
            js.append((source, str(file)))
            continue
        try:
            checkers.append(FileChecker(source, str(file), urls))
        except (SyntaxError, ValueError) as exc:
            problems.append(f"{file}: not checked, cannot parse: {exc}")
    # Clients whose origin a file cannot see (parameters) are judged by all the clients built in
    # the checked files: if every one of a provider's clients goes through the gateway, so do they.
    built: dict[str, set[str]] = {}
    for checker in checkers:
        for provider, verdicts in checker.built_clients().items():
            built.setdefault(provider, set()).update(verdicts)
    all_gateway = {p for p, verdicts in built.items() if verdicts <= {"gateway"}}
    findings = [f for c in checkers for f in c.findings(all_gateway)]
    for source, name in js:
        findings.extend(check_js(source, name, urls))
    findings.sort(key=lambda f: (f.path, f.line))
    return findings, count, problems
