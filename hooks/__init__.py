"""Claude Code hooks of backlog-ops (installed as backlog_ops.hooks); hooks.json wires them."""
