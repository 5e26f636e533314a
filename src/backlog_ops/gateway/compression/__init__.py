"""Offline prompt compression for coding-agent requests: no model, no download, deterministic.

What it does to the compressible text (each fold leaves an explicit marker the model can read):

  * strips ANSI colour codes and carriage-return progress redraws, trailing whitespace, and runs
    of blank lines (leading indentation is never touched: code keeps its meaning);
  * folds runs of identical lines   -> "[… 37 identical lines folded …]";
  * folds repeated multi-line blocks (a recursion traceback, a retry loop's 4-line stanza);
  * folds runs of similar lines (same shape once numbers, hashes and words are masked: pytest
    PASSED lines, download progress, "Compiling x v1.2") keeping the first two and the last;
  * folds library frames of stack traces (site-packages, node_modules, java.*, …) keeping the
    project's own frames and every exception / "Caused by" line;
  * shortens what is still long (> max_lines): head and tail kept, and every line that looks like
    an error, warning, failure, assertion or exception in between;
  * replaces a block (≥ 4 lines) already seen earlier in the same compressible region by a marker.

Lines that look like errors are never folded into "similar" runs or elided. Code is not
compressed: fenced blocks in a programming language (```python, ```ts, …; a bare ``` or
```text/```log fence counts as a log) and unified diffs pass byte for byte.

What it never touches: the cacheable prefix. Provider prompt caching needs byte-identical
prefixes, so only the newest part of the conversation is compressed — the messages after the
last assistant turn — and within it nothing up to and including the last `cache_control`
breakpoint. System prompt, tools and earlier turns go through byte for byte.

Modules: options (CompressionOptions, CompressionStats), folds (the line rules), text (one text,
with code and diffs protected), request (the cache-safe region of a request body).
"""

from backlog_ops.gateway.compression.folds import is_important
from backlog_ops.gateway.compression.options import CompressionOptions, CompressionStats
from backlog_ops.gateway.compression.request import (
    compress_request,
    compressible_region,
)
from backlog_ops.gateway.compression.text import compress_text

__all__ = ["CompressionOptions", "CompressionStats", "compress_request", "compress_text", "compressible_region", "is_important"]
