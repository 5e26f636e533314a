"""backlog-ops: attribute every LLM call of a coding agent to its ticket, gate, project, agent and skill.

Imports here stay light: Claude Code hooks import this package and must start fast.
"""

import os as _os

__all__ = ["__version__"]

__version__ = "0.1.0"

# The faces Claude Code and LiteLLM load (callbacks/, hooks/, mcp_server/, config/, skills/) sit at
# the top of the repository, as the design card lays it out; installed, they are subpackages of
# backlog_ops (pyproject's package-dir). Run from a checkout (PYTHONPATH=src), the repository root
# joins this package's path so that `backlog_ops.callbacks` and the others import the same way.
_REPO = _os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
if _os.path.isfile(_os.path.join(_REPO, "pyproject.toml")) and _os.path.isdir(_os.path.join(_REPO, "callbacks")):
    __path__.append(_REPO)  # noqa: F821 - a package's __path__
