"""The ledger in PostgreSQL, for a team gateway or several proxy replicas: BACKLOG_LEDGER_URL.

Same rows, same migrations (run in order, each once, under an advisory lock so replicas that
start together do not race), same queries. Tables live in their own schema (default
`backlog_ops`, BACKLOG_LEDGER_SCHEMA) so they never mix with LiteLLM's own tables.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from typing import Iterable

from backlog_ops.common.extras import require
from backlog_ops.common.secrets import scrub_dsn
from backlog_ops.common.times import format_time
from backlog_ops.errors import LedgerError
from backlog_ops.ledger.migrations import MIGRATIONS, MigrationConnection
from backlog_ops.ledger.queries import UPSERT, LedgerQueries, fold_upserts
from backlog_ops.ledger.record import COLUMNS, CallRecord

__all__ = ["PostgresLedger"]

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_MIGRATION_LOCK = 0x6261636B6C6F67  # "backlog": one advisory lock id for all migrations


def _pg(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


def _array_type(annotation: str) -> str:
    """The PostgreSQL array type a CallRecord field is sent as (cache_hit, a flag, as an integer)."""
    kind = annotation.split("|")[0].strip()
    return {"int": "bigint[]", "bool": "integer[]", "float": "double precision[]"}.get(kind, "text[]")


def _batch_upsert() -> str:
    """UPSERT for a whole batch in one statement: one array per column, unnested into rows.

    One statement fires each statement-level trigger once (the rollups, ledger/rollup.py) with
    every row of the batch, instead of once per row.
    """
    from dataclasses import fields

    arrays = ", ".join(f"%s::{_array_type(str(f.type))}" for f in fields(CallRecord))
    values = f"VALUES ({', '.join('?' for _ in COLUMNS)})"
    return _pg(UPSERT).replace(_pg(values), f"SELECT * FROM unnest({arrays})")


_BATCH_UPSERT = _batch_upsert()
_CAST = [{"bigint[]": int, "integer[]": int, "double precision[]": float}.get(_array_type(str(t)))
         for t in CallRecord.__annotations__.values()]


class PostgresLedger(LedgerQueries):
    """A ledger in a PostgreSQL schema. Opening it creates or upgrades the schema."""

    dialect = "postgres"

    def __init__(self, url: str, *, schema: str = "backlog_ops", connect_timeout: int = 10) -> None:
        if not _SCHEMA.fullmatch(schema):
            raise LedgerError(f"ledger schema {schema!r} is not allowed: lower-case letters, digits and '_'")
        psycopg = require("psycopg", "postgres", "The PostgreSQL ledger (BACKLOG_LEDGER_URL)")

        self.url = url
        self.schema = schema
        self._psycopg = psycopg
        try:
            self.db = psycopg.connect(url, connect_timeout=connect_timeout, autocommit=False)
            with self.db.cursor() as cur:
                cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                cur.execute(f'SET search_path TO "{schema}"')
            self.db.commit()
        except psycopg.Error as exc:
            raise LedgerError(f"cannot open ledger {self.where}: {self._why(exc)}") from None
        self._migrate()

    @property
    def where(self) -> str:
        # Never show a password, in whatever form the DSN carries it (URL, ?password=, key=value);
        # a URL is shown from its host on, the user name being no help in finding the server.
        scheme, sep, rest = self.url.partition("://")
        shown = f"{scheme}://{rest.rsplit('@', 1)[-1]}" if sep else self.url
        return f"{scrub_dsn(shown, self.url)} (schema {self.schema})"

    def _why(self, exc: Exception) -> str:
        """A driver error as one line without secrets: libpq's text can echo parts of the DSN."""
        return " ".join(scrub_dsn(exc, self.url).split())

    @staticmethod
    def drop_schema(url: str, schema: str) -> None:
        """Remove a schema and everything in it (tests and benchmarks clean up with this)."""
        import psycopg

        if not _SCHEMA.fullmatch(schema):
            raise LedgerError(f"ledger schema {schema!r} is not allowed")
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    # -- schema ------------------------------------------------------------------------------

    def applied_migrations(self) -> list[str]:
        return [r[0] for r in self._query("SELECT name FROM schema_migrations ORDER BY applied_seq", ())]

    def _migrate(self) -> None:
        psycopg = self._psycopg
        try:
            with self.db.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
            self.db.commit()
        except psycopg.Error as exc:
            raise LedgerError(f"cannot lock ledger {self.where} for migration: {self._why(exc)}") from None
        try:
            with self.db.cursor() as cur:
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL, applied_seq BIGSERIAL)"
                )
                cur.execute("SELECT name FROM schema_migrations")
                applied = {r[0] for r in cur.fetchall()}
            self.db.commit()
            known = {name for name, _ in MIGRATIONS}
            unknown = sorted(applied - known)
            if unknown:
                raise LedgerError(f"ledger {self.where} was migrated by a newer backlog-ops ({', '.join(unknown)}); upgrade backlog-ops")
            for name, migration in MIGRATIONS:
                if name in applied:
                    continue
                try:
                    migration(MigrationConnection(self.db, "postgres"))
                    with self.db.cursor() as cur:
                        cur.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (%s, %s)", (name, format_time(time.time())))
                    self.db.commit()
                except psycopg.Error as exc:
                    self.db.rollback()
                    raise LedgerError(f"ledger {self.where}: migration {name} failed: {self._why(exc)}") from None
        except psycopg.Error as exc:
            self.db.rollback()
            raise LedgerError(f"cannot read the schema of ledger {self.where}: {self._why(exc)}") from None
        finally:
            try:
                with self.db.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
                self.db.commit()
            except psycopg.Error:
                self.db.rollback()

    # -- writes ------------------------------------------------------------------------------

    def record_many(self, records: Iterable[CallRecord]) -> int:
        rows = [r.as_tuple() for r in records]
        if not rows:
            return 0
        # One row per call (a statement may not upsert a row twice), in call id order: replicas
        # writing the same calls lock them in the same order.
        folded = sorted(fold_upserts(rows), key=lambda r: r[0])
        # Arrays must hold one type: 0 and 0.5 as floats, True as 1 (the column is an integer).
        columns = [[None if v is None else cast(v) if cast else v for v in column]
                   for column, cast in zip(zip(*folded), _CAST)]
        try:
            with self.db.cursor() as cur:
                cur.execute(_BATCH_UPSERT, columns)
            self.db.commit()
        except self._psycopg.Error as exc:
            self.db.rollback()
            raise LedgerError(f"cannot write to ledger {self.where}: {self._why(exc)}") from None
        return len(rows)

    # -- reads -------------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        try:
            with self.db.cursor() as cur:
                cur.execute(_pg(sql), params)
                result = cur.fetchall()
            self.db.commit()
            return result
        except self._psycopg.Error as exc:
            self.db.rollback()
            raise LedgerError(f"cannot query ledger {self.where}: {self._why(exc)}") from None

    @contextmanager
    def _snapshot(self):
        """Several reads that see one state of the ledger (REPEATABLE READ, reads only)."""
        psycopg = self._psycopg
        try:
            self.db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            try:

                def query(sql: str, params: tuple) -> list[tuple]:
                    with self.db.cursor() as cur:
                        cur.execute(_pg(sql), params)
                        return cur.fetchall()

                yield query
                self.db.commit()
            finally:
                if self.db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    self.db.rollback()
                # Writes stay READ COMMITTED: concurrent upserts of one call id must wait, not fail.
                self.db.isolation_level = None
        except psycopg.Error as exc:
            raise LedgerError(f"cannot query ledger {self.where}: {self._why(exc)}") from None
