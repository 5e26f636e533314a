"""`backlog-ops keys`: LiteLLM virtual keys per environment or tenant, from a virtual_keys.yaml.

    backlog-ops keys setup [FILE] [--url URL] [--wait SECONDS]   create what is missing (idempotent)
    backlog-ops keys list [--url URL] [--json]
    backlog-ops keys revoke ALIAS... [--url URL]

Everything goes through LiteLLM's key API (`/key/generate`, `/key/list`, `/key/delete`), which
needs the proxy's database (`DATABASE_URL`). Keys are matched by `key_alias`: `setup` creates only
the aliases that do not exist yet, so running it twice creates nothing the second time.

The master key ($LITELLM_MASTER_KEY, else the proxy's generated key file) goes only into the
`Authorization` header: it is never printed or logged, and it is scrubbed from every message
(including the proxy's own error text) before it is shown.

`setup` writes the `.env` lines (`NAME=sk-...`) on stdout and its progress on stderr, so
`backlog-ops keys setup >> .env` appends exactly the lines to keep. LiteLLM returns a key's secret
only when it creates it: a key that already exists gets a `# NAME: ... exists` comment instead.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backlog_ops.errors import BacklogOpsError, ConfigError, KeyAPIError
from backlog_ops.gateway.master_key import resolve_master_key

__all__ = [
    "DEFAULT_URL",
    "KeyAPI",
    "KeyAPIError",
    "KeySpec",
    "VirtualKeysFile",
    "load_keys_file",
    "run_keys",
]

DEFAULT_URL = "http://127.0.0.1:4000"
REQUEST_TIMEOUT = 15.0
LIST_PAGE_SIZE = 100  # /key/list's maximum
LIST_MAX_PAGES = 100  # 10,000 keys: a bound, not a limit anybody should reach

_DURATION = re.compile(r"^\d+(s|m|h|d|w|mo)$")  # what litellm's duration_in_seconds accepts
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")


# --------------------------------------------------------------------------------------------
# virtual_keys.yaml
# --------------------------------------------------------------------------------------------


class _KeySettings(BaseModel):
    """What a key may set; `defaults:` and each key share it. Names are LiteLLM's."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    team_id: str | None = Field(None, validation_alias=AliasChoices("team_id", "team"))
    metadata: dict[str, Any] = Field(default_factory=dict)
    max_budget: float | None = Field(None, ge=0, validation_alias=AliasChoices("max_budget", "budget"))
    budget_duration: str | None = None
    duration: str | None = None
    models: list[str] | None = None
    rpm_limit: int | None = Field(None, ge=1)
    tpm_limit: int | None = Field(None, ge=1)
    max_parallel_requests: int | None = Field(None, ge=1)

    @field_validator("budget_duration", "duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.match(value):
            raise ValueError(f"{value!r} is not a LiteLLM duration: a number and one of s, m, h, d, w, mo (e.g. 30d, 1mo)")
        return value


class KeySpec(_KeySettings):
    """One virtual key. `alias` is its identity (LiteLLM's key_alias); `env` the .env variable."""

    # The service brief calls the alias `key`; LiteLLM's own `key` field would set the secret
    # itself, which setup never does (LiteLLM generates it), so `key:` here means the alias.
    alias: str = Field(validation_alias=AliasChoices("alias", "key_alias", "key"))
    env: str | None = None

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        if not _ALIAS.match(value):
            raise ValueError("an alias is 1-128 letters, digits and . _ : @ / - (starting with a letter or digit)")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name (A-Z, 0-9, _)")
        return value

    @property
    def env_name(self) -> str:
        if self.env:
            return self.env
        name = re.sub(r"[^A-Z0-9]+", "_", self.alias.upper()).strip("_")
        name = name if not name[:1].isdigit() else "_" + name
        return name if name.endswith("_KEY") else name + "_KEY"

    def request_body(self) -> dict[str, Any]:
        """The /key/generate body (GenerateKeyRequest): only what is set, never a `key`."""
        body: dict[str, Any] = {"key_alias": self.alias}
        for name in ("team_id", "max_budget", "budget_duration", "duration", "models", "rpm_limit", "tpm_limit", "max_parallel_requests"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.metadata:
            body["metadata"] = dict(self.metadata)
        return body


class VirtualKeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: _KeySettings = Field(default_factory=_KeySettings)
    keys: list[dict[str, Any]] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> "VirtualKeysFile":
        for i, entry in enumerate(self.keys):
            if not isinstance(entry, dict):
                raise ValueError(f"keys[{i}] is not a mapping")
        return self


def load_keys_file(path: str | Path) -> list[KeySpec]:
    """Parse and validate a virtual_keys.yaml; errors name the file, the key and the field."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (see config/virtual_keys.yaml for the shape)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a `keys:` list")
    try:
        document = VirtualKeysFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_explain(exc)}") from None

    defaults = document.defaults.model_dump(exclude_unset=True)
    specs: list[KeySpec] = []
    for i, entry in enumerate(document.keys):
        name = entry.get("alias") or entry.get("key_alias") or entry.get("key")
        label = f"keys[{i}] ({name!r})" if isinstance(name, str) else f"keys[{i}]"
        entry = {_SYNONYMS.get(k, k) if _SYNONYMS.get(k, k) not in entry else k: v for k, v in entry.items()}
        merged = {**defaults, **entry}
        if "metadata" in defaults and isinstance(entry.get("metadata"), dict):
            merged["metadata"] = {**defaults["metadata"], **entry["metadata"]}
        try:
            specs.append(KeySpec.model_validate(merged))
        except ValidationError as exc:
            raise ConfigError(f"{path}: {label}: {_explain(exc)}") from None

    for attr, what in (("alias", "alias"), ("env_name", "env variable")):
        seen: dict[str, int] = {}
        for i, spec in enumerate(specs):
            value = getattr(spec, attr)
            if value in seen:
                raise ConfigError(f"{path}: keys[{i}] ({spec.alias!r}): {what} {value!r} is also used by keys[{seen[value]}]")
            seen[value] = i
    return specs


# The service brief's names for LiteLLM's fields; normalised before `defaults:` are merged in.
_SYNONYMS = {"budget": "max_budget", "team": "team_id", "key": "alias", "key_alias": "alias"}


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(file)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# The key API
# --------------------------------------------------------------------------------------------


def base_url(url: str | None) -> str:
    return (url or os.environ.get("LITELLM_BASE_URL") or DEFAULT_URL).rstrip("/")


class KeyAPI:
    """A small client of LiteLLM's key management API. Every message it raises is scrubbed."""

    def __init__(self, url: str, master_key: str, *, timeout: float = REQUEST_TIMEOUT, transport: Any = None) -> None:
        import httpx

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

    def __enter__(self) -> "KeyAPI":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def scrub(self, text: str) -> str:
        return text.replace(self._secret, "[master key]") if self._secret else text

    # -- endpoints ----------------------------------------------------------------------------

    def wait_ready(self, wait: float, *, interval: float = 1.0, say=None) -> dict:
        """Poll GET /health/readiness (no key needed) until it answers 200, for at most `wait` s."""
        import httpx

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

    def _call(self, method: str, path: str, **kwargs) -> Any:
        import httpx

        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KeyAPIError(f"{method} {self.url}{path} failed: {type(exc).__name__}: {self.scrub(str(exc))}") from None
        if response.status_code >= 400:
            raise KeyAPIError(f"{method} {path} answered {response.status_code}: {self.scrub(_error_text(response))}")
        body = _json(response)
        if body is None:
            raise KeyAPIError(f"{method} {path} answered {response.status_code} with no JSON")
        return body


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


# --------------------------------------------------------------------------------------------
# The commands
# --------------------------------------------------------------------------------------------


def run_keys(args) -> int:
    action = getattr(args, "action", None)
    url = base_url(getattr(args, "url", None))
    specs = load_keys_file(args.file) if action == "setup" else None  # a bad file fails before any request
    secret = resolve_master_key()
    with KeyAPI(url, secret) as api:
        try:
            if action == "setup":
                return _setup(api, specs, wait=float(getattr(args, "wait", 60.0)))
            if action == "list":
                return _list(api, as_json=bool(getattr(args, "json", False)))
            if action == "revoke":
                return _revoke(api, list(args.aliases))
        except KeyAPIError:
            raise
        except BacklogOpsError as exc:
            raise KeyAPIError(api.scrub(str(exc))) from None
    raise BacklogOpsError(f"unknown keys action {action!r}")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _setup(api: KeyAPI, specs: list[KeySpec], *, wait: float) -> int:
    api.wait_ready(wait, say=_say)
    _say(f"proxy ready at {api.url}; {len(specs)} key(s) in the file")
    lines: list[str] = []
    created = existing = 0
    for spec in specs:
        found = api.find(spec.alias)
        if found:
            existing += 1
            extra = f" ({len(found)} keys share this alias)" if len(found) > 1 else ""
            _say(f"= {spec.alias}: exists already{extra}, left unchanged")
            lines.append(
                f"# {spec.env_name}: key {spec.alias!r} exists already; LiteLLM does not return an existing key's "
                f"secret: keep your current value, or `backlog-ops keys revoke {spec.alias}` and run setup again"
            )
            continue
        result = api.generate(spec.request_body())
        created += 1
        _say(f"+ {spec.alias}: created" + (f" (expires {result['expires']})" if result.get("expires") else ""))
        lines.append(f"{spec.env_name}={result['key']}")
    print("# LiteLLM virtual keys: copy into your .env")
    for line in lines:
        print(line)
    _say(f"{created} created, {existing} already there")
    return 0


def _list(api: KeyAPI, *, as_json: bool) -> int:
    keys = api.list()
    rows = [_summary(k) for k in keys]
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no virtual keys")
        return 0
    headers = ("alias", "key", "team", "spend", "max_budget", "budget_duration", "models", "expires")
    table = [
        (
            r["alias"] or "-",
            r["key_name"] or "-",
            r["team_id"] or "-",
            f"${r['spend']:.4f}",
            "-" if r["max_budget"] is None else f"${r['max_budget']:g}",
            r["budget_duration"] or "-",
            ",".join(r["models"]) or "all",
            r["expires"] or "never",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(str(row[i])) for row in table)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    return 0


def _summary(key: dict) -> dict:
    """What `keys list` shows: never a secret (LiteLLM lists hashes and abbreviated names only)."""
    return {
        "alias": key.get("key_alias"),
        "key_name": key.get("key_name"),  # LiteLLM's abbreviation, e.g. sk-...AbCd
        "token_hash": key.get("token"),
        "team_id": key.get("team_id"),
        "spend": float(key.get("spend") or 0.0),
        "max_budget": key.get("max_budget"),
        "budget_duration": key.get("budget_duration"),
        "models": list(key.get("models") or []),
        "rpm_limit": key.get("rpm_limit"),
        "tpm_limit": key.get("tpm_limit"),
        "max_parallel_requests": key.get("max_parallel_requests"),
        "metadata": key.get("metadata") or {},
        "expires": key.get("expires"),
        "blocked": key.get("blocked"),
    }


def _revoke(api: KeyAPI, aliases: list[str]) -> int:
    aliases = list(dict.fromkeys(aliases))
    present = [a for a in aliases if api.find(a)]
    missing = [a for a in aliases if a not in present]
    if present:
        api.delete_aliases(present)
        for alias in present:
            print(f"revoked {alias}")
    for alias in missing:
        print(f"no key with alias {alias!r}", file=sys.stderr)
    return 1 if missing else 0
