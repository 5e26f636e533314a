"""`backlog-ops config check` and `config render`: everything shipped passes, mistakes are named
with their key and fix, and a render carries backlog.config.json into the LiteLLM config."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from backlog_ops.cli.main import main
from backlog_ops.errors import ConfigError
from backlog_ops.gateway.lint import check_proxy_config, load_proxy_config, shipped_configs
from backlog_ops.gateway.render import render_proxy_config
from backlog_ops.project.schema import check_backlog_config, load_backlog_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "backlog.config.example.json"
PRODUCTION = REPO / "config" / "production.yaml"


def example() -> dict:
    return json.loads(EXAMPLE.read_text())


def write_json(tmp_path: Path, data: dict, name: str = "backlog.config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def write_yaml(tmp_path: Path, data: dict, name: str = "proxy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def provider_env(monkeypatch):
    """What the shipped production configs need to start: a provider key and a Redis host (stand-ins)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-stand-in")
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    for name in ("LITELLM_ENVIRONMENT", "ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


# -- everything shipped passes ---------------------------------------------------------------------


def test_config_check_passes_on_everything_shipped(capsys, monkeypatch, tmp_path, provider_env) -> None:
    monkeypatch.chdir(tmp_path)
    files = [str(EXAMPLE)] + [str(p) for p in shipped_configs()]
    assert {p.name for p in shipped_configs()} >= {"dev.yaml", "production.yaml", "openai.yaml", "anthropic.yaml", "google.yaml", "groq.yaml"}
    assert main(["config", "check", *files]) == 0
    out = capsys.readouterr().out
    assert out.count("ok  ") == len(files), out
    # no FILE: ./backlog.config.json when there is one, and the config `backlog-ops proxy` starts
    (tmp_path / "backlog.config.json").write_text(EXAMPLE.read_text())
    assert main(["config", "check"]) == 0
    out = capsys.readouterr().out
    assert "ok  backlog.config.json" in out and "dev.yaml (the offline config `backlog-ops proxy` starts" in out


def test_shipped_configs_keep_secrets_in_the_environment() -> None:
    for path in shipped_configs():
        text = path.read_text()
        for line in text.splitlines():
            stripped = line.split("#", 1)[0]
            for key in ("api_key:", "master_key:", "vertex_credentials:", "password:", "database_url:"):
                if key in stripped:
                    value = stripped.split(key, 1)[1].strip()
                    assert value.startswith("os.environ/") or (path.name == "dev.yaml" and value == "offline-mock"), (path, line)


def test_production_config_has_the_designed_settings() -> None:
    data = load_proxy_config(PRODUCTION)
    aliases = {d["model_name"]: d["litellm_params"]["model"] for d in data["model_list"] if d["model_name"] in ("cheap", "balanced", "frontier")}
    assert aliases == {"cheap": "anthropic/claude-haiku-4-5", "balanced": "anthropic/claude-sonnet-4-6", "frontier": "anthropic/claude-opus-4-6"}
    router, settings = data["router_settings"], data["litellm_settings"]
    assert router["fallbacks"] == [{"cheap": ["balanced", "frontier"]}, {"balanced": ["frontier"]}]
    assert router["context_window_fallbacks"] == [{"cheap": ["balanced"]}, {"balanced": ["frontier"]}]
    assert router["content_policy_fallbacks"] == [{"cheap": ["balanced"]}]
    assert (router["allowed_fails"], router["cooldown_time"], router["enable_tag_filtering"]) == (3, 60, True)
    assert set(router["provider_budget_config"]) == {"anthropic", "openai"}
    assert settings["cache_params"]["type"] == "redis" and settings["cache_params"]["namespace"] == "backlog"
    assert settings["cache_params"]["ttl"] == 3600 and "max_budget" not in settings
    assert data["backlog_ops"]["gateway_budgets"]["monthly_usd"] == 1200
    assert settings["callbacks"][1].endswith("ticket_policy.ticket_policy")
    # the provider files are included: named models of all four providers
    providers = {d["litellm_params"]["model"].split("/")[0] for d in data["model_list"]}
    assert providers == {"anthropic", "openai", "vertex_ai", "groq"}


def test_render_of_the_example_matches_the_production_aliases() -> None:
    rendered = render_proxy_config(load_backlog_config(EXAMPLE), source=EXAMPLE)
    production = load_proxy_config(PRODUCTION)

    def aliases(cfg):
        return [(d["model_name"], d["litellm_params"]["model"], d["litellm_params"]["tags"], d["litellm_params"]["max_budget"])
                for d in cfg["model_list"] if d["model_name"] in ("cheap", "balanced", "frontier")]

    assert aliases(rendered) == aliases(production)
    # No environment gating: LiteLLM would drop every alias unless LITELLM_ENVIRONMENT were set.
    assert not any("model_info" in d for cfg in (rendered, production) for d in cfg["model_list"])
    for cfg in (rendered, production):
        assert cfg["general_settings"]["custom_auth"] == "backlog_ops.callbacks.proxy_auth.user_api_key_auth"
        assert cfg["general_settings"]["custom_auth_run_common_checks"] is True
    assert rendered["router_settings"]["fallbacks"] == production["router_settings"]["fallbacks"]
    assert rendered["litellm_settings"]["callbacks"] == production["litellm_settings"]["callbacks"]


# -- render ----------------------------------------------------------------------------------------


def test_render_applies_backlog_config(tmp_path: Path) -> None:
    data = example()
    data["llmOps"]["routing"].update(cheap="openai/gpt-4o-mini", maxEscalationsPerTicket=7)
    data["llmOps"]["gateway"]["providers"] = None
    data["llmOps"]["cachePolicy"]["responseCache"].update(ttlSeconds=120, namespace="team-a")
    data["llmOps"]["budgets"].update(perTicketUSD=2.5, tickets={"FEAT-9": 40}, monthlyUSD=None, period="7d")
    source = write_json(tmp_path, data)
    cfg = render_proxy_config(load_backlog_config(source), source=source)
    cheap = next(d for d in cfg["model_list"] if d["model_name"] == "cheap")["litellm_params"]
    assert cheap["model"] == "openai/gpt-4o-mini" and cheap["api_key"] == "os.environ/OPENAI_API_KEY"
    assert cheap["budget_duration"] == "7d" and "cache_control_injection_points" not in cheap
    frontier = next(d for d in cfg["model_list"] if d["model_name"] == "frontier")["litellm_params"]
    assert frontier["cache_control_injection_points"] == [{"location": "message", "role": "system"}]
    assert {d["litellm_params"]["model"].split("/")[0] for d in cfg["model_list"]} == {"openai", "anthropic"}
    assert cfg["litellm_settings"]["cache_params"]["ttl"] == 120 and cfg["litellm_settings"]["cache_params"]["namespace"] == "team-a"
    assert "max_budget" not in cfg["litellm_settings"]
    policy = cfg["backlog_ops"]["policy"]["projects"]["my-api"]
    assert policy["ticket_budget_usd"] == 2.5 and policy["ticket_budgets_usd"] == {"FEAT-9": 40}
    assert policy["max_escalations_per_ticket"] == 7 and policy["source"] == str(source.resolve())
    assert cfg["backlog_ops"]["routing"] == {"frontier_alias": "frontier", "critical_tags": ["critical"]}
    out = write_yaml(tmp_path, cfg, "rendered.yaml")
    assert check_proxy_config(out) == []


def test_render_gateway_budgets_and_tag_routes(tmp_path: Path) -> None:
    data = example()
    data["llmOps"]["routing"]["tagRoutes"] = {"offline": {"cheap": "openai/gpt-4o-mini"}, "batch": {"balanced": "openai/gpt-4.1"}}
    data["llmOps"]["gateway"]["providers"] = None
    source = write_json(tmp_path, data)
    cfg = render_proxy_config(load_backlog_config(source), source=source)
    # LiteLLM's max_budget needs its database: the overall budget goes to our section instead.
    assert "max_budget" not in cfg["litellm_settings"] and "budget_duration" not in cfg["litellm_settings"]
    assert cfg["backlog_ops"]["gateway_budgets"] == {
        "monthly_usd": 1200, "period": "30d", "per_alias_usd": {"cheap": 300, "balanced": 600, "frontier": 300},
        "per_provider_usd": {"anthropic": 1000, "openai": 200}, "source": str(source.resolve()),
    }
    assert cfg["router_settings"]["provider_budget_config"]["openai"] == {"budget_limit": 200, "time_period": "30d"}
    cheap = [d["litellm_params"] for d in cfg["model_list"] if d["model_name"] == "cheap"]
    assert [(p["model"], p["tags"], p["max_budget"]) for p in cheap] == [
        ("anthropic/claude-haiku-4-5", ["default", "interactive"], 300), ("openai/gpt-4o-mini", ["offline"], 300)]
    balanced = [d["litellm_params"] for d in cfg["model_list"] if d["model_name"] == "balanced"]
    assert [(p["model"], p["tags"]) for p in balanced] == [
        ("anthropic/claude-sonnet-4-6", ["default", "interactive", "offline"]), ("openai/gpt-4.1", ["batch"])]
    assert cfg["router_settings"]["enable_tag_filtering"] is True
    assert check_proxy_config(write_yaml(tmp_path, cfg, "rendered.yaml")) == []
    cfg["backlog_ops"]["gateway_budgets"]["monthly_usd"] = "lots"
    problems = check_proxy_config(write_yaml(tmp_path, cfg, "bad.yaml"))
    assert len(problems) == 1 and "backlog_ops: gateway_budgets.monthly_usd: must be a positive number" in problems[0]


def test_render_cache_variants(tmp_path: Path) -> None:
    data = example()
    data["llmOps"]["cachePolicy"]["semanticCache"] = {"enabled": True, "similarityThreshold": 0.8, "ttlSeconds": 60}
    cfg = render_proxy_config(load_backlog_config(write_json(tmp_path, data)))
    # The semantic cache is our callback, in front of the exact cache (which stays as configured),
    # with its settings in the project's policy entry.
    params = cfg["litellm_settings"]["cache_params"]
    assert params["type"] == "redis" and cfg["litellm_settings"]["cache"] is True
    callbacks = cfg["litellm_settings"]["callbacks"]
    assert callbacks.index("backlog_ops.callbacks.semantic_cache.semantic_cache") == \
        callbacks.index("backlog_ops.callbacks.ticket_tagger.ticket_tagger") + 1
    entry = cfg["backlog_ops"]["policy"]["projects"]["my-api"]["semantic_cache"]
    assert (entry["enabled"], entry["similarity_threshold"], entry["ttl_seconds"], entry["index"]) == (True, 0.8, 60, "sqlite")
    data["llmOps"]["cachePolicy"]["semanticCache"] = {"enabled": True, "embeddingModel": "text-embedding-3-small"}
    with pytest.raises(ConfigError, match="embeddingModel"):
        load_backlog_config(write_json(tmp_path, data))
    data = example()
    data["llmOps"]["cachePolicy"]["responseCache"]["enabled"] = False
    cfg = render_proxy_config(load_backlog_config(write_json(tmp_path, data)))
    assert cfg["litellm_settings"]["cache"] is False and "cache_params" not in cfg["litellm_settings"]
    data["llmOps"]["cachePolicy"]["responseCache"] = {"enabled": True, "type": "local"}
    cfg = render_proxy_config(load_backlog_config(write_json(tmp_path, data)))
    assert cfg["litellm_settings"]["cache_params"] == {"type": "local", "ttl": 3600, "namespace": "backlog"}


def test_render_cli_writes_a_checked_config(tmp_path: Path, capsys, provider_env) -> None:
    out = tmp_path / "litellm.yaml"
    assert main(["config", "render", "--input", str(EXAMPLE), "--output", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Generated by `backlog-ops config render`") and "&id" not in text
    assert main(["config", "check", str(out)]) == 0
    assert main(["config", "render", "--input", str(EXAMPLE), "--output", "-"]) == 0
    assert "model_name: frontier" in capsys.readouterr().out


def test_render_needs_a_project_name(tmp_path: Path, capsys) -> None:
    data = example()
    del data["project"]["name"]
    source = write_json(tmp_path, data)
    with pytest.raises(ConfigError, match="project.name: required"):
        render_proxy_config(load_backlog_config(source), source=source)
    assert main(["config", "render", "--input", str(source)]) == 1
    assert "fix: set project.name" in capsys.readouterr().err


# -- backlog.config.json problems name the key and the fix ----------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["llmOps"]["routing"].update(cheep="x"), "llmOps.routing.cheep: unknown key in llmOps.routing; fix: remove it or correct its spelling"),
        (lambda d: d["llmOps"]["routing"].update(frontier="anthropic/claude-opus-4"), "llmOps.routing.frontier: 'anthropic/claude-opus-4' has no price in LiteLLM's price map: its calls would be recorded at $0 and no budget would ever trip (use anthropic/claude-opus-4-6)"),
        (lambda d: d["llmOps"]["routing"].update(cheap="haiku"), "llmOps.routing.cheap: 'haiku' is not provider/model"),
        (lambda d: d["llmOps"]["routing"].update(maxEscalationsPerTicket=-1), "llmOps.routing.maxEscalationsPerTicket: Input should be greater than or equal to 0; fix: use a whole number >= 0, or null for no limit"),
        (lambda d: d["llmOps"]["budgets"].update(perTicketUSD=0), "llmOps.budgets.perTicketUSD: Input should be greater than 0; fix: use a positive number of USD"),
        (lambda d: d["llmOps"]["budgets"].update(tickets={"FEAT 1": 3}), "llmOps.budgets.tickets: key ticket_id 'FEAT 1' is not allowed"),
        (lambda d: d["llmOps"]["routing"].update(tagRoutes={"default": {"cheap": "openai/gpt-4o-mini"}}), "llmOps.routing.tagRoutes: tag 'default' is not allowed"),
        (lambda d: d["llmOps"]["routing"].update(tagRoutes={"offline": {"cheap": "openai/gpt-9"}}), "llmOps.routing.tagRoutes: offline.cheap: 'openai/gpt-9' has no price"),
        (lambda d: d["llmOps"]["routing"].update(tagRoutes={"offline": {"fast": "openai/gpt-4o-mini"}}), "llmOps.routing.tagRoutes.offline.fast"),
        (lambda d: d["llmOps"]["budgets"].update(period="1m"), "llmOps.budgets.period: '1m' means 1 minute(s) to LiteLLM; for months write 1mo (or 30d)"),
        (lambda d: d["llmOps"]["gateway"].update(baseURL="localhost:4000"), "llmOps.gateway.baseURL: must be an http(s) URL"),
        (lambda d: d["llmOps"]["cachePolicy"]["responseCache"].update(ttlSeconds=0), "llmOps.cachePolicy.responseCache.ttlSeconds: Input should be greater than 0; fix: use a positive number of seconds"),
        (lambda d: d["project"].update(name="my api"), "project.name: project 'my api' is not allowed"),
    ],
)
def test_backlog_config_errors_name_the_key_and_fix(tmp_path: Path, change, expected) -> None:
    data = example()
    change(data)
    problems = check_backlog_config(write_json(tmp_path, data))
    assert len(problems) == 1 and expected in problems[0], problems


def test_backlog_config_file_level_errors(tmp_path: Path, capsys) -> None:
    assert "does not exist; copy backlog.config.example.json" in check_backlog_config(tmp_path / "nope.json")[0]
    bad = tmp_path / "bad.json"
    bad.write_text('{"llmOps": {,}}')
    assert "not valid JSON" in check_backlog_config(bad)[0]
    # other tools' sections are left alone; an empty file section gets the defaults
    assert check_backlog_config(write_json(tmp_path, {"project": {"name": "x", "board": "jira"}, "agents": {}})) == []
    assert main(["config", "check", str(bad)]) == 1
    assert "bad.json" in capsys.readouterr().out


# -- proxy config problems --------------------------------------------------------------------------


def production_copy() -> dict:
    return copy.deepcopy(load_proxy_config(PRODUCTION))


def problems_of(tmp_path: Path, cfg: dict) -> list[str]:
    return check_proxy_config(write_yaml(tmp_path, cfg))


def test_a_flattened_production_config_is_clean(tmp_path: Path) -> None:
    assert problems_of(tmp_path, production_copy()) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c["model_list"][0]["litellm_params"].update(api_key="sk-ant-123"), "model_list[0] (cheap).litellm_params.api_key: a literal secret; fix: reference the environment, e.g. api_key: os.environ/API_KEY"),
        (lambda c: c["general_settings"].update(master_key="sk-1234"), "general_settings.master_key: a literal secret; fix: reference the environment, e.g. master_key: os.environ/LITELLM_MASTER_KEY"),
        (lambda c: c["model_list"][2]["litellm_params"].update(model="anthropic/claude-opus-4"), "has no price in LiteLLM's price map, so its calls cost $0 in the ledger and no budget trips; fix: pick a priced model or set input_cost_per_token and output_cost_per_token; use anthropic/claude-opus-4-6"),
        (lambda c: c["router_settings"].update(fallbacks=[{"cheap": ["balance"]}]), "router_settings.fallbacks[0]: 'balance' is not a model_name in model_list; fix the name or add a deployment called 'balance'"),
        (lambda c: c["model_list"][0].update(model_info={"supported_environments": ["interactive", "offline"]}), "supported_environments: ['interactive', 'offline'] not allowed: LiteLLM gates deployments on LITELLM_ENVIRONMENT"),
        (lambda c: c["model_list"][0]["litellm_params"].update(tags=["interactive"]), "with enable_tag_filtering, a request carrying tags (every ticket-tagged request does) finds no deployment of 'cheap'"),
        (lambda c: c["litellm_settings"]["cache_params"].pop("namespace"), "litellm_settings.cache_params.namespace: missing; fix: set one (e.g. backlog)"),
        (lambda c: c["router_settings"].pop("allowed_fails_policy"), "router_settings.allowed_fails: 3 is LiteLLM's default, which LiteLLM 1.106 takes as unset"),
        (lambda c: c["router_settings"]["provider_budget_config"]["openai"].update(time_period="1m"), "provider_budget_config.openai.time_period: '1m' means 1 minute(s) to LiteLLM"),
        (lambda c: c["litellm_settings"].update(callbacks=list(reversed(c["litellm_settings"]["callbacks"]))), "ticket_policy must come after backlog_ops.callbacks.ticket_tagger.ticket_tagger"),
        (lambda c: c["litellm_settings"].update(callbacks=c["litellm_settings"]["callbacks"][:2]), "spend_ledger is missing: no call would be recorded"),
        (lambda c: c["litellm_settings"]["callbacks"].append("backlog_ops.callbacks.nope.nope"), "backlog_ops.callbacks.nope.nope cannot be imported"),
        (lambda c: c.update(model_list=[d for d in c["model_list"] if d["model_name"] != "frontier"]), "no deployment named frontier"),
        (lambda c: c.update(backlog_ops={"policy": {"projects": {"p": {"ticket_budget_usd": "lots"}}}}), "backlog_ops: policy.projects.p.ticket_budget_usd: must be a number >= 0 or null"),
    ],
)
def test_proxy_config_errors_name_the_key_and_fix(tmp_path: Path, change, expected) -> None:
    cfg = production_copy()
    change(cfg)
    problems = problems_of(tmp_path, cfg)
    assert any(expected in p for p in problems), problems


def test_proxy_config_file_level_errors(tmp_path: Path) -> None:
    assert "does not exist" in check_proxy_config(tmp_path / "missing.yaml")[0]
    broken = tmp_path / "broken.yaml"
    broken.write_text("model_list: [\n")
    assert "not valid YAML" in check_proxy_config(broken)[0]
    include = write_yaml(tmp_path, {**production_copy(), "include": ["providers/none.yaml"]}, "inc.yaml")
    assert any("include: providers/none.yaml: no such file" in p for p in check_proxy_config(include))
    assert "model_list: missing or empty" in check_proxy_config(write_yaml(tmp_path, {"litellm_settings": {}}, "empty.yaml"))[0]
    assert "not a .json" in "".join(_check_output(tmp_path / "x.txt"))


def _check_output(path: Path) -> list[str]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["config", "check", str(path)]) == 1
    return buf.getvalue().splitlines()


def test_local_mock_deployments_may_carry_a_placeholder_key(tmp_path: Path) -> None:
    cfg = production_copy()
    for dep in cfg["model_list"]:
        dep["litellm_params"].update(api_base="http://127.0.0.1:9999", api_key="mock")
    assert problems_of(tmp_path, cfg) == []


@pytest.mark.parametrize("opted_in", [False, True])
def test_a_rendered_config_lists_langfuse_only_when_the_project_asks_for_it(tmp_path, opted_in) -> None:
    # The README's real-provider quick start renders and starts with a provider key alone: Langfuse,
    # which needs its own keys (and would otherwise send every call to its cloud), is opt-in.
    from backlog_ops.gateway.serving import environment_problems

    path = tmp_path / "backlog.config.json"
    path.write_text(json.dumps({"project": {"name": "alpha"}, "llmOps": {
        "gateway": {"providers": ["anthropic"]},
        "cachePolicy": {"responseCache": {"type": "local"}},
        **({"observability": {"langfuse": True}} if opted_in else {})}}))
    rendered = render_proxy_config(load_backlog_config(path), source=path)
    callbacks = rendered["litellm_settings"].get("success_callback") or []
    problems = environment_problems(tmp_path / "litellm.yaml", rendered, {"ANTHROPIC_API_KEY": "sk-ant-test"})
    if opted_in:
        assert "langfuse" in callbacks
        assert any("LANGFUSE_PUBLIC_KEY" in p for p in problems)
    else:
        assert "langfuse" not in callbacks and "langfuse" not in (rendered["litellm_settings"].get("failure_callback") or [])
        assert problems == []
