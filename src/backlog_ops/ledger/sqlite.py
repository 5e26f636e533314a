"""The embedded ledger: SQLite in WAL mode under the toolkit home."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable

from ..contextfile import format_time
from ..errors import LedgerError
from ..home import ensure_dir, home
from .migrations import MIGRATIONS
from .record import COLUMNS, CallRecord

__all__ = ["GROUPS", "SqliteLedger", "default_ledger_path", "open_ledger"]

# --by name -> SQL expression over calls
GROUPS = {
    "gate": "gate",
    "agent": "agent_type",
    "model": "model",
    "skill": "skill",
    "session": "session_id",
    "day": "substr(started_at, 1, 10)",
    "project": "project",
    "source": "source",
}

_UPSERT = (
    f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    f"ON CONFLICT (call_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "call_id")
    # A success is final: a late failure event for the same call must not overwrite it.
    + " WHERE calls.status <> 'success' OR excluded.status = 'success'"
)


def default_ledger_path() -> Path:
    return home() / "ledger.db"


def open_ledger(path: Path | None = None) -> "SqliteLedger":
    return SqliteLedger(default_ledger_path() if path is None else path)


class SqliteLedger:
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
        self._migrate()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "SqliteLedger":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
                    migration(self.db)
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
            self.db.executemany(_UPSERT, rows)
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise LedgerError(f"cannot write to ledger {self.path}: {exc}") from exc
        return len(rows)

    # -- reads -------------------------------------------------------------------------------

    def tickets(self, *, project: str | None = None, since: str | None = None) -> list[dict]:
        """Spend per (ticket, project), most expensive first; calls with no ticket have ticket_id None."""
        where, params = _filters(project=project, since=since)
        sql = (
            "SELECT ticket_id, project, SUM(cost_usd), COUNT(*), SUM(prompt_tokens + completion_tokens) "
            f"FROM calls {where} GROUP BY ticket_id, project ORDER BY SUM(cost_usd) DESC, ticket_id"
        )
        return [
            {"ticket_id": t, "project": p, "cost_usd": round(c or 0.0, 6), "calls": n, "tokens": tok or 0}
            for t, p, c, n, tok in self._query(sql, params)
        ]

    def ticket(self, ticket_id: str | None, *, by: str = "gate", project: str | None = None, since: str | None = None) -> dict:
        """A ticket's totals and its breakdown by `by` (a GROUPS key). ticket_id None: calls with no ticket."""
        if by not in GROUPS:
            raise LedgerError(f"cannot group by {by!r}: use one of {', '.join(GROUPS)}")
        where, params = _filters(project=project, since=since, ticket_id=ticket_id, ticket_given=True)
        expr = GROUPS[by]
        rows = self._query(
            f"SELECT {expr}, SUM(cost_usd), COUNT(*), SUM(prompt_tokens + completion_tokens) FROM calls {where} "
            f"GROUP BY {expr}",
            params,
        )
        breakdown = sorted(
            ({"key": k, "cost_usd": round(c or 0.0, 6), "calls": n, "tokens": tok or 0} for k, c, n, tok in rows),
            key=lambda b: (-b["cost_usd"], b["key"] is None, str(b["key"])),
        )
        # Totals from the groups: one pass over the ticket's rows instead of two.
        return {
            "ticket_id": ticket_id,
            "cost_usd": round(sum(c or 0.0 for _, c, _, _ in rows), 6),
            "calls": sum(n for _, _, n, _ in rows),
            "tokens": sum(tok or 0 for _, _, _, tok in rows),
            "by": by,
            "breakdown": breakdown,
        }

    def ticket_usage(
        self,
        ticket_id: str,
        *,
        project: str | None = None,
        frontier_alias: str = "frontier",
        frontier_models: Iterable[str] = (),
        call_ids: Iterable[str] = (),
    ) -> dict:
        """What the per-ticket policy counts, in one read snapshot.

        cost_usd: every call of the ticket (in `project`, when given). escalations: successful,
        non-cached calls served by the frontier alias or a frontier model (tag routing can keep
        critical traffic on the frontier model under another alias). present: which of
        `call_ids` the ledger already holds.
        """
        models = [m for m in frontier_models if m]
        # The ledger stores a provider/model or a bare model, depending on the path.
        names = sorted(set(models) | {m.split("/", 1)[1] for m in models if "/" in m})
        where, params = _filters(project=project, ticket_id=ticket_id, ticket_given=True)
        model_test = f" OR model IN ({', '.join('?' for _ in names)})" if names else ""
        sql = (
            "SELECT SUM(cost_usd), SUM(CASE WHEN status = 'success' AND cache_hit = 0 AND "
            f"(model_group = ?{model_test}) THEN 1 ELSE 0 END) FROM calls {where}"
        )
        ids = list(dict.fromkeys(call_ids))
        try:
            self.db.execute("BEGIN")
            try:
                cost, escalations = self.db.execute(sql, (frontier_alias, *names, *params)).fetchone()
                present: set[str] = set()
                for start in range(0, len(ids), 500):
                    chunk = ids[start:start + 500]
                    marks = ", ".join("?" for _ in chunk)
                    present.update(
                        r[0] for r in self.db.execute(f"SELECT call_id FROM calls WHERE call_id IN ({marks})", chunk)
                    )
            finally:
                self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot query ledger {self.path}: {exc}") from exc
        return {"cost_usd": float(cost or 0.0), "escalations": int(escalations or 0), "present": sorted(present)}

    def rows(self, where: str = "", params: tuple = ()) -> list[dict]:
        """Raw rows (tests and exports)."""
        cur = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM calls {where}", params)
        return [dict(zip(COLUMNS, r)) for r in cur.fetchall()]

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot query ledger {self.path}: {exc}") from exc


def _filters(*, project=None, since=None, ticket_id=None, ticket_given=False) -> tuple[str, tuple]:
    clauses, params = [], []
    if ticket_given:
        if ticket_id is None:
            clauses.append("ticket_id IS NULL")
        else:
            clauses.append("ticket_id = ?")
            params.append(ticket_id)
    if project is not None:
        clauses.append("project = ?")
        params.append(project)
    if since is not None:
        clauses.append("started_at >= ?")
        params.append(since)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", tuple(params)
