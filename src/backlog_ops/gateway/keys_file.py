"""virtual_keys.yaml: the LiteLLM virtual keys `backlog-ops keys setup` creates, validated.

Each key has an alias (LiteLLM's key_alias, its identity), the .env variable its secret goes
into, and LiteLLM's own key settings; `defaults:` apply to every key. Errors name the file,
the key and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from backlog_ops.common.shape import not_an_object
from backlog_ops.common.times import duration_problem
from backlog_ops.errors import ConfigError

__all__ = ["KEYS_HINT", "KeySpec", "VirtualKeysFile", "load_keys_file"]

KEYS_HINT = "fix: a `keys:` list inside one mapping (see config/virtual_keys.yaml)"

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")
# The service brief's names for LiteLLM's fields; normalised before `defaults:` are merged in.
_SYNONYMS = {"budget": "max_budget", "team": "team_id", "key": "alias", "key_alias": "alias"}


class _KeySettings(BaseModel):
    """What a key may set; `defaults:` and each key share it. Names are LiteLLM's."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    team_id: str | None = Field(None, validation_alias=AliasChoices("team_id", "team"))
    metadata: dict[str, Any] = Field(default_factory=dict)
    max_budget: float | None = Field(None, ge=0, validation_alias=AliasChoices("max_budget", "budget"))
    budget_duration: str | None = None
    duration: str | None = None
    models: list[str] | None = None
    rpm_limit: int | None = Field(None, ge=1)
    tpm_limit: int | None = Field(None, ge=1)
    max_parallel_requests: int | None = Field(None, ge=1)

    @field_validator("budget_duration", "duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = duration_problem(value)
        if problem:
            raise ValueError(problem)
        # What was checked is what LiteLLM gets: its parser takes no blanks or capital units.
        return value.strip().lower()


class KeySpec(_KeySettings):
    """One virtual key. `alias` is its identity (LiteLLM's key_alias); `env` the .env variable."""

    # The service brief calls the alias `key`; LiteLLM's own `key` field would set the secret
    # itself, which setup never does (LiteLLM generates it), so `key:` here means the alias.
    alias: str = Field(validation_alias=AliasChoices("alias", "key_alias", "key"))
    env: str | None = None

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        if not _ALIAS.match(value):
            raise ValueError("an alias is 1-128 letters, digits and . _ : @ / - (starting with a letter or digit)")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name (A-Z, 0-9, _)")
        return value

    @property
    def env_name(self) -> str:
        if self.env:
            return self.env
        name = re.sub(r"[^A-Z0-9]+", "_", self.alias.upper()).strip("_")
        name = name if not name[:1].isdigit() else "_" + name
        return name if name.endswith("_KEY") else name + "_KEY"

    def request_body(self) -> dict[str, Any]:
        """The /key/generate body (GenerateKeyRequest): only what is set, never a `key`."""
        body: dict[str, Any] = {"key_alias": self.alias}
        for name in ("team_id", "max_budget", "budget_duration", "duration", "models", "rpm_limit", "tpm_limit", "max_parallel_requests"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.metadata:
            body["metadata"] = dict(self.metadata)
        return body


class VirtualKeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: _KeySettings = Field(default_factory=_KeySettings)
    keys: list[dict[str, Any]] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> "VirtualKeysFile":
        for i, entry in enumerate(self.keys):
            if not isinstance(entry, dict):
                raise ValueError(f"keys[{i}] is not a mapping")
        return self


def load_keys_file(path: str | Path) -> list[KeySpec]:
    """Parse and validate a virtual_keys.yaml; errors name the file, the key and the field."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (see config/virtual_keys.yaml for the shape)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if (problem := not_an_object(path, raw, KEYS_HINT)) is not None:
        raise ConfigError(problem)
    try:
        document = VirtualKeysFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_explain(exc)}") from None

    defaults = document.defaults.model_dump(exclude_unset=True)
    specs: list[KeySpec] = []
    for i, entry in enumerate(document.keys):
        name = entry.get("alias") or entry.get("key_alias") or entry.get("key")
        label = f"keys[{i}] ({name!r})" if isinstance(name, str) else f"keys[{i}]"
        entry = {_SYNONYMS.get(k, k) if _SYNONYMS.get(k, k) not in entry else k: v for k, v in entry.items()}
        merged = {**defaults, **entry}
        if "metadata" in defaults and isinstance(entry.get("metadata"), dict):
            merged["metadata"] = {**defaults["metadata"], **entry["metadata"]}
        try:
            specs.append(KeySpec.model_validate(merged))
        except ValidationError as exc:
            raise ConfigError(f"{path}: {label}: {_explain(exc)}") from None

    for attr, what in (("alias", "alias"), ("env_name", "env variable")):
        seen: dict[str, int] = {}
        for i, spec in enumerate(specs):
            value = getattr(spec, attr)
            if value in seen:
                raise ConfigError(f"{path}: keys[{i}] ({spec.alias!r}): {what} {value!r} is also used by keys[{seen[value]}]")
            seen[value] = i
    return specs


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(file)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
