"""Skills shipped with backlog-ops (installed as backlog_ops.skills): skills/<name>/SKILL.md."""
