"""The import's report: what was imported, what was skipped and what could not be attributed.

Requests with no context at their time take the ticket their git branch names, marked inferred,
else are imported with no ticket (``backlog-ops spend -`` shows them), requests whose model LiteLLM has no price for are imported with cost 0, malformed
lines are not imported; each kind with a count and a few examples.
"""

from __future__ import annotations

from typing import Callable

from backlog_ops.common.terminal import printable

__all__ = ["ImportReport", "render_report"]

EXAMPLES = 5


class ImportReport(dict):
    """The report as plain data (it is printed as JSON as it is), with the methods that fill it."""

    def __init__(self, root: str, dry_run: bool) -> None:
        super().__init__(
            root=root,
            dry_run=dry_run,
            files={"found": 0, "read": 0, "unchanged": 0},
            reading_processes=1,  # the import's own, or this many workers
            lines=0,
            lines_merged=0,
            imported={"requests": 0, "subagent_requests": 0, "inferred_from_branch": 0, "tokens": 0, "cost_usd": 0.0},
            updated=0,
            skipped={"proxied_matched": 0, "proxied_session": 0, "duplicate": 0, "synthetic": 0},
            unattributed={
                "no_context": {"count": 0, "cost_usd": 0.0, "examples": []},
                "unknown_price": {"count": 0, "models": {}, "examples": []},
                "malformed": {"count": 0, "examples": []},
                "unreadable": {"count": 0, "examples": []},
                "not_regular": {"count": 0, "examples": []},
                "config": {"count": 0, "examples": []},
            },
        )

    def problem(self, kind: str, example: str | Callable[[], str], cost: float = 0.0) -> None:
        """Count one unattributed request, line or file of `kind`, keeping the first examples.

        `example` may be a function making it: called only while examples are still kept.
        """
        bucket = self["unattributed"][kind]
        bucket["count"] += 1
        if "cost_usd" in bucket:
            bucket["cost_usd"] = round(bucket["cost_usd"] + cost, 6)
        if len(bucket["examples"]) < EXAMPLES:
            bucket["examples"].append(example() if callable(example) else example)

    def absorb(self, part: dict) -> None:
        """Add the counts and examples of `part`, the report of one file read on its own."""
        self["lines"] += part["lines"]
        for name, count in part["skipped"].items():
            self["skipped"][name] += count
        for kind, theirs in part["unattributed"].items():
            if not theirs["count"]:
                continue
            bucket = self["unattributed"][kind]
            bucket["count"] += theirs["count"]
            if "cost_usd" in bucket:
                bucket["cost_usd"] = round(bucket["cost_usd"] + theirs["cost_usd"], 6)
            for model, count in theirs.get("models", {}).items():
                bucket["models"][model] = bucket["models"].get(model, 0) + count
            bucket["examples"].extend(theirs["examples"][:EXAMPLES - len(bucket["examples"])])

    def malformed(self, where: str, why: str) -> None:
        self.problem("malformed", f"{where}: {why}")

    def unknown_price(self, where: str, model: str | None) -> None:
        shown = model or "(none)"
        self.problem("unknown_price", f"{where} (model {shown})")
        models = self["unattributed"]["unknown_price"]["models"]
        models[shown] = models.get(shown, 0) + 1


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


# What each kind of problem is called in the text report, and what happened to it.
_PROBLEMS = (
    ("no_context", "no context at that time: {n} (${cost:.4f}), imported with no ticket (see `backlog-ops spend -`)", "request"),
    ("unknown_price", "unknown model price: {n}, imported with cost 0: {models}", "request"),
    ("malformed", "malformed: {n}, not imported", "line"),
    ("unreadable", "unreadable: {n}", "file"),
    ("not_regular", "not regular files (FIFOs, devices, sockets): {n}, skipped unread", "file"),
    ("config", "project settings that could not be read: {n}, no ticket inferred from their branches", "file"),
)


def render_report(report: dict) -> str:
    """The report as the text `backlog-ops import transcripts` prints."""
    f, imp, skip, un = report["files"], report["imported"], report["skipped"], report["unattributed"]
    verb = "would import" if report["dry_run"] else "imported"
    out = [
        f"transcripts: {printable(report['root'])}",
        f"  files: {f['found']} found, {f['read']} read"
        + (f" (by {report['reading_processes']} processes)" if report.get("reading_processes", 1) > 1 else "")
        + f", {f['unchanged']} unchanged since the last import",
        f"  {verb} {_n(imp['requests'], 'request')} ({imp['subagent_requests']} from subagents), "
        f"{imp['tokens']:,} tokens, ${imp['cost_usd']:.4f}"
        + (f", {imp['inferred_from_branch']:,} on tickets inferred from the git branch" if imp.get("inferred_from_branch") else "")
        + (f" ({report['updated']} updating rows of an earlier import)" if report["updated"] else ""),
    ]
    skipped = [
        (skip["proxied_matched"], "already recorded by the proxy (matched row by row)"),
        (skip["proxied_session"], "in sessions the proxy was recording at that time"),
        (skip["duplicate"], "copies of a request in another transcript"),
        (skip["synthetic"], "synthetic messages without usage"),
        (report["lines_merged"], "lines that were parts of a request already counted"),
    ]
    if any(n for n, _ in skipped):
        out.append("  not counted again:")
        out += [f"    {n:,} {why}" for n, why in skipped if n]
    problems = []
    for kind, text, noun in _PROBLEMS:
        bucket = un[kind]
        if not bucket["count"]:
            continue
        models = ", ".join(f"{m} ({n})" for m, n in sorted(bucket.get("models", {}).items()))
        problems.append("  " + printable(text.format(n=_n(bucket["count"], noun), cost=bucket.get("cost_usd", 0.0), models=models)))
        # File names and models come from the transcripts: shown with control characters escaped.
        problems += [f"      e.g. {printable(e)}" for e in bucket["examples"]]
    if problems:
        out.append("could not attribute:")
        out += problems
    elif f["read"]:
        out.append("everything read was attributed")
    if report["dry_run"]:
        out.append("dry run: nothing was written")
    return "\n".join(out) + "\n"
