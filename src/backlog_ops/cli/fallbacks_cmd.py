"""`backlog-ops fallbacks`: the running proxy's fallbacks, through LiteLLM's fallback management API.

    backlog-ops fallbacks show [MODEL...] [--type TYPE|all] [--url URL] [--json]
    backlog-ops fallbacks set MODEL TARGET... [--type TYPE] [--url URL]
    backlog-ops fallbacks remove MODEL [--type TYPE] [--url URL]

`show` works against any proxy. `set` and `remove` need the proxy's database (LiteLLM keeps the
change there and applies it to the running router); without one they stop with a one-line
message saying where to change fallbacks instead. The master key is never printed.
"""

from __future__ import annotations

import json

from backlog_ops.errors import FallbackAPIError
from backlog_ops.gateway.fallback_api import FALLBACK_TYPES, FallbackAPI
from backlog_ops.gateway.key_api import base_url
from backlog_ops.gateway.lint import ALIASES
from backlog_ops.gateway.master_key import resolve_master_key

__all__ = ["run_fallbacks"]


def run_fallbacks(args) -> int:
    """`backlog-ops fallbacks show|set|remove`; returns the exit status."""
    url = base_url(getattr(args, "url", None))
    try:
        with FallbackAPI(url, resolve_master_key()) as api:
            if args.action == "show":
                return _show(api, list(args.models) or list(ALIASES), args.type, as_json=bool(args.json))
            if args.action == "set":
                print(f"{args.model} ({args.type}): falls back to {', '.join(args.targets)}: {api.set(args.model, args.targets, args.type)}")
                return 0
            print(f"{args.model} ({args.type}): {api.delete(args.model, args.type)}")
            return 0
    except FallbackAPIError as exc:
        from backlog_ops.cli.keys_cmd import proxy_down

        raise FallbackAPIError(proxy_down(url) or str(exc)) from None


def _show(api: FallbackAPI, models: list[str], kind: str, *, as_json: bool) -> int:
    kinds = FALLBACK_TYPES if kind == "all" else (kind,)
    table = {model: {k: api.get(model, k) for k in kinds} for model in models}
    if as_json:
        print(json.dumps(table, indent=2))
        return 0
    width = max(len(m) for m in models)
    for model, by_kind in table.items():
        for k, targets in by_kind.items():
            print(f"{model:<{width}}  {k:<14}  {' -> '.join(targets) if targets else '(none)'}")
    return 0
