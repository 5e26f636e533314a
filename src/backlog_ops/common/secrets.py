"""The one scrubber for connection strings: no password, token or key reaches a message.

`scrub_dsn(text)` masks, wherever they appear in `text`:
- a URL's userinfo: `postgresql://user:pw@host` → `postgresql://user:***@host`,
  `redis://:pw@host` → `redis://:***@host`, `nats://token@host` → `nats://***@host`
  (a lone PostgreSQL user name is kept: it is not a secret);
- URL query parameters and libpq `key=value` pairs whose name says secret (password, passwd,
  pwd, secret, token, key: `?password=…`, `host=… password='…'`, `api_key=…`);
- the secret values of the DSNs this process is configured with (BACKLOG_LEDGER_URL,
  BACKLOG_CONTEXT_URL, …) and LiteLLM's master key, in any form a driver may echo them back
  (as written, percent-decoded).

Every DSN or backend error shown to a person or a model goes through it: CLI errors, proxy log
warnings, MCP tool errors. No `re` at import: Claude Code hooks import the warning helper.
"""

from __future__ import annotations

import os

__all__ = ["MASK", "dsn_location", "dsn_secrets", "scrub_dsn"]

MASK = "***"
# Environment variables that hold a DSN or a secret this process may be shown an echo of.
_SECRET_ENV = ("BACKLOG_LEDGER_URL", "BACKLOG_CONTEXT_URL", "BACKLOG_NATS_URL", "DATABASE_URL", "REDIS_URL",
               "REDIS_PASSWORD", "LITELLM_MASTER_KEY", "PGPASSWORD")
_SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token", "key")
# Shorter values are not replaced as text: masking every "ab" would garble a message and hide nothing.
_MIN_LITERAL = 4
_patterns = None


def _compiled():
    global _patterns
    if _patterns is None:
        import re

        names = r"[A-Za-z0-9_.\-]*(?:" + "|".join(_SECRET_WORDS) + r")[A-Za-z0-9_.\-]*"
        _patterns = (
            # scheme://userinfo@ : greedy up to the last '@' before the host (passwords may hold '@').
            re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#]*)@"),
            # ?password=… / &token=… (URL query): up to the next '&', '#', space or quote.
            re.compile(r"(?P<lead>[?&;](?i:" + names + r")=)[^&#\s'\"]*"),
            # libpq key=value: password=secret, password = 'se cret', with \' and \\ escapes.
            re.compile(r"(?P<lead>(?<![\w.\-])(?i:" + names + r")\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^\s'\"&]+)"),
        )
    return _patterns


def _mask_userinfo(match) -> str:
    scheme, userinfo = match.group("scheme"), match.group("userinfo")
    user, colon, _password = userinfo.partition(":")
    if colon:
        return f"{scheme}{user}:{MASK}@"
    if scheme.lower().startswith(("postgres", "postgresql")) or not userinfo:
        return match.group(0)  # a user name alone, where the scheme has user names
    return f"{scheme}{MASK}@"  # nats://token@, redis://secret@: the only credential there is


def scrub_dsn(text: object, *dsns: str | None) -> str:
    """`text` with every password, token and key of a connection string masked.

    `dsns`: connection strings whose secret values must also disappear wherever they appear
    (the configured ones from the environment are always included).
    """
    text = str(text)
    userinfo, query, keyvalue = _compiled()
    known: set[str] = set()
    for dsn in (*dsns, *(os.environ.get(name) for name in _SECRET_ENV)):
        if dsn:
            known |= dsn_secrets(dsn)
    # Longest first, so a secret that contains another is masked whole.
    for value in sorted(known, key=len, reverse=True):
        text = text.replace(value, MASK)
    text = userinfo.sub(_mask_userinfo, text)
    text = query.sub(lambda m: m.group("lead") + MASK, text)
    return keyvalue.sub(lambda m: m.group("lead") + MASK, text)


def dsn_secrets(dsn: str) -> set[str]:
    """The secret values in one DSN (URL password or token, secret query parameters, libpq
    password=…), as written and percent-decoded; a value that is not a DSN counts whole."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    dsn = dsn.strip()
    found: list[str] = []
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
            netloc = parts.netloc
            if "@" in netloc:
                userinfo = netloc.rsplit("@", 1)[0]
                user, colon, password = userinfo.partition(":")
                # nats://TOKEN@host: a lone userinfo is NATS's token; elsewhere it is a user name.
                found.append(password if colon else (user if parts.scheme.startswith(("nats", "tls")) else ""))
            for name, value in parse_qsl(parts.query, keep_blank_values=False):
                if _secret_name(name):
                    found.append(value)
        except ValueError:
            pass
    elif "=" in dsn:
        for name, value in _libpq_pairs(dsn):
            # A word without '=' is malformed, and likely the rest of an unquoted password
            # with a space in it: libpq's error quotes it ('missing "=" after "…"').
            if value is None or _secret_name(name):
                found.append(name if value is None else value)
    else:
        found.append(dsn)  # a bare secret: REDIS_PASSWORD, LITELLM_MASTER_KEY
    out: set[str] = set()
    for value in found:
        # The value, its decoded form and their words: a parser that trips on a space quotes a piece.
        for form in (value, unquote(value), *value.split(), *unquote(value).split()):
            if len(form) >= _MIN_LITERAL:
                out.add(form)
    return out


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _libpq_pairs(text: str) -> list[tuple[str, str | None]]:
    """The key=value pairs of a libpq connection string (values may be quoted, with escapes);
    a word with no '=' after it comes as (word, None)."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        start = i
        while i < n and text[i] != "=" and not text[i].isspace():
            i += 1
        name = text[start:i]
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "=":
            if name:
                pairs.append((name, None))
            continue
        i += 1
        while i < n and text[i].isspace():
            i += 1
        value: list[str] = []
        if i < n and text[i] == "'":
            i += 1
            while i < n and text[i] != "'":
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
            i += 1
        else:
            while i < n and not text[i].isspace():
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
        pairs.append((name, "".join(value)))
    return pairs


def dsn_location(dsn: str) -> str:
    """'host:port/database' of a URL or key=value connection string; '?' for what cannot be read."""
    import shlex  # both import `re`: only when a location is shown, never on the hook path
    from urllib.parse import urlsplit

    text = str(dsn or "").strip()
    host = port = database = ""
    if "://" in text:
        try:
            parts = urlsplit(text)
            host = parts.hostname or ""
            port = str(parts.port or "")
        except ValueError:  # a port that is not a number
            host, port = host or "?", ""
        else:
            database = parts.path.lstrip("/")
    else:
        try:
            tokens = shlex.split(text)
        except ValueError:
            tokens = text.split()
        values = dict(t.split("=", 1) for t in tokens if "=" in t)
        host = values.get("host") or values.get("hostaddr") or ""
        port = values.get("port", "")
        database = values.get("dbname", "")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address, as a URL writes it
    where = (host or "localhost") + (f":{port}" if port.isdigit() else "")
    return f"{where}/{database}" if database else where
