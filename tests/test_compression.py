"""Prompt compression: the offline compressor, the cache-safe region, the opt-in callback, the
corpus figures, and the REAL proxy: what the provider receives is compressed after the cacheable
prefix while the system prompt and earlier turns arrive byte for byte."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import uuid
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from backlog_ops.gateway.compression import (  # noqa: E402
    CompressionOptions, compress_request, compress_text, compressible_region, is_important)
from backlog_ops.testing.mock_upstream import MockUpstream  # noqa: E402

from proxy_support import start_proxy, write_config  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent / "bench" / "compression_corpus"
LOG = "\n".join(
    ["collected 300 items"] + [f"tests/test_api.py::test_case_{i} PASSED [{i // 3:3d}%]" for i in range(300)]
    + ["Traceback (most recent call last):", '  File "/app/src/api/routes.py", line 41, in accept',
       "    return service.accept(invoice_id)", "acme.errors.CurrencyMismatch: currency mismatch EUR != USD",
       "FAILED tests/test_api.py::test_accept - CurrencyMismatch", "1 failed, 299 passed in 3.1s"]
)
SYSTEM = "You are a coding agent. " + "Follow the repository rules.   \n\n\n\n" * 20  # whitespace a compressor would love to touch


def test_folds_identical_and_similar_lines_and_keeps_every_error_line() -> None:
    text = "start\n" + "retrying connection...\n" * 40 + LOG
    out = compress_text(text)
    assert "[… 39 identical lines folded …]" in out
    assert "similar lines folded" in out
    for line in text.splitlines():
        if is_important(line):
            assert line in out.splitlines(), line
    assert len(out) < len(text) / 5
    assert compress_text(text) == out  # deterministic


def test_code_and_diffs_pass_byte_for_byte_and_small_texts_are_left_alone() -> None:
    code = "```python\n" + "\n".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(120)) + "```"
    diff = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,300 +1,300 @@\n" + "\n".join(f" line {i}" for i in range(300))
    for text in (code, diff, "short question   \n\n\n"):
        assert compress_text(f"{text}") == text


def test_stack_traces_keep_project_frames_and_fold_library_frames() -> None:
    frames = "\n".join(f'  File "/venv/lib/python3.11/site-packages/starlette/x{i}.py", line {i}, in f\n    await app()' for i in range(8))
    text = "Traceback (most recent call last):\n" + frames + '\n  File "/app/src/acme/service.py", line 88, in accept\n    raise Mismatch()\nacme.Mismatch: EUR != USD\n' + "x" * 600
    out = compress_text(text)
    assert "7 more library frames folded" in out and "/app/src/acme/service.py" in out and "acme.Mismatch: EUR != USD" in out


def test_only_the_new_turn_after_the_last_cache_breakpoint_is_compressible() -> None:
    msgs = [{"role": "user", "content": LOG}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": LOG}]
    assert compressible_region(msgs) == (2, 0)
    anth = [{"role": "user", "content": [{"type": "text", "text": LOG, "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": LOG}]}]
    assert compressible_region(anth) == (0, 1)
    last_marked = [{"role": "user", "content": [{"type": "text", "text": LOG, "cache_control": {"type": "ephemeral"}}]}]
    assert compressible_region(last_marked) == (1, 0)  # Claude Code marks its newest block: nothing left to compress
    body = {"system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}], "tools": [{"name": "Read", "description": LOG}],
            "messages": copy.deepcopy(msgs)}
    before = copy.deepcopy(body)
    stats = compress_request(body)
    assert stats.saved_chars > 0
    assert body["system"] == before["system"] and body["tools"] == before["tools"] and body["messages"][:2] == before["messages"][:2]
    assert len(body["messages"][2]["content"]) < len(LOG) / 3


def test_callback_is_opt_in_per_alias_or_tag() -> None:
    from backlog_ops.callbacks.prompt_compression import PromptCompression

    def run(cb, model="cheap", tags=()):
        data = {"model": model, "messages": [{"role": "user", "content": LOG}], "metadata": {"tags": list(tags)}}
        asyncio.run(cb.async_pre_call_hook(None, None, data, "acompletion"))
        return data

    off = PromptCompression(aliases=[], tags=[], options=CompressionOptions())
    assert run(off)["messages"][0]["content"] == LOG
    by_alias = PromptCompression(aliases=["cheap"], tags=[], options=CompressionOptions())
    data = run(by_alias)
    assert len(data["messages"][0]["content"]) < len(LOG) / 3
    assert data["metadata"]["spend_logs_metadata"]["backlog_compression"].startswith(f"{len(LOG)}->")
    assert run(by_alias, model="frontier")["messages"][0]["content"] == LOG
    by_tag = PromptCompression(aliases=[], tags=["compress"], options=CompressionOptions())
    assert run(by_tag, model="frontier", tags=["ticket:T-1", "compress"])["messages"][0]["content"] != LOG


def test_corpus_ratio_and_nothing_important_lost() -> None:
    before = after = 0
    for path in sorted(CORPUS.glob("*.json")):
        doc = json.loads(path.read_text())
        body = {"system": doc["system"], "messages": copy.deepcopy(doc["messages"])}
        original = json.dumps(body["messages"][-1])
        compress_request(body)
        compressed = json.dumps(body["messages"][-1])
        before += len(original)
        after += len(compressed)
        orig_text = json.loads(original)
        new_text = json.loads(compressed)
        from backlog_ops.gateway.guardrails import iter_texts

        new_lines = set("\n".join(iter_texts([new_text])).splitlines())
        for line in "\n".join(iter_texts([orig_text])).splitlines():
            clean = line.rstrip()
            if "\x1b" in clean or "\r" in clean or not clean.strip():
                continue
            if is_important(clean) and "identical to an earlier text" not in "".join(new_lines):
                assert clean in new_lines, (path.stem, clean)
    ratio = before / after
    print(f"\ncorpus: {len(list(CORPUS.glob('*.json')))} prompts, new turns {before:,} -> {after:,} chars ({ratio:.2f}x)")
    assert len(list(CORPUS.glob("*.json"))) >= 15
    assert ratio >= 1.5


@pytest.mark.proxy
def test_real_proxy_compresses_after_the_prefix_and_keeps_the_prefix_bytes(tmp_path: Path) -> None:
    with MockUpstream(prompt_tokens=500, completion_tokens=50) as up:
        config = write_config(tmp_path / "config", up.base_url,
                              extra_callbacks=["backlog_ops.callbacks.prompt_compression.prompt_compression"],
                              backlog_compression={"aliases": ["gpt-4o-mini"], "tags": ["compress"]})
        proxy = start_proxy(tmp_path / "home", config)
        try:
            with httpx.Client(base_url=proxy.base_url, headers={"authorization": f"Bearer {proxy.master_key}"}, timeout=60) as client:
                marker = str(uuid.uuid4())
                earlier = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": LOG + marker},
                           {"role": "assistant", "content": "Looking at it."}]
                chat = {"model": "gpt-4o-mini", "messages": earlier + [{"role": "user", "content": LOG}]}
                assert client.post("/v1/chat/completions", json=chat).status_code == 200

                anth_system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
                anth_msgs = [{"role": "user", "content": [{"type": "text", "text": LOG + marker, "cache_control": {"type": "ephemeral"}}]},
                             {"role": "assistant", "content": [{"type": "text", "text": "Looking at it."}]},
                             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": LOG}]}]
                r = client.post("/v1/messages", headers={"anthropic-version": "2023-06-01", "x-litellm-tags": "compress"},
                                json={"model": "claude-haiku", "max_tokens": 64, "system": anth_system, "messages": anth_msgs})
                assert r.status_code == 200, r.text
                # not opted in: /v1/messages without the tag goes through untouched
                r = client.post("/v1/messages", headers={"anthropic-version": "2023-06-01"},
                                json={"model": "claude-haiku", "max_tokens": 64, "messages": [{"role": "user", "content": LOG + "!"}]})
                assert r.status_code == 200, r.text
        finally:
            proxy.stop()
        sent = [q for q in up.requests if marker in json.dumps(q.body) or "3.1s!" in json.dumps(q.body)]
        assert len(sent) == 3
        oa, an, plain = sent
        # OpenAI shape: system and earlier turns byte-identical, last user turn compressed
        assert oa.body["messages"][:3] == earlier
        assert json.dumps(oa.body["messages"][:3]) == json.dumps(earlier)
        last = oa.body["messages"][3]["content"]
        assert "similar lines folded" in last and "acme.errors.CurrencyMismatch: currency mismatch EUR != USD" in last
        assert len(last) < len(LOG) / 3
        # Anthropic shape: system blocks and the cached turn byte-identical, the tool result compressed
        assert json.dumps(an.body["system"]) == json.dumps(anth_system)
        assert json.dumps(an.body["messages"][:2]) == json.dumps(anth_msgs[:2])
        tool = an.body["messages"][2]["content"][0]
        assert tool["type"] == "tool_result" and "similar lines folded" in tool["content"] and len(tool["content"]) < len(LOG) / 3
        assert plain.body["messages"][0]["content"] == LOG + "!"
        print(f"\nupstream got {len(last):,} chars instead of {len(LOG):,} for the new turn; prefix bytes identical")
