"""What the semantic cache may answer, and under which scope.

A request is looked up (and its response stored) only when its project's settings enable the
cache and nothing makes a stored answer wrong for it:

- tools: a request that offers tools expects the model to act; skipped unless
  `cache_tool_requests`;
- sampling: an explicit `temperature` above `max_temperature` asks for variety; skipped (a
  request that sets no temperature is not asking for any, and is cached);
- the text compared is the last user message only; everything else that shapes the answer
  (model, system prompt, earlier turns, tools, output parameters) must match exactly, as part of
  the bucket key, with the scope: project, virtual key and team. An entry is never served to
  another project, key or team;
- the identifiers the message names (numbers, SHOP-7, parse_duration, --no-verify, JSON, file.py),
  in order, are part of the bucket key too: embeddings barely tell "HTTP 402" from "HTTP 404",
  so a question about another identifier is never compared, let alone served
  (bench/semantic_cache_eval.py measures what this guard costs and saves).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Lookup", "SemanticSettings", "identifiers", "prepare", "request_scope"]

# Request parameters that change what a correct answer is: part of the bucket key.
_SHAPING_PARAMS = ("system", "tools", "tool_choice", "functions", "response_format", "max_tokens",
                   "max_completion_tokens", "stop", "stop_sequences", "temperature", "top_p", "top_k", "n",
                   "seed", "thinking", "reasoning_effort", "output_format")
_METADATA_KEYS = ("metadata", "litellm_metadata")
_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*|--?[A-Za-z0-9][A-Za-z0-9_\-]*")
_IDENTIFIER = re.compile(r"\d|_|^-|[a-z][A-Z]|^[A-Z]{2,}$|\.[A-Za-z]")


@dataclass(frozen=True)
class SemanticSettings:
    """One project's semantic cache settings (llmOps.cachePolicy.semanticCache)."""

    enabled: bool = False
    similarity_threshold: float = 0.9
    ttl_seconds: int = 3600
    max_temperature: float | None = 0.5
    cache_tool_requests: bool = False
    max_entries_per_scope: int = 1000
    embedder: str = "static-64d"
    index: str = "sqlite"  # or "postgres" / "redis" (backend.open_index says where)


@dataclass(frozen=True)
class Lookup:
    """A request the cache may serve: its bucket (scope + exact context) and the text to compare."""

    bucket: str
    project: str
    text: str


def _metadata_sources(kwargs: dict) -> list[dict]:
    params = kwargs.get("litellm_params") if isinstance(kwargs.get("litellm_params"), dict) else {}
    out = []
    for source in (kwargs, params):
        for key in _METADATA_KEYS:
            value = source.get(key)
            if isinstance(value, dict):
                out.append(value)
    return out


def _first(sources: list[dict], *names: str) -> Any:
    for name in names:
        for source in sources:
            if source.get(name) not in (None, ""):
                return source[name]
    return None


def request_scope(kwargs: dict) -> tuple[str, str, str]:
    """(project, key, team) of a request as the proxy saw it: the project tag, the hashed virtual key, the team."""
    sources = _metadata_sources(kwargs)
    project = ""
    for source in sources:
        for tag in source.get("tags") or ():
            if isinstance(tag, str) and tag.startswith("project:"):
                project = tag.split(":", 1)[1]
                break
        if project:
            break
    key = _first(sources, "user_api_key_hash", "user_api_key")
    # The key as LiteLLM hands it over is already a hash; hash again so no key material is stored.
    key_id = hashlib.sha256(str(key).encode()).hexdigest()[:32] if key else ""
    team = _first(sources, "user_api_key_team_id")
    return project, key_id, str(team or "")


def identifiers(text: str) -> list[str]:
    """The identifiers a message names, in order, each once: numbers, keys, flags, acronyms, dotted names."""
    seen: dict[str, None] = {}
    for token in _TOKEN.findall(text):
        token = token.rstrip(".-")
        if token and _IDENTIFIER.search(token):
            seen.setdefault(token.lower(), None)
    return list(seen)


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if not isinstance(block, dict) or block.get("type") not in ("text", "input_text"):
                return None  # an image, a document, a tool result: not a text question
            parts.append(str(block.get("text") or ""))
        return "\n".join(parts)
    return None


def prepare(kwargs: dict, settings: SemanticSettings, project: str, key: str, team: str) -> tuple[Lookup | None, str]:
    """(Lookup, "") for a request the cache may serve, else (None, why it is skipped)."""
    if not settings.enabled:
        return None, "off for this project"
    if kwargs.get("tools") or kwargs.get("functions"):
        if not settings.cache_tool_requests:
            return None, "tools"
    temperature = kwargs.get("temperature")
    if (settings.max_temperature is not None and isinstance(temperature, (int, float))
            and temperature > settings.max_temperature):
        return None, "temperature"
    messages = kwargs.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None, "no messages"
    last = messages[-1]
    text = _text_of(last.get("content")) if last.get("role") == "user" else None
    if not text or not text.strip():
        return None, "last message is not user text"
    sources = _metadata_sources(kwargs)
    model = _first(sources, "model_group") or kwargs.get("model")
    shaping = {name: kwargs.get(name) for name in _SHAPING_PARAMS if kwargs.get(name) is not None}
    material = json.dumps([project, key, team, model, messages[:-1], shaping, settings.embedder, identifiers(text)],
                          sort_keys=True, default=str)
    bucket = hashlib.sha256(material.encode()).hexdigest()
    return Lookup(bucket=bucket, project=project, text=text), ""
