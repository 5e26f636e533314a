"""Whether an SDK client's base_url is the gateway (whose own row already records the call).

The gateway is $BACKLOG_GATEWAY_URL (comma-separated) or ``llmOps.gateway.baseURL`` of
./backlog.config.json. URLs match on scheme, host and port; every loopback name is one host.
A base_url that is merely not the provider's (DeepInfra, a vLLM server...) is not the gateway.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from backlog_ops.common import fastjson
from backlog_ops.common.settings import settings
from backlog_ops.project.file import CONFIG_FILE

__all__ = ["gateway_urls", "is_gateway_url"]


def is_gateway_url(url: Any) -> bool:
    """Whether `url` points at the configured gateway."""
    if not url:
        return False
    target = _url_key(str(url))
    return target is not None and target in {key for key in map(_url_key, gateway_urls()) if key is not None}


def gateway_urls() -> list[str]:
    """The gateway's address as configured: $BACKLOG_GATEWAY_URL, then ./backlog.config.json."""
    urls = [u.strip() for u in (settings().gateway_url or "").split(",") if u.strip()]
    try:
        with open(CONFIG_FILE, "rb") as fh:
            config = fastjson.loads(fh.read())
        base = ((config.get("llmOps") or {}).get("gateway") or {}).get("baseURL")
        if isinstance(base, str):
            urls.append(base)
    except (OSError, ValueError, AttributeError):
        pass
    return urls


def _url_key(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            return None
        if host in ("localhost", "::1", "0.0.0.0") or host.startswith("127."):
            host = "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.scheme.lower(), host, port
    except ValueError:
        return None
