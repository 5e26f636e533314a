"""The LiteLLM gateway: config render and lint, virtual keys, the proxy process, guardrails, compression, metrics."""
