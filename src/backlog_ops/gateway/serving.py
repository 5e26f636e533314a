"""What a proxy config would serve in this environment, and why it would not.

Pure reading, no LiteLLM import: which provider each deployment goes to and whether the key it
needs is set (names only, never values), and the one-line problems `backlog-ops proxy` refuses
to start on and `config check` reports: an alias whose provider key is unset, a provider base
URL that points the proxy at itself, and what LiteLLM's own loading (gateway.litellm_load) did:
an error that stops start-up, deployments it dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from backlog_ops.gateway.lint import ALIASES
from backlog_ops.project.schema import PROVIDER_DEFAULTS

__all__ = [
    "Route",
    "environment_problems",
    "env_refs",
    "load_problems",
    "provider_summary",
    "routes",
]

ENV_PREFIX = "os.environ/"
# Variables LiteLLM reads for a provider's endpoint when a deployment sets no api_base.
BASE_URL_VARS = {
    "anthropic": ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"),
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "groq": ("GROQ_API_BASE",),
}
# The credential parameter of a deployment, by provider (first one present wins).
_KEY_PARAMS = ("api_key", "vertex_credentials")
_LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|localhost|::1)$")


@dataclass(frozen=True)
class Route:
    """One deployment as people see it: alias → provider/model, its key by name, its endpoint."""

    model_name: str
    model: str
    provider: str
    key_var: str | None  # the variable holding its key; None: a literal key, or none needed
    key_set: bool
    endpoint: str | None  # host:port when it goes to a loopback endpoint (a local mock), else None
    endpoint_var: str | None  # the variable that set that endpoint, if one did


def env_refs(node: Any) -> list[str]:
    """Names of the variables a config refers to as os.environ/NAME, in order, once each."""
    found: dict[str, None] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.startswith(ENV_PREFIX):
            found[value[len(ENV_PREFIX):]] = None

    walk(node)
    return list(found)


def _resolve(value: Any, environ: Mapping[str, str]) -> str | None:
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        return environ.get(value[len(ENV_PREFIX):]) or None
    return value if isinstance(value, str) and value else None


def _loopback(url: str | None) -> str | None:
    """host:port of a loopback http(s) URL, else None."""
    try:
        parts = urlsplit(url or "")
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not _LOOPBACK.match(host):
        return None
    return f"{host}:{port}" if port else host


def routes(config: Mapping[str, Any], environ: Mapping[str, str]) -> list[Route]:
    """Every deployment of the config (includes inlined), with its key and endpoint as set here."""
    out: list[Route] = []
    for dep in config.get("model_list") or []:
        if not isinstance(dep, dict) or not isinstance(dep.get("litellm_params"), dict):
            continue
        params = dep["litellm_params"]
        model = str(params.get("model") or "")
        provider = str(params.get("custom_llm_provider") or (model.split("/", 1)[0] if "/" in model else "?"))
        key_var, key_set = None, True
        raw_key = next((params[p] for p in _KEY_PARAMS if params.get(p) is not None), None)
        if isinstance(raw_key, str) and raw_key.startswith(ENV_PREFIX):
            key_var = raw_key[len(ENV_PREFIX):]
            key_set = bool(environ.get(key_var))
        elif raw_key is None:
            default = next(iter(PROVIDER_DEFAULTS.get(provider, {}).values()), None)
            if default:  # LiteLLM reads the provider's usual variable itself
                key_var = default[len(ENV_PREFIX):]
                key_set = bool(environ.get(key_var))
        endpoint_var = None
        base = _resolve(params.get("api_base"), environ)
        if base is None:
            endpoint_var = next((v for v in BASE_URL_VARS.get(provider, ()) if environ.get(v)), None)
            base = environ.get(endpoint_var) if endpoint_var else None
        endpoint = _loopback(base)
        out.append(Route(str(dep.get("model_name")), model, provider, key_var, key_set,
                         endpoint, endpoint_var if endpoint else None))
    return out


def provider_summary(found: list[Route]) -> list[dict]:
    """Per provider: its key variable(s), which are unset, the model names it serves, local endpoints."""
    by_provider: dict[str, dict] = {}
    for route in found:
        entry = by_provider.setdefault(route.provider, {
            "provider": route.provider, "keys": [], "missing_keys": [], "models": [], "local_endpoints": []})
        if route.key_var and route.key_var not in entry["keys"]:
            entry["keys"].append(route.key_var)
        if route.key_var and not route.key_set and route.key_var not in entry["missing_keys"]:
            entry["missing_keys"].append(route.key_var)
        if route.model_name not in entry["models"]:
            entry["models"].append(route.model_name)
        if route.endpoint and route.endpoint not in entry["local_endpoints"]:
            entry["local_endpoints"].append(route.endpoint)
    return list(by_provider.values())


def environment_problems(path: Path, config: Mapping[str, Any], environ: Mapping[str, str], *,
                         port: int | None = None) -> list[str]:
    """Why the config would not serve its aliases in this environment, one line each.

    An alias whose every deployment lacks its provider key would fail every call; a provider
    base URL pointing at the proxy's own port (`port`) would send calls back to the proxy.
    """
    problems: list[str] = []
    found = routes(config, environ)
    missing: dict[str, list[str]] = {}
    for alias in ALIASES:
        mine = [r for r in found if r.model_name == alias]
        if mine and not any(r.key_set for r in mine):
            for var in dict.fromkeys(r.key_var for r in mine if r.key_var):
                missing.setdefault(var, []).append(alias)
    for var, aliases in missing.items():
        problems.append(
            f"{path}: {', '.join(aliases)}: the provider key {var} is not set, so every call to "
            f"{'them' if len(aliases) > 1 else 'it'} would fail; fix: export {var} (your provider key) or put it in ./.env"
        )
    problems += _langfuse_problems(path, config, environ)
    if port is not None:
        for provider, names in BASE_URL_VARS.items():
            uses = any(r.provider == provider and r.endpoint_var for r in found)
            for var in names:
                where = _loopback(environ.get(var))
                if uses and where and where.rsplit(":", 1)[-1] == str(port):
                    problems.append(
                        f"{var} points at {where}, this proxy's own address: LiteLLM would send {provider} "
                        f"calls back to the proxy; fix: unset {var} where the proxy runs (it is for the "
                        f"client's shell)"
                    )
    from backlog_ops.gateway.semantic_cache.settings import startup_problems

    problems.extend(f"{path}: {p}" for p in startup_problems(config.get("backlog_ops"), environ))
    return problems


def _langfuse_problems(path: Path, config: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """LiteLLM's langfuse callback without the project's keys would still send every call, prompts
    included, to Langfuse's cloud (its default host) with a key that is not one: refuse instead."""
    settings = config.get("litellm_settings") or {}
    where = [key for key in ("callbacks", "success_callback", "failure_callback")
             if isinstance(settings.get(key), list) and "langfuse" in settings[key]]
    missing = [var for var in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY") if not (environ.get(var) or "").strip()]
    if not where or not missing:
        return []
    return [f"{path}: litellm_settings.{where[0]} lists langfuse but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set, so LiteLLM would send every call to Langfuse's cloud "
            f"with no valid key; fix: export LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST (your "
            f"Langfuse), or remove \"langfuse\" from {', '.join(where)}"]


def load_problems(path: Path, config: Mapping[str, Any], outcome: Mapping[str, Any],
                  environ: Mapping[str, str]) -> list[str]:
    """What LiteLLM's loading of the config (gateway.litellm_load's outcome) means, one line each."""
    error = outcome.get("error")
    if error:
        return [_load_error(path, config, str(error), environ)]
    configured: dict[str, int] = {}
    for dep in config.get("model_list") or []:
        if isinstance(dep, dict) and isinstance(dep.get("model_name"), str):
            configured[dep["model_name"]] = configured.get(dep["model_name"], 0) + 1
    loaded: Mapping[str, int] = outcome.get("loaded") or {}
    inactive = list(outcome.get("inactive") or ())
    reasons = list(dict.fromkeys(outcome.get("dropped") or ()))
    environment = environ.get("LITELLM_ENVIRONMENT")
    inactive_aliases: list[str] = []
    dropped: dict[tuple[str, str], list[str]] = {}  # (why, fix) -> ["name: dropped of configured"]
    for name, count in configured.items():
        kept = loaded.get(name, 0)
        # Not active for this LITELLM_ENVIRONMENT: deliberate for a named model, fatal for an alias.
        idle = min(inactive.count(name), count - kept)
        if idle and kept == 0 and name in ALIASES:
            inactive_aliases.append(name)
        missing = count - kept - idle
        if missing <= 0:
            continue
        why = "; ".join(reasons) if reasons else "see the proxy log"
        fix = "fix the deployment"
        if "LITELLM_ENVIRONMENT" in why:
            why = "their model_info.supported_environments needs LITELLM_ENVIRONMENT, which is not set"
            fix = ("export LITELLM_ENVIRONMENT=production (or another environment they list), or remove "
                   "model_info.supported_environments (`backlog-ops config render` no longer writes it)")
        dropped.setdefault((why, fix), []).append(f"{name}: {missing} of {count}")
    problems = [f"{path}: model_list: LiteLLM drops deployments ({', '.join(names)}): {why}; fix: {fix}"
                for (why, fix), names in dropped.items()]
    if inactive_aliases:
        problems.append(
            f"{path}: model_list ({', '.join(inactive_aliases)}): no deployment is active for "
            f"LITELLM_ENVIRONMENT={environment} (model_info.supported_environments), so skills calling "
            f"{'them' if len(inactive_aliases) > 1 else 'it'} would fail; fix: list {environment} there, or "
            f"remove supported_environments"
        )
    return problems


def _load_error(path: Path, config: Mapping[str, Any], error: str, environ: Mapping[str, str]) -> str:
    """LiteLLM's start-up error, with the unset variables of the part of the config it concerns."""
    settings = config.get("litellm_settings") or {}
    if "redis" in error.lower() and isinstance(settings, dict):
        unset = [v for v in env_refs(settings.get("cache_params") or {}) if not environ.get(v)]
        needs = " or ".join(v for v in ("REDIS_HOST", "REDIS_URL") if not environ.get(v)) or "a Redis host"
        return (
            f"{path}: litellm_settings.cache_params: LiteLLM cannot start the Redis response cache ({error.rstrip('.')})"
            + (f"; unset: {', '.join(unset)}" if unset else "")
            + f"; fix: set {needs} (and REDIS_PORT, REDIS_PASSWORD as needed) in the environment or ./.env, or "
            f"turn the Redis cache off (llmOps.cachePolicy.responseCache.type \"local\", or enabled false, in "
            f"backlog.config.json, then render again)"
        )
    unset = [v for v in env_refs({k: config.get(k) for k in ("litellm_settings", "general_settings", "router_settings")})
             if not environ.get(v)]
    return (f"{path}: LiteLLM cannot start with this config: {error}"
            + (f"; variables it refers to that are unset: {', '.join(unset)}" if unset else ""))
