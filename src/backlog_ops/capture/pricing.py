"""Pricing usage with LiteLLM's own price map, for calls whose reported cost is missing."""

from __future__ import annotations

__all__ = ["cost_from_usage"]


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
    import litellm  # heavy: only where a price is really needed

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
