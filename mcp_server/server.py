"""The backlog-ops MCP server: `backlog-ops mcp` (stdio), `claude mcp add backlog-ops -- backlog-ops mcp`.

Five tools, each a thin layer over mcp_server.core: set_context, clear_context, get_context,
ticket_spend and spend_report. Results are structured (an output schema and structuredContent) and readable (a
text summary). Bad arguments come back as tool errors that name the field and say what to send
instead; arguments a tool does not take are refused, never ignored.
"""

from __future__ import annotations

from typing import Annotated, Callable

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

from backlog_ops import __version__
from backlog_ops.common.secrets import scrub_dsn
from backlog_ops.errors import BacklogOpsError

from . import core, spend_report as report_tool
from .caller import CallerResolver

__all__ = ["INSTRUCTIONS", "build_server", "main"]

INSTRUCTIONS = """\
backlog-ops attributes every LLM call of this Claude Code session to a ticket, a gate, an agent \
type, a project and a skill, so that each ticket's cost is known. Call set_context whenever you \
start work on a ticket or move to another gate (plan, implement, lint, review, ...); a subagent \
calling it sets its own context without touching the main session's. Call clear_context when the \
work is done. Call ticket_spend to see what a ticket has cost and how much budget is left, \
before escalating to a more expensive model; spend_report compares tickets (or days, models, gates)."""

_TICKET = Field(description="The ticket you work on, e.g. 'FEAT-001'. Send '' for work that belongs to no ticket yet.")
_GATE = Field(description="The gate or phase you are starting, e.g. 'plan', 'implement', 'lint', 'review', 'prescan', 'refine'.")
_AGENT = Field(description="What kind of agent you are, e.g. 'backend', 'frontend', 'reviewer', 'linter', 'security-reviewer'.")
_SKILL = Field(default=None, description="The skill you run, e.g. 'backlog-implementer'. Leave it out when no skill runs.")
_PROJECT = Field(default=None, description="The project's slug. Leave it out: the session's project is used.")
_COMPONENT = Field(default=None, description="Optional part of the project, e.g. 'billing'.")


class _StrictArgumentsServer(MCPServer):
    """An MCPServer that refuses arguments a tool does not take, and explains bad ones in plain words.

    The SDK ignores unknown arguments and reports a wrong type with pydantic's own text; a model
    that sent `ticket` for `ticket_id` would then see its call "succeed" without the ticket.
    """

    _arguments: dict[str, list[str]] | None = None

    async def list_tools(self):
        tools = await super().list_tools()
        for tool in tools:
            # Say it in the schema too, so a client can check before it calls.
            tool.input_schema = {**tool.input_schema, "additionalProperties": False}
        return tools

    async def call_tool(self, name, arguments, context=None):
        if self._arguments is None:
            self._arguments = {t.name: list((t.input_schema.get("properties") or {})) for t in await super().list_tools()}
        known = self._arguments.get(name)
        unknown = sorted(set(arguments) - set(known)) if known is not None else []
        if unknown:
            raise ToolError(core.unknown_arguments(name, unknown, known))
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(core.explain_arguments(name, exc.__cause__.errors())) from None
            raise


def build_server(resolver: CallerResolver | None = None) -> MCPServer:
    """The server with its five tools; `resolver` identifies callers (tests pass their own)."""
    callers = resolver if resolver is not None else CallerResolver()
    # WARNING: a stdio server's stderr lands in Claude Code's MCP log; a failed tool call is the
    # model's business (it gets the error), not a log line.
    server = _StrictArgumentsServer("backlog-ops", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")

    def caller_of(ctx: Context):
        return callers.resolve(ctx.request_context.meta)

    @server.tool(annotations=ToolAnnotations(title="Set the ticket context", idempotent_hint=True, destructive_hint=False, open_world_hint=False))
    def set_context(
        ticket_id: Annotated[str, _TICKET],
        gate: Annotated[str, _GATE],
        agent_type: Annotated[str, _AGENT],
        ctx: Context,
        skill: Annotated[str | None, _SKILL] = None,
        project: Annotated[str | None, _PROJECT] = None,
        component: Annotated[str | None, _COMPONENT] = None,
    ) -> Annotated[CallToolResult, core.ContextResult]:
        """Say which ticket and gate you are working on, so that every LLM call you make from now on is attributed to it.

        Call it when you start a ticket, and again at each new gate (plan -> implement -> lint ->
        review ...). From a subagent it sets that subagent's own context; from the main
        conversation, the session's. Returns the context now in force and the tags calls carry.
        """
        return _run(lambda: core.set_context(
            core.parse_context_input(ticket_id=ticket_id, gate=gate, agent_type=agent_type, skill=skill,
                                     project=project, component=component),
            caller_of(ctx),
        ))

    @server.tool(annotations=ToolAnnotations(title="Clear the ticket context", idempotent_hint=True, destructive_hint=False, open_world_hint=False))
    def clear_context(ctx: Context) -> Annotated[CallToolResult, core.ContextResult]:
        """Stop attributing your LLM calls to the current ticket and gate: call it when the ticket's work is done (after the commit) or abandoned.

        Clears your own context (a subagent's, or the session's) and says what, if anything, is
        still in force from a wider scope.
        """
        return _run(lambda: core.clear_context(caller_of(ctx)))

    @server.tool(annotations=ToolAnnotations(title="Show the ticket context", read_only_hint=True, open_world_hint=False))
    def get_context(ctx: Context) -> Annotated[CallToolResult, core.ContextResult]:
        """Show which ticket, gate, agent type and skill your LLM calls are attributed to right now, and where that context comes from."""
        return _run(lambda: core.get_context(caller_of(ctx)))

    @server.tool(annotations=ToolAnnotations(title="What a ticket has cost", read_only_hint=True, open_world_hint=False))
    def ticket_spend(
        ctx: Context,
        ticket_id: Annotated[str | None, Field(default=None, description="The ticket, e.g. 'FEAT-001'. Leave it out for the ticket you are working on.")] = None,
        group_by: Annotated[str, Field(default="gate", description="Break the cost down by 'gate', 'agent', 'model', 'skill', 'session' or 'day'.")] = "gate",
        since: Annotated[str | None, Field(default=None, description="Only calls since then: 'YYYY-MM-DD', an ISO 8601 time, or '90m', '24h', '7d'.")] = None,
    ) -> Annotated[CallToolResult, core.SpendResult]:
        """What a ticket has cost so far: dollars, tokens and LLM calls, broken down by gate, agent, model or skill, with the ticket's budget and what is left of it when a budget is set.

        Check it before escalating to the expensive 'frontier' model, and before starting
        another round of a gate that has already cost a lot.
        """
        return _run(lambda: core.ticket_spend(
            core.parse_spend_input(ticket_id=ticket_id, group_by=group_by, since=since), caller_of(ctx)
        ))

    @server.tool(annotations=ToolAnnotations(title="Spend over all tickets", read_only_hint=True, open_world_hint=False))
    def spend_report(
        group_by: Annotated[str, Field(default="ticket", description="One or two of ticket, day, week, month, model, gate, agent, skill, project, session, source, comma-separated: 'ticket', 'ticket,day', 'model'.")] = "ticket",
        since: Annotated[str | None, Field(default=None, description="Only calls since then: 'YYYY-MM-DD', an ISO 8601 time, or '24h', '7d', '1mo' back from now.")] = None,
        until: Annotated[str | None, Field(default=None, description="Only calls before then, in the same forms; a date includes that whole day.")] = None,
        project: Annotated[str | None, Field(default=None, description="Only this project's calls. Leave it out for every project.")] = None,
        ticket_id: Annotated[str | None, Field(default=None, description="Only this ticket's calls ('-': calls with no ticket). Leave it out for every ticket.")] = None,
        top: Annotated[int | None, Field(default=10, ge=1, le=1000, description="Keep the N most expensive groups; the rest are summed as '(others)'.")] = 10,
    ) -> Annotated[CallToolResult, report_tool.SpendReportResult]:
        """What LLM calls have cost across tickets, most expensive first: e.g. the most expensive tickets this week (since='7d'), cost per day, per model or per gate, with input, output and cache tokens and failed calls.

        Use ticket_spend for one ticket and its budget.
        """
        return _run(lambda: report_tool.spend_report(group_by=group_by, since=since, until=until, project=project,
                                              ticket_id=ticket_id, top=top))

    return server


def _run(work: Callable[[], core.ContextResult | core.SpendResult | report_tool.SpendReportResult]) -> CallToolResult:
    try:
        result = work()
    except core.ToolInputError as exc:
        raise ToolError(scrub_dsn(exc)) from None
    except BacklogOpsError as exc:
        # The model reads this (and Claude Code may show it): a backend's error can echo its DSN.
        raise ToolError(f"backlog-ops: {scrub_dsn(exc)}") from None
    return CallToolResult(
        content=[TextContent(type="text", text=result.text())],
        structured_content=result.model_dump(mode="json"),
    )


def main() -> int:
    """Serve on stdio until the client closes stdin (`backlog-ops mcp`)."""
    build_server().run("stdio")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
