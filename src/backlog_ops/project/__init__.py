"""A project's backlog.config.json: the one reader, its schema, and the project name."""
