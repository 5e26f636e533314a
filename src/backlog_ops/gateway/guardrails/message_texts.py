"""The text parts of chat messages, as the guardrails and the compression benchmarks read them."""

from __future__ import annotations

from typing import Any, Iterable

__all__ = ["iter_texts"]


def iter_texts(items: Iterable[Any]) -> Iterable[str]:
    """Text parts of message contents: strings and {"type": "text", "text": ...} blocks (and tool results)."""
    for item in items:
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            if isinstance(item.get("text"), str):
                yield item["text"]
            content = item.get("content")
            if isinstance(content, str):
                yield content
            elif isinstance(content, list):
                yield from iter_texts(content)
