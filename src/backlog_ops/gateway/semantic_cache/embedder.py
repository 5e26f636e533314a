"""Sentence embeddings with no network: a static (Model2Vec-style) model shipped inside a package.

The default model is the one `tokenlearn-static-model` bakes into its wheel (10k-token
vocabulary, 64 dimensions, int8 weights, a Rust encoder): nothing is downloaded at run time, it
needs neither torch nor onnxruntime, and a short prompt embeds in well under a millisecond once
loaded. Loading (its tokenizer) takes 0.3-4 s, so it happens on first use, never at import: a
proxy with the semantic cache off never pays it. `minilm-l6` (minilm.py) is the opt-in stronger
and much slower model.
"""

from __future__ import annotations

import threading
from typing import Protocol, Sequence

from backlog_ops.common.extras import require
from backlog_ops.errors import ConfigError

__all__ = ["DEFAULT_EMBEDDER", "EMBEDDERS", "Embedder", "StaticPackageEmbedder", "get_embedder"]

EXTRA = "semantic-cache"
DEFAULT_EMBEDDER = "static-64d"


class Embedder(Protocol):
    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]):  # -> numpy float32 array (n, dimensions), rows of norm 1
        ...


class StaticPackageEmbedder:
    """tokenlearn-static-model's baked-in 10k/64d/int8 static model; thread-safe, loaded once."""

    name = DEFAULT_EMBEDDER
    dimensions = 64

    def __init__(self) -> None:
        self._encode = None
        self._lock = threading.Lock()

    def load(self) -> None:
        if self._encode is not None:
            return
        with self._lock:
            if self._encode is None:
                module = require("static_model", EXTRA, "The semantic cache's bundled embedding model")
                require("numpy", EXTRA, "The semantic cache")
                module.get_embeddings(["warm up"])  # reads the tokenizer and weights once
                self._encode = module.get_embeddings

    def embed(self, texts: Sequence[str]):
        import numpy as np

        self.load()
        vectors = np.asarray(self._encode([str(t) for t in texts]), dtype=np.float32).reshape(len(texts), -1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


def _minilm() -> Embedder:
    from backlog_ops.gateway.semantic_cache.minilm import MiniLM

    return MiniLM()


# name -> factory; "minilm-l6" is opt-in (its weights are a separate install: minilm.PACKAGE_HINT).
EMBEDDERS = {DEFAULT_EMBEDDER: StaticPackageEmbedder, "minilm-l6": _minilm}
_loaded: dict[str, Embedder] = {}
_loaded_lock = threading.Lock()


def get_embedder(name: str = DEFAULT_EMBEDDER) -> Embedder:
    """The process's one embedder of that name (made on first use; `load()` it to pay the load now)."""
    with _loaded_lock:
        if name not in _loaded:
            if name not in EMBEDDERS:
                raise ConfigError(f"semantic cache embedder {name!r} is not known; use one of: {', '.join(EMBEDDERS)}")
            _loaded[name] = EMBEDDERS[name]()
        return _loaded[name]
