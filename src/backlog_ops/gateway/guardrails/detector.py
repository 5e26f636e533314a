"""The detector: one pass per kind over a request's text; findings carry masked previews only.

A pure function of the text and the configuration: no I/O, no logging, no LiteLLM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from backlog_ops.gateway.guardrails.finding import Finding, family
from backlog_ops.gateway.guardrails.injection_patterns import (
    INJECTION,
    INJECTION_PREFILTER,
)
from backlog_ops.gateway.guardrails.masking import mask
from backlog_ops.gateway.guardrails.pii_patterns import (
    CARD,
    DIGITS13,
    EMAIL,
    PHONE_INTL,
    PHONE_NANP,
    PLACEHOLDER_DOMAINS,
    SSN,
    SSN_CONTEXT,
    TEST_CARDS,
    card_ok,
    email_ok,
    phone_ok,
    ssn_context_bad,
    ssn_ok,
)
from backlog_ops.gateway.guardrails.secret_patterns import (
    AUTH_HEADER,
    KEYISH,
    PLACEHOLDER,
    SECRET_PREFILTER,
    SECRETS,
    generic_secret,
    shannon_entropy,
)

__all__ = ["Detector", "scan"]

_PREFILTER: dict[str, tuple[str, ...]] = {**INJECTION_PREFILTER, **SECRET_PREFILTER}


def _wanted(kind: str, low: str) -> bool:
    words = _PREFILTER.get(kind)
    if words is None:
        return True
    for word in words:
        if word in low:
            return True
    return False


@dataclass
class Detector:
    """Compiled patterns; `scan(text)` is safe to call from any thread."""

    extra_patterns: dict[str, list[str]] = field(default_factory=dict)
    disabled: frozenset[str] | set[str] = frozenset()  # kinds or families ("pii.phone", "secret", "injection")
    allow_email_domains: frozenset[str] | set[str] = PLACEHOLDER_DOMAINS
    test_cards: frozenset[str] | set[str] = TEST_CARDS
    max_chars: int = 200_000  # longer text is scanned head and tail only: bounded cost per request

    def __post_init__(self) -> None:
        groups: dict[str, list[str]] = {k: list(v) for k, v in INJECTION.items()}
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
        domains = set(PLACEHOLDER_DOMAINS) | {d.lower() for d in config.get("allow_email_domains") or ()}
        cards = set(TEST_CARDS) | {re.sub(r"\D", "", str(c)) for c in config.get("extra_test_cards") or ()}
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
            for kind, rx, min_entropy in SECRETS:
                if not self._on(kind) or not _wanted(kind, low):
                    continue
                for m in rx.finditer(text):
                    value = m.group(0)
                    if min_entropy and (PLACEHOLDER.search(value) or shannon_entropy(value) < min_entropy):
                        continue
                    add(Finding(kind, m.start(), m.end(), mask(kind, value)))
                    secret_spans.append((m.start(), m.end()))
            if self._on("secret.generic") and _wanted("secret.generic", low):
                for rx in (KEYISH, AUTH_HEADER):
                    for m in rx.finditer(text):
                        s, e = m.span(1)
                        if any(a <= s < b for a, b in secret_spans):
                            continue
                        if generic_secret(m.group(1), text[max(0, m.start() - 1):e + 1]):
                            add(Finding("secret.generic", s, e, mask("secret.generic", m.group(1))))
                            secret_spans.append((s, e))
        if "@" in text and self._on("pii.email"):
            for m in EMAIL.finditer(text):
                if email_ok(m.group(1), m.group(2), text, m.end(), self.allow_email_domains):
                    add(Finding("pii.email", m.start(), m.end(), mask("pii.email", m.group(0))))
        if self._on("pii.card") and DIGITS13.search(text):
            for m in CARD.finditer(text):
                if any(a <= m.start() < b for a, b in secret_spans):
                    continue
                digits = re.sub(r"[ -]", "", m.group(0))
                if card_ok(digits, m.group(0)) and digits not in self.test_cards:
                    add(Finding("pii.card", m.start(), m.end(), mask("pii.card", digits)))
        if self._on("pii.ssn"):
            for m in SSN.finditer(text):
                if ssn_ok(*m.groups()) and not ssn_context_bad(text, m.start()):
                    add(Finding("pii.ssn", m.start(), m.end(), mask("pii.ssn", m.group(0))))
            for m in (SSN_CONTEXT.finditer(text) if ("ssn" in low or "social security" in low or "tax" in low or "tin" in low) else ()):
                if ssn_ok(*m.groups()) and not any(f.kind == "pii.ssn" and f.start <= m.start(1) < f.end for f in found):
                    add(Finding("pii.ssn", m.start(1), m.end(3), mask("pii.ssn", m.group(0))))
        if self._on("pii.phone"):
            seen: list[tuple[int, int]] = [(f.start, f.end) for f in found if f.kind in ("pii.card", "pii.ssn")]
            for rx in (PHONE_NANP, PHONE_INTL):
                for m in rx.finditer(text):
                    s, e = m.span()
                    if any(a < e and s < b for a, b in seen):
                        continue
                    if phone_ok(m.group(0), text, s, e):
                        add(Finding("pii.phone", s, e, mask("pii.phone", m.group(0))))
                        seen.append((s, e))
        found.sort(key=lambda f: (f.start, f.kind))
        return found

    def kinds(self, text: str) -> list[str]:
        """The distinct kinds found, sorted (what an alert carries)."""
        return sorted({f.kind for f in self.scan(text)})


_DEFAULT: Detector | None = None


def scan(text: str) -> list[Finding]:
    """Scan with the default detector (built once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Detector()
    return _DEFAULT.scan(text)
