"""The marks a ticket passes on its way to its limits: 50%, 80% and 100% of its budget, and one
frontier escalation left. What a session is told at each, once.

Everything works on a ticket's totals (reports/totals_file.py): spent_usd, budget_usd,
budget_key, escalations, max_escalations, source. Plain functions over dicts: the hooks and the
status line import this module, so it imports nothing.
"""

from __future__ import annotations

__all__ = [
    "ESCALATION_ONE_LEFT",
    "PERCENTS",
    "crossed",
    "heard_key",
    "message",
    "money",
    "newly_crossed",
    "short_usd",
    "used_percent",
]

PERCENTS = (50, 80, 100)
ESCALATION_ONE_LEFT = "escalations-1"
# A cost within a millionth of a dollar of a mark has reached it (sums of floats drift).
_EPSILON = 1e-9


def used_percent(totals: dict | None) -> float | None:
    """Spend as a percentage of the budget, or None without a budget."""
    budget = _number((totals or {}).get("budget_usd"))
    if not budget:
        return None
    return 100.0 * (_number(totals.get("spent_usd")) or 0.0) / budget


def crossed(totals: dict | None) -> list[str]:
    """The marks the ticket is at or past now: "50", "80", "100" and ESCALATION_ONE_LEFT."""
    if not totals:
        return []
    marks = []
    budget = _number(totals.get("budget_usd"))
    if budget:
        spent = _number(totals.get("spent_usd")) or 0.0
        marks = [str(p) for p in PERCENTS if spent + _EPSILON >= budget * p / 100]
    limit, used = _number(totals.get("max_escalations")), _number(totals.get("escalations")) or 0
    if limit is not None and limit >= 1 and used == limit - 1:
        marks.append(ESCALATION_ONE_LEFT)
    return marks


def newly_crossed(old: dict | None, new: dict) -> list[str]:
    """Marks `new` has that the ticket's previous totals had not reached, both against new's limits."""
    before = set(crossed({**new, "spent_usd": (old or {}).get("spent_usd", 0.0),
                          "escalations": (old or {}).get("escalations", 0)}))
    return [mark for mark in crossed(new) if mark not in before]


def heard_key(totals: dict, mark: str) -> str:
    """What a session remembers having heard: the mark against the limit in force (a raised budget
    is a new wall, and its marks are told again)."""
    limit = totals.get("max_escalations") if mark == ESCALATION_ONE_LEFT else totals.get("budget_usd")
    return f"{totals.get('project') or '-'}~{totals.get('ticket_id')}:{mark}@{limit}"


def message(totals: dict, mark: str) -> str:
    """The sentence a session hears when its ticket reaches `mark`."""
    ticket = totals.get("ticket_id")
    where = f" in {totals['source']}" if totals.get("source") else " in backlog.config.json"
    if mark == ESCALATION_ONE_LEFT:
        used, limit = int(totals.get("escalations") or 0), int(totals.get("max_escalations") or 0)
        return (
            f"backlog-ops: ticket {ticket} has 1 escalation to the frontier model left ({used} of {limit} used); "
            "after it, frontier calls for this ticket are refused (HTTP 402). Prefer the cheap or balanced alias."
        )
    spent, budget = _number(totals.get("spent_usd")) or 0.0, _number(totals.get("budget_usd")) or 0.0
    key = totals.get("budget_key") or "llmOps.budgets.perTicketUSD"
    of = f"{money(spent)} of {money(budget)}"
    if mark == "100":
        return (
            f"backlog-ops: ticket {ticket} has reached its budget ({of} spent): its next LLM calls are refused "
            f"(HTTP 402) until the limit is raised ({key}{where}, then `backlog-ops config render`)."
        )
    text = f"backlog-ops: ticket {ticket} has used {mark}% of its budget ({of} spent, {money(max(0.0, budget - spent))} left)."
    if mark == "80":
        text += f" At 100% its LLM calls are refused (HTTP 402): wrap up or hand over, or raise {key}{where}."
    return text


def money(value: float) -> str:
    """USD as policy/messages.money writes it: four decimals below $100, else two."""
    return f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def short_usd(value: float) -> str:
    """USD for a status line: cents from $1 up, four decimals below."""
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)
