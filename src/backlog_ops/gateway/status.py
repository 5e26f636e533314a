"""What a running `backlog-ops proxy` says about itself, and how a client asks.

The proxy answers GET /backlog-ops/status (no key: it holds names, never a value) with its mode
(the offline mock, or a config routing to real providers), the providers its config routes to,
the provider key variables it lacks and which backlog-ops callbacks its config loads.
`backlog-ops doctor` and `keys` read it with `probe()`; a proxy that is not ours (LiteLLM's own
CLI, the compose stack) simply has no such route.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from backlog_ops import __version__
from backlog_ops.gateway.serving import provider_summary, routes

__all__ = ["STATUS_PATH", "ProxyProbe", "add_status_route", "describe_proxy_config", "probe", "url_problem"]

STATUS_PATH = "/backlog-ops/status"
# A proxy's first requests after start-up can take seconds on a loaded machine; nothing to wait
# for when nothing listens (refused at once).
PROBE_TIMEOUT = 10.0
_ENV_PREFIX = "os.environ/"
_OUR_CALLBACKS = "backlog_ops.callbacks."


# -- the proxy's side ------------------------------------------------------------------------------


def describe_proxy_config(config: dict, *, mock: bool, config_path: Path | str, environ=None) -> dict:
    """The status a proxy running `config` reports (`mock`: the offline config and its mock provider)."""
    env = os.environ if environ is None else environ
    summary = provider_summary(routes(config, env))
    providers = {entry["provider"] for entry in summary}
    missing = {name for entry in summary for name in entry["missing_keys"]}
    settings = config.get("litellm_settings") if isinstance(config.get("litellm_settings"), dict) else {}
    callbacks = [c for c in settings.get("callbacks") or [] if isinstance(c, str) and c.startswith(_OUR_CALLBACKS)]
    return {
        "backlog_ops": __version__,
        "mode": "mock" if mock else "providers",
        "config": str(config_path),
        "providers": sorted(providers),
        "missing_keys": [] if mock else sorted(missing),
        "callbacks": callbacks,
    }


def add_status_route(app, status: dict) -> None:
    """Serve `status` at GET STATUS_PATH on the proxy's FastAPI app (before it starts)."""

    async def backlog_ops_status() -> dict:
        return status

    app.add_api_route(STATUS_PATH, backlog_ops_status, methods=["GET"], include_in_schema=False)


# -- a client's side -------------------------------------------------------------------------------


@dataclass
class ProxyProbe:
    """What one look at a proxy URL found."""

    url: str
    reachable: bool = False  # something answered HTTP there
    answers: bool = False  # ... and it answered as a LiteLLM proxy (/health/liveliness)
    problem: str | None = None  # why it does not answer
    status: dict | None = None  # the backlog-ops status, when the proxy is ours
    status_problem: str | None = None  # why there is no status: not ours (HTTP 404), or no answer in time
    models: list[dict] = field(default_factory=list)  # /model/info entries, when the key was accepted
    key_accepted: bool | None = None  # None: no key to try


def probe(url: str, master_key: str | None = None, *, timeout: float = PROBE_TIMEOUT) -> ProxyProbe:
    """Ask the proxy at `url` whether it is alive, what it says about itself, and (with a key) its models.

    Three requests at most, each bounded by `timeout`; never raises for a network failure.
    """
    import httpx

    result = ProxyProbe(url.rstrip("/"))
    problem = url_problem(result.url)
    if problem:
        result.problem = problem
        return result
    # A loopback proxy is reached directly, whatever HTTP(S)_PROXY says.
    loopback = (urlsplit(result.url).hostname or "") in ("127.0.0.1", "localhost", "::1")
    try:
        with httpx.Client(base_url=result.url, timeout=timeout, trust_env=not loopback, follow_redirects=False) as client:
            try:
                alive = client.get("/health/liveliness")
            except httpx.HTTPError as exc:
                result.problem = _network_problem(exc)
                return result
            result.reachable = True
            if alive.status_code != 200:
                result.problem = f"/health/liveliness answered HTTP {alive.status_code}"
                return result
            result.answers = True
            response = _get(client, STATUS_PATH)
            result.status = _json_object(response)
            if result.status is None:
                result.status_problem = "no answer in time" if response is None else f"HTTP {response.status_code}"
            if master_key:
                info = _get(client, "/model/info", headers={"Authorization": f"Bearer {master_key}"})
                # A key that is not the master key: 401 (or, from a LiteLLM without a database,
                # 400 "No connected db", since it then looks the key up as a virtual key).
                if info is not None and info.status_code in (400, 401, 403):
                    result.key_accepted = False
                elif info is not None and info.status_code == 200:
                    result.key_accepted = True
                    data = (_json_object(info) or {}).get("data")
                    result.models = [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []
    except httpx.InvalidURL as exc:
        result.problem = f"{url[:80]!r} is not a usable URL ({exc})"
    return result


def url_problem(url: str) -> str | None:
    """Why `url` is not a proxy address such as http://127.0.0.1:4000 (None when it is one)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        return f"{url[:80]!r} is not a URL ({exc}); use one such as http://127.0.0.1:4000"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url[:80]!r} is not an http(s) URL such as http://127.0.0.1:4000"
    return None


def _get(client, path: str, **kwargs):
    import httpx

    try:
        return client.get(path, **kwargs)
    except httpx.HTTPError:
        return None


def _json_object(response) -> dict | None:
    if response is None or response.status_code != 200:
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _network_problem(exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.ConnectError):
        return "connection refused: nothing listens there" if "refused" in str(exc).lower() else f"cannot connect ({exc})"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"
