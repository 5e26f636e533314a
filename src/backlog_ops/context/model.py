"""The context as the edges (CLI, MCP tools) accept it: a pydantic model over the shared rules."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

from backlog_ops.context.fields import check_field

__all__ = ["ContextInput"]


class ContextInput(BaseModel):
    """What a caller says it is working on. Validation errors name the field and what is allowed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    ticket_id: str | None = None
    gate: str
    agent_type: str
    project: str | None = None
    skill: str | None = None
    component: str | None = None

    @field_validator("ticket_id", "gate", "agent_type", "project", "skill", "component", mode="after")
    @classmethod
    def _shared_rules(cls, value: str | None, info) -> str | None:
        return check_field(info.field_name, value)
