"""backlog-ops: attribute every LLM call of a coding agent to its ticket, gate, project, agent and skill.

Imports here stay light: Claude Code hooks import this package and must start fast.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
