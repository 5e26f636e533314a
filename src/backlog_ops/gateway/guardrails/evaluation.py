"""Precision and recall of the detector on a labelled set (tests/data/guardrails/labelled.jsonl).

Used by bench/guardrails_eval.py and tests/test_guardrails.py; the runtime never imports it.
"""

from __future__ import annotations

from typing import Iterable

from backlog_ops.gateway.guardrails.detector import Detector
from backlog_ops.gateway.guardrails.finding import family

__all__ = ["FAMILIES", "evaluate"]

FAMILIES = ("injection", "pii.email", "pii.phone", "pii.card", "pii.ssn", "secret")


def evaluate(items: Iterable[dict], detector: Detector | None = None) -> dict:
    """Per-family and overall precision/recall, item level: an item is predicted positive for a
    family when any finding of that family is in its text. Items: {"text", "labels": [family...]}."""
    detector = detector or Detector()
    counts = {f: {"tp": 0, "fp": 0, "fn": 0, "tn": 0} for f in FAMILIES}
    errors: list[dict] = []
    for item in items:
        predicted = {family(f.kind) for f in detector.scan(item["text"])}
        truth = set(item.get("labels") or ())
        for fam in FAMILIES:
            p, t = fam in predicted, fam in truth
            key = "tp" if p and t else "fp" if p else "fn" if t else "tn"
            counts[fam][key] += 1
            if key in ("fp", "fn"):
                errors.append({"id": item.get("id"), "family": fam, "error": key, "note": item.get("note")})

    def pr(c: dict) -> dict:
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
        return {**c, "precision": precision, "recall": recall}

    total = {k: sum(c[k] for c in counts.values()) for k in ("tp", "fp", "fn", "tn")}
    return {"families": {f: pr(c) for f, c in counts.items()}, "overall": pr(total), "errors": errors}

