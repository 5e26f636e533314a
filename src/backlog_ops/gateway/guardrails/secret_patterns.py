"""Secrets: vendor API keys, private keys, tokens, and long random values after a key-ish name."""

from __future__ import annotations

import math
import re

__all__ = ["AUTH_HEADER", "KEYISH", "PLACEHOLDER", "SECRETS", "SECRET_PREFILTER", "generic_secret", "shannon_entropy"]

# A vendor's key format, per kind.
SECRET_PATTERNS: dict[str, str] = {
    "secret.anthropic": r"(?<![\w-])sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{40,}",
    "secret.openai": r"(?<![\w-])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}(?![\w-])",
    "secret.aws": r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}(?![A-Z0-9])",
    "secret.github": r"(?<![\w])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})(?!\w)",
    "secret.slack": r"(?<![\w])xox[abprse]-(?:\d+-)+[A-Za-z0-9]{10,}|(?<![\w])xox[abprse]-[A-Za-z0-9-]{24,}",
    "secret.google": r"(?<![\w])AIza[0-9A-Za-z_-]{35}(?![\w-])",
    "secret.stripe": r"(?<![\w])(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{20,}(?!\w)",
    "secret.private_key": r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----",
    "secret.gitlab": r"(?<![\w-])glpat-[A-Za-z0-9_-]{20,}(?![\w-])",
    "secret.sendgrid": r"(?<![\w.])SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![\w-])",
    "secret.url_password": r"(?<=[a-z0-9])://[^\s:/@'\"]{1,64}:(?!\$\{|\*+@|<)[^\s:/@'\"]{8,128}@[\w.-]+",
    "secret.cli_password": r"(?<![\w-])(?:-p|--password|--token|--api-key)[ =](?!\$|<|\{)[A-Za-z0-9_\-+/=.~!#%^*]{16,}(?=\s|$)",
    "secret.jwt": r"(?<![\w-])eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
}
# The least Shannon entropy (bits per character) a match must have to count as a real key rather
# than a made-up one ("sk-aaaa..."); 0 = no check.
SECRET_MIN_ENTROPY: dict[str, float] = {
    "secret.anthropic": 3.5,
    "secret.openai": 3.6,
    "secret.aws": 2.8,
    "secret.github": 3.5,
    "secret.slack": 3.0,
    "secret.google": 3.5,
    "secret.stripe": 3.5,
    "secret.private_key": 0.0,
    "secret.gitlab": 3.3,
    "secret.sendgrid": 3.5,
    "secret.url_password": 3.0,
    "secret.cli_password": 3.6,
    "secret.jwt": 0.0,
}
SECRETS: list[tuple[str, re.Pattern, float]] = [
    (kind, re.compile(pattern), SECRET_MIN_ENTROPY[kind]) for kind, pattern in SECRET_PATTERNS.items()
]
KEYISH = re.compile(
    r"""(?ix)
    (?:api[_-]?key|apikey|secret|access[_-]?key|private[_-]?key|auth[_-]?token|access[_-]?token|
       bearer|token|passw(?:or)?d|pwd|client[_-]?secret|credentials?)[\w.-]{0,40}
    ["'`]?\s*(?:[:=]|=>|:=)\s*(?:bearer\s+)?["'`]?
    ([A-Za-z0-9_\-+/=.~!#%^*]{20,200})
    """
)
AUTH_HEADER = re.compile(r"(?i)\bauthorization['\"]?\s*:\s*['\"]?(?:bearer|token|basic)\s+([A-Za-z0-9_\-+/=.~]{20,400})")
PLACEHOLDER = re.compile(r"(?i)(?:x{6,}|\*{4,}|\.{3}|<[^>]*>|\$\{|\{\{|your[_-]|example|placeholder|changeme|redacted|dummy|fake|sample|replace[_-]?me|os\.environ|process\.env|getenv|settings\.|config\.|env\[)")
_HEX_HASH = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}|[0-9A-F]{32}|[0-9A-F]{40}|[0-9A-F]{64})$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_IDENT_LIKE = re.compile(r"^[A-Za-z_][A-Za-z_.]*$")  # a variable or dotted name, not a value

# Cheap pre-checks on the lower-cased text, as for the injection kinds.
SECRET_PREFILTER: dict[str, tuple[str, ...]] = {
    "secret.anthropic": ("sk-ant-",), "secret.openai": ("sk-",), "secret.aws": ("akia", "asia", "agpa", "aida", "aroa", "anpa"),
    "secret.github": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), "secret.slack": ("xox",), "secret.google": ("aiza",),
    "secret.stripe": ("_live_", "_test_"), "secret.private_key": ("private key",), "secret.gitlab": ("glpat-",), "secret.sendgrid": ("sg.",),
    "secret.url_password": ("://",), "secret.cli_password": ("-p ", "--password", "--token", "--api-key", "-p="), "secret.jwt": ("eyj",),
    "secret.generic": ("key", "secret", "token", "passw", "pwd", "bearer", "credential", "authorization"),
}


def shannon_entropy(s: str) -> float:
    """Bits per character: low for words and repeated letters, high for random keys."""
    if not s:
        return 0.0
    counts: dict[str, int] = {}
    for ch in s:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def generic_secret(value: str, around: str) -> bool:
    """Whether the value after a key-ish name looks random enough to be a real secret."""
    value = value.strip("\"'`").rstrip(".,;")
    if len(value) < 20 or PLACEHOLDER.search(value) or _IDENT_LIKE.match(value):
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
