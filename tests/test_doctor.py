"""`backlog-ops doctor`, run as a user runs it: against the real offline proxy, a real install, real files.

A healthy set-up (the offline proxy, `backlog-ops install`, the server approved) is reported
healthy; then each piece is broken in turn and must be named with what to run to fix it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from backlog_ops.doctor.state import describe_dsn, redact
from backlog_ops.gateway.process import ProxyProcess, free_port
from backlog_ops.testing.mock_upstream import MockUpstream

from claude_support import find_claude
from conftest import in_ci, require_service

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def offline_proxy(tmp_path_factory):
    """`backlog-ops proxy` with no config: the offline mock provider. Its home holds the master key."""
    home = tmp_path_factory.mktemp("proxy-home")
    env = {k: "" for k in ("LITELLM_MASTER_KEY", "BACKLOG_LEDGER_URL", "BACKLOG_CONTEXT_URL")}
    with ProxyProcess(home, env=env, cwd=tmp_path_factory.mktemp("proxy-cwd")) as proxy:
        yield proxy


@pytest.fixture
def setup(tmp_path: Path, offline_proxy: ProxyProcess) -> dict:
    """A git project with backlog-ops installed and approved, a user home, and the proxy's state home."""
    project = tmp_path / "my-api"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKLOG_", "CLAUDE_", "ANTHROPIC_", "LITELLM_"))}
    env.update({"HOME": str(user_home), "BACKLOG_HOME": str(offline_proxy.home), "BACKLOG_GATEWAY_URL": offline_proxy.base_url})
    r = subprocess.run([str(BIN / "backlog-ops"), "install"], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    mcp = json.loads((project / ".mcp.json").read_text())
    # Until install writes it (issue 10, item 4): what a user adds by hand.
    mcp["mcpServers"]["backlog-ops"].setdefault("alwaysLoad", True)
    (project / ".mcp.json").write_text(json.dumps(mcp, indent=2))
    # What Claude Code writes when the user approves the project's server.
    (project / ".claude" / "settings.local.json").write_text(json.dumps({"enabledMcpjsonServers": ["backlog-ops"]}))
    return {"project": project, "env": env, "user_home": user_home, "proxy": offline_proxy}


def doctor(setup: dict, *args: str, env: dict | None = None, cwd: Path | None = None) -> tuple[int, dict, str]:
    r = subprocess.run([str(BIN / "backlog-ops"), "doctor", "--json", *args], cwd=cwd or setup["project"],
                       env={**setup["env"], **(env or {})}, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout), r.stderr


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def problem(report: dict, name: str) -> dict:
    check = by_name(report)[name]
    assert check["status"] == "problem", check
    assert check["fix"], f"{name}: a problem without a fix"
    return check


# -- healthy -------------------------------------------------------------------------------------


def test_a_healthy_setup_is_reported_healthy(setup) -> None:
    rc, report, _ = doctor(setup)
    assert report["healthy"] is True and rc == 0, [c for c in report["checks"] if c["status"] == "problem"]
    checks = by_name(report)
    assert checks["proxy"]["status"] == "ok" and setup["proxy"].base_url in checks["proxy"]["summary"]
    assert checks["mode"]["facts"]["mode"] == "mock" and "answers are fake" in checks["mode"]["summary"]
    assert checks["master key"]["status"] == "ok"
    assert checks["home"]["facts"]["path"] == str(setup["proxy"].home)
    assert checks["ledger"]["facts"]["backend"] == "sqlite" and checks["contexts"]["facts"]["backend"] == "files"
    assert checks["install (project)"]["status"] == "ok" and checks["install (user)"]["status"] == "info"
    assert checks["alwaysLoad"]["status"] == "ok" and checks["MCP approval"]["status"] == "ok"
    assert all(c["fix"] is None for c in report["checks"] if c["status"] != "problem")

    text = subprocess.run([str(BIN / "backlog-ops"), "doctor"], cwd=setup["project"], env=setup["env"],
                          capture_output=True, text=True, timeout=120)
    assert text.returncode == 0 and text.stdout.rstrip().endswith("all is well.")
    assert "FIX" not in text.stdout and "offline mock provider" in text.stdout


def test_claude_code_agrees_on_the_approval(setup) -> None:
    """The approval doctor reads is the one the real `claude` CLI honours (`claude mcp list`)."""
    claude, why = find_claude()
    if claude is None:
        pytest.fail(why) if in_ci() else pytest.skip(why)

    def listed() -> str:
        env = {**setup["env"], "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "ANTHROPIC_API_KEY": "sk-ant-stand-in"}
        r = subprocess.run([str(claude), "mcp", "list"], cwd=setup["project"], env=env, capture_output=True, text=True, timeout=120)
        return next((line for line in r.stdout.splitlines() if line.startswith("backlog-ops")), "(not listed)")

    assert "Connected" in listed() and doctor(setup)[1]["healthy"]
    (setup["project"] / ".claude" / "settings.local.json").unlink()
    assert "Pending approval" in listed()
    assert "waits for approval" in problem(doctor(setup)[1], "MCP approval")["summary"]


# -- each broken piece, named with its fix -------------------------------------------------------


def test_no_proxy(setup) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    rc, report, _ = doctor(setup, env={"BACKLOG_GATEWAY_URL": url})
    check = problem(report, "proxy")
    assert rc == 1 and report["healthy"] is False
    assert url in check["summary"] and "BACKLOG_GATEWAY_URL" in check["summary"] and "connection refused" in check["summary"]
    assert "backlog-ops proxy" in check["fix"]
    assert "mode" not in by_name(report), "nothing more is asked of a proxy that is not there"


def test_the_url_comes_from_backlog_config_json(setup) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    (setup["project"] / "backlog.config.json").write_text(json.dumps({"llmOps": {"gateway": {"baseURL": url}}}))
    env = {**setup["env"]}
    del env["BACKLOG_GATEWAY_URL"]
    r = subprocess.run([str(BIN / "backlog-ops"), "doctor", "--json"], cwd=setup["project"], env=env, capture_output=True, text=True, timeout=120)
    check = problem(json.loads(r.stdout), "proxy")
    assert url in check["summary"] and "llmOps.gateway.baseURL" in check["summary"]
    (setup["project"] / "backlog.config.json").write_text('{"llmOps": {"gateway": {"baseURL": "ftp://x"}}}')
    r = subprocess.run([str(BIN / "backlog-ops"), "doctor", "--json"], cwd=setup["project"], env=env, capture_output=True, text=True, timeout=120)
    assert "backlog-ops config check" in problem(json.loads(r.stdout), "project config")["fix"]


def test_not_installed_anywhere(setup, tmp_path: Path) -> None:
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    rc, report, _ = doctor(setup, cwd=elsewhere)
    assert rc == 1 and "backlog-ops install" in problem(report, "integration")["fix"]
    assert by_name(report)["install (project)"]["status"] == "info"


def test_pending_and_rejected_approval(setup) -> None:
    local = setup["project"] / ".claude" / "settings.local.json"
    local.unlink()
    fix = problem(doctor(setup)[1], "MCP approval")["fix"]
    assert "enabledMcpjsonServers" in fix and str(local) in fix
    local.write_text(json.dumps({"disabledMcpjsonServers": ["backlog-ops"]}))
    check = problem(doctor(setup)[1], "MCP approval")
    assert "rejected" in check["summary"] and "disabledMcpjsonServers" in check["fix"]
    # Approvals older Claude Code versions kept in ~/.claude.json count: it moves them at its next start.
    local.unlink()
    (setup["user_home"] / ".claude.json").write_text(json.dumps(
        {"projects": {str(setup["project"].resolve()): {"enabledMcpjsonServers": ["backlog-ops"]}}}))
    assert by_name(doctor(setup)[1])["MCP approval"]["status"] == "ok"


def test_missing_always_load(setup) -> None:
    path = setup["project"] / ".mcp.json"
    mcp = json.loads(path.read_text())
    del mcp["mcpServers"]["backlog-ops"]["alwaysLoad"]
    path.write_text(json.dumps(mcp))
    check = problem(doctor(setup)[1], "alwaysLoad")
    assert '"alwaysLoad": true' in check["fix"] and str(path) in check["fix"]


def test_an_mcp_command_that_is_gone_and_missing_hooks(setup) -> None:
    path = setup["project"] / ".mcp.json"
    mcp = json.loads(path.read_text())
    mcp["mcpServers"]["backlog-ops"]["command"] = "/old/venv/bin/backlog-ops"
    path.write_text(json.dumps(mcp))
    settings_file = setup["project"] / ".claude" / "settings.json"
    settings = json.loads(settings_file.read_text())
    del settings["hooks"]["SessionStart"]
    settings_file.write_text(json.dumps(settings))
    check = problem(doctor(setup)[1], "install (project)")
    assert "'/old/venv/bin/backlog-ops' is not found" in check["summary"] and "no hooks for SessionStart" in check["summary"]
    assert check["fix"] == "backlog-ops install"


def test_a_home_open_to_others(setup, tmp_path: Path) -> None:
    home = tmp_path / "open-home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    check = problem(doctor(setup, env={"BACKLOG_HOME": str(home)})[1], "home")
    assert "0755" in check["summary"] and check["fix"] == f"chmod 700 {home}"


def test_unreachable_backends_are_named_without_their_passwords(setup) -> None:
    port = free_port()
    env = {"BACKLOG_LEDGER_URL": f"postgresql://bob:pg-s3cret@127.0.0.1:{port}/llmops?password=pg-other",
           "BACKLOG_CONTEXT_URL": f"redis://:rd-s3cret@127.0.0.1:{port}/0"}
    rc, report, err = doctor(setup, env=env)
    ledger, contexts = problem(report, "ledger"), problem(report, "contexts")
    assert f"postgresql://127.0.0.1:{port}/llmops" in ledger["summary"] and "BACKLOG_LEDGER_URL" in ledger["fix"]
    assert f"redis://127.0.0.1:{port}/0" in contexts["summary"] and "BACKLOG_CONTEXT_URL" in contexts["fix"]
    text = subprocess.run([str(BIN / "backlog-ops"), "doctor"], cwd=setup["project"], env={**setup["env"], **env},
                          capture_output=True, text=True, timeout=120)
    for output in (json.dumps(report), err, text.stdout, text.stderr):
        for secret in ("pg-s3cret", "pg-other", "rd-s3cret", "bob"):
            assert secret not in output


def test_real_backends_that_answer(setup) -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    env = {"BACKLOG_LEDGER_URL": "postgresql://postgres@127.0.0.1:5432/test", "BACKLOG_CONTEXT_URL": "redis://127.0.0.1:6379/0",
           "BACKLOG_LEDGER_SCHEMA": "doctor_never_created"}
    checks = by_name(doctor(setup, env=env)[1])
    assert checks["ledger"]["status"] == "ok" and "not created yet" in checks["ledger"]["summary"]
    assert checks["contexts"]["status"] == "ok" and checks["contexts"]["facts"]["backend"] == "redis"


def test_a_real_provider_proxy_without_our_callbacks(setup, tmp_path: Path) -> None:
    """A config routing to a real provider (the mock stands in for it), started by `backlog-ops proxy --config`.

    The proxy refuses to start while a provider key is unset, so its key is a stand-in here; what
    a status with a missing key says is checked on its own below.
    """
    with MockUpstream() as upstream:
        config = tmp_path / "litellm.yaml"
        config.write_text(yaml.safe_dump(_real_provider_config(upstream.base_url)))
        env = {"LITELLM_MASTER_KEY": "sk-doctor-" + "1" * 24, "DOCTOR_TEST_ANTHROPIC_KEY": "sk-stand-in-key"}
        with ProxyProcess(tmp_path / "real-home", config=config, env=env) as proxy:
            rc, report, _ = doctor(setup, env={"BACKLOG_GATEWAY_URL": proxy.base_url})
            mode = by_name(report)["mode"]
            assert mode["facts"]["mode"] == "providers" and mode["facts"]["missing_keys"] == []
            assert "anthropic" in mode["summary"]
            assert "ticket_tagger" in problem(report, "callbacks")["summary"]
            # doctor ran with the offline proxy's home: its master key is not this proxy's.
            assert "refuses the master key" in problem(report, "master key")["summary"]
            rc, report, _ = doctor(setup, env={"BACKLOG_GATEWAY_URL": proxy.base_url, "LITELLM_MASTER_KEY": env["LITELLM_MASTER_KEY"]})
            assert by_name(report)["master key"]["status"] == "ok"
            assert "sk-doctor-" not in json.dumps(report) and "sk-stand-in-key" not in json.dumps(report)


def test_a_status_names_each_missing_provider_key_and_never_a_value(tmp_path: Path) -> None:
    from backlog_ops.gateway.status import describe_proxy_config

    config = _real_provider_config("http://127.0.0.1:9")
    status = describe_proxy_config(config, mock=False, config_path=tmp_path / "litellm.yaml", environ={})
    assert status["mode"] == "providers" and status["providers"] == ["anthropic"]
    assert status["missing_keys"] == ["DOCTOR_TEST_ANTHROPIC_KEY"]
    status = describe_proxy_config(config, mock=False, config_path=tmp_path / "litellm.yaml",
                                   environ={"DOCTOR_TEST_ANTHROPIC_KEY": "sk-secret-value"})
    assert status["missing_keys"] == [] and "sk-secret-value" not in json.dumps(status)


def _real_provider_config(api_base: str) -> dict:
    return {
        "model_list": [{"model_name": "cheap", "litellm_params": {
            "model": "anthropic/claude-haiku-4-5", "api_base": api_base, "api_key": "os.environ/DOCTOR_TEST_ANTHROPIC_KEY"}}],
        "litellm_settings": {"callbacks": [], "num_retries": 0},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }


# -- connection strings ----------------------------------------------------------------------------


@pytest.mark.parametrize(("dsn", "shown", "secrets"), [
    ("postgresql://bob:pass-one@db.internal:5433/llmops?sslmode=require&password=pass-two", "postgresql://db.internal:5433/llmops",
     ["pass-one", "pass-two"]),
    ("redis://:pass-one@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", ["pass-one"]),
    ("host=db port=5432 dbname=llmops user=bob password=pass-one", "db:5432/llmops", ["pass-one"]),
    ("postgresql://[::1]:5432/x", "postgresql://[::1]:5432/x", []),
])
def test_connection_strings_are_shown_without_secrets(dsn: str, shown: str, secrets: list[str]) -> None:
    assert describe_dsn(dsn) == shown
    message = f"connection to {dsn} failed:\n\tpassword {' '.join(secrets)} rejected"
    cleaned = redact(message, dsn)
    assert "\n" not in cleaned and cleaned.startswith("connection to ") and cleaned.endswith("rejected")
    for secret in secrets:
        assert secret not in cleaned


def test_a_wrong_url_is_a_one_line_error() -> None:
    for url in ("http://[::1", "ftp://127.0.0.1:4000", "127.0.0.1:4000", "http://127.0.0.1:99999"):
        r = subprocess.run([str(BIN / "backlog-ops"), "doctor", "--url", url], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "--url" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_something_that_is_not_a_proxy(setup) -> None:
    with MockUpstream() as upstream:  # answers HTTP, 404 to every GET
        check = problem(doctor(setup, env={"BACKLOG_GATEWAY_URL": upstream.base_url})[1], "proxy")
    assert "not as a LiteLLM proxy" in check["summary"] and "HTTP 404" in check["summary"] and "URL" in check["fix"]
