"""The rules a context's fields obey, in plain Python.

The pydantic models (`backlog_ops.context.model`) and the light paths that must not import pydantic
(Claude Code hooks, the proxy's hot path) both validate through these functions, so the rules
exist once.
"""

from __future__ import annotations

from backlog_ops.errors import InvalidContext

__all__ = [
    "CONTEXT_FIELDS",
    "INFERRED_FROM_BRANCH",
    "MAX_LEN",
    "TAG_PREFIXES",
    "TICKET_SOURCE",
    "check_field",
    "check_id",
    "context_tags",
    "describe_context",
    "normalize_context_fields",
    "fields_from_tags",
    "find_ticket_id",
    "is_inferred",
    "slugify",
    "tag_problem",
    "valid_id",
    "ticket_source",
]

MAX_LEN = 64
_ID_MAX_LEN = 128

# Ticket ids: FEAT-001, PROJ_12, v2.3-hotfix. Slugs: implement, security-reviewer,
# backlog-ops:backlog-implementer (plugin skills and agents are namespaced with a colon).
# Plain character sets, not regular expressions: importing `re` costs a Claude Code hook ~6 ms.
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_WORD = _ALNUM | frozenset("._-")
_NAMESPACED = _WORD | frozenset(":")


class _Shape:
    """A first character that is a letter or digit, then characters from `rest`, up to `max_len`."""

    __slots__ = ("rest", "max_len")

    def __init__(self, rest: frozenset, max_len: int) -> None:
        self.rest = rest
        self.max_len = max_len

    def fullmatch(self, value: str) -> bool:
        # issuperset walks the string in C: every request's tags pass through here.
        return 0 < len(value) <= self.max_len and value[0] in _ALNUM and self.rest.issuperset(value)


_TICKET = _Shape(_WORD, 64)
_SLUG = _Shape(_WORD, 64)
_NAMESPACED_SLUG = _Shape(_NAMESPACED, 64)
# Session and agent ids become file names: no separators, no leading dot.
_ID = _Shape(_WORD, 128)

_TICKET_RULE = "letters, digits, '-', '_' or '.', starting with a letter or digit, at most 64 characters (e.g. FEAT-001)"
_SLUG_RULE = "a short slug: letters, digits, '-', '_' or '.', starting with a letter or digit, at most 64 characters (e.g. implement)"
_NS_SLUG_RULE = "a short slug: letters, digits, '-', '_', '.' or ':', starting with a letter or digit, at most 64 characters (e.g. backlog-implementer)"

# field name -> (shape, rule text, required)
_RULES: dict[str, tuple[_Shape, str, bool]] = {
    "ticket_id": (_TICKET, _TICKET_RULE, False),
    "gate": (_SLUG, _SLUG_RULE, True),
    "agent_type": (_NAMESPACED_SLUG, _NS_SLUG_RULE, True),
    "project": (_SLUG, _SLUG_RULE, False),
    "skill": (_NAMESPACED_SLUG, _NS_SLUG_RULE, False),
    "component": (_SLUG, _SLUG_RULE, False),
}

CONTEXT_FIELDS = tuple(_RULES)

# Context field -> tag prefix, in the order tags are emitted.
TAG_PREFIXES = (
    ("ticket_id", "ticket"),
    ("gate", "gate"),
    ("project", "project"),
    ("agent_type", "agent"),
    ("skill", "skill"),
    ("component", "component"),
)


# How a context's ticket was found: absent when someone set the context (a skill, the MCP tool,
# the CLI), "branch" when it was inferred from the git branch because nothing was set. It goes
# with the context as one more key and one more tag (ticket_source:branch), and into the ledger.
TICKET_SOURCE = "ticket_source"
INFERRED_FROM_BRANCH = "branch"
_TICKET_SOURCES = frozenset((INFERRED_FROM_BRANCH,))


def ticket_source(value: object) -> str | None:
    """A known ticket source, or None (set by someone; unknown values are dropped, never stored)."""
    return value if isinstance(value, str) and value in _TICKET_SOURCES else None


def is_inferred(ctx: dict | None) -> bool:
    """Whether a context was inferred (it yields to any context that was set; see scope.in_force)."""
    return bool(ctx) and ticket_source(ctx.get(TICKET_SOURCE)) is not None


def check_field(name: str, value: object) -> str | None:
    """Return the field's value, or None for an empty optional field; raise InvalidContext otherwise."""
    pattern, rule, required = _RULES[name]
    if value is None or value == "":
        if required:
            raise InvalidContext(f"{name} is required: {rule}")
        return None
    if not isinstance(value, str):
        raise InvalidContext(f"{name} must be a string, got {type(value).__name__}: {rule}")
    if not pattern.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise InvalidContext(f"{name} {shown!r} is not allowed: {rule}")
    return value


def check_id(kind: str, value: object) -> str:
    """Validate a session or agent id (they name files, so the rule is strict)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:77] + "...")
        raise InvalidContext(
            f"{kind} {shown} is not allowed: letters, digits, '-', '_' or '.', "
            f"starting with a letter or digit, at most {_ID_MAX_LEN} characters"
        )
    return value


def valid_id(value: object) -> str | None:
    """`value` if it is a valid session or agent id, else None (for ids read from requests)."""
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def normalize_context_fields(fields: dict) -> dict:
    """Validate the six context fields of `fields` and return them (absent optional ones as None)."""
    return {name: check_field(name, fields.get(name)) for name in CONTEXT_FIELDS}


def context_tags(ctx: dict) -> list[str]:
    """The LiteLLM tags for a context: ticket:…, gate:…, project:…, agent:…, skill:…, component:…,
    and ticket_source:branch when its ticket was inferred."""
    tags = [f"{prefix}:{ctx[key]}" for key, prefix in TAG_PREFIXES if ctx.get(key)]
    source = ticket_source(ctx.get(TICKET_SOURCE))
    if source and ctx.get("ticket_id"):
        tags.append(f"{TICKET_SOURCE}:{source}")
    return tags


def slugify(text: str, *, namespaced: bool = False, default: str | None = "default") -> str | None:
    """Turn a free-form name (a directory, a skill or agent type) into a valid slug.

    Runs of other characters become one '-'; `namespaced` keeps ':' (plugin names); an empty
    result gives `default`.
    """
    allowed = _NAMESPACED if namespaced else _WORD
    out: list[str] = []
    for c in text:
        if c in allowed:
            out.append(c)
        elif not out or out[-1] != "-":
            out.append("-")
    strip = "-._:" if namespaced else "-._"
    slug = "".join(out).strip(strip)[:MAX_LEN].rstrip(strip)
    return slug or default


def find_ticket_id(text: str) -> str | None:
    """The first ticket-looking word in free text: FEAT-001, PROJ_12, BUG-7 (upper-case key, digits)."""
    word: list[str] = []
    for c in text + " ":
        if c in _WORD:
            word.append(c)
            continue
        if word and _looks_like_ticket("".join(word).rstrip(".")):
            return "".join(word).rstrip(".")
        word = []
    return None


_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_UPPER_DIGIT = _UPPER | frozenset("0123456789")


def _looks_like_ticket(word: str) -> bool:
    for sep in "-_":
        key, found, number = word.partition(sep)
        if (found and key and key[0] in _UPPER and len(key) <= 16 and all(c in _UPPER_DIGIT for c in key)
                and 0 < len(number) <= 9 and number.isdigit() and number.isascii()):
            return True
    return False


_FIELD_OF_PREFIX = {prefix: key for key, prefix in TAG_PREFIXES}


def fields_from_tags(tags) -> dict:
    """The context fields carried by ticket:/gate:/project:/agent:/skill:/component: tags.

    The first tag of each prefix whose value obeys its field's rule wins (the caller's own tags
    come before the tagger's); a value that breaks the rule (`ticket:../../x`, control
    characters, more than 64 characters) is skipped, as if the tag were absent. Fields with no
    valid tag are absent from the result; a ticket_source:branch tag gives ticket_source.
    """
    context: dict = {}
    for tag in tags or ():
        if not isinstance(tag, str):
            continue
        prefix, sep, value = tag.partition(":")
        field = _FIELD_OF_PREFIX.get(prefix) if sep else None
        if field and field not in context and _RULES[field][0].fullmatch(value):
            context[field] = value
        elif prefix == TICKET_SOURCE and sep and TICKET_SOURCE not in context and ticket_source(value):
            context[TICKET_SOURCE] = value
    return context


def tag_problem(tag: object) -> str | None:
    """Why a ticket:/gate:/… tag's value is not allowed (None: allowed, or not one of ours).

    The tagger drops such tags from a request, whoever sent them: they would otherwise decide
    the call's ticket (a caller's own tag wins over the stored context) with a value no context
    may hold.
    """
    if not isinstance(tag, str):
        return None
    prefix, sep, value = tag.partition(":")
    field = _FIELD_OF_PREFIX.get(prefix) if sep else None
    if field is None:
        return None
    shape, rule, _ = _RULES[field]
    # An empty value ('ticket:') is a caller saying "no ticket": allowed, it carries no field.
    return None if not value or shape.fullmatch(value) else f"{field}: {rule}"


def describe_context(ctx: dict | None) -> str:
    """A context in words, for people and models: 'ticket FEAT-1, gate plan, agent backend (skill x)'."""
    if not ctx:
        return "(none)"
    ticket = f"ticket {ctx['ticket_id']}" if ctx.get("ticket_id") else "no ticket"
    extras = ", ".join(f"{k} {ctx[k]}" for k in ("skill", "project", "component") if ctx.get(k))
    return f"{ticket}, gate {ctx.get('gate')}, agent {ctx.get('agent_type')}" + (f" ({extras})" if extras else "")
