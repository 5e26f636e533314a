"""A small client of LiteLLM's key management API (`/key/generate`, `/key/list`, `/key/delete`).

The API needs the proxy's database (`DATABASE_URL`). The master key goes only into the
`Authorization` header: it is scrubbed from every message the client raises, including the
proxy's own error text.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx

from backlog_ops.errors import KeyAPIError

__all__ = ["DEFAULT_URL", "AdminClient", "KeyAPI", "base_url"]

DEFAULT_URL = "http://127.0.0.1:4000"
REQUEST_TIMEOUT = 15.0
LIST_PAGE_SIZE = 100  # /key/list's maximum
LIST_MAX_PAGES = 100  # 10,000 keys: a bound, not a limit anybody should reach


def base_url(url: str | None) -> str:
    """The proxy's base URL: `url`, else $LITELLM_BASE_URL, else the local default."""
    return (url or os.environ.get("LITELLM_BASE_URL") or DEFAULT_URL).rstrip("/")


class AdminClient:
    """An HTTP client of the proxy's admin API with the master key; every message it raises is scrubbed.

    `error` is the exception class raised for a refused or failed request.
    """

    error: type[Exception] = KeyAPIError

    def __init__(self, url: str, master_key: str, *, timeout: float = REQUEST_TIMEOUT, transport: Any = None) -> None:
        self.url = url.rstrip("/")
        self._secret = master_key
        self._client = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {master_key}"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def scrub(self, text: str) -> str:
        return text.replace(self._secret, "[master key]") if self._secret else text

    def request(self, method: str, path: str, **kwargs) -> tuple[int, Any, str]:
        """(status, JSON body or None, error text, scrubbed); a proxy that cannot be reached raises `error`."""
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self.error(f"{method} {self.url}{path} failed: {type(exc).__name__}: {self.scrub(str(exc))}") from None
        text = self.scrub(_error_text(response)) if response.status_code >= 400 else ""
        return response.status_code, _json(response), text

    def _call(self, method: str, path: str, **kwargs) -> Any:
        status, body, text = self.request(method, path, **kwargs)
        if status >= 400:
            raise self.error(f"{method} {path} answered {status}: {text}")
        if body is None:
            raise self.error(f"{method} {path} answered {status} with no JSON")
        return body


class KeyAPI(AdminClient):
    """A small client of LiteLLM's key management API. Every message it raises is scrubbed."""

    # -- endpoints ----------------------------------------------------------------------------

    def wait_ready(self, wait: float, *, interval: float = 1.0, say=None) -> dict:
        """Poll GET /health/readiness (no key needed) until it answers 200, for at most `wait` s."""
        deadline = time.monotonic() + max(wait, 0.0)
        attempt = 0
        last = "no answer"
        while True:
            attempt += 1
            try:
                response = self._client.get("/health/readiness", headers={"Authorization": ""})
                if response.status_code == 200:
                    body = _json(response) or {}
                    if body.get("db") == "Not connected":
                        raise KeyAPIError(
                            f"the proxy at {self.url} has no database: LiteLLM's key API needs one "
                            "(set DATABASE_URL for the proxy; see the README's virtual keys section)"
                        )
                    return body
                last = f"HTTP {response.status_code}: {self.scrub(response.text[:200])}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {self.scrub(str(exc))}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KeyAPIError(f"the proxy at {self.url} was not ready after {wait:g} s ({attempt} attempts; last: {last})")
            if say is not None and attempt == 1:
                say(f"waiting for {self.url}/health/readiness (up to {wait:g} s): {last}")
            time.sleep(min(interval, remaining))

    def generate(self, body: dict) -> dict:
        result = self._call("POST", "/key/generate", json=body)
        if not isinstance(result, dict) or not isinstance(result.get("key"), str):
            raise KeyAPIError(f"/key/generate answered without a key for {body.get('key_alias')!r}")
        return result

    def find(self, alias: str) -> list[dict]:
        """Live keys whose key_alias is exactly `alias` (LiteLLM matches exactly by default)."""
        return [k for k in self._list({"key_alias": alias}) if k.get("key_alias") == alias]

    def list(self) -> list[dict]:
        return self._list({})

    def delete_aliases(self, aliases: list[str]) -> list[str]:
        result = self._call("POST", "/key/delete", json={"key_aliases": list(aliases)})
        return list((result or {}).get("deleted_keys") or [])

    def _list(self, params: dict) -> list[dict]:
        keys: list[dict] = []
        for page in range(1, LIST_MAX_PAGES + 1):
            result = self._call(
                "GET", "/key/list", params={**params, "page": page, "size": LIST_PAGE_SIZE, "return_full_object": "true"}
            )
            if not isinstance(result, dict) or not isinstance(result.get("keys"), list):
                raise KeyAPIError("/key/list answered in an unexpected shape (no `keys` list)")
            keys.extend(k for k in result["keys"] if isinstance(k, dict))
            total_pages = result.get("total_pages") or 0
            if page >= total_pages or not result["keys"]:
                return keys
        raise KeyAPIError(f"/key/list has more than {LIST_MAX_PAGES * LIST_PAGE_SIZE} keys; stopped reading")


def _json(response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_text(response) -> str:
    body = _json(response)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        if "detail" in body:  # FastAPI's validation errors (422)
            return json.dumps(body["detail"])[:500]
    return (response.text or response.reason_phrase or "")[:500]
