"""LiteLLM proxy configs shipped with backlog-ops (installed as backlog_ops.config)."""
