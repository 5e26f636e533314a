"""Claude Code integration: session records the hooks keep, install and uninstall."""
