"""What lets a provider call pass: the configured gateway, words naming a gateway, the pragma comment."""

from __future__ import annotations

import json
import re
from pathlib import Path

from backlog_ops.common.settings import settings
from backlog_ops.project.file import CONFIG_FILE

__all__ = ["GATEWAY_HINT", "PROVIDER_HINT", "gateway_urls", "names_gateway", "pragma_lines"]

GATEWAY_HINT = re.compile(r"litellm|gateway|proxy|backlog|localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\]", re.I)
PROVIDER_HINT = re.compile(
    r"api\.openai\.com|openai\.azure\.com|azure|api\.anthropic\.com|deepinfra|together|fireworks|openrouter|"
    r"groq\.com|mistral\.ai|cohere\.(com|ai)|googleapis|perplexity|deepseek|x\.ai|anyscale|replicate|bedrock",
    re.I,
)
_PRAGMA_WORDS = r"\s*backlog-ops:\s*(gateway|allow-direct|ignore)\b"
_PRAGMA = {"#": re.compile("#" + _PRAGMA_WORDS), "//": re.compile("//" + _PRAGMA_WORDS)}


def gateway_urls() -> list[str]:
    """The gateway's address as configured: $BACKLOG_GATEWAY_URL, ./backlog.config.json."""
    urls = [u.strip() for u in (settings().gateway_url or "").split(",") if u.strip()]
    try:
        config = json.loads(Path(CONFIG_FILE).read_text())
        base = ((config.get("llmOps") or {}).get("gateway") or {}).get("baseURL")
        if isinstance(base, str):
            urls.append(base)
    except (OSError, ValueError, AttributeError):
        pass  # no or a broken config: the check still runs, on the built-in hints
    return [re.sub(r"^https?://", "", u).rstrip("/").lower() for u in urls]


def names_gateway(text: str, urls: list[str]) -> bool:
    """Whether `text` (a URL or the words of an expression) names the gateway."""
    lowered = text.lower()
    return any(u and u in lowered for u in urls) or GATEWAY_HINT.search(text) is not None


def pragma_lines(lines: list[str], comment: str = "#") -> set[int]:
    """1-based numbers of the lines carrying `# backlog-ops: allow-direct` (or gateway, ignore)."""
    pragma = _PRAGMA[comment]
    return {i + 1 for i, line in enumerate(lines) if pragma.search(line)}
