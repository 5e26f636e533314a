"""Per-ticket budgets and escalation limits: parsing, the engine, the messages."""
