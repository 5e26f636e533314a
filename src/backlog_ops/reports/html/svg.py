"""Charts as inline SVG strings: horizontal bars, stacked columns, budget gauges.

Drawn in Python so the page needs no script and no library: it opens with no network access and
under a CSP that allows no script at all. Colours are presentation attributes, not `style`
attributes, which that CSP would block. Every label passes through `html.escape`; each bar has
a `<title>` (the browser's own tooltip) with its exact value.
"""

from __future__ import annotations

from html import escape

__all__ = ["PALETTE", "OTHERS_COLOUR", "bar_chart", "budget_chart", "colour_for", "column_chart"]

# Tableau 10: distinguishable, and readable on white.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#3b8bc2",
           "#86bcb6", "#d4a6c8", "#8cd17d", "#b6992d", "#499894", "#fabfd2", "#79706e", "#d37295", "#a0cbe8", "#ffbe7d")
OTHERS_COLOUR = "#bab0ac"
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def colour_for(index: int, *, others: bool = False) -> str:
    return OTHERS_COLOUR if others else PALETTE[index % len(PALETTE)]


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def _clip(text: str, limit: int, *, keep_tail: bool = False) -> str:
    """At most `limit` characters; the end kept for names that differ at the end (provider/model)."""
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1):] if keep_tail else text[: limit - 1] + "…"


def bar_chart(items: list[tuple[str, float, str]], *, label: str, fmt=str, width: int = 720, keep_tail: bool = False) -> str:
    """Horizontal bars, one per (name, value, colour), in the order given."""
    if not items:
        return ""
    row, label_w, value_w = 22, min(190, width // 3), 90
    plot_w = width - label_w - value_w
    top = max((v for _, v, _ in items), default=0) or 1.0
    height = row * len(items) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" class="chart" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" {FONT}>']
    for i, (name, value, colour) in enumerate(items):
        y = 4 + i * row
        w = max(value / top * plot_w, 1.0 if value > 0 else 0.0)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(_clip(name, label_w // 7, keep_tail=keep_tail))}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{_num(w)}" height="{row - 6}" fill="{colour}">'
            f"<title>{escape(name)}: {escape(fmt(value))}</title></rect>"
            f'<text x="{_num(label_w + w + 6)}" y="{y + 15}">{escape(fmt(value))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def column_chart(periods: list[str], series: list[tuple[str, list[float], str]], *, label: str, fmt=str,
                 width: int = 900, height: int = 280, legend: bool = True) -> str:
    """Stacked columns: one column per period, one stacked segment per (name, values, colour)."""
    if not periods or not series:
        return ""
    left, right, top_pad, bottom = 70, 10, 10, 42
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    sums = [sum(s[1][i] for s in series) for i in range(len(periods))]
    peak = max(sums) or 1.0
    step = plot_w / len(periods)
    bar_w = max(step * 0.8, 1.0)
    legend_rows = (len(series) + 3) // 4 if legend else 0
    total_h = height + legend_rows * 18
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" class="chart" '
             f'width="{width}" height="{total_h}" viewBox="0 0 {width} {total_h}" {FONT}>']
    for k in range(5):  # y grid: 0, 25, 50, 75, 100% of the peak
        value = peak * k / 4
        y = top_pad + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(y)}" y2="{_num(y)}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{_num(y + 4)}" text-anchor="end" fill="#555">{escape(fmt(value))}</text>')
    label_every = max(1, round(len(periods) / 12))
    for i, period in enumerate(periods):
        x = left + i * step + (step - bar_w) / 2
        base = top_pad + plot_h
        for name, values, colour in series:
            value = values[i]
            if value <= 0:
                continue
            h = value / peak * plot_h
            base -= h
            parts.append(f'<rect class="bar" x="{_num(x)}" y="{_num(base)}" width="{_num(bar_w)}" height="{_num(max(h, 0.5))}" '
                         f'fill="{colour}"><title>{escape(period)} · {escape(name)}: {escape(fmt(value))}</title></rect>')
        if i % label_every == 0:
            parts.append(f'<text x="{_num(left + i * step + step / 2)}" y="{top_pad + plot_h + 16}" text-anchor="middle" '
                         f'fill="#555">{escape(period)}</text>')
    if legend:
        for j, (name, _, colour) in enumerate(series):
            lx, ly = left + (j % 4) * (plot_w / 4), height + (j // 4) * 18 - 12
            parts.append(f'<rect x="{_num(lx)}" y="{ly}" width="10" height="10" fill="{colour}"/>'
                         f'<text x="{_num(lx + 14)}" y="{ly + 9}">{escape(_clip(name, 30))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def budget_chart(items: list[tuple[str, float, float]], *, label: str, fmt=str, width: int = 720) -> str:
    """One gauge per (ticket, spent, limit): the share used, red past 100%, orange past 80%."""
    if not items:
        return ""
    row, label_w, value_w = 24, 190, 200
    plot_w = width - label_w - value_w
    height = row * len(items) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" class="chart" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" {FONT}>']
    for i, (name, spent, limit) in enumerate(items):
        y = 4 + i * row
        share = spent / limit if limit > 0 else 1.0
        colour = "#e15759" if share >= 1 else "#f28e2b" if share >= 0.8 else "#59a14f"
        w = max(min(share, 1.0) * plot_w, 1.0 if spent > 0 else 0.0)
        text = f"{fmt(spent)} of {fmt(limit)} ({share:.0%})"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end">{escape(_clip(name, 28))}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{plot_w}" height="{row - 6}" fill="#eee" stroke="#ccc"/>'
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{_num(w)}" height="{row - 6}" fill="{colour}">'
            f"<title>{escape(name)}: {escape(text)}</title></rect>"
            f'<text x="{label_w + plot_w + 6}" y="{y + 16}">{escape(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
