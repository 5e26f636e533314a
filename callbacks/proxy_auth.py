"""The proxy's key check: no key or a wrong key gets 401 saying which key to send and where it is kept.

Loaded by LiteLLM through `general_settings.custom_auth:
backlog_ops.callbacks.proxy_auth.user_api_key_auth` (with `custom_auth_run_common_checks: true`).
Without a key database LiteLLM answers those requests 500 (`ModuleNotFoundError: prisma`) or
400 "No connected db". This check answers only them: for the master key, for a public route,
or when the proxy has its key database (virtual keys), it returns None and LiteLLM's own check
runs as before (litellm-enterprise's custom-auth wrapper, which litellm[proxy] installs, reads
None as "go on").
"""

from __future__ import annotations

import secrets
from typing import Any

from backlog_ops.gateway.master_key import key_location, rejected_key_message

__all__ = ["user_api_key_auth"]

_locations: dict[str, str] = {}  # master key's hash -> where it is kept (read once per process)


async def user_api_key_auth(request: Any, api_key: str | None) -> None:
    """None when LiteLLM should check the key itself; raises LiteLLM's 401 ProxyException otherwise."""
    from litellm.proxy import proxy_server
    from litellm.proxy._types import LiteLLMRoutes, ProxyErrorTypes, ProxyException
    from litellm.proxy.auth.auth_utils import (
        get_request_route,
        route_in_additonal_public_routes,
    )

    master = proxy_server.master_key
    if not isinstance(master, str) or not master or proxy_server.prisma_client is not None:
        return None  # no auth configured, or virtual keys: LiteLLM's own rules apply
    if api_key and secrets.compare_digest(api_key.encode(), master.encode()):
        return None
    route = get_request_route(request=request)
    if route in LiteLLMRoutes.public_routes.value or route_in_additonal_public_routes(current_route=route):
        return None
    digest = proxy_server.litellm_master_key_hash or ""
    if digest not in _locations:
        _locations[digest] = key_location(master)
    raise ProxyException(
        message=rejected_key_message(sent=bool(api_key), location=_locations[digest]),
        type=ProxyErrorTypes.auth_error,
        param="api_key",
        code=401,
    )
