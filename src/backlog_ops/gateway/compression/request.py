"""Compress a chat-completions or Anthropic-messages body after its cacheable prefix, in place."""

from __future__ import annotations

from typing import Any

from backlog_ops.gateway.compression.options import CompressionOptions, CompressionStats
from backlog_ops.gateway.compression.text import compress_text

__all__ = ["compress_request", "compressible_region"]


def compressible_region(messages: list, respect_cache_control: bool = True) -> tuple[int, int]:
    """(first message index, first block index in that message) from which content may change.

    Everything before stays byte-identical: messages up to the last assistant turn, and anything
    up to and including the last cache_control breakpoint. (len(messages), 0) means nothing."""
    start = 0
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if isinstance(m, dict) and m.get("role") == "assistant":
            start = i + 1
            break
    block = 0
    if respect_cache_control:
        for i in range(len(messages) - 1, start - 1, -1):
            m = messages[i]
            if not isinstance(m, dict):
                continue
            if m.get("cache_control"):
                return i + 1, 0
            content = m.get("content")
            if isinstance(content, list):
                for b in range(len(content) - 1, -1, -1):
                    if isinstance(content[b], dict) and content[b].get("cache_control"):
                        return (i, b + 1) if b + 1 < len(content) else (i + 1, 0)
    return start, block


def compress_request(data: dict, opts: CompressionOptions | None = None) -> CompressionStats:
    """Compress, in place, the user/tool text of a chat-completions or Anthropic-messages body
    after its cacheable prefix. `system` and `tools` are never read or written."""
    opts = opts or CompressionOptions()
    stats = CompressionStats()
    messages = data.get("messages")
    if not isinstance(messages, list):
        return stats
    first, first_block = compressible_region(messages, opts.respect_cache_control)
    seen: dict[str, int] = {}
    for i in range(first, len(messages)):
        m = messages[i]
        if not isinstance(m, dict) or m.get("role") not in ("user", "tool"):
            continue
        content = m.get("content")
        if isinstance(content, str):
            m["content"] = compress_text(content, opts, stats, seen)
        elif isinstance(content, list):
            start_block = first_block if i == first else 0
            for b in range(start_block, len(content)):
                _compress_block(content[b], opts, stats, seen)
    return stats


def _compress_block(block: Any, opts: CompressionOptions, stats: CompressionStats, seen: dict[str, int]) -> None:
    if not isinstance(block, dict) or block.get("cache_control"):
        return
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        block["text"] = compress_text(block["text"], opts, stats, seen)
    elif kind == "tool_result":
        inner = block.get("content")
        if isinstance(inner, str):
            block["content"] = compress_text(inner, opts, stats, seen)
        elif isinstance(inner, list):
            for sub in inner:
                _compress_block(sub, opts, stats, seen)
