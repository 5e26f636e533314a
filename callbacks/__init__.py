"""LiteLLM callbacks of backlog-ops (installed as backlog_ops.callbacks).

In a LiteLLM config:

    litellm_settings:
      callbacks:
        - backlog_ops.callbacks.ticket_tagger.ticket_tagger
        - backlog_ops.callbacks.spend_ledger.spend_ledger
        - backlog_ops.callbacks.ticket_policy.ticket_policy     # per-ticket budgets (issue: gateway policy)
        - backlog_ops.callbacks.quota_events.quota_events       # quota.updated events on NATS
"""
