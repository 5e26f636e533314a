"""The MCP tools as data: name, description, the JSON Schema of their arguments, their result model, and the work.

Declared by hand rather than introspected from function signatures so that the server starts
without building pydantic models (server.py); each `run` imports mcp_server.core when first
called. Adding a tool is one more ToolSpec in TOOLS, with its work in core:

    ToolSpec(
        name="spend_report", title="Spend by project",
        description="What this project has spent ...",
        arguments={"since": _optional_text("Only calls since then: 'YYYY-MM-DD' or '24h'.")},
        output="SpendReportResult",              # a pydantic model in core (or "module.Model") with .text()
        annotations=_READ_ONLY,
        run=lambda args, caller: _core().spend_report(_core().parse_report_input(**args), caller),
    ),

The server refuses arguments not in `arguments`, reports missing `required` ones, and leaves
type and value checks to core's parse_* functions (their messages say what to send instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["TOOLS", "ToolSpec"]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str  # for people: Claude Code shows it
    description: str
    arguments: dict[str, dict[str, Any]]  # each argument's JSON Schema
    output: str  # the result model: its name in mcp_server.core (ContextResult, ...), or "module.Model"
    annotations: dict[str, Any]  # ToolAnnotations' hints; its title is `title`
    run: Callable[[dict[str, Any], Any], Any]  # (arguments, Caller) -> a result model of core
    required: tuple[str, ...] = ()

    def output_schema(self) -> dict[str, Any]:
        # "Model" names a model of core; "module.Model" one of another module of this package.
        module, _, model = self.output.rpartition(".")
        if not module:
            return getattr(_core(), model).model_json_schema()
        import importlib

        return getattr(importlib.import_module(f"{__package__}.{module}"), model).model_json_schema()


def _core():
    from . import core

    return core


def _text(description: str, **default: str) -> dict[str, Any]:
    return {"type": "string", **default, "description": description}


def _optional_text(description: str) -> dict[str, Any]:
    return {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "description": description}


_WRITES = {"idempotent_hint": True, "destructive_hint": False, "open_world_hint": False}
_READ_ONLY = {"read_only_hint": True, "open_world_hint": False}


def _set_context(args: dict[str, Any], caller) -> Any:
    core = _core()
    return core.set_context(core.parse_context_input(**args), caller)


def _ticket_spend(args: dict[str, Any], caller) -> Any:
    core = _core()
    return core.ticket_spend(core.parse_spend_input(**args), caller)


def _spend_report(args: dict[str, Any], caller) -> Any:
    from . import spend_report

    return spend_report.spend_report(**spend_report.parse_report_input(**args).model_dump())


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="set_context",
        title="Set the ticket context",
        description=(
            "Say which ticket and gate you are working on, so that every LLM call you make from now on is "
            "attributed to it.\n\n"
            "Call it when you start a ticket, and again at each new gate (plan -> implement -> lint -> "
            "review ...). From a subagent it sets that subagent's own context; from the main conversation, "
            "the session's. Returns the context now in force and the tags calls carry."
        ),
        arguments={
            "ticket_id": _text("The ticket you work on, e.g. 'FEAT-001'. Send '' for work that belongs to no ticket yet."),
            "gate": _text("The gate or phase you are starting, e.g. 'plan', 'implement', 'lint', 'review', 'prescan', 'refine'."),
            "agent_type": _text("What kind of agent you are, e.g. 'backend', 'frontend', 'reviewer', 'linter', 'security-reviewer'."),
            "skill": _optional_text("The skill you run, e.g. 'backlog-implementer'. Leave it out when no skill runs."),
            "project": _optional_text("The project's slug. Leave it out: the session's project is used."),
            "component": _optional_text("Optional part of the project, e.g. 'billing'."),
        },
        required=("ticket_id", "gate", "agent_type"),
        output="ContextResult",
        annotations=_WRITES,
        run=_set_context,
    ),
    ToolSpec(
        name="clear_context",
        title="Clear the ticket context",
        description=(
            "Stop attributing your LLM calls to the current ticket and gate: call it when the ticket's work "
            "is done (after the commit) or abandoned.\n\n"
            "Clears your own context (a subagent's, or the session's) and says what, if anything, is still "
            "in force from a wider scope."
        ),
        arguments={},
        output="ContextResult",
        annotations=_WRITES,
        run=lambda args, caller: _core().clear_context(caller),
    ),
    ToolSpec(
        name="get_context",
        title="Show the ticket context",
        description=(
            "Show which ticket, gate, agent type and skill your LLM calls are attributed to right now, and "
            "where that context comes from."
        ),
        arguments={},
        output="ContextResult",
        annotations=_READ_ONLY,
        run=lambda args, caller: _core().get_context(caller),
    ),
    ToolSpec(
        name="ticket_spend",
        title="What a ticket has cost",
        description=(
            "What a ticket has cost so far: dollars, tokens and LLM calls, broken down by gate, agent, model "
            "or skill, with the ticket's budget and what is left of it when a budget is set.\n\n"
            "Check it before escalating to the expensive 'frontier' model, and before starting another "
            "round of a gate that has already cost a lot."
        ),
        arguments={
            "ticket_id": _optional_text("The ticket, e.g. 'FEAT-001'. Leave it out for the ticket you are working on."),
            "group_by": _text("Break the cost down by 'gate', 'agent', 'model', 'skill', 'session' or 'day'.", default="gate"),
            "since": _optional_text("Only calls since then: 'YYYY-MM-DD', an ISO 8601 time, or '90m', '24h', '7d'."),
        },
        output="SpendResult",
        annotations=_READ_ONLY,
        run=_ticket_spend,
    ),
    ToolSpec(
        name="spend_report",
        title="Spend over all tickets",
        description=(
            "What LLM calls have cost across tickets, most expensive first: e.g. the most expensive tickets "
            "this week (since='7d'), cost per day, per model or per gate, with input, output and cache tokens "
            "and failed calls.\n\n"
            "Use ticket_spend for one ticket and its budget."
        ),
        arguments={
            "group_by": _text("One or two of ticket, day, week, month, model, gate, agent, skill, project, session, "
                              "source, comma-separated: 'ticket', 'ticket,day', 'model'.", default="ticket"),
            "since": _optional_text("Only calls since then: 'YYYY-MM-DD', an ISO 8601 time, or '24h', '7d', '1mo' back from now."),
            "until": _optional_text("Only calls before then, in the same forms; a date includes that whole day."),
            "project": _optional_text("Only this project's calls. Leave it out for every project."),
            "ticket_id": _optional_text("Only this ticket's calls ('-': calls with no ticket). Leave it out for every ticket."),
            "top": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 1000}, {"type": "null"}], "default": 10,
                    "description": "Keep the N most expensive groups; the rest are summed as '(others)'."},
        },
        output="spend_report.SpendReportResult",
        annotations=_READ_ONLY,
        run=_spend_report,
    ),
)
