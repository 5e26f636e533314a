"""The team option: cache entries in PostgreSQL, shared by every proxy replica.

Vectors are stored as `real[]` and compared by an exact scan of one bucket inside the database
(a dot product over `unnest`; the vectors are unit length, so it is the cosine similarity):
pgvector is not assumed, and a bucket (one scope and exact context) holds at most
`max_entries_per_scope` entries, so the scan stays small. With pgvector installed an ANN index
would scale further; this does not need it. Connections: one, serialized by a lock, reconnected
after an error.
"""

from __future__ import annotations

import threading
import time

from backlog_ops.common.extras import require

__all__ = ["PostgresIndex"]

SCHEMA = "backlog_ops"


class PostgresIndex:
    kind = "postgres"

    def __init__(self, url: str, *, schema: str = SCHEMA, connect_timeout: float = 2.0) -> None:
        self._psycopg = require("psycopg", "postgres", "The semantic cache in PostgreSQL")
        self._url = url
        self._schema = schema
        self._timeout = connect_timeout
        self._db = None
        self._lock = threading.Lock()
        with self._lock:
            self._connect()

    def _connect(self):
        if self._db is not None and not self._db.closed:
            return self._db
        db = self._psycopg.connect(self._url, connect_timeout=int(max(1, self._timeout)), autocommit=True)
        s = self._schema
        db.execute(f'CREATE SCHEMA IF NOT EXISTS "{s}"')
        db.execute(
            f'CREATE TABLE IF NOT EXISTS "{s}".semantic_cache ('
            " id BIGSERIAL PRIMARY KEY, bucket TEXT NOT NULL, project TEXT NOT NULL,"
            " embedding REAL[] NOT NULL, value TEXT NOT NULL,"
            " created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL)"
        )
        db.execute(f'CREATE INDEX IF NOT EXISTS semantic_cache_bucket ON "{s}".semantic_cache (bucket, expires_at)')
        db.execute(f'CREATE INDEX IF NOT EXISTS semantic_cache_expiry ON "{s}".semantic_cache (expires_at)')
        self._db = db
        return db

    def _run(self, fn):
        with self._lock:
            try:
                return fn(self._connect())
            except self._psycopg.OperationalError:
                if self._db is not None:
                    self._db.close()
                self._db = None
                raise

    def lookup(self, bucket: str, vector, threshold: float, now: float | None = None) -> tuple[float, str] | None:
        now = time.time() if now is None else now
        query = (
            f'SELECT (SELECT sum(a * b) FROM unnest(embedding, %s::real[]) AS t(a, b)) AS sim, value '
            f'FROM "{self._schema}".semantic_cache WHERE bucket = %s AND expires_at > %s '
            f'ORDER BY sim DESC NULLS LAST LIMIT 1'
        )
        row = self._run(lambda db: db.execute(query, (vector.tolist(), bucket, now)).fetchone())
        if row is None or row[0] is None:
            return None
        similarity = float(row[0])
        return (similarity, row[1]) if similarity >= threshold else None

    def store(self, bucket: str, project: str, vector, value: str, ttl_seconds: float, max_entries: int,
              now: float | None = None) -> None:
        now = time.time() if now is None else now
        table = f'"{self._schema}".semantic_cache'

        def write(db) -> None:
            with db.transaction():
                db.execute(f"DELETE FROM {table} WHERE expires_at <= %s", (now,))
                db.execute(
                    f"INSERT INTO {table} (bucket, project, embedding, value, created_at, expires_at) "
                    f"VALUES (%s, %s, %s, %s, %s, %s)",
                    (bucket, project, vector.tolist(), value, now, now + ttl_seconds),
                )
                db.execute(
                    f"DELETE FROM {table} WHERE bucket = %s AND id NOT IN "
                    f"(SELECT id FROM {table} WHERE bucket = %s ORDER BY id DESC LIMIT %s)",
                    (bucket, bucket, max_entries),
                )

        self._run(write)

    def count(self) -> int:
        return int(self._run(lambda db: db.execute(f'SELECT count(*) FROM "{self._schema}".semantic_cache').fetchone()[0]))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
