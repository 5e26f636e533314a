"""Prompt compression on a corpus of realistic coding-agent prompts: ratio, what is lost, cost.

    .venv/bin/python bench/compression_eval.py [--json]

For each prompt in bench/compression_corpus/*.json (a chat or Anthropic request body plus a
description), it runs backlog_ops.gateway.compression.compress_request and prints:
  * tokens of the whole request before/after (litellm.token_counter, gpt-4o-mini encoding;
    chars/4 if litellm is unavailable), and of the compressible part (the new turn);
  * what is lost: error-like lines, exception lines and file paths (project / library) of the
    original that are no longer in the compressed text;
  * whether the cacheable prefix (system, tools, every message before the compressible region)
    is byte-identical after compression — it must be;
  * the cost per request in µs (median of repeated runs).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from backlog_ops.gateway.compression import CompressionOptions, is_important, compress_request, compressible_region  # noqa: E402
from backlog_ops.gateway.guardrails import iter_texts  # noqa: E402

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_EXC = re.compile(r"^\s*(?:[\w$]+\.)*\w*(?:Error|Exception|Failure)\b.*$")
_PATH = re.compile(r"(?:[\w.@-]+/)+[\w.-]+\.[A-Za-z]{1,5}\b")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
_LIB = re.compile(r"site-packages|node_modules|node:internal|/usr/lib/|^java\.|^org/|dist-packages|lib/python")


def counter():
    try:
        import litellm

        return lambda text: litellm.token_counter(model="gpt-4o-mini", text=text), "litellm.token_counter (gpt-4o-mini)"
    except Exception:  # noqa: BLE001
        return lambda text: len(text) // 4, "chars/4"


def region_text(body: dict) -> str:
    msgs = body["messages"]
    first, block = compressible_region(msgs)
    parts = []
    for i in range(first, len(msgs)):
        m = msgs[i]
        if m.get("role") not in ("user", "tool"):
            continue
        c = m.get("content")
        if isinstance(c, str):
            parts.append(c)
        elif isinstance(c, list):
            parts.extend(iter_texts(c[block if i == first else 0:]))
    return "\n".join(parts)


def prefix_bytes(body: dict) -> bytes:
    msgs = body["messages"]
    first, block = compressible_region(msgs)
    head = msgs[:first]
    if first < len(msgs) and isinstance(msgs[first].get("content"), list):
        head = head + [{"partial": msgs[first]["content"][:block]}]
    return json.dumps([body.get("system"), body.get("tools"), head], ensure_ascii=False, sort_keys=True).encode()


def lines_of(text: str) -> list[str]:
    return [_ANSI.sub("", l).split("\r")[-1].rstrip() for l in text.split("\n")]


def lost(original: str, compressed: str) -> dict:
    orig, comp = lines_of(original), set(lines_of(compressed))
    comp_text = compressed
    err = [l for l in orig if l.strip() and is_important(l)]
    exc = [l for l in orig if _EXC.match(l)]
    no_urls = _URL.sub(" ", _ANSI.sub("", original))
    paths = set(_PATH.findall(no_urls))
    lost_paths = {p for p in paths if p not in comp_text}
    return {
        "error_lines": len(set(err)), "error_lines_lost": len({l for l in err if l not in comp}),
        "exception_lines": len(set(exc)), "exception_lines_lost": len({l for l in exc if l not in comp}),
        "paths": len(paths), "paths_lost": len(lost_paths),
        "project_paths": len({p for p in paths if not _LIB.search(p)}),
        "project_paths_lost": len({p for p in lost_paths if not _LIB.search(p)}),
        "lost_examples": sorted(lost_paths)[:3],
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    count, how = counter()
    opts = CompressionOptions()
    rows = []
    for path in sorted((ROOT / "compression_corpus").glob("*.json")):
        doc = json.loads(path.read_text())
        body = {"system": doc.get("system"), "messages": doc["messages"]}
        if doc["format"] == "openai":  # chat: the system prompt is the first message
            body = {"messages": [{"role": "system", "content": doc["system"]}] + doc["messages"]}
        before = copy.deepcopy(body)
        after = copy.deepcopy(body)
        stats = compress_request(after, opts)
        times = []
        for _ in range(args.runs):
            b = copy.deepcopy(body)
            t0 = time.perf_counter()
            compress_request(b, opts)
            times.append((time.perf_counter() - t0) * 1e6)
        whole_before = json.dumps(before, ensure_ascii=False)
        whole_after = json.dumps(after, ensure_ascii=False)
        reg_before, reg_after = region_text(before), region_text(after)
        row = {
            "prompt": path.stem,
            "format": doc["format"],
            "tokens_before": count(whole_before), "tokens_after": count(whole_after),
            "region_tokens_before": count(reg_before), "region_tokens_after": count(reg_after),
            "prefix_identical": prefix_bytes(before) == prefix_bytes(after),
            "us": statistics.median(times),
            "chars": stats.chars_before,
            "folds": stats.folds,
            **lost(reg_before, reg_after),
        }
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"tokens: {how}; cost: median of {args.runs} runs per prompt\n")
    hdr = f"{'prompt':26} {'tok before':>10} {'tok after':>9} {'ratio':>6} {'new-turn ratio':>14} {'prefix same':>11} {'err lost':>8} {'exc lost':>8} {'paths lost (proj)':>17} {'µs':>7}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        ratio = r["tokens_before"] / max(1, r["tokens_after"])
        rratio = r["region_tokens_before"] / max(1, r["region_tokens_after"])
        print(f"{r['prompt']:26} {r['tokens_before']:>10,} {r['tokens_after']:>9,} {ratio:>5.2f}x {rratio:>13.2f}x {str(r['prefix_identical']):>11} "
              f"{r['error_lines_lost']:>3}/{r['error_lines']:<4} {r['exception_lines_lost']:>3}/{r['exception_lines']:<4} "
              f"{r['paths_lost']:>4}/{r['paths']:<4}({r['project_paths_lost']}/{r['project_paths']}) {r['us']:>7.0f}")
    tb = sum(r["tokens_before"] for r in rows)
    ta = sum(r["tokens_after"] for r in rows)
    print("-" * len(hdr))
    print(f"{'TOTAL':26} {tb:>10,} {ta:>9,} {tb / ta:>5.2f}x   median ratio {statistics.median(r['tokens_before'] / max(1, r['tokens_after']) for r in rows):.2f}x,"
          f" prefix identical in {sum(r['prefix_identical'] for r in rows)}/{len(rows)},"
          f" error lines lost {sum(r['error_lines_lost'] for r in rows)}/{sum(r['error_lines'] for r in rows)},"
          f" exception lines lost {sum(r['exception_lines_lost'] for r in rows)}/{sum(r['exception_lines'] for r in rows)},"
          f" project paths lost {sum(r['project_paths_lost'] for r in rows)}/{sum(r['project_paths'] for r in rows)},"
          f" library paths lost {sum(r['paths_lost'] - r['project_paths_lost'] for r in rows)}/{sum(r['paths'] - r['project_paths'] for r in rows)}")
    print(f"cost per request: median {statistics.median(r['us'] for r in rows):.0f} µs, max {max(r['us'] for r in rows):.0f} µs "
          f"(largest prompt {max(r['chars'] for r in rows):,} chars)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
