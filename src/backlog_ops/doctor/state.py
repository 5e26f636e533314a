"""Where backlog-ops keeps its state, and whether each part answers: home, ledger, context store.

Read-only: nothing here creates the home, a ledger file or a schema. Connections are bounded by
short timeouts. A connection string is shown as scheme://host:port/database only, and every
error text has the string's secrets taken out before it is returned.
"""

from __future__ import annotations

import os
import stat
from types import ModuleType
from typing import Any, Callable
from urllib.parse import quote

from backlog_ops.common.extras import require
from backlog_ops.common.secrets import dsn_location, scrub_dsn
from backlog_ops.common.settings import settings
from backlog_ops.doctor.report import OK, PROBLEM, Check
from backlog_ops.errors import BacklogOpsError

__all__ = ["describe_dsn", "redact", "state_checks"]

CONNECT_TIMEOUT = 3  # seconds, for PostgreSQL and Redis


def state_checks() -> list[Check]:
    conf = settings()
    return [_home(conf.home), _ledger(conf), _contexts(conf)]


# -- connection strings ----------------------------------------------------------------------------


def describe_dsn(dsn: str) -> str:
    """scheme://host:port/database of a connection string: never a user or a secret."""
    scheme = dsn.split("://", 1)[0] + "://" if "://" in dsn else ""
    return scheme + dsn_location(dsn)


def redact(text: str, dsn: str) -> str:
    """`text` (an error message) on one line, with `dsn` and each secret in it masked."""
    return " ".join(scrub_dsn(text, dsn).split())


# -- the checks ------------------------------------------------------------------------------------


def _home(path: str) -> Check:
    facts = {"path": path}
    if not os.path.lexists(path):
        return Check("state", "home", OK, f"{path} (not created yet: the first command that records anything creates it)", facts=facts)
    if not os.path.isdir(path):
        return Check("state", "home", PROBLEM, f"{path} exists and is not a directory",
                     fix=f"move {path} aside, or point BACKLOG_HOME at a directory", facts=facts)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    facts["mode"] = f"{mode:04o}"
    if not os.access(path, os.W_OK | os.X_OK):
        return Check("state", "home", PROBLEM, f"{path} is not writable by you", fix=f"chown -R \"$USER\" {path}", facts=facts)
    if mode & 0o077:
        return Check("state", "home", PROBLEM, f"{path} is open to other users (mode {mode:04o}): it holds the master key and your contexts",
                     fix=f"chmod 700 {path}", facts=facts)
    return Check("state", "home", OK, f"{path} (mode {mode:04o})", facts=facts)


def _ledger(conf) -> Check:
    if conf.ledger_backend == "postgres":
        return _postgres_ledger(conf.ledger_url, conf.ledger_schema)
    from backlog_ops.ledger.sqlite import default_ledger_path

    path = str(default_ledger_path())
    facts = {"backend": "sqlite", "path": path}
    if not os.path.exists(path):
        return Check("state", "ledger", OK, f"SQLite {path} (not created yet: the first recorded call creates it)", facts=facts)
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=5)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            calls = db.execute("SELECT count(*) FROM calls").fetchone()[0] if "calls" in tables else 0
        finally:
            db.close()
    except sqlite3.Error as exc:
        return Check("state", "ledger", PROBLEM, f"SQLite {path} cannot be read: {exc}",
                     fix=f"check the file's owner and mode (ls -l {path}), or move it aside", facts=facts)
    facts["calls"] = calls
    return Check("state", "ledger", OK, f"SQLite {path}, {calls:,} call{'' if calls == 1 else 's'} recorded", facts=facts)


def _postgres_ledger(url: str, schema: str) -> Check:
    facts = {"backend": "postgres", "where": describe_dsn(url), "schema": schema}

    def schema_table(psycopg):
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as db:
            return db.execute("SELECT to_regclass(%s)", (f'"{schema}".calls',)).fetchone()[0]

    found, problem = _ask_service(
        "ledger", "PostgreSQL", url, facts, schema_table, lambda psycopg: (psycopg.Error, ValueError),
        module="psycopg", extra="postgres", needed_by="The PostgreSQL ledger (BACKLOG_LEDGER_URL)",
        fix="make BACKLOG_LEDGER_URL reachable (start PostgreSQL, create the database), "
            "or unset it to keep the ledger in SQLite under the home")
    if problem:
        return problem
    where = facts["where"]
    facts["schema_exists"] = found is not None
    if found is None:
        return Check("state", "ledger", OK, f"PostgreSQL {where} answers; schema {schema} not created yet (the proxy creates it)", facts=facts)
    return Check("state", "ledger", OK, f"PostgreSQL {where}, schema {schema}", facts=facts)


def _contexts(conf) -> Check:
    if conf.context_backend == "redis":
        return _redis_contexts(conf.context_url, conf.context_prefix)
    from backlog_ops.context.backend import make_resolver
    from backlog_ops.context.fields import describe_context

    facts = {"backend": "files", "global_file": conf.context_file}
    warnings: list[str] = []
    try:
        found = make_resolver(warn=warnings.append).resolve(None, None)
    except BacklogOpsError as exc:
        warnings.append(str(exc))
        found = None
    if warnings:
        return Check("state", "contexts", PROBLEM, f"files under {conf.home}: {warnings[0]}",
                     fix="backlog-ops context clear (or delete the file named)", facts=facts)
    in_force = describe_context(found.context) if found else "no global context set"
    return Check("state", "contexts", OK, f"files under {conf.home} ({in_force})", facts=facts)


def _redis_contexts(url: str, prefix: str) -> Check:
    facts = {"backend": "redis", "where": describe_dsn(url), "prefix": prefix}

    def ping(redis):
        client = redis.Redis.from_url(url, socket_timeout=CONNECT_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()

    _, problem = _ask_service(
        "contexts", "Redis", url, facts, ping, lambda redis: (redis.RedisError, ValueError, OSError),
        module="redis", extra="redis", needed_by="The Redis context store (BACKLOG_CONTEXT_URL)",
        fix="make BACKLOG_CONTEXT_URL reachable (start Redis there), or unset it to keep contexts in files under the home")
    return problem or Check("state", "contexts", OK, f"Redis {facts['where']} (prefix {prefix})", facts=facts)


def _ask_service(part: str, service: str, url: str, facts: dict, ask: Callable[[ModuleType], Any],
                 failures: Callable[[ModuleType], tuple[type[Exception], ...]], *, module: str, extra: str,
                 needed_by: str, fix: str) -> tuple[Any, Check | None]:
    """(what `ask(client module)` found at `url`, None), or (None, the PROBLEM check of `part`) when
    the client `module` (from the `extra`) is not installed or the service does not answer: raises
    one of the module's `failures`. No error text keeps the URL's secrets."""
    where = facts["where"]
    try:
        found_module = require(module, extra, needed_by)
    except BacklogOpsError as exc:
        return None, Check("state", part, PROBLEM, f"{service} {where}: {exc}", fix=f"pip install 'backlog-ops[{extra}]'",
                           facts=facts)
    try:
        return ask(found_module), None
    except failures(found_module) as exc:
        return None, Check("state", part, PROBLEM, f"{service} {where} does not answer: {redact(str(exc), url)}",
                           fix=fix, facts=facts)
