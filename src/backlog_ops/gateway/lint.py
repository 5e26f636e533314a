"""Reading and checking LiteLLM proxy configs and the other files `backlog-ops config check` takes.

Every problem is one line naming the file, the key and the fix; an empty list means the file is
fine. The checks catch what LiteLLM itself accepts silently but then gets wrong: unpriced models,
literal secrets, tag filtering that strands ticket-tagged requests, callbacks in the wrong order.
"""

from __future__ import annotations

import copy
import re
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import yaml

from backlog_ops.common.prices import model_price
from backlog_ops.common.shape import not_an_object
from backlog_ops.common.times import duration_problem
from backlog_ops.errors import ConfigError
from backlog_ops.gateway.keys_file import load_keys_file
from backlog_ops.policy.gateway_budget import parse_gateway_budgets
from backlog_ops.policy.limits import parse_policy_section, parse_routing_section
from backlog_ops.project.schema import check_backlog_config

__all__ = [
    "ALIASES",
    "POLICY_SECTION",
    "check_config_file",
    "check_proxy_config",
    "check_virtual_keys_file",
    "config_dir",
    "is_proxy_config",
    "load_proxy_config",
    "shipped_configs",
]

ALIASES = ("cheap", "balanced", "frontier")  # the model names skills call
POLICY_SECTION = "backlog_ops"  # the proxy config section the ticket-policy callback reads
VALID_ENVIRONMENTS = ("development", "staging", "production")
TAGGER = "backlog_ops.callbacks.ticket_tagger.ticket_tagger"
POLICY = "backlog_ops.callbacks.ticket_policy.ticket_policy"
LEDGER = "backlog_ops.callbacks.spend_ledger.spend_ledger"
PROXY_CONFIG_HINT = ("fix: one mapping with model_list:, router_settings:, litellm_settings:, general_settings: "
                     "(or, for a virtual keys file, a `keys:` list inside one mapping)")
CACHE_TYPES = ("redis", "local", "redis-semantic", "qdrant-semantic", "s3", "disk")

# litellm_params / settings keys whose literal values are secrets
SECRET_KEYS = {
    "api_key", "vertex_credentials", "aws_secret_access_key", "aws_access_key_id", "azure_ad_token",
    "master_key", "database_url", "password", "redis_password", "client_secret",
}


def config_dir() -> Path:
    """The shipped proxy configs (the installed backlog_ops.config package)."""
    return Path(str(resources.files("backlog_ops.config")))


def shipped_configs() -> list[Path]:
    """Every proxy config backlog-ops ships (config/*.yaml and config/providers/*.yaml)."""
    root = config_dir()
    return sorted(root.glob("*.yaml")) + sorted((root / "providers").glob("*.yaml"))


def _load_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_proxy_config(path: Path, *, inline_includes: bool = True) -> dict:
    """A proxy config as a dict; with inline_includes, included files' model_lists are appended."""
    path = Path(path)
    data = _load_yaml(path)
    data = {} if data is None else data  # an empty file; `[]` is refused below, not taken as empty
    if (problem := not_an_object(path, data, PROXY_CONFIG_HINT)) is not None:
        raise ConfigError(problem)
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


def check_config_file(path: Path) -> list[str]:
    """Problems in one file: a backlog.config.json (.json), a virtual keys file or a proxy config (.yaml)."""
    path = Path(path)
    if path.suffix == ".json":
        return check_backlog_config(path)
    if path.suffix in (".yaml", ".yml") and _is_virtual_keys_file(path):
        return check_virtual_keys_file(path)
    if path.suffix in (".yaml", ".yml"):
        return check_proxy_config(path)
    return [f"{path}: not a .json (backlog.config.json) or .yaml (proxy config) file"]


def is_proxy_config(path: Path) -> bool:
    """A LiteLLM config one can start (not a provider file of deployments only, nor a keys file)."""
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        return False
    try:
        data = _load_yaml(path)
    except Exception:  # noqa: BLE001 - unreadable: the static check reports it
        return False
    return isinstance(data, dict) and not set(data) <= {"model_list"} and "keys" not in data


def _is_virtual_keys_file(path: Path) -> bool:
    """A `backlog-ops keys setup` file (a `keys:` list), not a LiteLLM config."""
    try:
        data = _load_yaml(path)
    except Exception:  # noqa: BLE001 - let the proxy-config check report the unreadable file
        return False
    return isinstance(data, dict) and "keys" in data and "model_list" not in data


def check_virtual_keys_file(path: Path) -> list[str]:
    """Problems in a virtual_keys.yaml (at most one: loading stops at the first)."""
    try:
        load_keys_file(path)
    except ConfigError as exc:
        return [str(exc)]
    return []


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
    if (problem := not_an_object(path, raw, PROXY_CONFIG_HINT)) is not None:
        return [problem]

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
    for i, dep in enumerate(models):
        problems += _check_deployment(path, i, dep, models, needs_default=tag_filtering or fragment)
    if fragment:
        return problems

    _walk_secrets(general, "general_settings", problems, path, False)
    _walk_secrets({k: v for k, v in settings.items() if k == "cache_params"}, "litellm_settings", problems, path,
                  str((settings.get("cache_params") or {}).get("host", "")).startswith(("127.", "localhost")))
    names = {d["model_name"] for d in models if isinstance(d, dict) and isinstance(d.get("model_name"), str)}
    missing = [a for a in ALIASES if a not in names]
    if missing:
        problems.append(
            f"{path}: model_list: no deployment named {', '.join(missing)}; skills call only cheap, balanced and "
            f"frontier; fix: add a deployment with that model_name"
        )
    problems += _check_fallbacks(path, router, settings, names)
    problems += _check_router(path, router)
    if settings.get("budget_duration") is not None and (problem := duration_problem(settings["budget_duration"])):
        problems.append(f"{path}: litellm_settings.budget_duration: {problem}")
    problems += _check_cache(path, settings)
    problems += _check_callbacks(path, settings)
    if general.get("master_key") is None:
        problems.append(f"{path}: general_settings.master_key: missing; fix: master_key: os.environ/LITELLM_MASTER_KEY")
    section = data.get(POLICY_SECTION)
    if section is not None:
        try:
            parse_policy_section(section)
            parse_routing_section(section)
            parse_gateway_budgets(section)
        except ConfigError as exc:
            problems.append(f"{path}: {POLICY_SECTION}: {exc}")
    return problems


def _check_deployment(path: Path, i: int, dep: Any, models: list, *, needs_default: bool) -> list[str]:
    """Problems in model_list[i]; needs_default: tag filtering is on (or this is a provider file)."""
    if not isinstance(dep, dict) or not isinstance(dep.get("model_name"), str):
        return [f"{path}: model_list[{i}]: needs model_name and litellm_params"]
    name = dep["model_name"]
    where = f"model_list[{i}] ({name})"
    params = dep.get("litellm_params")
    if not isinstance(params, dict) or not isinstance(params.get("model"), str):
        return [f"{path}: {where}.litellm_params.model: missing; fix: e.g. model: anthropic/claude-haiku-4-5"]
    problems: list[str] = []
    model = params["model"]
    priced = params.get("input_cost_per_token") is not None or model_price(model) is not None
    if not priced and not model.startswith("backlog-mock/"):
        hint = "; use anthropic/claude-opus-4-6" if "claude-opus-4" in model else ""
        problems.append(
            f"{path}: {where}.litellm_params.model: {model!r} has no price in LiteLLM's price map, so its calls "
            f"cost $0 in the ledger and no budget trips; fix: pick a priced model or set input_cost_per_token "
            f"and output_cost_per_token{hint}"
        )
    _walk_secrets(params, f"{where}.litellm_params", problems, path, _is_local_deployment(params))
    if params.get("budget_duration") is not None and (problem := duration_problem(params["budget_duration"])):
        problems.append(f"{path}: {where}.litellm_params.budget_duration: {problem}")
    tags = params.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        problems.append(f"{path}: {where}.litellm_params.tags: must be a list of strings")
    envs = (dep.get("model_info") or {}).get("supported_environments")
    if envs is not None:
        bad = [e for e in (envs if isinstance(envs, list) else [envs]) if e not in VALID_ENVIRONMENTS]
        if bad or not isinstance(envs, list):
            problems.append(
                f"{path}: {where}.model_info.supported_environments: {bad or envs} not allowed: LiteLLM gates "
                f"deployments on LITELLM_ENVIRONMENT, one of {', '.join(VALID_ENVIRONMENTS)}; fix: use those, "
                f"and express traffic tiers (interactive, critical) as litellm_params.tags"
            )
    if needs_default and not _reachable_by_tagged_requests(dep, models):
        problems.append(
            f"{path}: {where}.litellm_params.tags: with enable_tag_filtering, a request carrying tags (every "
            f"ticket-tagged request does) finds no deployment of {name!r} and fails with "
            f"no_deployments_with_tag_routing; fix: add 'default' to the tags of one {name!r} deployment"
        )
    return problems


def _check_fallbacks(path: Path, router: dict, settings: dict, names: set[str]) -> list[str]:
    """Fallback rules in router_settings and litellm_settings must name deployments that exist."""
    problems: list[str] = []
    for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        for section, source in (("router_settings", router), ("litellm_settings", settings)):
            rules = source.get(key)
            if rules is None:
                continue
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
    return problems


def _check_router(path: Path, router: dict) -> list[str]:
    problems: list[str] = []
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
        elif problem := duration_problem(budget.get("time_period")):
            problems.append(f"{path}: router_settings.provider_budget_config.{provider}.time_period: {problem}")
    return problems


def _check_cache(path: Path, settings: dict) -> list[str]:
    if not settings.get("cache"):
        return []
    problems: list[str] = []
    cache = settings.get("cache_params") or {}
    ctype = cache.get("type", "redis")
    if ctype not in CACHE_TYPES:
        problems.append(f"{path}: litellm_settings.cache_params.type: {ctype!r} is not a LiteLLM cache type; fix: redis")
    if ctype.startswith("redis") and not cache.get("namespace"):
        problems.append(
            f"{path}: litellm_settings.cache_params.namespace: missing; fix: set one (e.g. backlog) so this "
            f"gateway's cache is kept apart from other apps on the same Redis"
        )
    ttl = cache.get("ttl")
    if ttl is not None and (not isinstance(ttl, (int, float)) or ttl <= 0):
        problems.append(f"{path}: litellm_settings.cache_params.ttl: must be a positive number of seconds")
    return problems


def _check_callbacks(path: Path, settings: dict) -> list[str]:
    callbacks = settings.get("callbacks") or []
    if not isinstance(callbacks, list):
        return [f"{path}: litellm_settings.callbacks: must be a list"]
    problems: list[str] = []
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
    return problems


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
