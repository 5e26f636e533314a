"""The ticket of a transcript request nothing set a context for: from its line's gitBranch.

The same rule as the SessionStart hook (project.branch), with the settings of the
backlog.config.json in the line's cwd (read once per directory), and the same mark: the
context is inferred, and the ledger row says ticket_source 'branch'.
"""

from __future__ import annotations

from backlog_ops.capture.transcripts.parse import Request
from backlog_ops.capture.transcripts.report import ImportReport
from backlog_ops.errors import BacklogOpsError

__all__ = ["BranchTickets"]


class BranchTickets:
    """Infers contexts from branches, caching each directory's rule and project."""

    def __init__(self, report: ImportReport) -> None:
        self._report = report
        self._rules: dict[str | None, tuple] = {}
        self._inferred: dict[tuple, dict | None] = {}  # (cwd, branch, subagent?) -> the context (read-only)

    def context(self, req: Request) -> dict | None:
        """The inferred context of `req`, or None (no branch, no ticket in it, inference off)."""
        if not req.git_branch:
            return None
        # The same few (directory, branch) pairs recur on every line of a session: read each once.
        key = (req.cwd, req.git_branch, bool(req.agent_id))
        if key in self._inferred:
            return self._inferred[key]
        rule, project = self._rule(req.cwd)
        ticket = rule.ticket(req.git_branch) if rule is not None else None
        context = None
        if ticket is not None:
            from backlog_ops.project.branch import inferred_context

            context = inferred_context(ticket, project, agent_type="subagent" if req.agent_id else "main")
        if len(self._inferred) > 4096:
            self._inferred.clear()
        self._inferred[key] = context
        return context

    def _rule(self, cwd: str | None) -> tuple:
        cached = self._rules.get(cwd)
        if cached is not None:
            return cached
        from backlog_ops.context.fields import slugify
        from backlog_ops.project.branch import BranchRule, branch_rule
        from backlog_ops.project.file import default_project

        rule, project = BranchRule(), None
        if cwd:
            try:
                rule = branch_rule(cwd)
            except BacklogOpsError as exc:
                rule = None  # a project whose settings cannot be read: infer nothing for it
                self._report.problem("config", str(exc))
            try:
                project = default_project(cwd)
            except BacklogOpsError:
                project = slugify(cwd.rstrip("/").rsplit("/", 1)[-1] or "default")
        if len(self._rules) > 4096:
            self._rules.clear()
        self._rules[cwd] = (rule, project)
        return rule, project
