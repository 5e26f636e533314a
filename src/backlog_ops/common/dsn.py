"""Where a database connection string points, for display: host, port and database only.

The smallest helper the proxy's start-up text needs (issue 11's full DSN scrubbing lives with
the error messages). It never returns a user name, a password or any option, whatever the form:
`postgresql://user:pw@host:5432/db?password=…` or libpq's `host=… dbname=… password=…`.
"""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit

__all__ = ["dsn_location"]


def dsn_location(dsn: str) -> str:
    """'host:port/database' of a URL or key=value connection string; '?' for what cannot be read."""
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
    where = (host or "localhost") + (f":{port}" if port.isdigit() else "")
    return f"{where}/{database}" if database else where
