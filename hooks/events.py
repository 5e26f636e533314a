"""What each Claude Code hook event does to the context store.

    SessionStart         record the session, its project and its Claude Code process; after
                         /clear, carry the context over; when nothing set a context, take the
                         ticket the git branch names (marked inferred); tell the model the ticket
    PreToolUse           on our MCP tools: leave a claim ticket saying who calls (session, agent)
                         on the Skill tool: a skill starts (see skill_started)
    UserPromptExpansion  a typed /skill starts
    SubagentStart        the subagent gets its own context: the session's ticket and gate, with
                         the subagent's type as agent type
    SubagentStop         the subagent's context is cleared
    SessionEnd           the session's contexts (its own and its agents') are cleared
    UserPromptSubmit,    what the session has not heard yet: its ticket passed 50/80/100% of its
    PostToolUse          budget, one escalation left, a runaway alert (claude/session_feedback.py)

Every function takes the hook's JSON and returns the JSON to print, or None; `handle` skips a
hook whose JSON names no session, so the events can rely on data["session_id"]. Heavier modules
(the store, the context fields) are imported by the events that read or write contexts, not by
the PreToolUse claim that runs before every call of our MCP tools.
"""

from __future__ import annotations

import os

from backlog_ops.claude import sessions
from backlog_ops.claude.names import MCP_TOOLS, SERVER_NAME

__all__ = ["SKILL_GATES", "handle", "is_backlog_mcp_tool", "ticket_from_args"]

# Our four skills: the gate and agent type their first step runs under (the design's tables).
SKILL_GATES = {
    "backlog-implementer": ("plan", "implementer"),
    "backlog-sentinel": ("prescan", "sentinel"),
    "backlog-ticket": ("generate", "ticket"),
    "backlog-refinement": ("refine", "refinement"),
}
# Skills whose first gate works on the ticket that was current before, when none is named.
_KEEP_TICKET = {"backlog-implementer"}


def handle(event: str | None, data: dict) -> dict | None:
    handler = _HANDLERS.get(event or "")
    if handler is None or _session(data) is None:
        return None
    return handler(data)


# -- helpers -------------------------------------------------------------------------------------


def is_backlog_mcp_tool(tool_name: object) -> bool:
    """mcp__backlog-ops__set_context, or the plugin's mcp__plugin_backlog-ops_backlog-ops__set_context."""
    if not isinstance(tool_name, str) or not tool_name.startswith("mcp__"):
        return False
    server, _, tool = tool_name[5:].rpartition("__")
    return tool in MCP_TOOLS and (server == SERVER_NAME or server.endswith("_" + SERVER_NAME))


def ticket_from_args(args: object) -> str | None:
    """The first ticket-looking word of a skill's arguments: FEAT-001, PROJ_12, BUG-7."""
    if not isinstance(args, str) or not args:
        return None
    from backlog_ops.context.fields import find_ticket_id

    return find_ticket_id(args)


def _slug(value: object) -> str | None:
    """A skill or agent type name made valid for a context field (plugin names keep their ':')."""
    if not isinstance(value, str):
        return None
    from backlog_ops.context.fields import slugify

    return slugify(value.strip(), namespaced=True, default=None)


def _session(data: dict) -> str | None:
    sid = data.get("session_id")
    return sid if isinstance(sid, str) and sid else None


def _agent(data: dict) -> str | None:
    agent = data.get("agent_id")
    return agent if isinstance(agent, str) and agent else None


def _cwd(data: dict) -> str:
    cwd = data.get("cwd")
    return cwd if isinstance(cwd, str) and cwd else os.environ.get("CLAUDE_PROJECT_DIR") or os.getcwd()


def _project(cwd: str) -> str:
    from backlog_ops.context.fields import slugify
    from backlog_ops.project.file import default_project

    try:
        return default_project(cwd)
    except Exception:  # noqa: BLE001 - a bad backlog.config.json must not stop the session
        return slugify(os.path.basename(cwd.rstrip("/")) or "default")


def _store():
    """The configured store (context.backend makes the one choice between files and Redis)."""
    from backlog_ops.context.backend import open_store

    return open_store()


def _scope(session_id: str | None = None, agent_id: str | None = None):
    from backlog_ops.context.scope import Scope

    return Scope(session_id, agent_id)


def _agent_scope(data: dict):
    """The scope of the subagent a SubagentStart or SubagentStop hook is about, or None."""
    agent = _agent(data)
    return _scope(data["session_id"], agent) if agent is not None else None


def _get(store, scope) -> dict | None:
    from backlog_ops.errors import ContextFileError

    try:
        return store.get(scope)
    except ContextFileError:
        return None


def _in_force(store, session_id: str, agent_id: str | None = None) -> dict | None:
    """The context in force for (session, agent), as the proxy resolves it (scope.in_force)."""
    from backlog_ops.context.scope import in_force, scope_chain

    return in_force(_get(store, scope) for scope in scope_chain(session_id, agent_id))


def _fields(ctx: dict) -> dict:
    """A context's fields to set elsewhere; an inferred ticket stays marked as inferred."""
    from backlog_ops.context.fields import CONTEXT_FIELDS, TICKET_SOURCE

    fields = {k: ctx.get(k) for k in CONTEXT_FIELDS}
    if ctx.get(TICKET_SOURCE):
        fields[TICKET_SOURCE] = ctx[TICKET_SOURCE]
    return fields


def _infer_from_branch(store, session_id: str, cwd: str, project: str) -> tuple[dict | None, str | None]:
    """Nothing set a context: take the ticket the git branch names, if any, marked as inferred.

    Returns (the context set or None, the branch). A wrong `attribution` section in
    backlog.config.json raises ConfigError.
    """
    from backlog_ops.project.branch import branch_rule, git_branch, inferred_context

    branch = git_branch(cwd)
    if branch is None:
        return None, None
    ticket = branch_rule(cwd).ticket(branch)
    if ticket is None:
        return None, branch
    change = store.set(inferred_context(ticket, project), _scope(session_id), project_dir=cwd)
    return change.new, branch


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


# -- events --------------------------------------------------------------------------------------


def session_start(data: dict) -> dict | None:
    sid = data["session_id"]
    cwd = _cwd(data)
    project = _project(cwd)
    key = sessions.claude_process_key()
    sessions.record_session(
        sid, cwd=cwd, project=project, source=data.get("source"), transcript_path=data.get("transcript_path"), process=key
    )
    process = sessions.process_record(key) or {}
    store = _store()
    carried = False
    carry = process.get("carry")
    if data.get("source") == "clear" and isinstance(carry, dict) and process.get("carry_from") != sid:
        if _get(store, _scope(sid)) is None:
            store.set(_fields(carry), _scope(sid), project_dir=cwd)
            carried = True
    sessions.record_process(key, sid, cwd=cwd, carry=None, carry_from=None)
    sessions.prune()
    ctx = _in_force(store, sid)
    branch, problem = None, None
    if ctx is None:
        from backlog_ops.errors import ConfigError

        try:
            ctx, branch = _infer_from_branch(store, sid, cwd, project)
        except ConfigError as exc:
            problem = f"backlog-ops: the ticket was not inferred from the git branch: {exc}"
    output: dict = {}
    if problem:
        output["systemMessage"] = problem[:1000]
    if ctx is None:
        return output or None
    from backlog_ops.context.fields import describe_context, is_inferred

    how = " (carried over from before /clear)" if carried else ""
    if is_inferred(ctx) and branch:
        how = f" (the ticket inferred from the git branch {_printable(branch)!r}: nothing set a context)"
    text = (
        f"backlog-ops: this session's LLM calls are attributed to {describe_context(ctx)}{how}. "
        "When you move to another gate or ticket, call the backlog-ops set_context tool "
        "(mcp__backlog-ops__set_context); when the work is done, clear_context; "
        "ticket_spend tells what a ticket has cost."
    )
    output["hookSpecificOutput"] = {"hookEventName": "SessionStart", "additionalContext": text}
    return output



def pre_tool_use(data: dict) -> dict | None:
    tool = data.get("tool_name")
    if is_backlog_mcp_tool(tool):
        return mcp_tool_called(data)
    if tool == "Skill":
        tool_input = data.get("tool_input") or {}
        if isinstance(tool_input, dict):
            return skill_started(data, tool_input.get("skill"), tool_input.get("args"))
    return None


def mcp_tool_called(data: dict) -> None:
    """Leave a claim so the MCP server attributes this call to the right session and agent."""
    sid, cwd = data["session_id"], _cwd(data)
    sessions.record_call(
        str(data.get("tool_use_id") or ""),
        session_id=sid,
        agent_id=_agent(data),
        agent_type=data.get("agent_type"),
        cwd=cwd,
        tool=data.get("tool_name"),
    )
    # Keeps the server's fallback (the process's current session) right even without a claim.
    sessions.record_process(sessions.claude_process_key(), sid, cwd=cwd)
    return None


def user_prompt_expansion(data: dict) -> dict | None:
    if data.get("expansion_type") not in (None, "slash_command"):
        return None
    return skill_started(data, data.get("command_name"), data.get("command_args"))


def skill_started(data: dict, name: object, args: object) -> dict | None:
    """A skill starts: ours set their first gate; any other skill is recorded on the current context."""
    skill = _slug(name)
    if skill is None:
        return None
    sid, agent, cwd = data["session_id"], _agent(data), _cwd(data)
    store = _store()
    current = _in_force(store, sid, agent)
    base = skill.rsplit(":", 1)[-1]
    if base in SKILL_GATES:
        gate, agent_type = SKILL_GATES[base]
        ticket = ticket_from_args(args)
        kept = ticket is None and base in _KEEP_TICKET and current is not None
        if kept:
            ticket = current.get("ticket_id")
        fields = {
            "ticket_id": ticket,
            "gate": gate,
            "agent_type": agent_type,
            "project": (current or {}).get("project") or _project(cwd),
            "skill": skill,
            "component": (current or {}).get("component"),
        }
        if kept:
            from backlog_ops.context.fields import TICKET_SOURCE

            if current.get(TICKET_SOURCE):
                fields[TICKET_SOURCE] = current[TICKET_SOURCE]  # the gate is set, the ticket still inferred
    elif current is not None:
        fields = {**_fields(current), "skill": skill}
    else:
        return None
    store.set(fields, _scope(sid, agent), project_dir=cwd)
    return None


def subagent_start(data: dict) -> dict | None:
    scope = _agent_scope(data)
    if scope is None:
        return None
    store = _store()
    parent = _in_force(store, scope.session_id)
    if parent is not None:
        agent_type = _slug(data.get("agent_type")) or parent.get("agent_type")
        store.set({**_fields(parent), "agent_type": agent_type}, scope, project_dir=_cwd(data))
    return None


def subagent_stop(data: dict) -> dict | None:
    scope = _agent_scope(data)
    if scope is not None:
        store = _store()
        if _get(store, scope) is not None:
            store.clear(scope, project_dir=_cwd(data))
    return None


def session_end(data: dict) -> dict | None:
    sid = data["session_id"]
    store = _store()
    scope = _scope(sid)
    key = sessions.claude_process_key()
    ctx = _get(store, scope)
    if data.get("reason") == "clear" and ctx is not None:
        # /clear starts a new session in the same process: SessionStart(source=clear) takes it over.
        sessions.record_process(key, sid, carry=_fields(ctx), carry_from=sid)
    if store.session_has_contexts(sid):
        store.clear_session(sid, project_dir=_cwd(data))
    sessions.forget_session(sid)
    from backlog_ops.claude.session_feedback import forget

    forget(sid)
    return None


def user_prompt_submit(data: dict) -> dict | None:
    return _feedback(data, "UserPromptSubmit")


def post_tool_use(data: dict) -> dict | None:
    return _feedback(data, "PostToolUse")


def _feedback(data: dict, event: str) -> dict | None:
    """Budget marks and runaway alerts not told yet: for the model (additionalContext) and the user."""
    from backlog_ops.claude.session_feedback import notices

    messages = notices(data["session_id"], _agent(data))
    if not messages:
        return None
    text = "\n".join(messages)
    return {"systemMessage": text, "hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}


_HANDLERS = {
    "SessionStart": session_start,
    "PreToolUse": pre_tool_use,
    "UserPromptExpansion": user_prompt_expansion,
    "SubagentStart": subagent_start,
    "SubagentStop": subagent_stop,
    "SessionEnd": session_end,
    "UserPromptSubmit": user_prompt_submit,
    "PostToolUse": post_tool_use,
}
