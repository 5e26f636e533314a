"""`backlog-ops config render` and `backlog-ops config check`.

`render` writes a LiteLLM config from a project's backlog.config.json (see gateway.render);
`check` validates backlog.config.json files, proxy configs and virtual keys files (see
gateway.lint). Every problem names the file, the key and the fix.
"""

from __future__ import annotations

import sys
from pathlib import Path

from backlog_ops.common.home import write_atomic
from backlog_ops.gateway.lint import (
    check_config_file,
    check_proxy_config,
    shipped_configs,
)
from backlog_ops.gateway.render import render_text
from backlog_ops.project.file import CONFIG_FILE
from backlog_ops.project.schema import load_backlog_config

__all__ = ["run_check", "run_render"]


def run_render(input_path: str, output: str) -> int:
    """Render INPUT to OUTPUT ('-': stdout); a written file is checked, and its problems warned about."""
    source = Path(input_path).expanduser()
    config = load_backlog_config(source)
    text = render_text(config, source)
    if output == "-":
        sys.stdout.write(text)
        return 0
    target = Path(output).expanduser()
    write_atomic(target, text.encode(), mode=0o644)
    problems = check_proxy_config(target)
    for problem in problems:
        print(f"backlog-ops: warning: {problem}", file=sys.stderr)
    print(f"wrote {target} for project {config.project.name}", file=sys.stderr)
    return 1 if problems else 0


def run_check(files: list[str]) -> int:
    """Validate each FILE (.json: backlog.config.json; .yaml/.yml: proxy config or virtual keys file); no FILE: ./backlog.config.json and every shipped config."""
    paths = [Path(f).expanduser() for f in files]
    if not paths:
        local = Path(CONFIG_FILE)
        paths = ([local] if local.is_file() else []) + shipped_configs()
    failed = 0
    for path in paths:
        problems = check_config_file(path)
        if problems:
            failed += 1
            for problem in problems:
                print(problem)
        else:
            print(f"ok  {path}")
    if failed:
        print(f"{failed} of {len(paths)} file(s) have problems", file=sys.stderr)
    return 1 if failed else 0
