"""PII: e-mail addresses, phone numbers, payment cards and US SSNs, and the checks that tell a real
one from a look-alike (a version, a timestamp, a test card, a placeholder address)."""

from __future__ import annotations

import re

__all__ = ["CARD", "DIGITS13", "EMAIL", "PHONE_INTL", "PHONE_NANP", "PLACEHOLDER_DOMAINS", "SSN", "SSN_CONTEXT", "TEST_CARDS",
           "card_ok", "email_ok", "luhn_ok", "phone_ok", "ssn_context_bad", "ssn_ok"]

EMAIL = re.compile(r"(?<![\w.+/-])([A-Za-z0-9][A-Za-z0-9._%+-]{0,63})@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w-])")
PLACEHOLDER_DOMAINS = frozenset({
    "example.com", "example.org", "example.net", "example.edu", "test.com", "test.local", "localhost",
    "domain.com", "email.com", "company.com", "yourcompany.com", "acme.test", "invalid", "test", "example",
    "users.noreply.github.com", "noreply.github.com",
})
_NOREPLY_LOCAL = re.compile(r"^(?:no-?reply|do-?not-?reply|donotreply|mailer-daemon|postmaster|git|noreply\+.*)$", re.I)
_FILE_TLDS = frozenset({"py", "js", "ts", "tsx", "jsx", "json", "yaml", "yml", "md", "txt", "png", "jpg", "svg", "css",
                        "html", "lock", "toml", "cfg", "ini", "sh", "rs", "go", "java", "kt", "rb", "php", "vue", "map", "gz", "zip"})

# NANP (415) 555-0132 / 415-555-0132 / 415.555.0132 / +1 415 555 0132; international +44 20 7946 0958
PHONE_NANP = re.compile(r"(?<![\w.+/:#-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w.-]?\d)(?!\.\w)")
PHONE_INTL = re.compile(r"(?<![\w.+/:#-])\+(?:[1-9]\d{0,2})(?:(?:[\s.-]\(?\d{1,6}\)?){2,5}|\d{8,13})(?![\w.-]?\d)")
_PHONE_CONTEXT_BAD = re.compile(r"(?:version|v|build|release|id|port|pid|line|offset|sha|#|commit|issue|pr|ticket|order|invoice|ref|sku|part|serial|model|account|acct|routing)\s*[:=#]?\s*$", re.I)

CARD = re.compile(r"(?<![\w.-])(?:(?:\d{4}[ -]?){3}\d{1,7}|\d{4}[ -]?\d{6}[ -]?\d{4,5})(?![\w-]|\.\d)")
DIGITS13 = re.compile(r"\d{4}[ -]?\d{4}")
TEST_CARDS = frozenset({
    "4111111111111111", "4242424242424242", "4000056655665556", "5555555555554444", "2223003122003222",
    "5200828282828210", "5105105105105100", "378282246310005", "371449635398431", "6011111111111117",
    "6011000990139424", "3056930009020004", "36227206271667", "3566002020360505", "4012888888881881",
    "4000000000000002", "4000000000009995", "4000000000000077", "4000002500003155", "4000000000003220",
    "4000000000000341", "4000000000000119", "4000000000000101", "4000000000000069", "4000000000000127",
    "4000000000000259", "5454545454545454", "4917610000000000", "4444333322221111", "4007000000027",
    "4012888818888", "4222222222222", "378734493671000", "6011601160116611", "3530111333300000",
})

SSN = re.compile(r"(?<![\w-])(\d{3})-(\d{2})-(\d{4})(?![\w-])")
SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|social\s+security(?:\s+(?:number|no\.?|#))?|tax\s*id|tin)\b\s*[:#=]?\s*(\d{3})[ ]?(\d{2})[ ]?(\d{4})(?!\d)")
_SSN_EXAMPLES = frozenset({"078051120", "219099999", "123456789", "111111111", "987654320", "987654321"})


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number passes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_ok(digits: str, raw: str) -> bool:
    """Issuer prefix, length, checksum and printed grouping of a card number."""
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


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """A number the SSA could have issued, and not one of the published examples."""
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return (area + group + serial) not in _SSN_EXAMPLES


def ssn_context_bad(text: str, start: int) -> bool:
    """Whether the text before reads like a version, ticket or part number."""
    before = text[max(0, start - 24):start].lower()
    return bool(re.search(r"(?:version|build|release|ticket|issue|case|order|invoice|pr|part|sku|model|serial|ref|id)(?:\s+(?:number|no\.?|#))?\s*[:#=]?\s*$|\d[.-]$|[a-z]-$", before))


def phone_ok(raw: str, text: str, start: int, end: int) -> bool:
    """A phone number rather than an id, a port, a timestamp or a version."""
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


def email_ok(local: str, domain: str, text: str, end: int, allow_domains: frozenset[str] | set[str]) -> bool:
    """Whether local@domain, ending at `end` in `text`, is someone's address rather than a placeholder,
    a no-reply sender, a file name (name@2x.png) or the user:password@host of a URL."""
    domain_l = domain.lower()
    if domain_l in allow_domains or any(domain_l.endswith("." + d) for d in allow_domains):
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
