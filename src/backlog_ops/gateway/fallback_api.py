"""A small client of LiteLLM's fallback management API (`/fallback`, `/fallback/{model}`).

Reading (`GET /fallback/{model}`) answers from the running router, database or not. Changing
(`POST /fallback`, `DELETE /fallback/{model}`) is kept in LiteLLM's database: LiteLLM refuses it
unless the proxy has one (`DATABASE_URL`) and `STORE_MODEL_IN_DB=True`, and then applies the change
to the running router at once. Without a database, fallbacks change only in the config file, read
at start: `change_without_database` says so in one line.
"""

from __future__ import annotations

from urllib.parse import quote

from backlog_ops.errors import FallbackAPIError
from backlog_ops.gateway.key_api import AdminClient

__all__ = ["CONFIG_KEYS", "FALLBACK_TYPES", "FallbackAPI"]

# LiteLLM's fallback_type -> the router_settings key it changes
CONFIG_KEYS = {"general": "fallbacks", "context_window": "context_window_fallbacks",
               "content_policy": "content_policy_fallbacks"}
FALLBACK_TYPES = tuple(CONFIG_KEYS)
_NO_DATABASE = "Database storage not enabled"


class FallbackAPI(AdminClient):
    """GET / POST / DELETE of one model's fallbacks of one type."""

    error = FallbackAPIError

    def get(self, model: str, kind: str = "general") -> list[str]:
        """The model groups `model` falls back to on `kind` errors, in order ([] when none)."""
        status, body, text = self.request("GET", f"/fallback/{quote(model, safe='')}", params={"fallback_type": kind})
        if status == 404:
            return []
        if status >= 400 or not isinstance(body, dict) or not isinstance(body.get("fallback_models"), list):
            raise FallbackAPIError(f"GET /fallback/{model} answered {status}: {text or 'an unexpected shape'}")
        return [str(m) for m in body["fallback_models"]]

    def set(self, model: str, targets: list[str], kind: str = "general") -> str:
        """Make `model` fall back to `targets` on `kind` errors; LiteLLM's confirmation."""
        body = {"model": model, "fallback_models": list(targets), "fallback_type": kind}
        return self._change("POST", "/fallback", kind, json=body)

    def delete(self, model: str, kind: str = "general") -> str:
        """Remove `model`'s fallbacks of `kind`; LiteLLM's confirmation."""
        return self._change("DELETE", f"/fallback/{quote(model, safe='')}", kind, params={"fallback_type": kind})

    def _change(self, method: str, path: str, kind: str, **kwargs) -> str:
        status, body, text = self.request(method, path, **kwargs)
        if status >= 400:
            if _NO_DATABASE in text:
                raise FallbackAPIError(self.change_without_database(kind))
            raise FallbackAPIError(f"{method} {path} answered {status}: {text}")
        return str((body or {}).get("message") or "done")

    def change_without_database(self, kind: str) -> str:
        return (
            f"the proxy at {self.url} cannot change fallbacks while it runs: LiteLLM keeps such changes in its "
            f"database, and this proxy has none (set DATABASE_URL and STORE_MODEL_IN_DB=True for it, then restart "
            f"it). Without a database, edit router_settings.{CONFIG_KEYS[kind]} in the proxy's config (for a "
            f"rendered config: config/production.yaml's, then `backlog-ops config render`) and restart the proxy"
        )
