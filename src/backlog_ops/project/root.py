"""A project's root directory: the nearest directory at or above the working one that holds `.git`.

Found by walking up with os.path alone (a few stat calls, no `git` process, no pathlib): the hooks
call it on every context change.
"""

from __future__ import annotations

import os

__all__ = ["project_root"]


def project_root(directory) -> str | None:
    """The git root of `directory` (a repository or a worktree: `.git` as a directory or a file), else None."""
    path = os.path.abspath(os.fspath(directory))
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
