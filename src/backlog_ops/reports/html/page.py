"""The report page: report_data()'s dict → one self-contained HTML document.

No script, no external resource: the charts are inline SVG (svg.py) and the one stylesheet is
inline, allowed by its hash in a Content-Security-Policy of `default-src 'none'`, so the page
can make no request of any kind when opened. Every stored value (ticket ids, models, agents…
are whatever callers tagged) is HTML-escaped.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape

from backlog_ops.policy.messages import money
from backlog_ops.reports.html.data import BREAKDOWNS
from backlog_ops.reports.views import OTHERS
from backlog_ops.reports.views_text import key_text, plural
from backlog_ops.reports.html.svg import bar_chart, budget_chart, colour_for, column_chart

__all__ = ["CSP", "render_page"]

CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1rem 1.5rem;color:#222}
h1{margin:.2rem 0}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
h3{margin:1.6rem 0 .4rem}h4{margin:.8rem 0 .2rem;font-size:.95rem}
.meta{color:#555;margin:.2rem 0 1rem}.note{color:#555;font-size:.9rem}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{border:1px solid #ddd;border-radius:6px;padding:.5rem .9rem;min-width:9rem}
.card b{display:block;font-size:1.35rem}.card span{color:#555;font-size:.85rem}
svg.chart{max-width:100%;height:auto;display:block}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:.5rem 1.5rem}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.88rem}
th,td{border-bottom:1px solid #eee;padding:.2rem .6rem;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:bold;border-top:1px solid #999}
details>summary{cursor:pointer;color:#345;font-size:.9rem}
.over{color:#b00;font-weight:bold}.empty{padding:2rem;border:1px dashed #bbb;border-radius:6px;text-align:center}
.ticket{border-top:1px solid #ddd;margin-top:1.2rem}.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em}
"""
STYLE_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CSP = f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; base-uri 'none'; form-action 'none'"
_UNITS = {"day": "day", "week": "week (named by its Monday)", "month": "month"}


def render_page(data: dict) -> str:
    """The whole document as a string."""
    totals = data["totals"]
    colours = _colours(data["tickets"])
    body = [_header(data)]
    if not data["tickets"] or not (totals.get("calls") or totals.get("failed_calls")):
        body.append('<p class="empty">No calls recorded in the ledger for this period'
                    f'{" and project" if data.get("project") else ""}: nothing to chart.</p>')
        body.append(_budgets(data))
    else:
        body += [_cards(totals), _per_ticket(data, colours), _over_time(data, colours), _budgets(data), _each_ticket(data, colours)]
    body.append('<p class="note">Cache share: tokens read from the provider\'s prompt cache as a share of all input tokens '
                "(cached input costs about a tenth of the normal price). Cache hits: calls answered from the response "
                "cache at no cost. Budgets count all of a ticket's spend in its project, whatever the period shown.</p>")
    title = "LLM spend by ticket" + (f" — {data['project']}" if data.get("project") else "")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body></html>\n"
    )


# -- sections --------------------------------------------------------------------------------


def _header(data: dict) -> str:
    period = f"{_when(data.get('since'), 'the first call')} to {_when(data.get('until'), 'now')}"
    project = escape(data["project"]) if data.get("project") else "every project"
    return (f"<h1>LLM spend by ticket</h1><p class=\"meta\">Period: <b>{escape(period)}</b> · Project: <b>{project}</b> · "
            f"Generated {escape(_when(data['generated_at'], ''))} · top {int(data['top'])} tickets, the rest as {OTHERS}</p>")


def _cards(t: dict) -> str:
    cards = [
        (money(t["cost_usd"]), "total cost"),
        (f"{t['calls'] + t['failed_calls']:,}", f"calls ({t['failed_calls']:,} failed)"),
        (f"{t['input_tokens'] + t['cache_read_tokens'] + t['cache_write_tokens']:,}", "input tokens"),
        (f"{t['output_tokens']:,}", "output tokens"),
        (_cache_share(t), "cache share of input"),
        (f"{t['cache_hits']:,}", "response-cache hits"),
    ]
    return '<div class="cards" id="totals">' + "".join(
        f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for v, k in cards) + "</div>"


def _per_ticket(data: dict, colours: dict) -> str:
    rows, total = data["tickets"], data["totals"]
    chart = bar_chart([(_name(r["ticket"]), r["cost_usd"], colours[r["ticket"]]) for r in rows],
                      label="cost per ticket", fmt=money)
    budgets = {b["ticket_id"]: b for b in data.get("budgets") or () if b.get("budget_usd") is not None}
    head = ["ticket", "cost", "share", "calls ok", "failed", "uncached input", "output tokens", "cache read", "cache write",
            "cache share", "cache hits", "budget used"]
    body = []
    for r in rows:
        b = budgets.get(r["ticket"])
        body.append([_ticket_link(r["ticket"], rows, colours), money(r["cost_usd"]), _share(r["cost_usd"], total["cost_usd"]),
                     *_counts(r), _budget_used(b)])
    body.append(["TOTAL", money(total["cost_usd"]), _share(total["cost_usd"], total["cost_usd"]), *_counts(total), ""])
    return ('<h2 id="tickets">Cost per ticket</h2>' + chart
            + _table(head, body, numeric=range(1, 11), total=True, raw_first=True, raw_cols={11}))


def _over_time(data: dict, colours: dict) -> str:
    periods, rows, unit = data["periods"], data["over_time"], data["time_unit"]
    names = [r["ticket"] for r in data["tickets"]]
    cost = {(r["ticket"], r["period"]): r["cost_usd"] for r in rows}
    series = [(_name(t), [cost.get((t, p), 0.0) for p in periods], colours[t]) for t in names]
    chart = column_chart(periods, series, label=f"cost per {unit}, stacked by ticket", fmt=money)
    head = [unit] + [_name(t) for t in names] + ["total"]
    body = [[p] + [money(cost.get((t, p), 0.0)) for t in names] + [money(sum(cost.get((t, p), 0.0) for t in names))]
            for p in periods]
    return (f'<h2 id="over-time">Cost per {escape(_UNITS[unit])}, stacked by ticket</h2>' + chart
            + "<details><summary>Table</summary>" + _table(head, body, numeric=range(1, len(head))) + "</details>")


def _budgets(data: dict) -> str:
    out = ['<h2 id="budgets">Budgets</h2>']
    if data.get("budget_problem"):
        out.append(f'<p class="note">{escape(data["budget_problem"])}</p>')
    budgets = [b for b in data.get("budgets") or () if b.get("budget_usd") is not None]
    escalations = [b for b in data.get("budgets") or () if b.get("max_escalations") is not None]
    if not budgets and not escalations:
        if not data.get("budget_problem"):
            out.append('<p class="note">No budget applies: ./backlog.config.json sets no per-ticket budget'
                       f'{" for this project" if data.get("project") else ""}.</p>')
        return "".join(out)
    out.append(f'<p class="note">Limits from ./backlog.config.json of project <b>{escape(str(data.get("budget_project")))}</b>; '
               "spend is the ticket's whole spend in that project.</p>")
    out.append(budget_chart([(b["ticket_id"], b["spent_usd"], b["budget_usd"]) for b in budgets],
                            label="budget used per ticket", fmt=money))
    head = ["ticket", "budget", "spent", "remaining", "used", "frontier calls", "set by"]
    body = [[escape(b["ticket_id"]), money(b["budget_usd"]) if b["budget_usd"] is not None else "—",
             money(b["spent_usd"]), money(b["remaining_usd"]) if b["remaining_usd"] is not None else "—",
             _budget_used(b),
             f"{b['escalations']} of {b['max_escalations']}" if b.get("max_escalations") is not None else str(b["escalations"]),
             b.get("budget_key") or b.get("escalation_key") or ""]
            for b in data.get("budgets") or ()]
    out.append(_table(head, body, numeric=range(1, 6), raw_first=True, raw_cols={4}))
    return "".join(out)


def _each_ticket(data: dict, colours: dict) -> str:
    out = ['<h2 id="each-ticket">Each ticket: by gate, model, agent and over time</h2>']
    unit = data["time_unit"]
    for i, r in enumerate(data["tickets"]):
        ticket = r["ticket"]
        name = _name(ticket)
        out.append(f'<section class="ticket" id="ticket-{i}"><h3><span class="swatch" aria-hidden="true">'
                   f'{_swatch(colours[ticket])}</span>{escape(name)}: {escape(money(r["cost_usd"]))}</h3>'
                   f'<p class="meta">{plural(r["calls"] + r["failed_calls"], "call")}, {r["failed_calls"]:,} failed · cache share '
                   f'{escape(_cache_share(r))} · {plural(r["cache_hits"], "response-cache hit")}</p>')
        charts, tables = [], []
        for group in BREAKDOWNS if ticket != OTHERS else ():
            parts = sorted((p for p in data["breakdowns"].get(group, ()) if p["ticket"] == ticket), key=lambda p: -p["cost_usd"])
            items = [(key_text(group, p[group]), p["cost_usd"], colour_for(j)) for j, p in enumerate(parts)]
            chart = bar_chart(items, label=f"{name} by {group}", fmt=money, width=360, keep_tail=group == "model")
            charts.append(f"<div><h4>by {group}</h4>{chart}</div>")
            tables.append(f"<h4>by {group}</h4>" + _table(
                [group, "cost", "calls ok", "failed", "uncached input", "output tokens", "cache read", "cache write", "cache share", "cache hits"],
                [[key_text(group, p[group]), money(p["cost_usd"]), *_counts(p)] for p in parts], numeric=range(1, 10)))
        if ticket == OTHERS:
            out.append(f'<p class="note">The {OTHERS} are every ticket past the top {int(data["top"])}: '
                       "run with a larger --top to see them one by one.</p>")
        periods = data["periods"]
        cost = {p["period"]: p["cost_usd"] for p in data["over_time"] if p["ticket"] == ticket}
        values = [cost.get(p, 0.0) for p in periods]
        charts.append(f"<div><h4>per {unit}</h4>" + column_chart(
            periods, [(name, values, colours[ticket])], label=f"{name} per {unit}", fmt=money, width=360, height=200,
            legend=False) + "</div>")
        tables.append(f"<h4>per {unit}</h4>" + _table([unit, "cost"], [[p, money(v)] for p, v in zip(periods, values) if v],
                                                      numeric=[1]))
        out.append('<div class="grid">' + "".join(charts) + "</div><details><summary>Tables</summary>"
                   + "".join(tables) + "</details></section>")
    return "".join(out)


# -- helpers ---------------------------------------------------------------------------------


def _colours(rows: list[dict]) -> dict:
    return {r["ticket"]: colour_for(i, others=r["ticket"] == OTHERS) for i, r in enumerate(rows)}


def _swatch(colour: str) -> str:
    return f'<svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" fill="{colour}"/></svg>'


def _name(ticket) -> str:
    return key_text("ticket", ticket)


def _ticket_link(ticket, rows: list[dict], colours: dict) -> str:
    index = next(i for i, r in enumerate(rows) if r["ticket"] == ticket)
    return f'<a href="#ticket-{index}">{_swatch(colours[ticket])}{escape(_name(ticket))}</a>'


def _when(value, default: str) -> str:
    """'2026-11-26 00:00 UTC' from the views' ISO times (UTC, as the ledger stores them)."""
    if not value:
        return default
    text = str(value)
    if len(text) >= 16 and text[10] == "T" and text.endswith("+00:00"):
        return f"{text[:10]} {text[11:16]} UTC"
    return text


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "—"


def _cache_share(r: dict) -> str:
    """Cache reads as a share of every input token (the views' input_tokens are the uncached ones)."""
    return _share(r["cache_read_tokens"], r["input_tokens"] + r["cache_read_tokens"] + r["cache_write_tokens"])


def _counts(r: dict) -> list[str]:
    return [f"{r['calls']:,}", f"{r['failed_calls']:,}", f"{r['input_tokens']:,}", f"{r['output_tokens']:,}",
            f"{r['cache_read_tokens']:,}", f"{r['cache_write_tokens']:,}", _cache_share(r),
            f"{r['cache_hits']:,}"]


def _budget_used(b: dict | None) -> str:
    if not b or b.get("budget_usd") is None:
        return ""
    share = _share(b["spent_usd"], b["budget_usd"]) if b["budget_usd"] else "100%"
    return f'<span class="over">{share} OVER</span>' if b["over_budget"] else share


def _table(head: list[str], rows: list[list[str]], *, numeric=(), total: bool = False, raw_first: bool = False,
           raw_cols=frozenset()) -> str:
    """A table; cells are escaped except the first (raw_first: already markup) and raw_cols, which callers built."""
    numeric = set(numeric)
    raw = set(raw_cols) | ({0} if raw_first else set())

    def cell(tag: str, i: int, value) -> str:
        cls = ' class="n"' if i in numeric else ""
        return f"<{tag}{cls}>{value if i in raw else escape(str(value))}</{tag}>"

    out = ["<table><thead><tr>", *(cell("th", i, h if i not in raw else escape(h)) for i, h in enumerate(head)), "</tr></thead><tbody>"]
    for n, row in enumerate(rows):
        last = total and n == len(rows) - 1
        out.append('<tr class="total">' if last else "<tr>")
        out += [cell("td", i, v) for i, v in enumerate(row)]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)
