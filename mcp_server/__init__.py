"""The backlog-ops MCP server (installed as backlog_ops.mcp_server): set_context, clear_context, get_context, ticket_spend."""
