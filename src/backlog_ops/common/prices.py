"""Model prices from LiteLLM's own price map: one home for every price lookup.

`model_price` reads the map LiteLLM ships (model_prices_and_context_window_backup.json) without
importing litellm, which costs ~4 s; `cost_from_usage` asks litellm itself, for the cost of a call
whose reported cost is missing; `price_usage` does so for the first of several candidate models
LiteLLM knows (direct SDK calls, imported transcripts).
"""

from __future__ import annotations

import json
import os
import sys
from importlib.util import find_spec
from pathlib import Path

__all__ = ["cost_from_usage", "import_litellm", "model_price", "price_usage", "prices_known"]

_PRICES: dict | None = None


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


def price_usage(models: list[str], provider: str | None, prompt: int, completion: int,
                cache_read: int = 0, cache_write: int = 0) -> float | None:
    """USD at LiteLLM's prices for the first of `models` it has a price for; None if it has none.

    Models missing from LiteLLM's map are not handed to LiteLLM at all: it would print its
    "Provider List" banner on stdout (spoiling a --json report, or the host app's output).
    """
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
