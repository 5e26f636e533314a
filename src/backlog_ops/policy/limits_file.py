"""The limits a running proxy enforces, read from a config file and read again when it changes.

The file is $BACKLOG_POLICY_FILE, else the config file the proxy runs (`backlog-ops config
render` writes its `backlog_ops` section from backlog.config.json). It is looked at at most once
per `recheck_seconds`, and parsed again only when its inode, size or mtime changed. A file that
cannot be read or parsed keeps the last limits read, with one warning.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Callable, TypeVar

from backlog_ops.common.settings import env_str
from backlog_ops.common.warnings import Warnings
from backlog_ops.policy.limits import (
    TicketPolicy,
    parse_policy_section,
    parse_routing_section,
    policy_for,
)

__all__ = ["POLICY_FILE_ENV", "SECTION", "PolicyFile"]

log = logging.getLogger("backlog_ops.policy")

POLICY_FILE_ENV = "BACKLOG_POLICY_FILE"
SECTION = "backlog_ops"

T = TypeVar("T")


class PolicyFile:
    """The `backlog_ops` section of one config file: per-project limits and the routing of critical work.

    `path` names the file outright; otherwise $BACKLOG_POLICY_FILE, else `proxy_config()` (the
    file the running proxy was started with), is read. Thread-safe.
    """

    def __init__(
        self,
        path: str | None = None,
        *,
        proxy_config: Callable[[], str | None] = lambda: None,
        warn: Callable[[str], object] | None = None,
        recheck_seconds: float = 1.0,
    ) -> None:
        self._path = path
        self._proxy_config = proxy_config
        self._warn = warn or Warnings(log)
        self._recheck = recheck_seconds
        self._policies: dict[str, TicketPolicy] = {}
        self._routing: tuple[str, tuple[str, ...]] = ("frontier", ())
        self._runaway: dict = {}  # {project: policy.runaway.RunawaySettings}
        self._runaway_default = None
        self._gateway = None  # policy.gateway_budget.GatewayBudgets, or None
        self._semantic: dict = {}  # {project: gateway.semantic_cache.policy.SemanticSettings}
        self._signature: tuple | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def path(self) -> str | None:
        """The file the limits are read from, or None when there is none to read."""
        return self._path or env_str(POLICY_FILE_ENV) or self._proxy_config()

    def policies(self) -> dict[str, TicketPolicy]:
        """{project: TicketPolicy}, as of the file's last readable version."""
        self._refresh()
        return self._policies

    def policy_for(self, project: str | None) -> TicketPolicy | None:
        """The limits for a request of `project` (its own, else the '*' entry), or None."""
        return policy_for(self.policies(), project)

    def routing(self) -> tuple[str, tuple[str, ...]]:
        """(frontier alias, critical tags): critical work is sent to the frontier alias."""
        self._refresh()
        return self._routing

    def runaway_for(self, project: str | None):
        """The runaway-spend limits for a request of `project` (its own, else '*', else the defaults)."""
        from backlog_ops.policy.runaway import default_settings

        self._refresh()
        found = policy_for(self._runaway, project)
        if found is None:
            if self._runaway_default is None:
                self._runaway_default = default_settings()
            found = self._runaway_default
        return found

    def gateway_budgets(self):
        """The gateway-wide budgets (policy.gateway_budget.GatewayBudgets), or None when the file sets none."""
        self._refresh()
        return self._gateway

    def semantic_cache_for(self, project: str | None):
        """The semantic cache settings for a request of `project` (its own, else '*'), or None: off."""
        self._refresh()
        return policy_for(self._semantic, project)

    def semantic_cache_projects(self) -> list[str]:
        """The projects whose semantic cache is on, as of the file's last readable version."""
        self._refresh()
        return sorted(name for name, found in self._semantic.items() if found.enabled)

    def expire(self) -> None:
        """Look at the file again on the next read, however recently it was looked at."""
        self._checked_at = float("-inf")

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self._recheck:
            return
        with self._lock:
            if now - self._checked_at < self._recheck:
                return
            self._checked_at = now
            path = self.path()
            if path:
                self._load(path)

    def _load(self, path: str) -> None:
        try:
            st = os.stat(path)
        except OSError as exc:
            self._warn(f"cannot read the policy in {path}: {exc.strerror or exc}; keeping the last limits read")
            return
        signature = (path, st.st_ino, st.st_mtime_ns, st.st_size)
        if signature == self._signature:
            return
        try:
            import yaml

            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
            section = data.get(SECTION) if isinstance(data, dict) else None
            self._policies = parse_policy_section(section)
            self._routing = parse_routing_section(section)
            self._signature = signature
            self._load_apart(path, section)
            if self._policies:
                log.info("backlog-ops: ticket policy for %s from %s", ", ".join(sorted(self._policies)), path)
        except Exception as exc:  # noqa: BLE001 - keep the last good limits
            self._warn(f"ignoring the policy in {path}: {type(exc).__name__}: {exc}; keeping the last limits read")

    def _load_apart(self, path: str, section: object) -> None:
        # Apart from the limits: a bad runaway, gateway or semantic cache entry must not hold back a
        # ticket's budget. Each keeps its last good settings when its entry is bad.
        from backlog_ops.gateway.semantic_cache.settings import parse_semantic_section
        from backlog_ops.policy.gateway_budget import parse_gateway_budgets
        from backlog_ops.policy.runaway import parse_runaway_section

        self._runaway = self._parsed(path, "runaway alert settings", parse_runaway_section, section, self._runaway)
        self._gateway = self._parsed(path, "gateway budgets", parse_gateway_budgets, section, self._gateway)
        self._semantic = self._parsed(path, "semantic cache settings", parse_semantic_section, section,
                                      self._semantic)

    def _parsed(self, path: str, what: str, parse: Callable[[object], T], section: object, last: T) -> T:
        """`parse(section)`, or `last` with a warning naming `what` when the entry is bad."""
        try:
            return parse(section)
        except Exception as exc:  # noqa: BLE001 - keep the last good settings
            self._warn(f"ignoring the {what} in {path}: {type(exc).__name__}: {exc}")
            return last
