"""A local stand-in for LiteLLM's fallback management API WITH its database, for `backlog-ops fallbacks` tests.

LiteLLM changes fallbacks at run time only when the proxy has its database (Prisma engines, which
cannot be installed here), so `set` and `remove` are tested against this stand-in. It follows
LiteLLM 1.106's endpoint code (litellm/proxy/management_endpoints/fallback_management_endpoints.py):
the same checks in the same order, the same status codes and bodies. Request and response shapes
are not guessed: tests validate every exchange against the /openapi.json a real running proxy serves.

Served (127.0.0.1 only, standard library only):
    POST   /fallback                      FallbackCreateRequest -> FallbackResponse
    GET    /fallback/{model}?fallback_type  -> FallbackGetResponse (404 when none)
    DELETE /fallback/{model}?fallback_type  -> FallbackDeleteResponse (404 when none)
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

KEYS = {"general": "fallbacks", "context_window": "context_window_fallbacks", "content_policy": "content_policy_fallbacks"}


@dataclass
class Exchange:
    method: str
    path: str  # the OpenAPI path template
    query: dict[str, list[str]]
    body: Any
    status: int = 0
    response: Any = None


@dataclass
class FakeFallbackAPI:
    master_key: str
    models: set[str]  # the router's model names
    settings: dict[str, list[dict]] = field(default_factory=dict)  # router_settings key -> rules, "in the database"
    exchanges: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "FakeFallbackAPI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                template = "/fallback" if parts.path == "/fallback" else "/fallback/{model}"
                ex = Exchange(self.command, template, parse_qs(parts.query), body)
                if self.headers.get("authorization") != f"Bearer {fake.master_key}":
                    ex.status, ex.response = 401, {"error": {"message": "Authentication Error", "type": "auth_error", "param": "None", "code": "401"}}
                else:
                    model = unquote(parts.path[len("/fallback/"):]) if template != "/fallback" else None
                    kind = (ex.query.get("fallback_type") or ["general"])[0]
                    ex.status, ex.response = fake.handle(self.command, model, kind, body)
                with fake._lock:
                    fake.exchanges.append(ex)
                data = json.dumps(ex.response).encode()
                self.send_response(ex.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- LiteLLM's logic, step by step ----------------------------------------------------------

    def handle(self, method: str, model: str | None, kind: str, body: Any) -> tuple[int, dict]:
        with self._lock:
            if method == "GET":
                found = self._rule(KEYS[kind], model)
                if not found:
                    return 404, {"detail": {"error": f"No {kind} fallbacks configured for model '{model}'"}}
                return 200, {"model": model, "fallback_models": found, "fallback_type": kind}
            if method == "POST":
                model, targets, kind = body["model"], list(body["fallback_models"]), body.get("fallback_type", "general")
                if model not in self.models:
                    return 404, {"detail": {"error": f"Model '{model}' not found in router", "available_models": sorted(self.models)}}
                invalid = [m for m in targets if m not in self.models]
                if invalid:
                    return 400, {"detail": {"error": f"Invalid fallback models: {invalid}", "available_models": sorted(self.models)}}
                if model in targets:
                    return 400, {"detail": {"error": f"Model '{model}' cannot be its own fallback"}}
                rules = self.settings.setdefault(KEYS[kind], [])
                updated = False
                for i, rule in enumerate(rules):
                    if model in rule:
                        rules[i], updated = {model: targets}, True
                        break
                if not updated:
                    rules.append({model: targets})
                return 200, {"model": model, "fallback_models": targets, "fallback_type": kind,
                             "message": f"Fallback configuration {'updated' if updated else 'created'} successfully"}
            rules = self.settings.get(KEYS[kind], [])
            kept = [r for r in rules if model not in r]
            if len(kept) == len(rules):
                return 404, {"detail": {"error": f"No {kind} fallbacks configured for model '{model}'"}}
            self.settings[KEYS[kind]] = kept
            return 200, {"model": model, "fallback_type": kind, "message": "Fallback configuration deleted successfully"}

    def _rule(self, key: str, model: str) -> list[str]:
        for rule in self.settings.get(key, []):
            if model in rule:
                return list(rule[model])
        return []
