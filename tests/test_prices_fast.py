"""Transcript pricing without litellm: the same figure litellm gives, for every model it is used for."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from backlog_ops.common.prices import cost_from_usage, rated_cost, token_rates  # noqa: E402

# (input, output, cache read, cache write): small, typical Claude Code, cache-only, around and above
# the 100k/200k tier thresholds (prompt = input + cache read + cache write).
USAGES = [(1, 1, 0, 0), (12, 300, 5_000, 2_000), (3, 120, 20_000, 1_500), (0, 0, 150_000, 0),
          (10, 50, 99_990, 0), (10, 50, 99_990, 1), (1, 2_000, 199_999, 0), (1, 2_000, 199_999, 1),
          (5_000, 8_000, 300_000, 40_000), (0, 7, 0, 0)]


def plain_models() -> list[str]:
    from backlog_ops.common.prices import model_price

    with open(_map_path()) as fh:
        names = list(json.load(fh))
    return [m for m in names if token_rates(m, "anthropic") is not None and model_price(m)]


def _map_path() -> str:
    from importlib.util import find_spec

    return os.path.join(list(find_spec("litellm").submodule_search_locations)[0], "model_prices_and_context_window_backup.json")


def test_plain_anthropic_models_are_priced_like_litellm() -> None:
    models = plain_models()
    assert len(models) >= 10 and "claude-sonnet-4-5-20250929" in models
    compared = 0
    for model in models:
        rates = token_rates(model, "anthropic")
        for inp, out, read, write in USAGES:
            ours = rated_cost(rates, inp + read + write, out, read, write)
            theirs = cost_from_usage(model, "anthropic", inp + read + write, out, read, write)
            assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15), (model, inp, out, read, write, ours, theirs)
            compared += 1
    assert compared == len(models) * len(USAGES)


def test_a_tiered_model_switches_rates_above_its_threshold() -> None:
    tiered = [m for m in plain_models() if len(token_rates(m, "anthropic")) > 1]
    assert tiered, "no model with an _above_ tier in this LiteLLM's map"
    rates = token_rates(tiered[0], "anthropic")
    threshold = int(rates[1][0])
    below = rated_cost(rates, threshold, 0, 0, 0) / threshold
    above = rated_cost(rates, threshold + 1, 0, 0, 0) / (threshold + 1)
    assert below == pytest.approx(rates[0][1]) and above == pytest.approx(rates[1][1]) and above != below


def test_entries_with_other_price_features_are_left_to_litellm() -> None:
    # Not Anthropic, or an unknown model: litellm (or nobody) prices them.
    assert token_rates("gpt-4o", "openai") is None
    assert token_rates("no-such-model-anywhere", "anthropic") is None


def test_a_transcript_import_does_not_load_litellm(tmp_path) -> None:
    """Pricing a Claude request in a fresh process leaves litellm unimported (its import alone is ~150 MB)."""
    code = ("import sys; from backlog_ops.common.prices import price_usage; "
            "c = price_usage(['claude-sonnet-4-5-20250929'], 'anthropic', 1000, 10, 500, 100); "
            "print(c, 'litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}).stdout.split()
    expected = cost_from_usage("claude-sonnet-4-5-20250929", "anthropic", 1000, 10, 500, 100)
    assert float(out[0]) == pytest.approx(expected, rel=1e-12) and out[1] == "False"
