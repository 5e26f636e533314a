"""Model prices from LiteLLM's own price map: one home for every price lookup.

`model_price` reads the map LiteLLM ships (model_prices_and_context_window_backup.json) without
importing litellm, which costs ~4 s; `cost_from_usage` asks litellm itself, for the cost of a call
whose reported cost is missing; `price_usage` does so for the first of several candidate models
LiteLLM knows (direct SDK calls, imported transcripts).

`price_usage` prices a plain token-priced Anthropic model (input, output, cache read, cache
write, with ``_above_<N>k_tokens`` tiers) from the map itself when litellm is not loaded and the
bundled map is the one litellm would use: litellm's cost_per_token takes ~1 ms a call and its
import ~150 MB, which made a transcript import slow and large. Any entry with a price feature
that rule does not cover goes to litellm; tests/test_prices_fast.py checks both give the same
figure for every such model in the map.
"""

from __future__ import annotations

import json
import os
import sys
from importlib.util import find_spec
from pathlib import Path

__all__ = ["cost_from_usage", "import_litellm", "model_price", "price_usage", "prices_known", "rated_cost", "token_rates"]

_PRICES: dict | None = None
# Per-token rates of a plain Anthropic entry; None for an entry only litellm can price.
_RATES: dict[str, "tuple | None"] = {}
_RATE_KEYS = ("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
              "cache_creation_input_token_cost")
# Price keys that do not apply to a plain call (no batch, service tier, web search, region or speed,
# cache writes not split by TTL): present or not, litellm's figure is the same.
_INERT_KEYS = ("cache_creation_input_token_cost_above_1hr", "search_context_cost_per_query", "provider_specific_entry")


def _prices() -> dict:
    """LiteLLM's bundled price map, read without importing litellm (that costs ~4 s)."""
    global _PRICES
    if _PRICES is None:
        try:
            # find_spec locates the package without importing it (resources.files would import it).
            spec = find_spec("litellm")
            location = Path(list(spec.submodule_search_locations)[0])
            _PRICES = json.loads((location / "model_prices_and_context_window_backup.json").read_text())
        except (AttributeError, IndexError, TypeError, ModuleNotFoundError, OSError, ValueError):
            _PRICES = {}
    return _PRICES


def prices_known() -> bool:
    """Whether LiteLLM's price map could be read (without it no model can be checked)."""
    return bool(_prices())


def model_price(model: str) -> dict | None:
    prices = _prices()
    if model in prices:
        return prices[model]
    if "/" in model:
        return prices.get(model.split("/", 1)[1])
    return None


def import_litellm():
    """litellm, imported with its bundled price map unless the user chose otherwise.

    LITELLM_LOCAL_MODEL_COST_MAP is set to True only when it is unset and litellm is not imported
    yet: the bundled map needs no network fetch at import (set it to False to keep the remote map).
    """
    if "litellm" not in sys.modules:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm  # heavy (~3 s): only where a price is really needed

    return litellm


def token_rates(model: str, provider: str | None) -> tuple | None:
    """((threshold, input, output, cache read, cache write) tiers, lowest first) of a plain Anthropic entry.

    None when the model is not such an entry in LiteLLM's bundled map.
    """
    key = f"{provider}/{model}" if provider else model
    if key not in _RATES:
        prices = _prices()
        entry = prices.get(model) if model in prices else prices.get(key)
        _RATES[key] = _plain_rates(entry) if isinstance(entry, dict) else None
    return _RATES[key]


def _map_is_litellms() -> bool:
    """Whether litellm would price with the bundled map: not loaded yet (a proxy may have registered
    prices of its own) and not told to fetch its remote map (LITELLM_LOCAL_MODEL_COST_MAP=False)."""
    local = os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "True").strip().lower() in ("true", "1", "yes")
    return local and "litellm" not in sys.modules


def _plain_rates(entry: dict) -> tuple | None:
    """The rate tiers of an entry priced per token and nothing else, as litellm resolves them."""
    if entry.get("litellm_provider") != "anthropic":
        return None
    tiers: dict[float, dict[str, float]] = {}
    for name, value in entry.items():
        if not any(word in name for word in ("cost", "pric", "tier", "provider_specific")):
            continue
        if name in _RATE_KEYS:
            tiers.setdefault(0.0, {})[name] = value
            continue
        if name in _INERT_KEYS or name.endswith("_batches") or name.startswith("cache_creation_input_token_cost_above_1hr_"):
            continue
        base, sep, rest = name.partition("_above_")
        if not sep or base not in _RATE_KEYS or not rest.endswith("_tokens"):
            return None  # a feature only litellm knows (tiered tables, off-peak hours, per-image…)
        size = rest[: -len("_tokens")]
        try:
            threshold = float(size[:-1]) * 1000 if size.endswith("k") else float(size)
        except ValueError:
            return None
        tiers.setdefault(threshold, {})[name.replace(f"_above_{rest}", "")] = value
    base = tiers.get(0.0, {})
    if not all(isinstance(base.get(k), (int, float)) for k in _RATE_KEYS[:2]):
        return None
    if not all(isinstance(v, (int, float)) for tier in tiers.values() for v in tier.values()):
        return None
    resolved, current = [], dict(base)
    for threshold in sorted(tiers):
        current.update(tiers[threshold])  # a rate a tier does not name stays the one below it
        inp = float(current["input_cost_per_token"])
        # A missing cache rate is the input rate, as litellm resolves it.
        read = current.get("cache_read_input_token_cost")
        write = current.get("cache_creation_input_token_cost")
        resolved.append((threshold, inp, float(current["output_cost_per_token"]),
                         inp if read is None else float(read), inp if write is None else float(write)))
    return tuple(resolved)


def rated_cost(rates: tuple, prompt: int, completion: int, cache_read: int, cache_write: int) -> float:
    """litellm's figure for a plain entry: the highest tier the prompt exceeds, summed in litellm's order."""
    tier = rates[0]
    for candidate in rates[1:]:
        if prompt > candidate[0]:
            tier = candidate
    _, inp, out, read, write = tier
    text = max(prompt - cache_read - cache_write, 0)
    prompt_cost = float(text) * inp
    prompt_cost += float(cache_read) * read
    if cache_write:
        prompt_cost += float(cache_write) * write
    return prompt_cost + float(completion) * out


def price_usage(models: list[str], provider: str | None, prompt: int, completion: int,
                cache_read: int = 0, cache_write: int = 0) -> float | None:
    """USD at LiteLLM's prices for the first of `models` it has a price for; None if it has none.

    Models missing from LiteLLM's map are not handed to LiteLLM at all: it would print its
    "Provider List" banner on stdout (spoiling a --json report, or the host app's output).
    """
    if models and models[0] and _map_is_litellms():
        rates = token_rates(models[0], provider)
        if rates is not None:
            cost = rated_cost(rates, prompt, completion, cache_read, cache_write)
            if cost or not (prompt or completion):
                return cost
        prices = _prices()
        if prices and not any(m and (m in prices or (provider and f"{provider}/{m}" in prices)) for m in models):
            return None  # litellm would read this very map: no need to load it to learn it has no price
    known = import_litellm().model_cost
    for model in models:
        if not model:
            continue
        if model not in known and not (provider and f"{provider}/{model}" in known):
            continue
        cost = cost_from_usage(model, provider, prompt, completion, cache_read, cache_write)
        if cost or not (prompt or completion):
            return cost
    return None


def cost_from_usage(
    model: str | None,
    provider: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> float:
    """USD for the usage at LiteLLM's prices; 0.0 for a model LiteLLM has no price for."""
    if not model:
        return 0.0
    litellm = import_litellm()
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model,
            custom_llm_provider=provider,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cache_read_input_tokens=cache_read_tokens,
            cache_creation_input_tokens=cache_write_tokens,
        )
    except Exception:  # noqa: BLE001 - litellm raises plain Exception for unmapped models
        return 0.0
    return float(prompt_cost) + float(completion_cost)


def priciest_token_price(deployments) -> tuple[float, float]:
    """(input, output) USD per token of the priciest of a model group's deployments.

    Each deployment is a LiteLLM router entry; its own `input_cost_per_token` /
    `output_cost_per_token` win over LiteLLM's price map. (0.0, 0.0) when none has a price.
    """
    best = (0.0, 0.0)
    for deployment in deployments:
        params = deployment.get("litellm_params") or {}
        if params.get("input_cost_per_token") is not None:
            price = (float(params.get("input_cost_per_token") or 0), float(params.get("output_cost_per_token") or 0))
        else:
            import litellm  # heavy: only for a deployment with no price of its own

            per_in, per_out = litellm.cost_per_token(model=params.get("model"), prompt_tokens=1, completion_tokens=1)
            price = (float(per_in), float(per_out))
        if sum(price) > sum(best):
            best = price
    return best
