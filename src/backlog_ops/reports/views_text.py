"""A spend view (reports.views.spend_view) as text: a terminal table, CSV, JSON or Markdown.

One set of columns for every format: the groups, then cost, calls, failed calls, cache hits and
the four token counts. JSON and CSV carry the field names and exact numbers; the table and
Markdown carry headings, thousands separators and dollars. Stored text (tickets, gates, models)
comes from callers: every format but JSON shows control characters as escapes (`\\x1b`), the
table cuts long cells, Markdown escapes what would change the markup (JSON escapes on its own).
"""

from __future__ import annotations

import csv
import io
import json

from backlog_ops.common.terminal import printable
from backlog_ops.reports.views import OTHERS

__all__ = ["HEADINGS", "MAX_CELL", "NO_TICKET", "format_table", "key_text", "plural", "render_view", "summary_line"]

NO_TICKET = "(no ticket)"
NO_VALUE = "(none)"
# A table cell longer than this is cut (JSON and CSV keep whole values).
MAX_CELL = 80
# field -> heading, in the order every format shows them
HEADINGS = {
    "cost_usd": "cost",
    "calls": "calls",
    "failed_calls": "failed",
    "cache_hits": "cache hits",
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_write_tokens": "cache write",
    "cache_read_tokens": "cache read",
}
_TOKENS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")


def plural(n: int, word: str) -> str:
    """'1 call', '2 calls', '1,234 calls'."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def money(value: float) -> str:
    return f"${value:,.4f}"


def key_text(group: str, value) -> str:
    """A group's value for people: NO_TICKET / NO_VALUE for a missing one, escapes for controls."""
    if value is None:
        return NO_TICKET if group == "ticket" else NO_VALUE
    return printable(value)


def _key_cell(group: str, row: dict, by: list[str]) -> str:
    if row[by[0]] == OTHERS and group != by[0]:
        return ""  # the rows summed into "(others)" have no one second key
    return key_text(group, row[group])


def summary_line(totals: dict, name: str | None = None) -> str:
    """'FEAT-001: $0.4000 over 2 calls (1 failed), 220 tokens (100 input, 20 output, ...)'."""
    tokens = sum(totals[f] for f in _TOKENS)
    failed = f" ({totals['failed_calls']:,} failed)" if totals["failed_calls"] else ""
    hits = f"; {plural(totals['cache_hits'], 'cache hit')}" if totals["cache_hits"] else ""
    split = ", ".join(f"{totals[f]:,} {HEADINGS[f]}" for f in _TOKENS)
    head = f"{printable(name)}: " if name is not None else ""
    return f"{head}{money(totals['cost_usd'])} over {plural(totals['calls'], 'call')}{failed}, " \
           f"{plural(tokens, 'token')} ({split}){hits}"


def render_view(view: dict, fmt: str = "table", *, filtered: bool = False, extra: dict | None = None) -> str:
    """`view` as 'table', 'json', 'csv' or 'markdown' text; `extra` joins the JSON (a budget)."""
    by = view["by"]
    if fmt == "json":
        return json.dumps({**view, **(extra or {})}, indent=2, ensure_ascii=True) + "\n"
    fields = list(HEADINGS)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([*by, *fields])
        for row in view["rows"]:
            writer.writerow([*("" if row[g] is None else printable(row[g]) for g in by), *(row[f] for f in fields)])
        return buf.getvalue()
    if not view["rows"]:
        return "no calls recorded" + (" for this filter" if filtered else "") + "\n"
    header = [*by, *(HEADINGS[f] for f in fields)]
    rows = [[*(_key_cell(g, row, by) for g in by), *(row[f] for f in fields)] for row in view["rows"]]
    total = ["TOTAL", *([""] * (len(by) - 1)), *(view["totals"][f] for f in fields)]
    if fmt == "markdown":
        return _markdown(header, rows, total, len(by))
    return format_table(header, rows + [total]) + "\n"


def _cell(value, money_column: bool) -> str:
    if money_column and isinstance(value, (int, float)):
        return money(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(header: list[str], rows: list[list]) -> str:
    """Plain-text table, the last row a total: money with 4 decimals, counts with thousands separators."""
    def cell(col: str, value) -> str:
        text = _cell(value, col in ("cost", "cost_usd"))
        return text if len(text) <= MAX_CELL else text[:MAX_CELL - 3] + "..."

    text = [[cell(h, v) for h, v in zip(header, row)] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(header)]
    numeric = [all(isinstance(r[i], (int, float)) for r in rows[:-1] or rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric)).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in text[:-1]), sep, line(text[-1])])


_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|#~"})


def _markdown(header: list[str], rows: list[list], total: list, keys: int) -> str:
    """A GitHub-flavoured table: pastes into a pull request or a ticket comment as it is."""
    def cell(i: int, value) -> str:
        if i >= keys:
            return _cell(value, header[i] == "cost")
        return str(value).translate(_MARKDOWN_SPECIAL)

    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < keys else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(cell(i, v) for i, v in enumerate(r)) + " |" for r in rows]
    lines.append("| " + " | ".join(f"**{cell(i, v)}**" if str(v) else "" for i, v in enumerate(total)) + " |")
    return "\n".join(lines) + "\n"
