"""Alert-only guardrails: detect prompt injection, PII and secrets in request text.

A pure detector: no I/O, no logging, no LiteLLM. `scan(text)` returns `Finding`s that carry the
kind, the position and a MASKED preview, never the matched text, so a finding can be logged,
stored and published safely. The callback `backlog_ops.callbacks.guardrail_alerts` runs it on
the user content of each request and raises alerts; nothing here blocks anything.

Kinds (the part before the dot is the family the evaluation reports on):

    injection.override   "ignore previous instructions", "disregard above", ...
    injection.exfiltrate "send the API keys to https://…", "reveal your system prompt"
    injection.roleplay   "you are now DAN", "developer mode enabled", "pretend … no restrictions"
    injection.markup     chat-template markers in pasted content (<|im_start|>system, [INST])
    injection.indirect   text addressed to AI agents reading a page ("AI assistants reading this must …")
    pii.email            an e-mail address (placeholder domains and no-reply addresses excluded)
    pii.phone            a formatted phone number (NANP or +international)
    pii.card             a payment card number: issuer prefix, length and Luhn checksum (well-known test PANs excluded)
    pii.ssn              a US SSN in a valid range (000/666/9xx areas, 00 groups, 0000 serials, known examples excluded)
    secret.<vendor>      OpenAI/Anthropic sk-…, AWS AKIA…/ASIA…, GitHub ghp_…/github_pat_…, Slack xox…,
                         Google AIza…, Stripe sk_live_/rk_live_, private-key blocks, JWTs
    secret.generic       a long, high-entropy value right after a key-ish name (api_key=, token:, password=)

Configuration: `Detector(extra_patterns={"injection.custom": [r"regex", ...]}, disabled={"pii.phone"},
allow_email_domains=..., test_cards=...)`, or a JSON/YAML file named by $BACKLOG_GUARDRAILS_FILE
(see `Detector.from_config`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = ["Detector", "Finding", "family", "luhn_ok", "mask", "scan", "shannon_entropy"]


@dataclass(frozen=True)
class Finding:
    kind: str  # e.g. "pii.email", "secret.aws", "injection.override"
    start: int
    end: int
    masked: str  # safe to log: never the matched text

    @property
    def family(self) -> str:
        return family(self.kind)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "start": self.start, "end": self.end, "masked": self.masked}


def family(kind: str) -> str:
    """'pii.email' -> 'pii.email'; 'secret.aws' -> 'secret'; 'injection.override' -> 'injection'."""
    head = kind.split(".", 1)[0]
    return kind if head == "pii" else head


# -- helpers ----------------------------------------------------------------------------------

def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def shannon_entropy(s: str) -> float:
    if not s:
        return 0.0
    counts: dict[str, int] = {}
    for ch in s:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def mask(kind: str, text: str) -> str:
    """A preview that identifies the kind and size of a match without revealing it."""
    n = len(text)
    if kind == "pii.card":
        digits = re.sub(r"\D", "", text)
        return f"card ****{digits[-4:]} ({len(digits)} digits)"
    if kind == "pii.email":
        local, _, domain = text.partition("@")
        tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
        return f"{local[:1]}***@***.{tld}"
    if kind.startswith("secret."):
        prefix = _SECRET_PREFIX.match(text)
        shown = prefix.group(0) if prefix else ""
        return f"{shown}*** ({n} chars)"
    if kind.startswith("injection."):
        return f"[{kind} phrase, {n} chars]"
    return f"[{kind}, {n} chars]"


# Vendor prefixes are public knowledge; showing them says which kind of key leaked, nothing more.
_SECRET_PREFIX = re.compile(r"^(://|glpat-|SG\.|--password|--token|-p |sk-ant-|sk-proj-|sk-|AKIA|ASIA|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|xox[abprse]-|AIza|sk_live_|rk_live_|sk_test_|-----BEGIN|eyJ)")

# -- prompt injection --------------------------------------------------------------------------

_INJECTION: dict[str, list[str]] = {
    "injection.override": [
        # the brief's examples and the common phrasings around them
        r"\b(?:ignore|disregard|forget|skip|override|bypass)\s+(?:all\s+|any\s+|the\s+|your\s+|my\s+|of\s+)*(?:previous|prior|above|earlier|preceding|original|former|system)\s+(?:instructions?|prompts?|rules|directions|guidelines|guidance|constraints|context|messages?|commands?|orders)\b",
        r"\bdisregard\s+(?:all\s+|everything\s+)?(?:the\s+)?(?:above|previous|prior)\b(?!\s+(?:warning|error|message|output|comment|line|test|change|commit|log|diff|note|stack|trace|result|failure|suggestion)s?\b)",
        r"\bforget\s+(?:everything|all)\s+(?:you\s+(?:were|have\s+been)\s+told|(?:above|before|previously)|your\s+instructions)\b",
        r"\b(?:ignore|disregard)\s+(?:all\s+)?(?:of\s+)?(?:your|the)\s+(?:safety\s+)?(?:instructions|guidelines|rules|programming|system\s+prompt)\b",
        r"\bnew\s+(?:system\s+)?instructions?\s*:\s*(?:you|from\s+now|ignore|always|never|do)\b",
        r"\b(?:system|admin|developer)\s+override\b",
        r"\bfrom\s+now\s+on,?\s+(?:you\s+(?:will|must|are)|ignore|respond\s+only)\b",
        r"\bdo\s+not\s+(?:tell|inform|alert|notify|mention\s+(?:this|it)\s+to)\s+the\s+user\b",
        r"\bwithout\s+(?:telling|informing|notifying|asking)\s+the\s+user\b",
        r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+)?(?:the|your|any|these)\s+(?:\w+\s+)?(?:rules|instructions|guidelines|directions)\s+(?:above|before|given|you(?:'ve|\s+have)\s+been\s+given)\b",
        r"\byour\s+real\s+(?:task|job|instructions?|goal|purpose)\s+is\b",
        r"\bstop\s+what\s+you(?:'re|\s+are)\s+doing\s+and\b",
        r"\bthe\s+user\s+has\s+(?:already\s+)?(?:authori[sz]ed|allowed|permitted|approved)\s+you\s+to\b",
    ],
    "injection.exfiltrate": [
        r"\b(?:reveal|print|show|output|repeat|display|leak|dump|tell\s+me)\s+(?:me\s+)?(?:your|the)\s+(?:full\s+|entire\s+|complete\s+|original\s+|hidden\s+|initial\s+)*(?:system\s+prompt|system\s+message|hidden\s+instructions|initial\s+instructions|instructions\s+above|prompt\s+above)\b",
        r"\b(?:send|post|upload|exfiltrate|forward|transmit|email|curl)\s+(?:the\s+|all\s+|any\s+|your\s+|every\s+)*(?:contents?\s+of\s+)?(?:\.env|env(?:ironment)?\s+variables?|secrets?|api[\s_-]?keys?|credentials|tokens?|ssh\s+keys?|~/\.ssh|~/\.aws|passwords?)\b[^\n]{0,80}?\b(?:to|at|into)\s+(?:https?://|the\s+(?:following\s+)?(?:url|endpoint|server|webhook|address))",
        r"\b(?:cat|read)\s+(?:~/\.ssh/id_\w+|~/\.aws/credentials|\.env)\b[^\n]{0,60}\|\s*(?:curl|nc|wget)\b",
    ],
    "injection.roleplay": [
        r"\byou\s+are\s+now\s+(?:DAN|in\s+(?:developer|god|jailbreak|unrestricted|debug)\s+mode|an?\s+(?:unrestricted|unfiltered|uncensored|evil|jailbroken)\b)",
        r"\b(?:developer|jailbreak|god)\s+mode\s+(?:enabled|activated|on)\b",
        r"\b(?:pretend|act\s+as\s+if|imagine)\s+(?:that\s+)?(?:you\s+(?:are|have)|to\s+be)\b[^\n.]{0,60}\b(?:no|without|free\s+of)\s+(?:restrictions|rules|limits|filters|guidelines|safety)\b",
        r"\bdo\s+anything\s+now\b",
        r"\byou\s+(?:have\s+been|are\s+now|are)\s+jailbroken\b",
        r"\b(?:without|with\s+no)\s+(?:any\s+)?(?:ethical|safety|content)\s+(?:limits|restrictions|filters|guidelines)\b",
    ],
    "injection.markup": [
        r"<\|im_start\|>\s*system",
        r"<\|(?:system|endoftext)\|>",
        r"\[INST\]|<<SYS>>",
        r"^\s*#{2,}\s*(?:new\s+)?system\s*(?:prompt|message|instructions?)?\s*:?\s*$",
        r"</?(?:system_prompt|system-prompt|admin_instructions)>",
    ],
    "injection.indirect": [
        r"\b(?:ai|llm|language\s+model|assistant|agent|copilot|claude|chatgpt|gpt)s?\s+(?:reading|processing|parsing|summari[sz]ing|viewing|that\s+reads?)\s+this\b[^\n]{0,80}\b(?:must|should|are\s+(?:required|instructed)|will)\b",
        r"\b(?:attention|note|important|instructions?)\s*(?:to|for)\s+(?:all\s+)?(?:ai|llm|automated)\s+(?:assistants?|agents?|models?|systems?)\s*[:\-]",
        r"\bif\s+you\s+are\s+an?\s+(?:ai|llm|language\s+model|assistant|automated\s+agent)\b[^\n]{0,40}\b(?:ignore|you\s+must|you\s+should|do\s+not|execute|run|include)\b",
        r"\b(?:note|message|instructions?|memo)\s+(?:for|to)\s+(?:the\s+|any\s+|all\s+)?(?:ai|llm|assistant|agent|bot|model)s?\b\s*[:\-]",
        r"\b(?:to\s+the\s+)?(?:code[\s-]review|review|coding|ai|llm)\s+(?:bot|agent|assistant)s?\s*[-:,]\s*(?:please\s+)?(?:approve|ignore|merge|run|delete|do\s+not|you\s+must)\b",
        r"\b(?:llm|ai)\s+(?:agents?|assistants?|bots?)\s*,\s*(?:your|you\s+must|please\s+(?:ignore|run|delete))\b",
        r"\b(?:hey|dear|hi)\s+(?:claude|chatgpt|copilot|gemini|assistant|ai)\s*,\s*(?:stop|ignore|forget|please\s+(?:ignore|run|delete|open))\b",
    ],
}

# Cheap pre-checks: a kind's regex runs only when the lower-cased text holds one of these
# substrings (Python's substring search is far faster than a regex alternation at every offset).
_PREFILTER: dict[str, tuple[str, ...]] = {
    "injection.override": ("ignore", "disregard", "forget", "skip", "override", "bypass", "instruction", "from now on",
                           "do not tell", "do not inform", "do not alert", "do not notify", "do not mention", "without telling",
                           "without informing", "without notifying", "without asking", "your real", "stop what", "has authori",
                           "has allowed", "has permitted", "has approved", "has already"),
    "injection.exfiltrate": ("system prompt", "system message", "hidden instructions", "initial instructions", "instructions above",
                             "prompt above", ".env", "environment variable", "env variable", "secret", "api key", "api_key",
                             "api-key", "apikey", "credentials", "token", "ssh", ".aws", "password"),
    "injection.roleplay": ("you are", "mode", "pretend", "act as", "imagine", "anything now", "jailbr", "ethical", "safety", "content"),
    "injection.markup": ("<|", "[inst]", "<<sys>>", "#", "system_prompt", "system-prompt", "admin_instructions"),
    "injection.indirect": ("reading this", "processing this", "parsing this", "summarizing this", "summarising this", "viewing this",
                           "that reads", "that read", "if you are a", "note for", "note to", "message for", "message to", "instructions for",
                           "instructions to", "instruction for", "instruction to", "memo for", "memo to", "attention", "important", "bot",
                           "agent", "assistant", "hey ", "dear ", "hi "),
    "secret.anthropic": ("sk-ant-",), "secret.openai": ("sk-",), "secret.aws": ("akia", "asia", "agpa", "aida", "aroa", "anpa"),
    "secret.github": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), "secret.slack": ("xox",), "secret.google": ("aiza",),
    "secret.stripe": ("_live_", "_test_"), "secret.private_key": ("private key",), "secret.gitlab": ("glpat-",), "secret.sendgrid": ("sg.",),
    "secret.url_password": ("://",), "secret.cli_password": ("-p ", "--password", "--token", "--api-key", "-p="), "secret.jwt": ("eyj",),
    "secret.generic": ("key", "secret", "token", "passw", "pwd", "bearer", "credential", "authorization"),
}


def _wanted(kind: str, low: str) -> bool:
    words = _PREFILTER.get(kind)
    if words is None:
        return True
    for word in words:
        if word in low:
            return True
    return False


# -- PII -----------------------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+/-])([A-Za-z0-9][A-Za-z0-9._%+-]{0,63})@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w-])")
_PLACEHOLDER_DOMAINS = frozenset({
    "example.com", "example.org", "example.net", "example.edu", "test.com", "test.local", "localhost",
    "domain.com", "email.com", "company.com", "yourcompany.com", "acme.test", "invalid", "test", "example",
    "users.noreply.github.com", "noreply.github.com",
})
_NOREPLY_LOCAL = re.compile(r"^(?:no-?reply|do-?not-?reply|donotreply|mailer-daemon|postmaster|git|noreply\+.*)$", re.I)
_FILE_TLDS = frozenset({"py", "js", "ts", "tsx", "jsx", "json", "yaml", "yml", "md", "txt", "png", "jpg", "svg", "css",
                        "html", "lock", "toml", "cfg", "ini", "sh", "rs", "go", "java", "kt", "rb", "php", "vue", "map", "gz", "zip"})

# NANP (415) 555-0132 / 415-555-0132 / 415.555.0132 / +1 415 555 0132; international +44 20 7946 0958
_PHONE_NANP = re.compile(r"(?<![\w.+/:#-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w.-]?\d)(?!\.\w)")
_PHONE_INTL = re.compile(r"(?<![\w.+/:#-])\+(?:[1-9]\d{0,2})(?:(?:[\s.-]\(?\d{1,6}\)?){2,5}|\d{8,13})(?![\w.-]?\d)")
_PHONE_CONTEXT_BAD = re.compile(r"(?:version|v|build|release|id|port|pid|line|offset|sha|#|commit|issue|pr|ticket|order|invoice|ref|sku|part|serial|model|account|acct|routing)\s*[:=#]?\s*$", re.I)

_CARD = re.compile(r"(?<![\w.-])(?:(?:\d{4}[ -]?){3}\d{1,7}|\d{4}[ -]?\d{6}[ -]?\d{4,5})(?![\w-]|\.\d)")
_DIGITS13 = re.compile(r"\d{4}[ -]?\d{4}")
_TEST_CARDS = frozenset({
    "4111111111111111", "4242424242424242", "4000056655665556", "5555555555554444", "2223003122003222",
    "5200828282828210", "5105105105105100", "378282246310005", "371449635398431", "6011111111111117",
    "6011000990139424", "3056930009020004", "36227206271667", "3566002020360505", "4012888888881881",
    "4000000000000002", "4000000000009995", "4000000000000077", "4000002500003155", "4000000000003220",
    "4000000000000341", "4000000000000119", "4000000000000101", "4000000000000069", "4000000000000127",
    "4000000000000259", "5454545454545454", "4917610000000000", "4444333322221111", "4007000000027",
    "4012888818888", "4222222222222", "378734493671000", "6011601160116611", "3530111333300000",
})

_SSN = re.compile(r"(?<![\w-])(\d{3})-(\d{2})-(\d{4})(?![\w-])")
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|social\s+security(?:\s+(?:number|no\.?|#))?|tax\s*id|tin)\b\s*[:#=]?\s*(\d{3})[ ]?(\d{2})[ ]?(\d{4})(?!\d)")
_SSN_EXAMPLES = frozenset({"078051120", "219099999", "123456789", "111111111", "987654320", "987654321"})

# -- secrets -------------------------------------------------------------------------------------

_SECRETS: list[tuple[str, re.Pattern, float]] = [
    # (kind, pattern, minimum entropy of the variable part; 0 = no check)
    ("secret.anthropic", re.compile(r"(?<![\w-])sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{40,}"), 3.5),
    ("secret.openai", re.compile(r"(?<![\w-])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}(?![\w-])"), 3.6),
    ("secret.aws", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}(?![A-Z0-9])"), 2.8),
    ("secret.github", re.compile(r"(?<![\w])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})(?!\w)"), 3.5),
    ("secret.slack", re.compile(r"(?<![\w])xox[abprse]-(?:\d+-)+[A-Za-z0-9]{10,}|(?<![\w])xox[abprse]-[A-Za-z0-9-]{24,}"), 3.0),
    ("secret.google", re.compile(r"(?<![\w])AIza[0-9A-Za-z_-]{35}(?![\w-])"), 3.5),
    ("secret.stripe", re.compile(r"(?<![\w])(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{20,}(?!\w)"), 3.5),
    ("secret.private_key", re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----"), 0.0),
    ("secret.gitlab", re.compile(r"(?<![\w-])glpat-[A-Za-z0-9_-]{20,}(?![\w-])"), 3.3),
    ("secret.sendgrid", re.compile(r"(?<![\w.])SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![\w-])"), 3.5),
    ("secret.url_password", re.compile(r"(?<=[a-z0-9])://[^\s:/@'\"]{1,64}:(?!\$\{|\*+@|<)[^\s:/@'\"]{8,128}@[\w.-]+"), 3.0),
    ("secret.cli_password", re.compile(r"(?<![\w-])(?:-p|--password|--token|--api-key)[ =](?!\$|<|\{)[A-Za-z0-9_\-+/=.~!#%^*]{16,}(?=\s|$)"), 3.6),
    ("secret.jwt", re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"), 0.0),
]
_KEYISH = re.compile(
    r"""(?ix)
    (?:api[_-]?key|apikey|secret|access[_-]?key|private[_-]?key|auth[_-]?token|access[_-]?token|
       bearer|token|passw(?:or)?d|pwd|client[_-]?secret|credentials?)[\w.-]{0,40}
    ["'`]?\s*(?:[:=]|=>|:=)\s*(?:bearer\s+)?["'`]?
    ([A-Za-z0-9_\-+/=.~!#%^*]{20,200})
    """
)
_AUTH_HEADER = re.compile(r"(?i)\bauthorization['\"]?\s*:\s*['\"]?(?:bearer|token|basic)\s+([A-Za-z0-9_\-+/=.~]{20,400})")
_PLACEHOLDER = re.compile(r"(?i)(?:x{6,}|\*{4,}|\.{3}|<[^>]*>|\$\{|\{\{|your[_-]|example|placeholder|changeme|redacted|dummy|fake|sample|replace[_-]?me|os\.environ|process\.env|getenv|settings\.|config\.|env\[)")
_HEX_HASH = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}|[0-9A-F]{32}|[0-9A-F]{40}|[0-9A-F]{64})$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_IDENT_LIKE = re.compile(r"^[A-Za-z_][A-Za-z_.]*$")  # a variable or dotted name, not a value


@dataclass
class Detector:
    """Compiled patterns; `scan(text)` is safe to call from any thread."""

    extra_patterns: dict[str, list[str]] = field(default_factory=dict)
    disabled: frozenset[str] | set[str] = frozenset()  # kinds or families ("pii.phone", "secret", "injection")
    allow_email_domains: frozenset[str] | set[str] = _PLACEHOLDER_DOMAINS
    test_cards: frozenset[str] | set[str] = _TEST_CARDS
    max_chars: int = 200_000  # longer text is scanned head and tail only: bounded cost per request

    def __post_init__(self) -> None:
        groups: dict[str, list[str]] = {k: list(v) for k, v in _INJECTION.items()}
        for kind, patterns in (self.extra_patterns or {}).items():
            groups.setdefault(kind, []).extend([patterns] if isinstance(patterns, str) else list(patterns))
        self._custom: list[tuple[str, re.Pattern]] = []
        for kind, patterns in groups.items():
            if not patterns:
                continue
            # One alternation per kind: one pass over the text per kind, not per phrase.
            self._custom.append((kind, re.compile("|".join(f"(?:{p})" for p in patterns), re.I | re.M)))
        self.disabled = frozenset(self.disabled)
        self._extra_kinds = frozenset(self.extra_patterns or ())

    @classmethod
    def from_config(cls, config: dict | None) -> "Detector":
        """{"patterns": {kind: [regex, ...]}, "disabled": [kind, ...], "allow_email_domains": [...],
        "extra_test_cards": [...], "max_chars": N}."""
        config = config or {}
        domains = set(_PLACEHOLDER_DOMAINS) | {d.lower() for d in config.get("allow_email_domains") or ()}
        cards = set(_TEST_CARDS) | {re.sub(r"\D", "", str(c)) for c in config.get("extra_test_cards") or ()}
        return cls(
            extra_patterns=dict(config.get("patterns") or {}),
            disabled=frozenset(config.get("disabled") or ()),
            allow_email_domains=frozenset(domains),
            test_cards=frozenset(cards),
            max_chars=int(config.get("max_chars") or 200_000),
        )

    def _on(self, kind: str) -> bool:
        if not self.disabled:
            return True
        return kind not in self.disabled and family(kind) not in self.disabled and kind.split(".", 1)[0] not in self.disabled

    # -- the scan --------------------------------------------------------------------------------

    def scan(self, text: str) -> list[Finding]:
        if not text:
            return []
        if len(text) > self.max_chars:
            half = self.max_chars // 2
            head = self.scan(text[:half])
            offset = len(text) - half
            return head + [Finding(f.kind, f.start + offset, f.end + offset, f.masked) for f in self.scan(text[-half:])]
        found: list[Finding] = []
        add = found.append
        low = text.lower()
        for kind, rx in self._custom:
            if self._on(kind) and (kind in self._extra_kinds or _wanted(kind, low)):
                for m in rx.finditer(text):
                    add(Finding(kind, m.start(), m.end(), mask(kind, m.group(0))))
        secret_spans: list[tuple[int, int]] = []
        if self._on("secret"):
            for kind, rx, min_entropy in _SECRETS:
                if not self._on(kind) or not _wanted(kind, low):
                    continue
                for m in rx.finditer(text):
                    value = m.group(0)
                    if min_entropy and (_PLACEHOLDER.search(value) or shannon_entropy(value) < min_entropy):
                        continue
                    add(Finding(kind, m.start(), m.end(), mask(kind, value)))
                    secret_spans.append((m.start(), m.end()))
            if self._on("secret.generic") and _wanted("secret.generic", low):
                for rx in (_KEYISH, _AUTH_HEADER):
                    for m in rx.finditer(text):
                        s, e = m.span(1)
                        if any(a <= s < b for a, b in secret_spans):
                            continue
                        if _generic_secret(m.group(1), text[max(0, m.start() - 1):e + 1]):
                            add(Finding("secret.generic", s, e, mask("secret.generic", m.group(1))))
                            secret_spans.append((s, e))
        if "@" in text and self._on("pii.email"):
            for m in _EMAIL.finditer(text):
                if self._email_ok(m.group(1), m.group(2), text, m.end()):
                    add(Finding("pii.email", m.start(), m.end(), mask("pii.email", m.group(0))))
        if self._on("pii.card") and _DIGITS13.search(text):
            for m in _CARD.finditer(text):
                if any(a <= m.start() < b for a, b in secret_spans):
                    continue
                digits = re.sub(r"[ -]", "", m.group(0))
                if _card_ok(digits, m.group(0)) and digits not in self.test_cards:
                    add(Finding("pii.card", m.start(), m.end(), mask("pii.card", digits)))
        if self._on("pii.ssn"):
            for m in _SSN.finditer(text):
                if _ssn_ok(*m.groups()) and not _ssn_context_bad(text, m.start()):
                    add(Finding("pii.ssn", m.start(), m.end(), mask("pii.ssn", m.group(0))))
            for m in (_SSN_CONTEXT.finditer(text) if ("ssn" in low or "social security" in low or "tax" in low or "tin" in low) else ()):
                if _ssn_ok(*m.groups()) and not any(f.kind == "pii.ssn" and f.start <= m.start(1) < f.end for f in found):
                    add(Finding("pii.ssn", m.start(1), m.end(3), mask("pii.ssn", m.group(0))))
        if self._on("pii.phone"):
            seen: list[tuple[int, int]] = [(f.start, f.end) for f in found if f.kind in ("pii.card", "pii.ssn")]
            for rx in (_PHONE_NANP, _PHONE_INTL):
                for m in rx.finditer(text):
                    s, e = m.span()
                    if any(a < e and s < b for a, b in seen):
                        continue
                    if _phone_ok(m.group(0), text, s, e):
                        add(Finding("pii.phone", s, e, mask("pii.phone", m.group(0))))
                        seen.append((s, e))
        found.sort(key=lambda f: (f.start, f.kind))
        return found

    def kinds(self, text: str) -> list[str]:
        """The distinct kinds found, sorted (what an alert carries)."""
        return sorted({f.kind for f in self.scan(text)})

    def _email_ok(self, local: str, domain: str, text: str, end: int) -> bool:
        domain_l = domain.lower()
        if domain_l in self.allow_email_domains or any(domain_l.endswith("." + d) for d in self.allow_email_domains):
            return False
        if _NOREPLY_LOCAL.match(local):
            return False
        tld = domain_l.rsplit(".", 1)[-1]
        if tld in _FILE_TLDS:  # name@2x.png, pkg@scope.js ...
            return False
        if text[end:end + 1] == ":" and local == "git":
            return False
        token_start = max(text.rfind(" ", 0, end), text.rfind("\n", 0, end), text.rfind("=", 0, end - len(local) - len(domain)))
        if "://" in text[token_start + 1:end] and "mailto:" not in text[token_start + 1:end]:
            return False  # user:password@host in a URL, not an address
        return True


def _card_ok(digits: str, raw: str) -> bool:
    n = len(digits)
    if n < 13 or n > 19 or not luhn_ok(digits):
        return False
    # Separators, when present, must group like a printed card number (4-4-4-4, 4-6-5).
    if re.search(r"[ -]", raw):
        groups = [len(g) for g in re.split(r"[ -]", raw.strip())]
        if groups not in ([4, 4, 4, 4], [4, 6, 5], [4, 6, 4], [4, 4, 4, 4, 3], [4, 4, 4, 1], [4, 4, 5]):
            return False
    if len(set(digits)) <= 2:
        return False
    two, three, four = int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if four == 6011 or two == 65 or 644 <= three <= 649:
        return n in (16, 19)
    if 3528 <= four <= 3589:
        return n in (16, 19)
    if two in (36, 38) or 300 <= three <= 305:
        return n == 14
    if two == 62:
        return 16 <= n <= 19
    return False


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return (area + group + serial) not in _SSN_EXAMPLES


def _ssn_context_bad(text: str, start: int) -> bool:
    before = text[max(0, start - 24):start].lower()
    return bool(re.search(r"(?:version|build|release|ticket|issue|case|order|invoice|pr|part|sku|model|serial|ref|id)(?:\s+(?:number|no\.?|#))?\s*[:#=]?\s*$|\d[.-]$|[a-z]-$", before))


def _phone_ok(raw: str, text: str, start: int, end: int) -> bool:
    digits = re.sub(r"\D", "", raw)
    if not 10 <= len(digits) <= 15:
        return False
    if len(set(digits)) <= 2:
        return False
    before = text[max(0, start - 20):start]
    if _PHONE_CONTEXT_BAD.search(before):
        return False
    # timestamps, versions and IP-ish runs: dotted numbers around it
    if re.search(r"\d[.:]$", before) or re.match(r"^[.:]\d", text[end:end + 2]):
        return False
    if raw.startswith("+"):
        return True
    # NANP: area code and exchange cannot start with 0 or 1
    national = digits[-10:]
    return national[0] not in "01" and national[3] not in "01"


def _generic_secret(value: str, around: str) -> bool:
    value = value.strip("\"'`").rstrip(".,;")
    if len(value) < 20 or _PLACEHOLDER.search(value) or _IDENT_LIKE.match(value):
        return False
    if _UUID.match(value) or _HEX_HASH.match(value) and len(value) != 32:
        return False
    if value.isdigit():
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"\d"))
    entropy = shannon_entropy(value)
    if re.fullmatch(r"[0-9a-fA-F]+", value):
        return entropy >= 3.2
    return classes >= 2 and entropy >= 3.7


_DEFAULT: Detector | None = None


def scan(text: str) -> list[Finding]:
    """Scan with the default detector (built once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Detector()
    return _DEFAULT.scan(text)


def iter_texts(items: Iterable[Any]) -> Iterable[str]:
    """Text parts of message contents: strings and {"type": "text", "text": ...} blocks (and tool results)."""
    for item in items:
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            if isinstance(item.get("text"), str):
                yield item["text"]
            content = item.get("content")
            if isinstance(content, str):
                yield content
            elif isinstance(content, list):
                yield from iter_texts(content)


# -- evaluation on a labelled set (tests/data/guardrails/labelled.jsonl) --------------------------

FAMILIES = ("injection", "pii.email", "pii.phone", "pii.card", "pii.ssn", "secret")


def evaluate(items: Iterable[dict], detector: Detector | None = None) -> dict:
    """Per-family and overall precision/recall, item level: an item is predicted positive for a
    family when any finding of that family is in its text. Items: {"text", "labels": [family...]}."""
    detector = detector or Detector()
    counts = {f: {"tp": 0, "fp": 0, "fn": 0, "tn": 0} for f in FAMILIES}
    errors: list[dict] = []
    for item in items:
        predicted = {family(f.kind) for f in detector.scan(item["text"])}
        truth = set(item.get("labels") or ())
        for fam in FAMILIES:
            p, t = fam in predicted, fam in truth
            key = "tp" if p and t else "fp" if p else "fn" if t else "tn"
            counts[fam][key] += 1
            if key in ("fp", "fn"):
                errors.append({"id": item.get("id"), "family": fam, "error": key, "note": item.get("note")})

    def pr(c: dict) -> dict:
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
        return {**c, "precision": precision, "recall": recall}

    total = {k: sum(c[k] for c in counts.values()) for k in ("tp", "fp", "fn", "tn")}
    return {"families": {f: pr(c) for f, c in counts.items()}, "overall": pr(total), "errors": errors}
