"""Spend over every ticket, grouped by one or two dimensions over a time window.

What `backlog-ops spend` shows, what the MCP tool spend_report returns and what the HTML report
draws: one function, so the three always agree.

Figures per group: `calls` (successful calls), `failed_calls` (calls that reached a provider and
failed; refusals by the proxy are not calls), `cache_hits` (answered from the proxy's response
cache), `input_tokens` (prompt tokens that were neither read from nor written to the provider's
prompt cache, as ccusage counts "input"), `output_tokens`, `cache_write_tokens`,
`cache_read_tokens` and `cost_usd` (every call's cost, failed ones included: what the budget
counts). Days, weeks (starting on Monday) and months are UTC.
"""

from __future__ import annotations

from backlog_ops.errors import ReportError

__all__ = ["FIELDS", "GROUPS", "OTHERS", "TIME_GROUPS", "parse_groups", "parse_window", "spend_view"]

# ticket_source: 'branch' when the ticket was inferred from the git branch, else 'set'.
GROUPS = ("ticket", "day", "week", "month", "model", "gate", "agent", "skill", "project", "session", "source",
          "ticket_source")
TIME_GROUPS = ("day", "week", "month")
FIELDS = ("calls", "failed_calls", "cache_hits", "input_tokens", "output_tokens", "cache_write_tokens",
          "cache_read_tokens", "cost_usd")
OTHERS = "(others)"


def parse_groups(by) -> tuple[str, ...]:
    """('ticket',) from 'ticket', ('ticket', 'day') from 'ticket,day' or a sequence; ReportError otherwise."""
    names = [n.strip().lower() for n in by.split(",")] if isinstance(by, str) else [str(n).strip().lower() for n in by or ()]
    unknown = [n for n in names if n not in GROUPS]
    if unknown or not 1 <= len(names) <= 2 or len(set(names)) != len(names):
        shown = repr(unknown[0][:40]) if unknown else repr(",".join(names)[:60])
        raise ReportError(f"cannot group by {shown}: use one or two different groups of {', '.join(GROUPS)} (e.g. ticket,day)")
    return tuple(names)


def parse_window(since: str | None, until: str | None, *, now: float | None = None) -> tuple[str | None, str | None]:
    """[since, until) as the ledger's UTC times; a bare date as `until` includes that whole day.

    Each is YYYY-MM-DD, an ISO 8601 time or a duration back from now ('7d', '24h': the one
    grammar of common/times.py). ReportError for anything else, or an empty window.
    """
    from backlog_ops.common.times import format_time, iso_to_epoch, parse_since

    def parse(value: str | None, name: str) -> str | None:
        if value is None or not str(value).strip():
            return None
        try:
            return parse_since(str(value), now=now)
        except ValueError as exc:
            raise ReportError(f"{name}: {exc}") from None

    start, end = parse(since, "since"), parse(until, "until")
    if end is not None and _is_date(str(until)):
        end = format_time(iso_to_epoch(end) + 86400)  # through the end of that day
    if start is not None and end is not None and start >= end:
        raise ReportError(f"nothing can be both since {start} and before {end}: swap --since and --until?")
    return start, end


def _is_date(text: str) -> bool:
    text = text.strip()
    return len(text) == 10 and text[4] == "-" and text[7] == "-"


def spend_view(*, by=("ticket",), since=None, until=None, project=None, ticket=None, top=None, ledger=None,
               order: str = "cost", now: float | None = None, use_rollups: bool = True) -> dict:
    """Spend grouped by `by` (1 or 2 of GROUPS), most expensive first.

    since/until: dates, ISO times or durations back from now ('7d'). ticket: only that ticket's
    calls ('-': calls with no ticket). top: keep the N most expensive first-level groups and sum
    the rest into one row whose first key is OTHERS. ledger: an open ledger, or None to open the
    configured one. order 'time': day/week/month groups in time order instead of by cost.
    use_rollups False: sum the calls themselves (benchmarks measure what the rollups save).
    Rows are grouped by their first key (the group costing most first), then by cost.
    """
    dims = parse_groups(by)
    start, end = parse_window(since, until, now=now)
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ReportError(f"top must be a whole number of at least 1, not {top!r}")
    if order not in ("cost", "time"):
        raise ReportError(f"order must be 'cost' or 'time', not {order!r}")
    window = {"since": start, "until": end, "project": project, "use_rollups": use_rollups}
    if ticket is not None:
        window.update(ticket=None if ticket == "-" else ticket, ticket_given=True)
    if ledger is None:
        from backlog_ops.ledger import open_ledger

        with open_ledger() as opened:
            raw = opened.spend_groups(dims, **window)
    else:
        raw = ledger.spend_groups(dims, **window)

    rows = [_row(dims, r) for r in raw]
    totals = _sum(rows)
    rows, others = _ordered(rows, dims, order, top)
    return {"by": list(dims), "since": start, "until": end, "project": project, "ticket": ticket,
            "rows": rows, "totals": totals, **({"others": others} if top is not None else {})}


def _row(dims: tuple[str, ...], raw: tuple) -> dict:
    keys, figures = raw[:len(dims)], raw[len(dims) + 1:]  # row_count is internal
    row = dict(zip(dims, keys))
    row.update(zip(FIELDS, figures))
    row["cost_usd"] = round(row["cost_usd"], 6)
    return row


def _sum(rows: list[dict]) -> dict:
    totals = {f: sum(r[f] for r in rows) for f in FIELDS}
    totals["cost_usd"] = round(totals["cost_usd"], 6)
    return totals


def _sort_key(dim: str, order: str, key, cost: float):
    if order == "time" and dim in TIME_GROUPS:
        return (key is None, key or "")
    return (-cost, key is None, str(key))


def _ordered(rows: list[dict], dims: tuple[str, ...], order: str, top: int | None) -> tuple[list[dict], int]:
    """Rows grouped by first key, groups and rows within each ordered; past `top` groups, one OTHERS row."""
    first = dims[0]
    groups: dict = {}
    for row in rows:
        groups.setdefault(row[first], []).append(row)
    cost = {k: sum(r["cost_usd"] for r in g) for k, g in groups.items()}
    # `top` keeps the most expensive groups whatever the display order.
    kept = set(sorted(groups, key=lambda k: (-cost[k], k is None, str(k)))[:top]) if top is not None else set(groups)
    out: list[dict] = []
    for key in sorted(kept, key=lambda k: _sort_key(first, order, k, cost[k])):
        members = groups[key]
        if len(dims) == 2:
            members = sorted(members, key=lambda r: _sort_key(dims[1], order, r[dims[1]], r["cost_usd"]))
        out.extend(members)
    folded = [r for k, g in groups.items() if k not in kept for r in g]
    if folded:
        out.append({first: OTHERS, **({dims[1]: None} if len(dims) == 2 else {}), **_sum(folded)})
    return out, len(groups) - len(kept)
