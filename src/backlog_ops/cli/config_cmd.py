"""`backlog-ops config render` and `backlog-ops config check`.

`render` writes a LiteLLM config from a project's backlog.config.json (see gateway.render);
`check` validates backlog.config.json files, proxy configs and virtual keys files (see
gateway.lint), and has LiteLLM load each proxy config the way the proxy would start it here
(gateway.litellm_load, gateway.serving). Every problem names the file, the key and the fix.
"""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec
from pathlib import Path

from backlog_ops.common.home import write_atomic
from backlog_ops.gateway.lint import (
    check_config_file,
    check_proxy_config,
    is_proxy_config,
    load_proxy_config,
)
from backlog_ops.gateway.proxy import dev_config_path, read_dotenv
from backlog_ops.gateway.render import RENDERED_CONFIG, render_text
from backlog_ops.gateway.serving import environment_problems, load_problems
from backlog_ops.project.file import CONFIG_FILE
from backlog_ops.project.schema import load_backlog_config

__all__ = ["default_targets", "run_check", "run_render"]


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
    print(f"wrote {target} for project {config.project.name}; start it with: backlog-ops proxy --config {target}",
          file=sys.stderr)
    return 1 if problems else 0


def default_targets(directory: Path | None = None) -> list[tuple[Path, str]]:
    """What `config check` with no FILE checks, and why: the project's settings, the proxy config it starts."""
    here = directory or Path(".")
    targets = []
    if (here / CONFIG_FILE).is_file():
        targets.append((here / CONFIG_FILE, "the project's settings"))
    rendered = here / RENDERED_CONFIG
    if rendered.is_file():
        targets.append((rendered, f"the proxy config `backlog-ops proxy --config {rendered}` starts"))
    else:
        targets.append((dev_config_path(), f"the offline config `backlog-ops proxy` starts (no ./{RENDERED_CONFIG})"))
    return targets


def run_check(files: list[str]) -> int:
    """Check each FILE (.json: backlog.config.json; .yaml/.yml: proxy config or virtual keys file).

    No FILE: ./backlog.config.json (when there is one) and the proxy config `backlog-ops proxy`
    would start here: ./litellm.yaml when rendered, else the offline development config.
    """
    targets = [(Path(f).expanduser(), "") for f in files] if files else default_targets()
    paths = [path for path, _ in targets]
    problems = {path: check_config_file(path) for path in paths}
    notes: list[str] = []
    proxy_configs = [p for p in paths if is_proxy_config(p)]
    if proxy_configs:
        if find_spec("fastapi") is None:
            notes.append("LiteLLM's proxy is not installed here (pip install 'backlog-ops[gateway]'): proxy configs "
                         "were checked without LiteLLM loading them")
        else:
            _check_loading(proxy_configs, problems)
    if not files:
        notes += _staleness(paths)

    failed = 0
    for path in paths:
        if problems[path]:
            failed += 1
            for problem in problems[path]:
                print(problem)
        else:
            print(f"ok  {path}")
    for note in notes:
        print(f"note: {note}")
    if not files:
        print("checked: " + "; ".join(f"{path} ({why})" for path, why in targets))
    if failed:
        print(f"{failed} of {len(paths)} file(s) have problems", file=sys.stderr)
    return 1 if failed else 0


def _check_loading(paths: list[Path], problems: dict[Path, list[str]]) -> None:
    """Add what LiteLLM's own loading finds, in the environment `backlog-ops proxy` would have here."""
    from backlog_ops.gateway.litellm_load import check_loads

    environ = {**read_dotenv(), **os.environ}
    outcomes = check_loads(paths, environ)
    for path in paths:
        config = load_proxy_config(path)
        found = environment_problems(path, config, environ)
        found += load_problems(path, config, outcomes.get(str(path)) or {"error": "no outcome"}, environ)
        problems[path] += [p for p in found if p not in problems[path]]


def _staleness(paths: list[Path]) -> list[str]:
    settings = next((p for p in paths if p.name == CONFIG_FILE), None)
    rendered = next((p for p in paths if p.name == RENDERED_CONFIG), None)
    if settings is None or rendered is None:
        return []
    if settings.stat().st_mtime <= rendered.stat().st_mtime:
        return []
    return [f"{rendered} is older than {settings}: run `backlog-ops config render --output {rendered}` "
            f"(a running proxy picks up new budgets within seconds)"]
