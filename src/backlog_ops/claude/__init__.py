"""Claude Code integration: session records the hooks keep, install and uninstall, the MCP server's resident process."""
