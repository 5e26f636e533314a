"""The names Claude Code knows backlog-ops by: the MCP server, its tools and the hook events.

Install writes them into the user's settings and the hooks match incoming events and tool names
against them, so they are kept here once. Plain constants: the hooks import this module.
"""

__all__ = ["HOOK_EVENTS", "MCP_TOOLS", "SERVER_NAME"]

SERVER_NAME = "backlog-ops"
MCP_TOOLS = ("set_context", "clear_context", "get_context", "ticket_spend", "spend_report")
# The events hooks/hooks.json wires and hooks/events.py handles.
HOOK_EVENTS = ("SessionStart", "PreToolUse", "UserPromptExpansion", "SubagentStart", "SubagentStop", "SessionEnd",
               "UserPromptSubmit", "PostToolUse")
