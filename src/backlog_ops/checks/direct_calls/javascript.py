"""The JavaScript/TypeScript check: coarser than the Python one, a pattern match per file.

File-level rule: a provider SDK is imported; each provider's clients built here all go through
the gateway (a baseURL option that names it) or the calls are reported. Calls are recognised by
their (unmistakable) method paths; pragmas as in Python, with // comments.
"""

from __future__ import annotations

import re

from backlog_ops.checks.direct_calls.allowlist import names_gateway, pragma_lines
from backlog_ops.checks.direct_calls.files import is_bundle
from backlog_ops.checks.direct_calls.finding import Finding

__all__ = ["check_js"]

_MODULES = {"openai": "openai", "@anthropic-ai/sdk": "anthropic", "groq-sdk": "groq", "@google/generative-ai": "google",
            "@google/genai": "google", "@mistralai/mistralai": "mistral", "cohere-ai": "cohere"}
_IMPORT = re.compile(r"""(?:from\s+|require\(\s*|import\(\s*)['"]([^'"]+)['"]""")
_NEW = re.compile(r"\bnew\s+(OpenAI|AzureOpenAI|Anthropic|AnthropicBedrock|AnthropicVertex|Groq|GoogleGenerativeAI|"
                  r"GoogleGenAI|Mistral|CohereClient|CohereClientV2)\s*\(")
_CALL = re.compile(r"\.(?:with(?:Raw|Streaming)Response\.)?(chat\.completions\.create|beta\.chat\.completions\.parse|responses\.create|messages\.create|"
                   r"messages\.stream|models\.generateContent(?:Stream)?|generateContent(?:Stream)?|chat\.complete|"
                   r"chat\.stream)\s*\(")
_CALL_PROVIDER = {"chat.completions.create": ("openai", "groq"), "beta.chat.completions.parse": ("openai",),
                  "responses.create": ("openai",), "messages.create": ("anthropic",), "messages.stream": ("anthropic",),
                  "models.generateContent": ("google",), "models.generateContentStream": ("google",),
                  "generateContent": ("google",), "generateContentStream": ("google",),
                  "chat.complete": ("mistral",), "chat.stream": ("mistral",)}
_PROVIDER_OF_CLASS = {"OpenAI": "openai", "AzureOpenAI": "openai", "Anthropic": "anthropic", "AnthropicBedrock": "anthropic",
                      "AnthropicVertex": "anthropic", "Groq": "groq", "GoogleGenerativeAI": "google", "GoogleGenAI": "google",
                      "Mistral": "mistral", "CohereClient": "cohere", "CohereClientV2": "cohere"}
_URL_KEY = re.compile(r"\b(baseURL|baseUrl|base_url|serverURL|serverUrl|httpOptions)\b\s*:\s*([^,}\n]+)")


def check_js(source: str, path: str, checker_urls: list[str]) -> list[Finding]:
    """Findings for one JS/TS file; `checker_urls` are the configured gateway addresses."""
    providers = {_MODULES[m] for m in _IMPORT.findall(source) if m in _MODULES}
    if not providers or is_bundle(path, source):
        return []
    pragma = pragma_lines(source.splitlines(), "//")
    built: dict[str, list[bool]] = {}
    for m in _NEW.finditer(source):
        provider = _PROVIDER_OF_CLASS[m.group(1)]
        args = _balanced(source, m.end() - 1)
        line = source.count("\n", 0, m.start()) + 1
        url = _URL_KEY.search(args)
        via = line in pragma or (url is not None and names_gateway(url.group(2), checker_urls))
        built.setdefault(provider, []).append(via)
    out = []
    for m in _CALL.finditer(source):
        line = source.count("\n", 0, m.start()) + 1
        if line in pragma:
            continue
        for provider in _CALL_PROVIDER[m.group(1)]:
            if provider not in providers:
                continue
            if built.get(provider) and all(built[provider]):
                break
            start = source.rfind("\n", 0, m.start()) + 1
            receiver = re.findall(r"[\w$.]+$", source[start:m.start()])
            pattern = f"{receiver[0] if receiver else ''}.{m.group(1)}()"
            out.append(Finding(path, line, provider, pattern,
                               "client built here without a gateway baseURL" if built.get(provider)
                               else f"this file imports the {provider} SDK"))
            break
    return out


def _balanced(source: str, open_at: int, limit: int = 3000) -> str:
    """The bracketed text that opens at `open_at` (a constructor's arguments)."""
    depth = 0
    for i in range(open_at, min(len(source), open_at + limit)):
        ch = source[i]
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
            if depth == 0:
                return source[open_at:i + 1]
    return source[open_at:open_at + limit]
