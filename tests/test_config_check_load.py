"""`backlog-ops config check` loads proxy configs the way LiteLLM does, and checks what a user would start.

LiteLLM's own loading runs in a child process (each run imports LiteLLM's proxy: seconds), so
each test checks several files in one run. Also here: a top-level array is refused with one
sentence in every file a user edits, and the start-up text never shows a password.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from backlog_ops.cli.main import main
from backlog_ops.gateway.proxy import startup_text

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "backlog.config.example.json"
ARRAY = "the top level must be an object {...}, not an array [...]"


@pytest.fixture
def bare_env(monkeypatch):
    """A shell with none of the variables the rendered config refers to."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL", "REDIS_HOST", "REDIS_URL",
                 "REDIS_PORT", "REDIS_PASSWORD", "LITELLM_ENVIRONMENT", "LITELLM_MASTER_KEY", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def render(project: Path, **response_cache) -> Path:
    settings = json.loads(EXAMPLE.read_text())
    settings["llmOps"]["cachePolicy"]["responseCache"].update(response_cache)
    (project / "backlog.config.json").write_text(json.dumps(settings))
    assert main(["config", "render", "--input", str(project / "backlog.config.json"),
                 "--output", str(project / "litellm.yaml")]) == 0
    return project / "litellm.yaml"


def test_check_reports_what_litellm_drops_and_what_cannot_start(project_dir, bare_env, capsys) -> None:
    rendered = render(project_dir)
    gated = yaml.safe_load(rendered.read_text())
    gated["litellm_settings"]["cache"] = False  # so the load gets as far as the router
    for dep in gated["model_list"][:3]:
        dep["model_info"] = {"supported_environments": ["production"]}
    (project_dir / "gated.yaml").write_text(yaml.safe_dump(gated, sort_keys=False))
    capsys.readouterr()

    assert main(["config", "check", "litellm.yaml", "gated.yaml"]) == 1
    out = capsys.readouterr().out.splitlines()
    mine = {name: [line for line in out if line.startswith(f"{name}: ")] for name in ("litellm.yaml", "gated.yaml")}
    assert len(mine["litellm.yaml"]) == 2 and len(mine["gated.yaml"]) == 2, out
    key = "cheap, balanced, frontier: the provider key ANTHROPIC_API_KEY is not set"
    assert key in mine["litellm.yaml"][0] and key in mine["gated.yaml"][0]
    assert "LiteLLM cannot start the Redis response cache (Either 'host' or 'url' must be specified for redis)" in mine["litellm.yaml"][1]
    assert "fix: set REDIS_HOST or REDIS_URL" in mine["litellm.yaml"][1]
    assert ("LiteLLM drops deployments (cheap: 1 of 1, balanced: 1 of 1, frontier: 1 of 1): their "
            "model_info.supported_environments needs LITELLM_ENVIRONMENT, which is not set") in mine["gated.yaml"][1]
    assert not any("Traceback" in line for line in out)


def test_check_with_no_file_checks_the_settings_and_the_config_the_proxy_starts(project_dir, bare_env, monkeypatch,
                                                                               capsys) -> None:
    rendered = render(project_dir, type="local")  # no Redis needed
    os.utime(project_dir / "backlog.config.json", (rendered.stat().st_mtime + 60,) * 2)  # edited after the render
    (project_dir / ".env").write_text("ANTHROPIC_API_KEY=sk-ant-stand-in\n")  # what backlog-ops proxy would read
    capsys.readouterr()
    assert main(["config", "check"]) == 0
    out = capsys.readouterr().out
    assert "ok  backlog.config.json\nok  litellm.yaml\n" in out
    assert ("note: litellm.yaml is older than backlog.config.json: run `backlog-ops config render --output "
            "litellm.yaml`") in out
    assert ("checked: backlog.config.json (the project's settings); litellm.yaml (the proxy config "
            "`backlog-ops proxy --config litellm.yaml` starts)") in out
    assert "sk-ant-stand-in" not in out

    # No rendered config: the offline config `backlog-ops proxy` starts with no --config.
    rendered.unlink()
    (project_dir / "backlog.config.json").unlink()
    assert main(["config", "check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok  ") and "dev.yaml (the offline config `backlog-ops proxy` starts (no ./litellm.yaml))" in out


# -- a top-level array: one sentence wherever the file is read -----------------------------------------


def test_a_top_level_array_is_refused_alike_in_every_file(project_dir, backlog_home, capsys) -> None:
    (project_dir / "backlog.config.json").write_text('["project", "llmOps"]')
    (project_dir / "keys.yaml").write_text("- alias: backlog-dev\n")
    backlog_home.mkdir(parents=True, exist_ok=True)
    (backlog_home / "current-context.json").write_text('[{"ticket_id": "FEAT-1"}]')

    assert main(["config", "check", "backlog.config.json", "keys.yaml"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"backlog.config.json: {ARRAY}; fix: put its sections ('project', 'llmOps') in one object, "
                      f"as in backlog.config.example.json")
    assert out[1].startswith(f"keys.yaml: {ARRAY}; fix: ")
    # The same sentence where each file is used, in one line, with no traceback.
    for argv in (["config", "render"], ["context", "set", "FEAT-1", "plan", "backend"], ["keys", "setup", "keys.yaml"]):
        assert main(argv) != 0, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ARRAY in err[0] and "Traceback" not in err[0], (argv, err)
    assert main(["context", "show", "--json"]) == 0  # a broken context file is skipped with a warning
    err = capsys.readouterr().err
    assert f"current-context.json: {ARRAY}; fix: set the context again" in err


# -- the start-up text ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "postgresql://backlog:s3cret-pw@db.internal:5433/spend?sslmode=require",
    "postgresql://backlog@db.internal:5433/spend?password=s3cret-pw",
    "host=db.internal port=5433 dbname=spend user=backlog password=s3cret-pw",
])
def test_the_banner_names_the_postgres_ledger_without_its_password(monkeypatch, url) -> None:
    monkeypatch.setenv("BACKLOG_LEDGER_URL", url)
    lines = startup_text(None, {}, host="127.0.0.1", port=4000, key_source="/h/master-key")
    assert "ledger: PostgreSQL at db.internal:5433/spend (schema backlog_ops)" in lines
    assert not any("s3cret" in line or "backlog@" in line for line in lines)
    assert lines[0].startswith("LiteLLM proxy on http://127.0.0.1:4000 in OFFLINE MOCK mode: answers are fake")


def test_deployments_inactive_for_this_environment_are_deliberate_except_for_an_alias() -> None:
    """LiteLLM's outcome as the child reports it; the problems it means (gateway.serving)."""
    from backlog_ops.gateway.serving import load_problems

    config = {"model_list": [{"model_name": n, "litellm_params": {"model": "anthropic/claude-haiku-4-5"}}
                             for n in ("cheap", "balanced", "frontier", "named", "named")]}
    env = {"LITELLM_ENVIRONMENT": "development"}
    everything = {"cheap": 1, "balanced": 1, "frontier": 1}
    assert load_problems(Path("c.yaml"), config, {"loaded": {**everything, "named": 2}}, {}) == []
    # A named model meant for another environment: LiteLLM's intended use, no problem.
    assert load_problems(Path("c.yaml"), config, {"loaded": everything, "inactive": ["named", "named"]}, env) == []
    # An alias with nothing active, and a deployment dropped for an error: both named, each once.
    found = load_problems(Path("c.yaml"), config, {"loaded": {"balanced": 1, "frontier": 1, "named": 1},
                                                   "inactive": ["cheap"], "dropped": ["bad param x"]}, env)
    assert found == [
        "c.yaml: model_list: LiteLLM drops deployments (named: 1 of 2): bad param x; fix: fix the deployment",
        "c.yaml: model_list (cheap): no deployment is active for LITELLM_ENVIRONMENT=development "
        "(model_info.supported_environments), so skills calling it would fail; fix: list development there, "
        "or remove supported_environments",
    ]
