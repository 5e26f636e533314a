"""The LiteLLM proxy config for a project, rendered from its backlog.config.json.

The shipped production config (config/production.yaml, its provider files inlined) with the
project's aliases, cache policy, budgets and escalation limit applied, plus a `backlog_ops`
section that the ticket-policy callback reads. `backlog-ops config render` writes it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from backlog_ops.errors import ConfigError
from backlog_ops.gateway.lint import (
    ALIASES,
    POLICY_SECTION,
    config_dir,
    load_proxy_config,
)
from backlog_ops.project.schema import (
    PROVIDER_DEFAULTS,
    PROVIDER_FILES,
    BacklogConfig,
    Budgets,
    CachePolicy,
    gateway_budgets_entry,
    policy_section,
)

__all__ = ["RENDERED_CONFIG", "SEMANTIC_CALLBACK", "render_proxy_config", "render_text"]

TEMPLATE = "production.yaml"
SEMANTIC_CALLBACK = "backlog_ops.callbacks.semantic_cache.semantic_cache"
TAGGER_CALLBACK = "backlog_ops.callbacks.ticket_tagger.ticket_tagger"
RENDERED_CONFIG = "litellm.yaml"  # where the README renders to, and what `config check` looks for


def _provider_catalog(providers: list[str]) -> dict[str, list[dict]]:
    out = {}
    for name in providers:
        data = load_proxy_config(config_dir() / "providers" / f"{name}.yaml")
        out[name] = data.get("model_list") or []
    return out


def _alias_params(model: str, catalog: dict[str, list[dict]]) -> dict:
    provider = model.split("/", 1)[0]
    for dep in catalog.get(PROVIDER_FILES.get(provider, ""), []):
        params = dep.get("litellm_params") or {}
        if params.get("model") == model:
            params = {k: v for k, v in params.items() if k not in ("tags", "rpm", "tpm")}
            return copy.deepcopy(params)
    return {"model": model, **PROVIDER_DEFAULTS[provider]}


def render_proxy_config(config: BacklogConfig, *, source: Path | None = None, template: Path | None = None) -> dict:
    """The LiteLLM config for a project: the production template with backlog.config.json applied."""
    if not config.project.name:
        raise ConfigError(
            f"{source or 'backlog.config.json'}: project.name: required to render: the proxy matches budgets to "
            f"requests by their project tag; fix: set project.name (e.g. \"my-api\")"
        )
    template_path = template or config_dir() / TEMPLATE
    base = load_proxy_config(template_path, inline_includes=False)
    ops = config.llmOps
    routing, budgets, cache = ops.routing, ops.budgets, ops.cachePolicy
    alias_models = {"cheap": routing.cheap, "balanced": routing.balanced, "frontier": routing.frontier}
    routes = routing.tagRoutes  # {tag: {alias: model}}
    providers = ops.gateway.providers
    if providers is None:
        used = [*alias_models.values(), *(m for models in routes.values() for m in models.values())]
        providers = sorted({PROVIDER_FILES[m.split("/", 1)[0]] for m in used})
    catalog = _provider_catalog(providers)

    def deployment(alias: str, model: str, tags: list[str], budget: float | None) -> dict:
        params = _alias_params(model, catalog)
        params["tags"] = tags
        if budget is not None:
            params["max_budget"] = budget
            params["budget_duration"] = budgets.period
        if cache.providerPromptCaching.enabled and model.startswith("anthropic/"):
            # Mark the system prompt as a cache breakpoint for clients that set none themselves
            # (Claude Code marks its own): the stable prefix is then billed at the cache-read price.
            params["cache_control_injection_points"] = [{"location": "message", "role": "system"}]
        # No model_info.supported_environments, even when the template has it: LiteLLM drops
        # such a deployment unless LITELLM_ENVIRONMENT lists it, and the alias would vanish.
        return {"model_name": alias, "litellm_params": params}

    critical = list(routing.criticalTags)
    tiers = {"cheap": ["default", "interactive", "offline"], "balanced": ["default", "interactive", "offline"],
             "frontier": ["default", *critical]}
    models: list[dict] = []
    for alias in ALIASES:
        # Tag routing: a tag with its own model for this alias leaves the main deployment, so
        # requests carrying it are served only by that model; every other request keeps the main one.
        routed = [tag for tag, chosen in routes.items() if alias in chosen]
        budget = budgets.perAliasUSD.get(alias)
        models.append(deployment(alias, alias_models[alias], [t for t in tiers[alias] if t not in routed], budget))
        models.extend(deployment(alias, routes[tag][alias], [tag], budget) for tag in routed)
    for name in providers:
        models.extend(copy.deepcopy(catalog[name]))

    out: dict[str, Any] = {"model_list": models}
    out["router_settings"] = _router_settings(base, budgets)
    out["litellm_settings"] = _litellm_settings(base, cache, langfuse=ops.observability.langfuse)
    out["general_settings"] = copy.deepcopy(base.get("general_settings") or {})
    out[POLICY_SECTION] = {
        "routing": {"frontier_alias": "frontier", "critical_tags": critical},
        "policy": {"projects": {config.project.name: policy_section(config, source)}},
        # The gateway-wide budgets: the overall one is enforced from the ledger by the policy
        # callback, and all three are named in its refusals.
        "gateway_budgets": gateway_budgets_entry(config, source),
    }
    return out


def _router_settings(base: dict, budgets: Budgets) -> dict:
    """The template's router_settings with tag filtering on and the project's provider budgets."""
    router = copy.deepcopy(base.get("router_settings") or {})
    router["enable_tag_filtering"] = True
    provider_budgets = {p: {"budget_limit": v, "time_period": budgets.period} for p, v in budgets.perProviderUSD.items()}
    if provider_budgets:
        router["provider_budget_config"] = provider_budgets
    else:
        router.pop("provider_budget_config", None)
    return router


def _litellm_settings(base: dict, cache: CachePolicy, *, langfuse: bool) -> dict:
    """The template's litellm_settings with the project's response cache (and Langfuse only when asked for).

    No max_budget: LiteLLM enforces it only with its own database (without one it logs that it
    will not); the overall budget is in the backlog_ops section, enforced from the ledger.
    """
    settings = copy.deepcopy(base.get("litellm_settings") or {})
    settings.pop("max_budget", None)
    settings.pop("budget_duration", None)
    if not langfuse:
        for key in ("success_callback", "failure_callback"):
            if isinstance(settings.get(key), list) and "langfuse" in settings[key]:
                settings[key] = [c for c in settings[key] if c != "langfuse"]
    rc, sc = cache.responseCache, cache.semanticCache
    params = copy.deepcopy(settings.get("cache_params") or {})
    if sc.enabled:
        # The semantic cache is a callback that reads its per-project settings from the policy
        # section; it sits in front of the exact response cache below, which stays as configured.
        callbacks = list(settings.get("callbacks") or [])
        if SEMANTIC_CALLBACK not in callbacks:
            after = callbacks.index(TAGGER_CALLBACK) + 1 if TAGGER_CALLBACK in callbacks else 0
            callbacks.insert(after, SEMANTIC_CALLBACK)
        settings["callbacks"] = callbacks
    if rc.enabled:
        settings["cache"] = True
        params["type"] = rc.type
        params["ttl"] = rc.ttlSeconds
        params["namespace"] = rc.namespace
        if rc.type == "local":
            for key in ("host", "port", "password"):
                params.pop(key, None)
        settings["cache_params"] = params
    else:
        settings["cache"] = False
        settings.pop("cache_params", None)
    return settings


def render_text(config: BacklogConfig, source: Path | None) -> str:
    """The rendered config as YAML, under a header saying where it came from and how to change it."""
    header = (
        f"# Generated by `backlog-ops config render` from {source or 'backlog.config.json'}.\n"
        "# Edit that file and render again; edits here are lost. Check with `backlog-ops config check`.\n"
        "# A running proxy re-reads the backlog_ops section (budgets, escalation limit) within a few\n"
        "# seconds of a new render; other changes need a proxy restart.\n"
    )
    return header + yaml.dump(render_proxy_config(config, source=source), Dumper=_NoAliasDumper, sort_keys=False, width=120)


class _NoAliasDumper(yaml.SafeDumper):
    """Write repeated lists out in full: `&id001` anchors would puzzle a person reading the config."""

    def ignore_aliases(self, data: Any) -> bool:
        return True
