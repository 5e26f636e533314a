"""Answers read from the ledger, shared by the CLI and the MCP server."""
