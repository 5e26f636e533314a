"""Spend summed by one or two dimensions over a time window, in portable SQL.

Whole UTC days are read from the rollups (ledger/rollup.py) when one holds every dimension
asked for (all time, a ticket by one dimension: the rollup without days); the parts of a day at
either end of the window (`--since 24h`) and views no rollup holds (session with ticket, ticket
source) are summed from the calls themselves. Both sources give the same figures: the rollups
are kept exact by triggers, and a test compares them on every view.
"""

from __future__ import annotations

from datetime import date, timedelta

from backlog_ops.ledger.rollup import DIM_COLUMNS, DIM_TABLE, MEASURES, ROLLUPS, TICKET_DIM_TABLE, measure_exprs

__all__ = ["DIMENSIONS", "MEASURES", "spend_groups"]

# view dimension -> calls column (None: derived from the call's UTC day)
DIMENSIONS = {
    "ticket": "ticket_id",
    "day": None,
    "week": None,
    "month": None,
    "model": "model",
    "gate": "gate",
    "agent": "agent_type",
    "skill": "skill",
    "project": "project",
    "session": "session_id",
    "source": "source",
    "ticket_source": "ticket_source",  # 'branch' (inferred from the git branch) or 'set'
}

_MIDNIGHT = "T00:00:00.000+00:00"
_SHAPE = len("2026-12-03T07:05:01.123+00:00")


def _dimension(name: str, dialect: str, *, rollup: bool, day: str | None = None) -> str:
    """The SQL for one dimension over the calls table (rollup False) or a rollup table (or `day`, a day column)."""
    day = day or ("day" if rollup else "substr(started_at, 1, 10)")
    if name == "day":
        return day
    if name == "month":
        return f"substr({day}, 1, 7)"
    if name == "week":  # the Monday the ISO week starts on
        if dialect == "postgres":
            return f"to_char(date_trunc('week', CAST({day} AS date)), 'YYYY-MM-DD')"
        return f"date({day}, '-6 days', 'weekday 1')"
    column = DIMENSIONS[name]
    if name == "ticket_source":  # NULL: the context was set (or the row predates the mark)
        return "COALESCE(ticket_source, 'set')"
    return column if rollup else f"COALESCE({column}, '')"


def _rollup_for(dims: tuple[str, ...], ticket_given: bool, all_time: bool) -> tuple[str | None, str | None]:
    """The smallest rollup that holds every dimension, and for a per-dimension table the dim it reads.

    (None, None): no rollup has them all (a view by session and ticket, or by ticket_source).
    """
    by_ticket = ticket_given or "ticket" in dims
    other = [DIMENSIONS[d] for d in dims if d not in ("day", "week", "month", "project", "ticket")]
    if len(other) <= 1 and set(other) <= set(DIM_COLUMNS):
        if not by_ticket:
            return DIM_TABLE, other[0] if other else ""  # '': the day's totals
        if all_time and not any(d in ("day", "week", "month") for d in dims):
            return TICKET_DIM_TABLE, other[0] if other else ""
    needed = {DIMENSIONS[d] or "day" for d in dims} | {"project"} | ({"ticket_id"} if by_ticket else set())
    for table, keys in sorted(ROLLUPS.items(), key=lambda item: len(item[1])):
        if needed <= set(keys):
            return table, None
    return None, None


def _next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def _window(since: str | None, until: str | None) -> tuple[tuple[str | None, str | None] | None, list[tuple[str | None, str | None]]]:
    """Split [since, until) into whole days [day_from, day_to) and the partial-day time ranges left.

    Whole days None: no whole day in the window, read it all from the calls. Times are the
    ledger's fixed shape ('2026-12-03T07:05:01.123+00:00'); with any other shape the whole
    window is read from the calls.
    """
    if any(t is not None and (len(t) != _SHAPE or not t.endswith("+00:00")) for t in (since, until)):
        return None, [(since, until)]
    day_from = None if since is None else since[:10] if since[10:] == _MIDNIGHT else _next_day(since[:10])
    day_to = None if until is None else until[:10]
    if day_from is not None and day_to is not None and day_from >= day_to:
        return None, [(since, until)]
    ranges = []
    if since is not None and since[10:] != _MIDNIGHT:
        ranges.append((since, day_from + _MIDNIGHT))
    if until is not None and until[10:] != _MIDNIGHT:
        ranges.append((day_to + _MIDNIGHT, until))
    return (day_from, day_to), ranges


def _where(clauses: list[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def spend_groups(query, dialect: str, dims: tuple[str, ...], *, since: str | None = None, until: str | None = None,
                 project: str | None = None, ticket: str | None = None, ticket_given: bool = False,
                 use_rollups: bool = True) -> list[tuple]:
    """Rows of (*keys, *MEASURES) per group; a key with no value is None.

    `query(sql, params)` runs '?'-placeholder SQL; since/until bound [since, until); `ticket`
    with ticket_given filters to one ticket (None: calls with no ticket); use_rollups False
    sums the calls alone (tests and benchmarks compare the two).
    """
    table, dim = _rollup_for(dims, ticket_given, since is None and until is None) if use_rollups else (None, None)
    days, ranges = _window(since, until) if table else (None, [(since, until)])
    aliases = [f"k{i}" for i in range(len(dims))]
    # Weeks and months are summed by day first: the date arithmetic then runs once per day, not per row.
    outer = dims
    dims = tuple("day" if d in ("week", "month") else d for d in dims)
    parts: list[tuple[str, list]] = []

    def select(rollup: bool, start: str | None, end: str | None) -> tuple[str, list]:
        clauses, params = [], []
        if ticket_given:
            if ticket is None:
                clauses.append("ticket_id = ''" if rollup else "(ticket_id IS NULL OR ticket_id = '')")
            else:
                clauses.append("ticket_id = ?")
                params.append(ticket)
        if project is not None:
            clauses.append("project = ?")
            params.append(project)
        if rollup and dim is not None:
            clauses.append("dim = ?")
            params.append(dim)
        time = "day" if rollup else "started_at"
        for op, bound in ((">=", start), ("<", end)):
            if bound is not None:
                clauses.append(f"{time} {op} ?")
                params.append(bound)
        keys = [f"{'value' if rollup and dim and DIMENSIONS[d] == dim else _dimension(d, dialect, rollup=rollup)} AS {a}"
                for d, a in zip(dims, aliases)]
        sums = [f"SUM({m}) AS {m}" for m in MEASURES] if rollup else \
            [f"SUM({e}) AS {m}" for e, m in zip(measure_exprs(), MEASURES)]
        source = table if rollup else "calls"
        return f"SELECT {', '.join(keys + sums)} FROM {source}{_where(clauses)} GROUP BY {', '.join(aliases)}", params

    if days is not None:
        parts.append(select(True, *days))
    parts += [select(False, start, end) for start, end in ranges]
    if len(parts) == 1 and outer == dims:
        sql, params = parts[0]
        if days is not None:  # rollup rows whose calls all moved to another key
            sql += " HAVING SUM(row_count) > 0"
    else:
        union = " UNION ALL ".join(f"SELECT * FROM ({p}) AS p{i}" for i, (p, _) in enumerate(parts))
        # GROUP BY the expressions: in PostgreSQL a bare k0 there would be the inner column.
        exprs = [_dimension(d, dialect, rollup=True, day=a) if d in ("week", "month") else a for d, a in zip(outer, aliases)]
        sums = [f"SUM({m})" for m in MEASURES]
        sql = (f"SELECT {', '.join(exprs + sums)} FROM ({union}) AS u GROUP BY {', '.join(exprs)} "
               "HAVING SUM(row_count) > 0")
        params = [p for _, ps in parts for p in ps]
    rows = []
    for row in query(sql, tuple(params)):
        keys = [None if k in (None, "") else k for k in row[:len(dims)]]
        counts = [int(v or 0) for v in row[len(dims):-1]]
        rows.append((*keys, *counts, float(row[-1] or 0.0)))
    return rows
