"""`backlog-ops keys`: LiteLLM virtual keys per environment or tenant, from a virtual_keys.yaml.

    backlog-ops keys setup [FILE] [--url URL] [--wait SECONDS]   create what is missing (idempotent)
    backlog-ops keys list [--url URL] [--json]
    backlog-ops keys revoke ALIAS... [--url URL]

Keys are matched by `key_alias`: `setup` creates only the aliases that do not exist yet, so
running it twice creates nothing the second time. The master key ($LITELLM_MASTER_KEY, else the
proxy's generated key file) is never printed.

`setup` writes the `.env` lines (`NAME=sk-...`) on stdout and its progress on stderr, so
`backlog-ops keys setup >> .env` appends exactly the lines to keep. LiteLLM returns a key's secret
only when it creates it: a key that already exists gets a `# NAME: ... exists` comment instead.
"""

from __future__ import annotations

import json
import sys

from backlog_ops.errors import BacklogOpsError, KeyAPIError
from backlog_ops.gateway.key_api import KeyAPI, base_url
from backlog_ops.gateway.keys_file import KeySpec, load_keys_file
from backlog_ops.gateway.master_key import resolve_master_key

__all__ = ["proxy_down", "run_keys"]


def run_keys(args) -> int:
    """`backlog-ops keys setup|list|revoke`; returns the exit status."""
    action = getattr(args, "action", None)
    url = base_url(getattr(args, "url", None))
    specs = load_keys_file(args.file) if action == "setup" else None  # a bad file fails before any request
    try:
        return _run(action, url, specs, args)
    except KeyAPIError as exc:
        down = proxy_down(url)
        if down:
            raise KeyAPIError(down) from None
        raise exc from None


def proxy_down(url: str) -> str | None:
    """The one-line message for a proxy that does not answer at all (None when it does)."""
    from backlog_ops.gateway.status import probe

    found = probe(url)
    if found.reachable:
        return None
    return (f"no proxy answers at {url} ({found.problem}): start it with `backlog-ops proxy` "
            "(or `backlog-ops proxy --config litellm.yaml`), or pass --url with the proxy's address")


def _run(action: str | None, url: str, specs: list[KeySpec] | None, args) -> int:
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
