"""Turning LLM calls into ledger rows: proxy events, direct SDK calls, Claude Code transcripts."""
