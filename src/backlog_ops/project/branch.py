"""The ticket a git branch names, for sessions nothing set a context for.

    feat/FEAT-001-login -> FEAT-001     FEAT-001 -> FEAT-001     bugfix/PROJ-12 -> PROJ-12

The built-in rule uses no regular expression (the SessionStart hook must not import `re`): in
a '/'-separated part of the branch, an upper-case key of letters and digits, '-' or '_', and
digits, standing at the start of the part or after '-', '_' or '.', and followed by neither a
letter nor a digit. It finds what BUILTIN_PATTERN finds. backlog.config.json can replace it:

    "attribution": {"inferFromBranch": true, "branchTicketPattern": "(?P<ticket>[A-Z]+-[0-9]+)"}

A pattern is a Python regular expression searched in the branch name; the ticket is its group
`ticket`, else its first group, else the whole match, and must be a valid ticket id.
`"inferFromBranch": false` turns inference off. The branch comes from the repository's HEAD,
read without running git. Plain os and fastjson: the SessionStart hook calls this.
"""

from __future__ import annotations

import os

from backlog_ops.common import fastjson
from backlog_ops.context.fields import INFERRED_FROM_BRANCH, TICKET_SOURCE, check_field, find_ticket_id
from backlog_ops.errors import ConfigError, InvalidContext

__all__ = [
    "BUILTIN_PATTERN",
    "INFERRED_GATE",
    "BranchRule",
    "branch_rule",
    "git_branch",
    "inferred_context",
    "ticket_in_branch",
]

# What the built-in rule matches, as a regular expression (for the README and the tests).
BUILTIN_PATTERN = r"(?:^|[/._-])(?P<ticket>[A-Z][A-Z0-9]{0,15}[-_][0-9]{1,9})(?![0-9A-Za-z])"
# An inferred context knows the ticket, not the gate: reports show its calls under this gate.
INFERRED_GATE = "unspecified"
CONFIG_FILE = "backlog.config.json"

_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_KEY = _UPPER | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_ALNUM = _KEY | frozenset("abcdefghijklmnopqrstuvwxyz")
_BEFORE = frozenset("/._-")
_MAX_HEAD = 4096
_MAX_DEPTH = 64


class BranchRule:
    """Whether to infer a ticket from the branch, and with which pattern (None: the built-in rule)."""

    __slots__ = ("enabled", "pattern")

    def __init__(self, enabled: bool = True, pattern: str | None = None) -> None:
        self.enabled = enabled
        self.pattern = pattern

    def ticket(self, branch: str | None) -> str | None:
        """The ticket `branch` names under this rule, or None."""
        return ticket_in_branch(branch, self.pattern) if self.enabled else None


def branch_rule(directory) -> BranchRule:
    """The `attribution` settings of DIRECTORY/backlog.config.json (defaults when there is none).

    Raises ConfigError, in one line naming the file and the key, for a file or a value that is wrong.
    """
    path = os.path.join(os.fspath(directory), CONFIG_FILE)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return BranchRule()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = fastjson.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object, not {type(data).__name__}")
    section = data.get("attribution", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: attribution must be an object, e.g. {{\"inferFromBranch\": true}}")
    enabled = section.get("inferFromBranch", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{path}: attribution.inferFromBranch must be true or false")
    pattern = section.get("branchTicketPattern")
    if pattern is not None and (not isinstance(pattern, str) or not pattern):
        raise ConfigError(f"{path}: attribution.branchTicketPattern must be a regular expression (a string) or null")
    if pattern is not None:
        problem = pattern_problem(pattern)
        if problem:
            raise ConfigError(f"{path}: attribution.branchTicketPattern: {problem}")
    return BranchRule(enabled, pattern)


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a branch ticket pattern, or None."""
    try:
        _compiled(pattern)
    except Exception as exc:  # noqa: BLE001 - re.error, RecursionError, OverflowError: all say "bad pattern"
        return f"not a valid regular expression ({exc})"
    return None


def git_branch(directory) -> str | None:
    """The branch checked out in the git repository holding DIRECTORY, or None (no repository,
    a detached HEAD, anything unreadable). Reads .git/HEAD (or a worktree's) without running git."""
    try:
        current = os.path.realpath(os.fspath(directory))
    except (TypeError, ValueError, OSError):
        return None
    for _ in range(_MAX_DEPTH):
        dot_git = os.path.join(current, ".git")
        git_dir = None
        if os.path.isdir(dot_git):
            git_dir = dot_git
        elif os.path.isfile(dot_git):
            git_dir = _linked_git_dir(dot_git, current)
        if git_dir is not None:
            return _head_branch(git_dir)
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent
    return None


def _linked_git_dir(dot_git: str, worktree: str) -> str | None:
    """The git directory a `.git` file points to (`gitdir: PATH`: worktrees and submodules)."""
    try:
        with open(dot_git, "rb") as fh:
            text = fh.read(_MAX_HEAD).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    target = text[len("gitdir:"):].strip()
    return os.path.normpath(os.path.join(worktree, target)) if target else None


def _head_branch(git_dir: str) -> str | None:
    try:
        with open(os.path.join(git_dir, "HEAD"), "rb") as fh:
            head = fh.read(_MAX_HEAD).decode("utf-8", "replace").strip()
    except OSError:
        return None
    prefix = "ref: refs/heads/"
    if not head.startswith(prefix):
        return None  # a detached HEAD: no branch
    return head[len(prefix):] or None


def ticket_in_branch(branch: str | None, pattern: str | None = None) -> str | None:
    """The ticket `branch` names: by `pattern` (a regular expression), else by the built-in rule."""
    if not isinstance(branch, str) or not branch:
        return None
    found = _by_pattern(branch, pattern) if pattern is not None else _by_builtin_rule(branch)
    if found is None:
        return None
    try:
        return check_field("ticket_id", found)
    except InvalidContext:
        return None


def _by_builtin_rule(branch: str) -> str | None:
    n = len(branch)
    for start in range(n):
        if branch[start] not in _UPPER or (start and branch[start - 1] not in _BEFORE):
            continue
        end = start + 1
        while end < n and branch[end] in _KEY:
            end += 1
        if end >= n or branch[end] not in "-_":
            continue
        digits = end + 1
        stop = digits
        while stop < n and branch[stop] in _DIGITS:
            stop += 1
        if stop == digits or (stop < n and branch[stop] in _ALNUM):
            continue
        # The shape of a ticket id (key and number lengths) is fields' rule, as for skill arguments.
        candidate = branch[start:stop]
        if find_ticket_id(candidate) == candidate:
            return candidate
    return None


_PATTERNS: dict = {}


def _compiled(pattern: str):
    found = _PATTERNS.get(pattern)
    if found is None:
        import re  # only for a configured pattern: the built-in rule keeps `re` off the hook path

        found = re.compile(pattern)
        if len(_PATTERNS) > 64:
            _PATTERNS.clear()
        _PATTERNS[pattern] = found
    return found


def _by_pattern(branch: str, pattern: str) -> str | None:
    match = _compiled(pattern).search(branch)
    if match is None:
        return None
    if "ticket" in match.re.groupindex:
        return match.group("ticket")
    return match.group(1) if match.re.groups else match.group(0)


def inferred_context(ticket: str, project: str | None, agent_type: str = "main") -> dict:
    """The context a session gets from its branch: the ticket, marked as inferred, and no gate."""
    return {
        "ticket_id": ticket,
        "gate": INFERRED_GATE,
        "agent_type": agent_type,
        "project": project,
        TICKET_SOURCE: INFERRED_FROM_BRANCH,
    }
