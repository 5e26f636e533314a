"""The project a context belongs to: backlog.config.json's project.name, else the directory's name."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ConfigError, InvalidContext
from .fields import check_field, slugify

__all__ = ["CONFIG_FILE", "default_project"]

CONFIG_FILE = "backlog.config.json"


def default_project(directory: Path | None = None) -> str:
    """project.name from DIRECTORY/backlog.config.json, else the directory's name as a slug."""
    directory = Path.cwd() if directory is None else Path(directory)
    config = directory / CONFIG_FILE
    if config.is_file():
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{config} is not valid JSON: {exc}; fix it or pass --project") from None
        name = data.get("project", {}).get("name") if isinstance(data, dict) and isinstance(data.get("project"), dict) else None
        if name is not None:
            try:
                return check_field("project", name)
            except InvalidContext as exc:
                raise ConfigError(f"{config}: project.name: {exc}") from None
    return slugify(directory.resolve().name)
