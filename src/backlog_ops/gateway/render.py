"""backlog.config.json (its `project` and `llmOps` sections) and the LiteLLM proxy configs.

`backlog-ops config render` writes a LiteLLM config from a project's backlog.config.json: the
shipped production config (config/production.yaml, its provider files inlined) with the
project's aliases, cache policy, budgets and escalation limit applied, plus a `backlog_ops`
section that the ticket-policy callback reads.

`backlog-ops config check [FILE...]` validates backlog.config.json files and proxy configs.
Every problem names the file, the key and the fix.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backlog_ops.common.prices import model_price
from backlog_ops.common.times import duration_problem
from backlog_ops.errors import ConfigError, InvalidContext
from backlog_ops.context.fields import check_field
from backlog_ops.project.schema import PROVIDER_DEFAULTS, PROVIDER_FILES, BacklogConfig, model_problem, check_backlog_config, load_backlog_config, policy_section

__all__ = [
    "ALIASES",
    "BacklogConfig",
    "check_backlog_config",
    "check_proxy_config",
    "load_backlog_config",
    "policy_section",
    "render_proxy_config",
    "run_check",
    "run_render",
    "shipped_configs",
]

ALIASES = ("cheap", "balanced", "frontier")
POLICY_SECTION = "backlog_ops"
TEMPLATE = "production.yaml"
VALID_ENVIRONMENTS = ("development", "staging", "production")
TAGGER = "backlog_ops.callbacks.ticket_tagger.ticket_tagger"
POLICY = "backlog_ops.callbacks.ticket_policy.ticket_policy"
LEDGER = "backlog_ops.callbacks.spend_ledger.spend_ledger"

# litellm_params / settings keys whose literal values are secrets
SECRET_KEYS = {
    "api_key", "vertex_credentials", "aws_secret_access_key", "aws_access_key_id", "azure_ad_token",
    "master_key", "database_url", "password", "redis_password", "client_secret",
}


# -- proxy configs -------------------------------------------------------------------------------


def _config_dir() -> Path:
    return Path(str(resources.files("backlog_ops.config")))


def shipped_configs() -> list[Path]:
    """Every proxy config backlog-ops ships (config/*.yaml and config/providers/*.yaml)."""
    root = _config_dir()
    return sorted(root.glob("*.yaml")) + sorted((root / "providers").glob("*.yaml"))


def _load_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_proxy_config(path: Path, *, inline_includes: bool = True) -> dict:
    """A proxy config as a dict; with inline_includes, included files' model_lists are appended."""
    path = Path(path)
    data = _load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a LiteLLM config must be a YAML mapping")
    if inline_includes and data.get("include"):
        merged = copy.deepcopy(data)
        includes = merged.pop("include")
        models = list(merged.get("model_list") or [])
        for name in includes if isinstance(includes, list) else [includes]:
            included = load_proxy_config(path.parent / str(name))
            models.extend(included.get("model_list") or [])
        merged["model_list"] = models
        return merged
    return data


def _walk_secrets(node: Any, where: str, problems: list[str], path: Path, local_ok: bool) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if key in SECRET_KEYS and isinstance(value, str) and value and not value.startswith("os.environ/") and not local_ok:
                problems.append(
                    f"{path}: {here}: a literal secret; fix: reference the environment, e.g. "
                    f"{key}: os.environ/{_env_name(key)}"
                )
            else:
                _walk_secrets(value, here, problems, path, local_ok)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk_secrets(value, f"{where}[{i}]", problems, path, local_ok)


def _env_name(key: str) -> str:
    return {"master_key": "LITELLM_MASTER_KEY", "database_url": "DATABASE_URL", "password": "REDIS_PASSWORD"}.get(
        key, key.upper()
    )


def _is_local_deployment(params: dict) -> bool:
    """A mock or loopback deployment: its 'key' is no secret (the offline config, tests)."""
    base = str(params.get("api_base") or "")
    if params.get("mock_response") is not None:
        return True
    if base.startswith("os.environ/BACKLOG_MOCK"):
        return True
    return bool(re.match(r"https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(/|$)", base))


def check_proxy_config(path: Path) -> list[str]:
    """Problems in a LiteLLM proxy config (or a provider file holding only model_list)."""
    path = Path(path)
    problems: list[str] = []
    try:
        raw = _load_yaml(path)
    except FileNotFoundError:
        return [f"{path}: does not exist"]
    except yaml.YAMLError as exc:
        return [f"{path}: not valid YAML: {exc}"]
    if raw is None:
        return [f"{path}: is empty; a LiteLLM config needs at least model_list"]
    if not isinstance(raw, dict):
        return [f"{path}: must be a YAML mapping (model_list:, router_settings:, litellm_settings:, general_settings:)"]

    includes = raw.get("include") or []
    for name in includes if isinstance(includes, list) else [includes]:
        target = path.parent / str(name)
        if not target.is_file():
            problems.append(f"{path}: include: {name}: no such file next to the config; fix the path or remove it")
    try:
        data = load_proxy_config(path)
    except (ConfigError, OSError, yaml.YAMLError) as exc:
        return problems + [f"{path}: include: {exc}"]

    models = data.get("model_list")
    if not isinstance(models, list) or not models:
        return problems + [f"{path}: model_list: missing or empty; fix: list at least one deployment"]
    fragment = set(raw) <= {"model_list"}  # a provider file: deployments only
    router = data.get("router_settings") or {}
    settings = data.get("litellm_settings") or {}
    general = data.get("general_settings") or {}
    tag_filtering = bool(router.get("enable_tag_filtering") or general.get("enable_tag_filtering"))
    names: set[str] = set()
    for i, dep in enumerate(models):
        where = f"model_list[{i}]"
        if not isinstance(dep, dict) or not isinstance(dep.get("model_name"), str):
            problems.append(f"{path}: {where}: needs model_name and litellm_params")
            continue
        name = dep["model_name"]
        names.add(name)
        where = f"model_list[{i}] ({name})"
        params = dep.get("litellm_params")
        if not isinstance(params, dict) or not isinstance(params.get("model"), str):
            problems.append(f"{path}: {where}.litellm_params.model: missing; fix: e.g. model: anthropic/claude-haiku-4-5")
            continue
        model = params["model"]
        local = _is_local_deployment(params)
        priced = params.get("input_cost_per_token") is not None or model_price(model) is not None
        if not priced and not model.startswith("backlog-mock/"):
            hint = "; use anthropic/claude-opus-4-6" if "claude-opus-4" in model else ""
            problems.append(
                f"{path}: {where}.litellm_params.model: {model!r} has no price in LiteLLM's price map, so its calls "
                f"cost $0 in the ledger and no budget trips; fix: pick a priced model or set input_cost_per_token "
                f"and output_cost_per_token{hint}"
            )
        _walk_secrets(params, f"{where}.litellm_params", problems, path, local)
        if params.get("budget_duration") is not None and duration_problem(params["budget_duration"]):
            problems.append(f"{path}: {where}.litellm_params.budget_duration: {duration_problem(params['budget_duration'])}")
        tags = params.get("tags")
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            problems.append(f"{path}: {where}.litellm_params.tags: must be a list of strings")
        info = dep.get("model_info") or {}
        envs = info.get("supported_environments")
        if envs is not None:
            bad = [e for e in (envs if isinstance(envs, list) else [envs]) if e not in VALID_ENVIRONMENTS]
            if bad or not isinstance(envs, list):
                problems.append(
                    f"{path}: {where}.model_info.supported_environments: {bad or envs} not allowed: LiteLLM gates "
                    f"deployments on LITELLM_ENVIRONMENT, one of {', '.join(VALID_ENVIRONMENTS)}; fix: use those, "
                    f"and express traffic tiers (interactive, critical) as litellm_params.tags"
                )
        if (tag_filtering or fragment) and not _reachable_by_tagged_requests(dep, models):
            problems.append(
                f"{path}: {where}.litellm_params.tags: with enable_tag_filtering, a request carrying tags (every "
                f"ticket-tagged request does) finds no deployment of {name!r} and fails with "
                f"no_deployments_with_tag_routing; fix: add 'default' to the tags of one {name!r} deployment"
            )
    if fragment:
        return problems

    _walk_secrets(general, "general_settings", problems, path, False)
    _walk_secrets({k: v for k, v in settings.items() if k == "cache_params"}, "litellm_settings", problems, path,
                  str((settings.get("cache_params") or {}).get("host", "")).startswith(("127.", "localhost")))
    missing = [a for a in ALIASES if a not in names]
    if missing:
        problems.append(
            f"{path}: model_list: no deployment named {', '.join(missing)}; skills call only cheap, balanced and "
            f"frontier; fix: add a deployment with that model_name"
        )
    for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        for source in (router, settings):
            rules = source.get(key)
            if rules is None:
                continue
            section = "router_settings" if source is router else "litellm_settings"
            if not isinstance(rules, list):
                problems.append(f"{path}: {section}.{key}: must be a list like - cheap: [balanced, frontier]")
                continue
            for j, rule in enumerate(rules):
                if not isinstance(rule, dict) or len(rule) != 1:
                    problems.append(f"{path}: {section}.{key}[{j}]: each entry maps one model to a list, e.g. - cheap: [balanced]")
                    continue
                (src, targets), = rule.items()
                for target in [src] + (targets if isinstance(targets, list) else [targets]):
                    if target not in names:
                        problems.append(
                            f"{path}: {section}.{key}[{j}]: {target!r} is not a model_name in model_list; fix the "
                            f"name or add a deployment called {target!r}"
                        )
    for key in ("allowed_fails", "cooldown_time", "num_retries", "timeout"):
        value = router.get(key)
        if value is not None and (not isinstance(value, (int, float)) or value < 0):
            problems.append(f"{path}: router_settings.{key}: must be a number >= 0")
    if router.get("allowed_fails") == 3 and not router.get("allowed_fails_policy"):
        problems.append(
            f"{path}: router_settings.allowed_fails: 3 is LiteLLM's default, which LiteLLM 1.106 takes as unset and "
            f"replaces with its failure-rate heuristic; fix: add allowed_fails_policy (e.g. "
            f"InternalServerErrorAllowedFails: 3, RateLimitErrorAllowedFails: 3) to make the count apply"
        )
    for provider, budget in (router.get("provider_budget_config") or {}).items():
        if not isinstance(budget, dict) or not isinstance(budget.get("budget_limit"), (int, float)):
            problems.append(f"{path}: router_settings.provider_budget_config.{provider}: needs budget_limit (USD) and time_period")
        elif duration_problem(budget.get("time_period")):
            problems.append(f"{path}: router_settings.provider_budget_config.{provider}.time_period: {duration_problem(budget.get('time_period'))}")
    if settings.get("budget_duration") is not None and duration_problem(settings["budget_duration"]):
        problems.append(f"{path}: litellm_settings.budget_duration: {duration_problem(settings['budget_duration'])}")
    if settings.get("cache"):
        cache = settings.get("cache_params") or {}
        ctype = cache.get("type", "redis")
        if ctype not in ("redis", "local", "redis-semantic", "qdrant-semantic", "s3", "disk"):
            problems.append(f"{path}: litellm_settings.cache_params.type: {ctype!r} is not a LiteLLM cache type; fix: redis")
        if ctype.startswith("redis") and not cache.get("namespace"):
            problems.append(
                f"{path}: litellm_settings.cache_params.namespace: missing; fix: set one (e.g. backlog) so this "
                f"gateway's cache is kept apart from other apps on the same Redis"
            )
        ttl = cache.get("ttl")
        if ttl is not None and (not isinstance(ttl, (int, float)) or ttl <= 0):
            problems.append(f"{path}: litellm_settings.cache_params.ttl: must be a positive number of seconds")
    callbacks = settings.get("callbacks") or []
    if not isinstance(callbacks, list):
        problems.append(f"{path}: litellm_settings.callbacks: must be a list")
        callbacks = []
    for cb in callbacks:
        if isinstance(cb, str) and cb.startswith("backlog_ops.") and find_spec(cb.rsplit(".", 1)[0]) is None:
            problems.append(f"{path}: litellm_settings.callbacks: {cb} cannot be imported; fix: install backlog-ops in the proxy's Python")
    if POLICY in callbacks:
        if TAGGER not in callbacks or callbacks.index(TAGGER) > callbacks.index(POLICY):
            problems.append(
                f"{path}: litellm_settings.callbacks: {POLICY} must come after {TAGGER}: it reads the ticket tags "
                f"the tagger adds; fix: list the tagger first"
            )
    if callbacks and TAGGER in callbacks and LEDGER not in callbacks:
        problems.append(f"{path}: litellm_settings.callbacks: {LEDGER} is missing: no call would be recorded; fix: add it")
    master = general.get("master_key")
    if master is None:
        problems.append(f"{path}: general_settings.master_key: missing; fix: master_key: os.environ/LITELLM_MASTER_KEY")
    section = data.get(POLICY_SECTION)
    if section is not None:
        from backlog_ops.policy.budgets import parse_policy_section, parse_routing_section

        try:
            parse_policy_section(section)
            parse_routing_section(section)
        except ConfigError as exc:
            problems.append(f"{path}: {POLICY_SECTION}: {exc}")
    return problems


def _reachable_by_tagged_requests(dep: dict, models: list) -> bool:
    """Whether some deployment of dep's group serves requests whose tags match nothing (tag 'default')."""
    name = dep.get("model_name")
    for other in models:
        if not isinstance(other, dict) or other.get("model_name") != name:
            continue
        params = other.get("litellm_params") or {}
        tags = params.get("tags") or []
        if "default" in tags or ((other.get("model_info") or {}).get("allow_fail_open") is True):
            return True
    return False


# -- render --------------------------------------------------------------------------------------


def _provider_catalog(providers: list[str]) -> dict[str, list[dict]]:
    out = {}
    for name in providers:
        data = load_proxy_config(_config_dir() / "providers" / f"{name}.yaml")
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
    template_path = template or _config_dir() / TEMPLATE
    base = load_proxy_config(template_path, inline_includes=False)
    ops = config.llmOps
    routing, budgets, cache = ops.routing, ops.budgets, ops.cachePolicy
    alias_models = {"cheap": routing.cheap, "balanced": routing.balanced, "frontier": routing.frontier}
    providers = ops.gateway.providers
    if providers is None:
        providers = sorted({PROVIDER_FILES[m.split("/", 1)[0]] for m in alias_models.values()})
    catalog = _provider_catalog(providers)

    template_aliases = {d["model_name"]: d for d in base.get("model_list") or [] if d.get("model_name") in ALIASES}
    envs = None
    for dep in template_aliases.values():
        envs = (dep.get("model_info") or {}).get("supported_environments", envs)

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
        dep: dict[str, Any] = {"model_name": alias, "litellm_params": params}
        if envs:
            dep["model_info"] = {"supported_environments": list(envs)}
        return dep

    critical = list(routing.criticalTags)
    tiers = {"cheap": ["default", "interactive", "offline"], "balanced": ["default", "interactive", "offline"],
             "frontier": ["default", *critical]}
    models: list[dict] = [
        deployment(alias, alias_models[alias], tiers[alias], budgets.perAliasUSD.get(alias)) for alias in ALIASES
    ]
    for name in providers:
        models.extend(copy.deepcopy(catalog[name]))

    out: dict[str, Any] = {"model_list": models}
    router = copy.deepcopy(base.get("router_settings") or {})
    router["enable_tag_filtering"] = True
    provider_budgets = {p: {"budget_limit": v, "time_period": budgets.period} for p, v in budgets.perProviderUSD.items()}
    if provider_budgets:
        router["provider_budget_config"] = provider_budgets
    else:
        router.pop("provider_budget_config", None)
    out["router_settings"] = router

    settings = copy.deepcopy(base.get("litellm_settings") or {})
    if budgets.monthlyUSD is not None:
        settings["max_budget"] = budgets.monthlyUSD
        settings["budget_duration"] = budgets.period
    else:
        settings.pop("max_budget", None)
        settings.pop("budget_duration", None)
    rc, sc = cache.responseCache, cache.semanticCache
    params = copy.deepcopy(settings.get("cache_params") or {})
    if sc.enabled:
        settings["cache"] = True
        params.update(
            type="redis-semantic",
            similarity_threshold=sc.similarityThreshold,
            redis_semantic_cache_embedding_model=sc.embeddingModel,
            ttl=rc.ttlSeconds,
            namespace=rc.namespace,
        )
        settings["cache_params"] = params
    elif rc.enabled:
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
    out["litellm_settings"] = settings
    out["general_settings"] = copy.deepcopy(base.get("general_settings") or {})
    out[POLICY_SECTION] = {
        "routing": {"frontier_alias": "frontier", "critical_tags": critical},
        "policy": {"projects": {config.project.name: policy_section(config, source)}},
    }
    return out


def render_text(config: BacklogConfig, source: Path | None) -> str:
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


# -- CLI -----------------------------------------------------------------------------------------


def run_render(input_path: str, output: str) -> int:
    source = Path(input_path).expanduser()
    config = load_backlog_config(source)
    text = render_text(config, source)
    if output == "-":
        sys.stdout.write(text)
        return 0
    target = Path(output).expanduser()
    from backlog_ops.common.home import write_atomic

    write_atomic(target, text.encode(), mode=0o644)
    problems = check_proxy_config(target)
    for problem in problems:
        print(f"backlog-ops: warning: {problem}", file=sys.stderr)
    print(f"wrote {target} for project {config.project.name}", file=sys.stderr)
    return 1 if problems else 0


def _is_virtual_keys_file(path: Path) -> bool:
    """A `backlog-ops keys setup` file (a `keys:` list), not a LiteLLM config."""
    try:
        data = _load_yaml(path)
    except Exception:  # noqa: BLE001 - let the proxy-config check report the unreadable file
        return False
    return isinstance(data, dict) and "keys" in data and "model_list" not in data


def check_virtual_keys_file(path: Path) -> list[str]:
    from backlog_ops.gateway.keys_file import load_keys_file

    try:
        load_keys_file(path)
    except ConfigError as exc:
        return [str(exc)]
    return []


def run_check(files: list[str]) -> int:
    """Validate each FILE (.json: backlog.config.json; .yaml/.yml: proxy config or virtual keys file); no FILE: ./backlog.config.json and every shipped config."""
    paths = [Path(f).expanduser() for f in files]
    if not paths:
        local = Path("backlog.config.json")
        paths = ([local] if local.is_file() else []) + shipped_configs()
    failed = 0
    for path in paths:
        if path.suffix == ".json":
            problems = check_backlog_config(path)
        elif path.suffix in (".yaml", ".yml") and _is_virtual_keys_file(path):
            problems = check_virtual_keys_file(path)
        elif path.suffix in (".yaml", ".yml"):
            problems = check_proxy_config(path)
        else:
            problems = [f"{path}: not a .json (backlog.config.json) or .yaml (proxy config) file"]
        if problems:
            failed += 1
            for problem in problems:
                print(problem)
        else:
            print(f"ok  {path}")
    if failed:
        print(f"{failed} of {len(paths)} file(s) have problems", file=sys.stderr)
    return 1 if failed else 0
