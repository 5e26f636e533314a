"""The MCP tools' work, as plain functions over the context store and the ledger.

Each takes validated input (pydantic models) and the Caller (mcp_server.caller), and returns a
pydantic result; the MCP layer (server.py) only translates. Errors are ToolInputError with a
message that says what to send instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backlog_ops.claude import sessions
from backlog_ops.common.secrets import scrub_dsn
from backlog_ops.common.terminal import printable
from backlog_ops.context.fields import check_field, context_tags, describe_context
from backlog_ops.context.model import ContextInput
from backlog_ops.errors import BacklogOpsError, ToolInputError

from .caller import Caller

__all__ = [
    "ContextOut",
    "ContextResult",
    "SPEND_GROUPS",
    "SpendInput",
    "SpendResult",
    "ToolInputError",
    "clear_context",
    "explain_arguments",
    "get_context",
    "parse_context_input",
    "parse_spend_input",
    "set_context",
    "ticket_spend",
    "unknown_arguments",
]

# ticket_spend's group_by: reports.views.GROUPS but "ticket", most useful first.
SPEND_GROUPS = ("gate", "agent", "model", "skill", "session", "day", "week", "month", "project", "source", "ticket_source")


# -- results ---------------------------------------------------------------------------------------


class ContextOut(ContextInput):
    """A stored context: the fields a caller sets, and when it was set and expires."""

    model_config = ConfigDict(extra="ignore")

    updated_at: str | None = None
    expires_at: str | None = None


class ContextResult(BaseModel):
    """A context after set_context / clear_context / get_context."""

    action: Literal["set", "cleared", "current"]
    scope: Literal["agent", "session", "global"] = Field(description="where the context lives (or was looked up)")
    session_id: str | None = None
    agent_id: str | None = None
    attributed_via: str = Field(description="how the calling session was identified")
    context: ContextOut | None = Field(description="the context now in force for the caller, or null")
    previous: ContextOut | None = None
    tags: list[str] = Field(default_factory=list, description="the tags LLM calls now carry")
    warnings: list[str] = Field(default_factory=list)

    def text(self) -> str:
        who = _who(self.scope, self.session_id, self.agent_id)
        if self.action == "set":
            lines = [f"Context set for {who}: {_describe(self.context)}."]
            lines.append("LLM calls from here on carry: " + " ".join(self.tags))
        elif self.action == "cleared":
            was = _describe(self.previous) if self.previous else "nothing was set"
            lines = [f"Context cleared for {who} (was: {was})."]
            if self.context:
                lines.append(f"Still in force from a wider scope: {_describe(self.context)}.")
            else:
                lines.append("LLM calls are no longer attributed to a ticket.")
        else:
            if self.context is None:
                lines = [f"No context is in force for {who}: LLM calls are not attributed to any ticket. "
                         "Call set_context with ticket_id, gate and agent_type."]
            else:
                lines = [f"In force for {who} (from the {self.scope} scope): {_describe(self.context)}.",
                         f"Expires {self.context.expires_at}. Tags: " + " ".join(self.tags)]
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)


class SpendFigures(BaseModel):
    """Cost, calls and tokens, split as ccusage splits them (reports.views)."""

    cost_usd: float
    calls: int = Field(description="successful calls")
    tokens: int = Field(description="input + output + cache write + cache read tokens")
    failed_calls: int = Field(default=0, description="calls that reached a provider and failed")
    cache_hits: int = Field(default=0, description="calls answered from the proxy's response cache")
    input_tokens: int = Field(default=0, description="prompt tokens neither read from nor written to the prompt cache")
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    @classmethod
    def of(cls, figures: dict, **more) -> dict:
        """This model's fields from a reports.views row or totals."""
        tokens = sum(figures[f] for f in ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens"))
        return {**{f: figures[f] for f in cls.model_fields if f != "tokens" and f in figures}, "tokens": tokens, **more}

    def figures_text(self) -> str:
        from backlog_ops.reports.views_text import summary_line

        return summary_line(self.model_dump())


class SpendRow(SpendFigures):
    key: str | None


class SpendResult(SpendFigures):
    """What a ticket has cost, from the ledger, with its breakdown and budget (backlog_ops.reports.ticket)."""

    ticket_id: str
    by: str
    breakdown: list[SpendRow]
    since: str | None = None
    budget: dict | None = Field(default=None, description="the ticket's budget when budgets are configured, else null")
    remaining_usd: float | None = Field(default=None, description="budget left, when a budget is known")
    warnings: list[str] = Field(default_factory=list)

    def text(self) -> str:
        since = f" since {self.since}" if self.since else ""
        lines = [f"{self.ticket_id}{since}: {self.figures_text()}."]
        lines += _budget_lines(self.budget, self.cost_usd, self.remaining_usd)
        lines += [f"Warning: {w}" for w in self.warnings]
        if self.breakdown:
            lines.append(f"By {self.by}:")
            for row in self.breakdown:
                # Keys are ledger data: Claude Code prints this text in the user's terminal.
                lines.append(f"  {printable(row.key or '(none)')}: {row.figures_text()}")
        else:
            lines.append("No calls recorded" + (" in that period." if self.since else " for this ticket yet."))
        return "\n".join(lines)


def _budget_lines(budget: dict | None, cost: float, remaining: float | None) -> list[str]:
    if not budget:
        return ["No budget is configured for this ticket."]
    lines = []
    limit = budget.get("budget_usd")
    if limit is not None and remaining is not None:
        line = f"Budget ${limit:.4f}: ${remaining:.4f} left ({_pct(cost, limit)} used)."
        if budget.get("over_budget"):
            line += " OVER BUDGET: the proxy refuses new calls for this ticket."
        lines.append(line)
    else:
        lines.append("No dollar budget for this ticket.")
    if isinstance(budget.get("max_escalations"), int):
        used = budget.get("escalations", 0)
        lines.append(f"Escalations to the frontier model: {used} of {budget['max_escalations']} allowed.")
    return lines


def _pct(cost: float, limit: float) -> str:
    return f"{cost / limit * 100:.0f}%" if limit > 0 else "n/a"


def _who(scope: str, session_id: str | None, agent_id: str | None) -> str:
    if scope == "agent":
        return f"agent {agent_id} of session {session_id}"
    if scope == "session":
        return f"session {session_id}"
    return "the global scope (no Claude Code session identified)"


def _describe(ctx: ContextOut | None) -> str:
    return describe_context(ctx.model_dump() if ctx is not None else None)


def _out(ctx: dict | None) -> ContextOut | None:
    return ContextOut(**{k: ctx.get(k) for k in ContextOut.model_fields}) if ctx else None


# -- inputs ----------------------------------------------------------------------------------------


_HINTS = {
    "ticket_id": "send the ticket's id, e.g. ticket_id='FEAT-001' (or '' for work on no ticket)",
    "gate": "send the gate you are starting, e.g. gate='plan', 'implement', 'lint', 'review'",
    "agent_type": "send what kind of agent you are, e.g. agent_type='backend', 'reviewer', 'linter'",
    "project": "send the project's slug, e.g. project='my-api', or leave it out to use the session's project",
    "skill": "send the skill's name, e.g. skill='backlog-implementer', or leave it out",
    "component": "send a short slug, e.g. component='billing', or leave it out",
}


def parse_context_input(**arguments: object) -> ContextInput:
    """Validate set_context's arguments; ToolInputError names each bad field and what to send."""
    try:
        return ContextInput(**arguments)
    except ValidationError as exc:
        raise ToolInputError(_explain(exc)) from None


class SpendInput(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    ticket_id: str | None = None
    group_by: str = "gate"
    since: str | None = None

    @field_validator("ticket_id")
    @classmethod
    def _ticket(cls, value: str | None) -> str | None:
        return check_field("ticket_id", value)

    @field_validator("group_by")
    @classmethod
    def _group(cls, value: str) -> str:
        value = (value or "gate").lower()
        if value not in SPEND_GROUPS:
            raise ValueError(f"group_by {value!r} is not one of {', '.join(SPEND_GROUPS)}")
        return value

    @field_validator("since")
    @classmethod
    def _since(cls, value: str | None) -> str | None:
        if not value:
            return None
        from backlog_ops.common.times import parse_since

        return parse_since(value)


def parse_spend_input(**arguments: object) -> SpendInput:
    try:
        return SpendInput(**arguments)
    except ValidationError as exc:
        raise ToolInputError(_explain(exc, spend=True)) from None


def _explain(exc: ValidationError, spend: bool = False) -> str:
    return explain_arguments("ticket_spend" if spend else "set_context", exc.errors())


def explain_arguments(tool: str, errors: list[dict]) -> str:
    """One message for a tool's bad arguments: each field, what is wrong, and what to send instead.

    `errors` are pydantic's (ValidationError.errors()); their own wording never reaches the model.
    """
    from .spend_report import REPORT_HINTS

    hints = {"ticket_spend": _SPEND_HINTS, "spend_report": REPORT_HINTS}.get(tool, _HINTS)
    problems = []
    for err in errors:
        field = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        kind = err.get("type", "")
        if kind == "missing":
            msg = f"{field} is required"
        elif kind == "extra_forbidden":
            msg = f"there is no argument {field!r}"
        elif kind in _EXPECTED:
            msg = f"{field} must be {_EXPECTED.get(kind, 'of another type')}, not {_json_kind(err.get('input'))}"
        else:
            msg = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
        hint = hints.get(field)
        problems.append(f"{msg}; {hint}" if hint else msg)
    return "Invalid arguments: " + " | ".join(problems)


def unknown_arguments(tool: str, unknown: list[str], known: list[str]) -> str:
    """The message for arguments a tool does not take (they are refused, never ignored)."""
    names = ", ".join(repr(n) for n in unknown)
    takes = ", ".join(known) if known else "no arguments"
    return f"Invalid arguments: {tool} has no argument {names}; it takes {takes}. Send only those."


_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "an object",
    "list_type": "a list",
}


def _json_kind(value: object) -> str:
    """What the caller sent, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"[:60]
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


_SPEND_HINTS = {
    "ticket_id": "send a ticket id such as 'FEAT-001', or leave it out for the ticket you are on",
    "group_by": f"send one of {', '.join(repr(g) for g in SPEND_GROUPS)}, or leave it out for 'gate'",
    "since": "send YYYY-MM-DD, an ISO 8601 time, or a span such as '90m', '24h', '7d'",
}



# -- the tools' work -------------------------------------------------------------------------------


def _store():
    """The configured store: files under BACKLOG_HOME, or Redis for a team gateway (BACKLOG_CONTEXT_URL)."""
    from backlog_ops.context.backend import open_store

    return open_store()


def _resolver(warnings: list[str] | None = None):
    """The resolver the proxy uses for this store, so get_context answers what calls are tagged with."""
    from backlog_ops.context.backend import make_resolver

    return make_resolver(warn=warnings.append if warnings is not None else None)


def _default_project(caller: Caller) -> str:
    record = sessions.session_record(caller.session_id) if caller.session_id else None
    project = (record or {}).get("project")
    if isinstance(project, str) and project:
        return project
    from backlog_ops.project.file import default_project

    try:
        return default_project(Path(caller.cwd))
    except BacklogOpsError as exc:
        raise ToolInputError(f"{exc}; or send project='my-api' explicitly") from None


def _context_result(caller: Caller, action: str, *, scope: str | None = None, **fields) -> ContextResult:
    """A ContextResult about the caller (scope: where the context was found, default the caller's own)."""
    return ContextResult(
        action=action,
        scope=scope or caller.scope.kind,
        session_id=caller.session_id,
        agent_id=caller.scope.agent_id,
        attributed_via=caller.via,
        **fields,
    )


def _in_force(found) -> dict:
    """The context and tags of a resolved context (None: nothing in force)."""
    return {"context": _out(found.context) if found else None, "tags": list(found.tags) if found else []}


def set_context(data: ContextInput, caller: Caller, *, ttl: int | None = None) -> ContextResult:
    """Store the context at the caller's scope (its agent, else its session, else global)."""
    fields = data.model_dump()
    if not fields.get("project"):
        fields["project"] = _default_project(caller)
    try:
        change = _store().set(fields, caller.scope, ttl=ttl, project_dir=Path(caller.cwd))
    except ValueError as exc:
        raise ToolInputError(str(exc)) from None
    return _context_result(
        caller, "set", context=_out(change.new), previous=_out(change.old),
        tags=context_tags(change.new or {}), warnings=change.warnings,
    )


def clear_context(caller: Caller) -> ContextResult:
    """Clear the caller's own scope; report what (if anything) is still in force from a wider one."""
    change = _store().clear(caller.scope, project_dir=Path(caller.cwd))
    found = _resolver().resolve(caller.session_id, caller.scope.agent_id)
    return _context_result(caller, "cleared", previous=_out(change.old), warnings=change.warnings, **_in_force(found))


def get_context(caller: Caller) -> ContextResult:
    """The context in force for the caller (agent, else session, else global), as the proxy sees it."""
    warnings: list[str] = []
    found = _resolver(warnings).resolve(caller.session_id, caller.scope.agent_id)
    return _context_result(caller, "current", scope=found.scope.kind if found else None, warnings=warnings, **_in_force(found))


def ticket_spend(data: SpendInput, caller: Caller) -> SpendResult:
    """A ticket's cost, calls and tokens from the ledger, broken down by data.group_by, with its budget."""
    ticket = data.ticket_id
    if ticket is None:
        current = get_context(caller).context
        ticket = current.ticket_id if current else None
        if not ticket:
            raise ToolInputError(
                "No ticket is in force for this session: send ticket_id, e.g. ticket_id='FEAT-001'"
            )
    from backlog_ops.reports.ticket import ticket_spend as read_ticket_spend

    try:
        spend = read_ticket_spend(ticket, by=data.group_by, since=data.since, project_dir=Path(caller.cwd))
    except BacklogOpsError as exc:
        raise ToolInputError(f"cannot read the spend ledger: {scrub_dsn(exc)}") from None
    report = spend.report
    return SpendResult(
        **SpendFigures.of(report["totals"]),
        ticket_id=ticket,
        by=data.group_by,
        breakdown=[SpendRow(**SpendFigures.of(row, key=row[data.group_by])) for row in report["rows"]],
        since=data.since,
        budget=spend.budget,
        remaining_usd=spend.remaining_usd,
        warnings=[f"budget unknown: {spend.budget_problem}"] if spend.budget_problem else [],
    )
