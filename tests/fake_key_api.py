"""A local fake of LiteLLM's key management API, for `backlog-ops keys` tests.

LiteLLM's real key API needs its database (Prisma engines, which cannot be installed here), so
tests run `keys` against this fake instead. Its request and response shapes are not guessed:
tests/test_keys.py validates every request the client sent and every documented response the fake
gave against the OpenAPI document a real running proxy serves (`GET /openapi.json`).

Served (127.0.0.1 only, standard library only):
    GET  /health/readiness   {"status": "healthy", "db": "connected"} (scriptable: not ready N times, no DB)
    POST /key/generate       GenerateKeyRequest  -> GenerateKeyResponse
    GET  /key/list           page, size, key_alias, return_full_object -> KeyListResponseObject
    GET  /key/info           ?key=<hash or key>   -> {"key", "info"}
    POST /key/delete         KeyRequest           -> {"deleted_keys": [...]}
Errors use the proxy's envelope {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "mo": 30 * 86400}


@dataclass
class Exchange:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int = 0
    response: Any = None


@dataclass
class FakeKeyAPI:
    master_key: str
    not_ready_times: int = 0  # /health/readiness answers 503 this many times first
    db: str = "connected"  # "Not connected" mimics a proxy without DATABASE_URL
    keys: dict[str, dict] = field(default_factory=dict)  # token hash -> stored row
    exchanges: list[Exchange] = field(default_factory=list)
    readiness_calls: int = 0
    echo_auth_in_errors: bool = False  # a hostile/buggy server that repeats the credential it got
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "FakeKeyAPI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FakeKeyAPI":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def aliases(self) -> list[str]:
        return sorted(row["key_alias"] for row in self.keys.values())

    # -- request handling ---------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        exchange = Exchange(method, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in handler.headers.items()}, body)
        with self._lock:
            status, response = self._route(exchange)
            exchange.status, exchange.response = status, response
            self.exchanges.append(exchange)
        payload = json.dumps(response).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _route(self, ex: Exchange) -> tuple[int, Any]:
        if ex.path == "/health/readiness" and ex.method == "GET":
            self.readiness_calls += 1
            if self.readiness_calls <= self.not_ready_times:
                return 503, {"status": "healthy", "db": "disconnected"}
            return 200, {"status": "healthy", "db": self.db}
        routes = {
            ("POST", "/key/generate"): self._generate,
            ("GET", "/key/list"): self._list,
            ("GET", "/key/info"): self._info,
            ("POST", "/key/delete"): self._delete,
        }
        route = routes.get((ex.method, ex.path))
        if route is None:
            return 404, {"detail": "Not Found"}
        if ex.headers.get("authorization") != f"Bearer {self.master_key}":
            # As the proxy answers a wrong key: the message abbreviates what it received.
            return 401, _error("Authentication Error, Invalid proxy server token passed. Unable to find token in cache or `LiteLLM_VerificationTokenTable`", "auth_error", 401)
        if self.echo_auth_in_errors:
            return 500, _error(f"internal error while handling {ex.headers.get('authorization')}", "internal_server_error", 500)
        if self.db != "connected":
            return 500, _error("Authentication Error, Database not connected", "internal_server_error", 500)
        return route(ex)

    def _generate(self, ex: Exchange) -> tuple[int, Any]:
        data = ex.body if isinstance(ex.body, dict) else {}
        secret = "sk-" + secrets.token_urlsafe(16)
        token = hashlib.sha256(secret.encode()).hexdigest()
        now = datetime.now(timezone.utc)
        expires = None
        if data.get("duration"):
            expires = (now + timedelta(seconds=_seconds(data["duration"]))).isoformat()
        row = {
            "token": token,
            "key_name": f"sk-...{secret[-4:]}",
            "key_alias": data.get("key_alias"),
            "team_id": data.get("team_id"),
            "user_id": data.get("user_id"),
            "metadata": data.get("metadata") or {},
            "models": data.get("models") or [],
            "spend": 0.0,
            "max_budget": data.get("max_budget"),
            "budget_duration": data.get("budget_duration"),
            "budget_reset_at": (now + timedelta(seconds=_seconds(data["budget_duration"]))).isoformat() if data.get("budget_duration") else None,
            "tpm_limit": data.get("tpm_limit"),
            "rpm_limit": data.get("rpm_limit"),
            "max_parallel_requests": data.get("max_parallel_requests"),
            "expires": expires,
            "blocked": None,
            "created_at": now.isoformat(),
            "updated_at": now.isoformat(),
        }
        self.keys[token] = row
        response = {
            **{k: row[k] for k in ("key_alias", "team_id", "user_id", "metadata", "models", "spend", "max_budget", "budget_duration", "tpm_limit", "rpm_limit", "max_parallel_requests", "expires", "key_name", "created_at", "updated_at")},
            "key": secret,
            "token": secret,  # the proxy returns the new secret as `token` too (copied to `key`)
            "token_id": token,
            "key_type": data.get("key_type") or "default",
        }
        return 200, response

    def _list(self, ex: Exchange) -> tuple[int, Any]:
        q = {k: v[-1] for k, v in ex.query.items()}
        page, size = int(q.get("page", 1)), int(q.get("size", 10))
        if page < 1 or not 1 <= size <= 100:
            return 422, {"detail": [{"type": "value_error", "loc": ["query", "size"], "msg": "out of range", "input": q.get("size")}]}
        rows = [r for r in self.keys.values() if q.get("key_alias") is None or r["key_alias"] == q["key_alias"]]
        rows.sort(key=lambda r: r["created_at"], reverse=True)
        chunk = rows[(page - 1) * size : page * size]
        full = q.get("return_full_object", "false").lower() == "true"
        return 200, {
            "keys": [dict(r) for r in chunk] if full else [r["token"] for r in chunk],
            "total_count": len(rows),
            "current_page": page,
            "total_pages": -(-len(rows) // size),
        }

    def _info(self, ex: Exchange) -> tuple[int, Any]:
        key = (ex.query.get("key") or [""])[-1]
        token = key if key in self.keys else hashlib.sha256(key.encode()).hexdigest()
        row = self.keys.get(token)
        if row is None:
            return 404, _error(f"Key not found: {key[:8]}", "not_found_error", 404)
        info = {k: v for k, v in row.items() if k != "token"}
        return 200, {"key": key, "info": {**info, "status": "active"}}

    def _delete(self, ex: Exchange) -> tuple[int, Any]:
        data = ex.body if isinstance(ex.body, dict) else {}
        if not data.get("keys") and not data.get("key_aliases"):
            return 422, {"detail": [{"type": "value_error", "loc": ["body"], "msg": "At least one of 'keys' or 'key_aliases' must be provided."}]}
        if data.get("keys"):
            hashes = [k if k in self.keys else hashlib.sha256(k.encode()).hexdigest() for k in data["keys"]]
            for h in hashes:
                self.keys.pop(h, None)
            return 200, {"deleted_keys": data["keys"]}
        for token in [t for t, r in self.keys.items() if r["key_alias"] in data["key_aliases"]]:
            del self.keys[token]
        return 200, {"deleted_keys": data["key_aliases"]}  # the proxy echoes what it was asked


def _error(message: str, kind: str, code: int) -> dict:
    return {"error": {"message": message, "type": kind, "param": "None", "code": str(code)}}


def _seconds(duration: str) -> int:
    for unit in ("mo", "s", "m", "h", "d", "w"):
        if duration.endswith(unit) and duration[: -len(unit)].isdigit():
            return int(duration[: -len(unit)]) * _UNITS[unit]
    return 0
