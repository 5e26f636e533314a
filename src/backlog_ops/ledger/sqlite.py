"""The embedded ledger: SQLite in WAL mode under the toolkit home."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from backlog_ops.common.home import ensure_dir, home
from backlog_ops.common.times import format_time
from backlog_ops.errors import LedgerError
from backlog_ops.ledger.migrations import MIGRATIONS, MigrationConnection
from backlog_ops.ledger.queries import UPSERT, LedgerQueries, replaces
from backlog_ops.ledger.record import COLUMNS, CallRecord
from backlog_ops.ledger.rollup import TABLES, Deltas, upsert_sql

__all__ = ["SqliteLedger", "default_ledger_path"]


def default_ledger_path() -> Path:
    return home() / "ledger.db"


BULK_CACHE_KIB = -32768  # PRAGMA cache_size in bulk_writes (negative: KiB)
WRITER_CACHE_KIB = -65536  # PRAGMA cache_size of a long-lived writer's connection (writes_in_background)
WRITER_WAL_PAGES = 65536  # its own checkpoints only past this much WAL (256 MiB): the checkpointer's backstop
CHECKPOINT_EVERY = 1.0  # seconds between the checkpointer's checkpoints while rows come

log = logging.getLogger(__name__)


class SqliteLedger(LedgerQueries):
    """A ledger file. Opening it creates or upgrades the schema; failures raise LedgerError."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        ensure_dir(self.path.parent)
        if not self.path.exists():
            # Create it 0600 ourselves: sqlite3 would use the process umask.
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise LedgerError(f"cannot create ledger {self.path}: {exc.strerror or exc}") from exc
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        self._checkpointer: _Checkpointer | None = None
        self._migrate()

    def writes_in_background(self) -> None:
        """Tune this connection for a long-lived batching writer (LedgerWriter calls it once).

        On a big ledger with calls on many tickets at once, every row dirties index pages of its
        own, and a commit's time went mostly to the WAL checkpoint that followed it (an fsync of
        the WAL and of the database file). Checkpoints move to a thread with its own connection,
        at most once a second while rows come, so commits no longer wait for them; past 256 MiB of
        WAL the writer still checkpoints itself. A 64 MiB page cache keeps the indexes' inner
        pages between batches (SQLite allocates it as pages are read: a small ledger pays little).
        """
        try:
            self.db.execute(f"PRAGMA cache_size={WRITER_CACHE_KIB}")
            self.db.execute(f"PRAGMA wal_autocheckpoint={WRITER_WAL_PAGES}")
        except sqlite3.Error:
            return  # untuned, as any connection: slower on a big ledger, never wrong
        if self._checkpointer is None:
            self._checkpointer = _Checkpointer(self.path)

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.db.close()

    # -- schema ------------------------------------------------------------------------------

    def applied_migrations(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM schema_migrations ORDER BY rowid")]

    def _migrate(self) -> None:
        try:
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            known = {name for name, _ in MIGRATIONS}
            unknown = [name for name in self.applied_migrations() if name not in known]
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the schema of ledger {self.path}: {exc}") from exc
        if unknown:
            raise LedgerError(
                f"ledger {self.path} was migrated by a newer backlog-ops ({', '.join(unknown)}); upgrade backlog-ops"
            )
        for name, migration in MIGRATIONS:
            try:
                # IMMEDIATE takes the write lock first, so two processes opening a new ledger at
                # once apply each migration exactly once.
                self.db.execute("BEGIN IMMEDIATE")
                done = self.db.execute("SELECT 1 FROM schema_migrations WHERE name = ?", (name,)).fetchone()
                if not done:
                    migration(MigrationConnection(self.db, "sqlite"))
                    self.db.execute(
                        "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", (name, format_time(time.time()))
                    )
                self.db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise LedgerError(f"ledger {self.path}: migration {name} failed: {exc}") from exc

    # -- writes ------------------------------------------------------------------------------

    def record_many(self, records: Iterable[CallRecord]) -> int:
        rows = [r.as_tuple() for r in records]
        if not rows:
            return 0
        try:
            self.db.execute("BEGIN IMMEDIATE")
            deltas = self._rollup_deltas(rows)
            self.db.executemany(UPSERT, rows)
            for table in TABLES:
                self.db.executemany(upsert_sql(table), deltas.rows(table))
            self.db.execute("COMMIT")
            if self._checkpointer is not None:
                self._checkpointer.wrote()
        except sqlite3.Error as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from exc
        return len(rows)

    def _rollup_deltas(self, rows: list[tuple]) -> Deltas:
        """How UPSERT-ing `rows` in turn changes the rollups (ledger/rollup.py).

        Run inside the write transaction: no other writer can change a stored row between
        this read and the UPSERT.
        """
        status = COLUMNS.index("status")
        ids = list(dict.fromkeys(r[0] for r in rows))
        stored: dict[str, tuple] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found = self.db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM calls WHERE call_id IN ({', '.join('?' for _ in chunk)})", chunk)
            stored.update((r[0], r) for r in found)
        deltas = Deltas()
        for row in rows:
            old = stored.get(row[0])
            if old is not None:
                if not replaces(old[status], row[status]):
                    continue
                deltas.add(old, -1)
            deltas.add(row, 1)
            stored[row[0]] = row
        return deltas

    @contextmanager
    def bulk_writes(self):
        """No WAL checkpoint (and its fsyncs) after every few commits: one at the end instead.

        A transcript import writes ~100k rows: checkpointing every 1,000 WAL pages cost it a few
        seconds of fsyncs. Other connections keep their own checkpoints; this one's WAL is
        checkpointed when the block ends (PASSIVE: it never waits for readers).
        """
        try:
            self.db.execute("PRAGMA wal_autocheckpoint=0")
            # A 32 MiB page cache for the block: the indexes' pages stay in memory between
            # inserts instead of being written out and read back (~300k pread/pwrite per 100k rows).
            cache = self.db.execute("PRAGMA cache_size").fetchone()[0]
            self.db.execute(f"PRAGMA cache_size={BULK_CACHE_KIB}")
        except sqlite3.Error:
            yield self
            return
        try:
            yield self
        finally:
            try:
                self.db.execute(f"PRAGMA cache_size={int(cache)}")
                self.db.execute("PRAGMA wal_autocheckpoint=1000")
                self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass  # the next commit of any connection checkpoints it

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot query ledger {self.path}: {exc}") from exc

    @contextmanager
    def _snapshot(self):
        """Several reads that see one state of the ledger (a WAL read transaction)."""
        try:
            self.db.execute("BEGIN")
            try:
                yield self._query
            finally:
                self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot query ledger {self.path}: {exc}") from exc


class _Checkpointer:
    """WAL checkpoints for one writer, on a thread and a connection of their own (writes_in_background).

    PASSIVE: a checkpoint never waits for the writer or for readers; what it cannot copy yet, the
    next one does. A failing checkpointer loses nothing: the rows are in the WAL, and the writer's
    own checkpoints past WRITER_WAL_PAGES take over.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._rows = threading.Event()  # set by each commit
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backlog-ops-ledger-checkpoint", daemon=True)
        self._thread.start()

    def wrote(self) -> None:
        self._rows.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._rows.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, timeout=30, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            log.warning("ledger checkpoints stay on the writer's thread: cannot open %s: %s", self._path, exc)
            return
        try:
            while not self._stopping.is_set():
                self._rows.wait()
                self._rows.clear()
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self._stopping.wait(CHECKPOINT_EVERY)
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # what the last commits left
        except sqlite3.Error as exc:
            log.warning("ledger checkpoints stay on the writer's thread: %s", exc)
        finally:
            db.close()
