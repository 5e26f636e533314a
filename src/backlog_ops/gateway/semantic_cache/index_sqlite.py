"""The embedded vector index: SQLite with the sqlite-vec extension, in one file under BACKLOG_HOME.

Entries live in a plain table keyed by bucket (scope + exact context, see policy.py); a lookup
is an exact nearest-neighbour scan of one bucket with sqlite-vec's `vec_distance_cosine`, so it
never sees another scope's vectors and its cost is bounded by `max_entries_per_scope` (the
oldest entries of a full bucket are dropped). Expired entries are never served and are deleted
as new ones are written. One connection, serialized by a lock: LiteLLM calls the cache from its
event loop, and the backend runs these calls in a worker thread.

Loading an extension needs a Python whose sqlite3 allows it; many (pyenv and macOS builds) do
not, so the extra brings `sqlean-py`, the same sqlite3 module over its own SQLite with extension
loading on, and it is used when the standard one cannot load sqlite-vec.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time

from backlog_ops.common.extras import require
from backlog_ops.common.home import ensure_dir

__all__ = ["SqliteVecIndex"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS semantic_cache (
    id INTEGER PRIMARY KEY,
    bucket TEXT NOT NULL,
    project TEXT NOT NULL,
    embedding BLOB NOT NULL,
    value TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS semantic_cache_bucket ON semantic_cache (bucket, expires_at);
CREATE INDEX IF NOT EXISTS semantic_cache_expiry ON semantic_cache (expires_at);
"""


class SqliteVecIndex:
    kind = "sqlite"

    def __init__(self, path: str) -> None:
        sqlite_vec = require("sqlite_vec", "semantic-cache", "The semantic cache's embedded index")
        ensure_dir(os.path.dirname(os.path.abspath(path)))
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)  # 0600 before SQLite writes anything
        os.close(fd)
        self.path = path
        self._db = _connect_with_vec(path, sqlite_vec)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=2000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def lookup(self, bucket: str, vector, threshold: float, now: float | None = None) -> tuple[float, str] | None:
        """(similarity, value) of the bucket's nearest unexpired entry at or above `threshold`, else None."""
        now = time.time() if now is None else now
        with self._lock:
            row = self._db.execute(
                "SELECT vec_distance_cosine(embedding, ?) AS d, value FROM semantic_cache "
                "WHERE bucket = ? AND expires_at > ? ORDER BY d LIMIT 1",
                (vector.tobytes(), bucket, now),
            ).fetchone()
        if row is None:
            return None
        similarity = 1.0 - float(row[0])
        return (similarity, row[1]) if similarity >= threshold else None

    def store(self, bucket: str, project: str, vector, value: str, ttl_seconds: float, max_entries: int,
              now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM semantic_cache WHERE expires_at <= ?", (now,))
                db.execute(
                    "INSERT INTO semantic_cache (bucket, project, embedding, value, created_at, expires_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (bucket, project, vector.tobytes(), value, now, now + ttl_seconds),
                )
                db.execute(
                    "DELETE FROM semantic_cache WHERE bucket = ? AND id NOT IN "
                    "(SELECT id FROM semantic_cache WHERE bucket = ? ORDER BY id DESC LIMIT ?)",
                    (bucket, bucket, max_entries),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM semantic_cache").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _connect_with_vec(path: str, sqlite_vec):
    """A connection with sqlite-vec loaded: the standard sqlite3 when it may load extensions, else sqlean's."""
    driver = sqlite3
    if not hasattr(sqlite3.Connection, "enable_load_extension"):
        driver = require("sqlean", "semantic-cache", "The semantic cache's index (this Python's sqlite3 cannot load "
                                                      "extensions)")
    db = driver.connect(path, check_same_thread=False, isolation_level=None)
    db.enable_load_extension(True)
    sqlite_vec.load(db)
    db.enable_load_extension(False)
    return db
