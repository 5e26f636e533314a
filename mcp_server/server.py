"""The backlog-ops MCP server: `backlog-ops mcp` (stdio), `claude mcp add backlog-ops -- backlog-ops mcp`.

Five tools (tools.py), each a thin layer over mcp_server.core: set_context, clear_context,
get_context, ticket_spend and spend_report. Results are structured (an output schema and structuredContent) and readable (a
text summary). Bad arguments come back as tool errors that name the field and say what to send
instead; arguments a tool does not take are refused, never ignored.

Claude Code waits for this server before a session's first request (alwaysLoad), so it starts
on the SDK's low-level `Server` with the tools declared as data (tools.py): no pydantic
introspection of functions at start, and the work (core, pydantic models, the context store,
the ledger) is imported by the first call that needs it.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.server.lowlevel import Server
from mcp_types import CallToolResult, ListToolsResult, TextContent, Tool, ToolAnnotations

from backlog_ops import __version__

from .caller import CallerResolver
from .tools import TOOLS, ToolSpec

__all__ = ["INSTRUCTIONS", "build_server", "main"]

INSTRUCTIONS = """\
backlog-ops attributes every LLM call of this Claude Code session to a ticket, a gate, an agent \
type, a project and a skill, so that each ticket's cost is known. Call set_context whenever you \
start work on a ticket or move to another gate (plan, implement, lint, review, ...); a subagent \
calling it sets its own context without touching the main session's. Call clear_context when the \
work is done. Call ticket_spend to see what a ticket has cost and how much budget is left, \
before escalating to a more expensive model; spend_report compares tickets (or days, models, gates)."""

logger = logging.getLogger(__name__)


def build_server(resolver: CallerResolver | None = None, tools: tuple[ToolSpec, ...] = TOOLS) -> Server:
    """The server with its tools; `resolver` identifies callers (tests pass their own)."""
    callers = resolver if resolver is not None else CallerResolver()
    by_name = {spec.name: spec for spec in tools}
    listed: list[Tool] = []

    async def list_tools(ctx, params) -> ListToolsResult:
        if not listed:  # built on the first tools/list: the output schemas import core's models
            listed.extend(_tool(spec) for spec in tools)
        return ListToolsResult(tools=listed)

    async def call_tool(ctx, params) -> CallToolResult:
        spec = by_name.get(params.name)
        if spec is None:
            return _error(f"Unknown tool: {params.name}")
        return _call(spec, params.arguments or {}, lambda: callers.resolve(ctx.meta))

    return Server("backlog-ops", version=__version__, instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)


def _tool(spec: ToolSpec) -> Tool:
    return Tool(
        name=spec.name,
        description=spec.description,
        # additionalProperties: said in the schema too, so a client can check before it calls.
        input_schema={"type": "object", "properties": spec.arguments,
                      **({"required": list(spec.required)} if spec.required else {}), "additionalProperties": False},
        output_schema=spec.output_schema(),
        annotations=ToolAnnotations(title=spec.title, **spec.annotations),
    )


def _call(spec: ToolSpec, arguments: dict[str, Any], caller) -> CallToolResult:
    """Check the arguments against the declared schema, run the tool, and say what went wrong in plain words.

    The SDK's low-level server validates no arguments: a model that sent `ticket` for
    `ticket_id` would otherwise see its call "succeed" without the ticket.
    """
    from backlog_ops.common.secrets import scrub_dsn
    from backlog_ops.errors import BacklogOpsError, ToolInputError

    from . import core

    known = list(spec.arguments)
    unknown = sorted(set(arguments) - set(known))
    if unknown:
        return _error(core.unknown_arguments(spec.name, unknown, known))
    missing = [{"loc": (name,), "type": "missing"} for name in spec.required if name not in arguments]
    if missing:
        return _error(core.explain_arguments(spec.name, missing))
    # A stdio server's stderr lands in Claude Code's MCP log; a refused or failed call is the
    # model's business (it gets the error), not a log line. Only our own bugs are logged.
    try:
        result = spec.run(arguments, caller())
    except ToolInputError as exc:
        return _error(scrub_dsn(exc))
    except BacklogOpsError as exc:
        # The model reads this (and Claude Code may show it): a backend's error can echo its DSN.
        return _error(f"backlog-ops: {scrub_dsn(exc)}")
    except Exception as exc:  # a bug of ours: the model gets one line, the MCP log the traceback
        logger.exception("backlog-ops tool %s failed", spec.name)
        return _error(f"backlog-ops: {spec.name} failed: {scrub_dsn(exc)}")
    return CallToolResult(
        content=[TextContent(type="text", text=result.text())],
        structured_content=result.model_dump(mode="json"),
    )


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=str(text))], is_error=True)


async def _serve(server: Server) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def main(process_key: str | None = None) -> int:
    """Serve on stdio until the client closes stdin.

    `backlog-ops mcp` runs it through mcp_server.launcher: in its own process (cold), or in a
    child the resident forked for it (resident.py), which passes the Claude Code process's key
    because its own parent is the resident, not Claude Code.
    """
    import anyio

    anyio.run(_serve, build_server(CallerResolver(process_key=process_key)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
