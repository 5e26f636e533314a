"""What every ledger backend answers the same way: spend queries written once, in portable SQL.

Backends (SQLite, PostgreSQL) provide `_query(sql, params)` and `_snapshot()`; SQL here uses
'?' placeholders, which the PostgreSQL backend translates.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable

from backlog_ops.errors import LedgerError
from backlog_ops.ledger.record import COLUMNS

__all__ = ["GROUPS", "LedgerQueries", "UPSERT", "fold_upserts", "replaces"]

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
    # Whether the ticket was set or inferred from the git branch.
    "ticket_source": "COALESCE(ticket_source, 'set')",
}

UPSERT = (
    f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    f"ON CONFLICT (call_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "call_id")
    # A success is final: a late failure event for the same call must not overwrite it.
    + " WHERE calls.status <> 'success' OR excluded.status = 'success'"
)


def replaces(stored_status: str, new_status: str) -> bool:
    """Whether UPSERT overwrites a stored row: its WHERE clause, for code that must predict it."""
    return stored_status != "success" or new_status == "success"


def fold_upserts(rows: list[tuple]) -> list[tuple]:
    """One row per call id that leaves the ledger as UPSERT-ing `rows` one by one would.

    Rows are in COLUMNS order. Of two rows for one call the later wins, unless the earlier is a
    success and the later is not; whatever the stored row is, UPSERT-ing the winner alone gives
    the same result as UPSERT-ing both in turn.
    """
    call_id, status = COLUMNS.index("call_id"), COLUMNS.index("status")
    kept: dict[str, tuple] = {}
    for row in rows:
        earlier = kept.get(row[call_id])
        if earlier is None or replaces(earlier[status], row[status]):
            kept[row[call_id]] = row
    return list(kept.values())



class LedgerQueries:
    """Spend queries shared by the ledger backends (which set `self.db`, a DB-API connection)."""

    dialect = "sqlite"  # or "postgres": the few SQL functions that differ (ledger/spend_groups.py)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def bulk_writes(self):
        """Many record_many calls in a row (an import): a backend may defer upkeep until the end."""
        yield self

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # tickets() and ticket() sum the calls table itself. What users see (`spend`, `report`, the MCP
    # server) goes through reports/views.spend_view, which reads the rollups; these two stay for
    # bench/ledger_scale.py, which measures the calls table's indexes with them, and its tests.
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

    def spend_groups(self, dims: tuple[str, ...], **window) -> list[tuple]:
        """Spend per group of 1-2 dimensions: see ledger.spend_groups.spend_groups."""
        from backlog_ops.ledger.spend_groups import spend_groups

        return spend_groups(self._query, self.dialect, tuple(dims), **window)

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
        with self._snapshot() as query:
            cost, escalations = query(sql, (frontier_alias, *names, *params))[0]
            present: set[str] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ", ".join("?" for _ in chunk)
                present.update(r[0] for r in query(f"SELECT call_id FROM calls WHERE call_id IN ({marks})", tuple(chunk)))
        return {"cost_usd": float(cost or 0.0), "escalations": int(escalations or 0), "present": sorted(present)}

    def gateway_spend(self, since: str, call_ids: Iterable[str] = ()) -> dict:
        """What the gateway-wide budget counts, in one read snapshot.

        cost_usd: every call through the proxy (source 'proxy', all projects) started at or after
        `since`. present: which of `call_ids` the ledger already holds.
        """
        ids = list(dict.fromkeys(call_ids))
        with self._snapshot() as query:
            cost = query("SELECT SUM(cost_usd) FROM calls WHERE source = 'proxy' AND started_at >= ?", (since,))[0][0]
            present: set[str] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ", ".join("?" for _ in chunk)
                present.update(r[0] for r in query(f"SELECT call_id FROM calls WHERE call_id IN ({marks})", tuple(chunk)))
        return {"cost_usd": float(cost or 0.0), "present": sorted(present)}

    def existing(self, call_ids: Iterable[str]) -> set[str]:
        """Which of `call_ids` the ledger holds a row for."""
        ids = list(dict.fromkeys(call_ids))
        present: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            present.update(r[0] for r in self._query(f"SELECT call_id FROM calls WHERE call_id IN ({marks})", tuple(chunk)))
        return present

    def rows(self, where: str = "", params: tuple = ()) -> list[dict]:
        """Raw rows (tests and exports); `where` uses '?' placeholders."""
        return [dict(zip(COLUMNS, r)) for r in self._query(f"SELECT {', '.join(COLUMNS)} FROM calls {where}", params)]

    def _query(self, sql: str, params: tuple) -> list[tuple]:  # pragma: no cover - backends override
        raise NotImplementedError

    def _snapshot(self):  # pragma: no cover - backends override
        raise NotImplementedError


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
