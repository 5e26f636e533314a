"""The project a context belongs to: backlog.config.json's project.name, else the directory's name.

Plain os.path and fastjson: hooks call this at every session start.
"""

from __future__ import annotations

import os

from backlog_ops.common import fastjson
from backlog_ops.common.shape import not_an_object
from backlog_ops.context.fields import check_field, slugify
from backlog_ops.errors import ConfigError, InvalidContext

__all__ = ["CONFIG_FILE", "SETTINGS_HINT", "default_project"]

CONFIG_FILE = "backlog.config.json"
# What a backlog.config.json whose top level is not an object is told (common.shape).
SETTINGS_HINT = "fix: put its sections ('project', 'llmOps') in one object, as in backlog.config.example.json"


def default_project(directory=None) -> str:
    """project.name from DIRECTORY/backlog.config.json, else the directory's name as a slug."""
    directory = os.getcwd() if directory is None else os.fspath(directory)
    config = os.path.join(directory, CONFIG_FILE)
    if os.path.isfile(config):
        try:
            with open(config, "rb") as fh:
                data = fastjson.loads(fh.read())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{config} is not valid JSON: {exc}; fix it or pass --project") from None
        if (problem := not_an_object(config, data, SETTINGS_HINT)) is not None:
            raise ConfigError(problem)
        project = data.get("project")
        name = project.get("name") if isinstance(project, dict) else None
        if name is not None:
            try:
                return check_field("project", name)
            except InvalidContext as exc:
                raise ConfigError(f"{config}: project.name: {exc}") from None
    return slugify(os.path.basename(os.path.realpath(directory)))
