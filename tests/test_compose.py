"""docker-compose.yml, validated by a real compose implementation (Debian's docker-compose).

No Docker engine runs here, so the stack is validated, not run: `docker-compose config` parses
and resolves the file as `up` would, and these tests check what it resolved to.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from backlog_ops.gateway.lint import check_proxy_config

from conftest import in_ci

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.prod.example"
ENV_DEV = REPO / ".env.dev.example"
PROVIDER_KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GROQ_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS")


def compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is not installed (apt-get install docker-compose)"
        if in_ci():
            pytest.fail(message + "; CI=true: the compose validation must run, not skip")
        pytest.skip(message)
    return binary


def filled_env(tmp_path: Path, example: Path = ENV_EXAMPLE, **overrides: str) -> Path:
    """.env.prod.example (or another example) with its secrets filled in, as a user would."""
    toolkit_home = tmp_path / "toolkit-home"
    toolkit_home.mkdir(exist_ok=True)
    values = {
        "LITELLM_MASTER_KEY": "sk-master-test",
        "LITELLM_POSTGRES_PASSWORD": "pg-test",
        "REDIS_PASSWORD": "redis-test",
        "BACKLOG_TOOLKIT_HOME": str(toolkit_home),
        "LANGFUSE_PUBLIC_KEY": "pk-lf-test", "LANGFUSE_SECRET_KEY": "sk-lf-test", "LANGFUSE_HOST": "http://langfuse:3000",
        **overrides,
    }
    lines = []
    for line in example.read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={values[key]}" if "=" in line and not line.startswith("#") and key in values else line)
    path = tmp_path / f"test{example.name}"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_compose(env_file: Path, *args: str) -> subprocess.CompletedProcess:
    # Only PATH and HOME from our environment: a developer's exported keys must not leak in.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        [compose_binary(), "--env-file", str(env_file), "-f", str(COMPOSE), "--profile", "nats", "--profile", "otel",
         "--profile", "phoenix", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:
    result = run_compose(filled_env(tmp_path_factory.mktemp("compose")), "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid_with_every_profile(resolved) -> None:
    assert set(resolved["services"]) == {"litellm", "postgres", "redis", "nats", "otel-collector", "phoenix"}
    assert resolved["services"]["phoenix"]["profiles"] == ["phoenix"]
    assert resolved["services"]["nats"]["profiles"] == ["nats"]
    assert resolved["services"]["otel-collector"]["profiles"] == ["otel"]
    assert "profiles" not in resolved["services"]["litellm"]


def test_images_are_pinned(resolved) -> None:
    for name, service in resolved["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert tag and tag not in ("latest", "main-latest", "main-stable"), (name, image)
        assert re.search(r"\d", tag), (name, image)
    base = resolved["services"]["litellm"]["build"]["args"]["LITELLM_IMAGE"]
    assert base == "ghcr.io/berriai/litellm:main-v1.106.12"
    pinned = re.search(r"litellm\[proxy\]>=([\d.]+)", (REPO / "pyproject.toml").read_text()).group(1)
    assert base.endswith(pinned), "the image must run the LiteLLM version the tests pin"


def test_every_mounted_path_and_build_input_exists(resolved) -> None:
    for name, service in resolved["services"].items():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict) and volume.get("type") == "bind":
                assert Path(volume["source"]).exists(), (name, volume)
    build = resolved["services"]["litellm"]["build"]
    context = Path(build["context"])
    dockerfile = context / build["dockerfile"]
    assert dockerfile.is_file()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (context / source).exists(), f"{dockerfile.name}: COPY {source}: missing"
    assert "/.venv" in "/" + (REPO / ".dockerignore").read_text() or ".venv" in (REPO / ".dockerignore").read_text()


def test_config_and_toolkit_home_are_read_only_and_the_config_checks(resolved) -> None:
    litellm = resolved["services"]["litellm"]
    mounts = {v["target"]: v for v in litellm["volumes"]}
    assert mounts["/etc/backlog-ops"]["read_only"] is True
    assert mounts["/root/.backlog-toolkit"]["read_only"] is True
    assert litellm["environment"]["BACKLOG_HOME"] == "/root/.backlog-toolkit"
    config_arg = litellm["command"][litellm["command"].index("--config") + 1]
    host_config = Path(mounts["/etc/backlog-ops"]["source"]) / Path(config_arg).relative_to("/etc/backlog-ops")
    assert host_config.is_file() and check_proxy_config(host_config) == []
    assert mounts["/root/.backlog-toolkit"]["source"].endswith("toolkit-home")


def test_ports_are_published_on_loopback_only(resolved) -> None:
    for name, service in resolved["services"].items():
        for port in service.get("ports", []):
            text = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
            assert text.startswith("127.0.0.1:"), (name, port)


def test_healthchecks_and_startup_order(resolved) -> None:
    services = resolved["services"]
    for name in ("litellm", "postgres", "redis", "nats", "otel-collector", "phoenix"):
        assert services[name]["healthcheck"]["test"], name
    assert "/health/liveliness" in " ".join(services["litellm"]["healthcheck"]["test"])
    assert services["litellm"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }


def test_variable_strategy_keeps_keys_where_they_belong(resolved) -> None:
    services = resolved["services"]
    for name, service in services.items():
        env = service.get("environment") or {}
        if name != "litellm":
            assert not set(env) & {*PROVIDER_KEYS, "LITELLM_MASTER_KEY"}, f"{name} must not see provider or master keys"
    litellm_env = services["litellm"]["environment"]
    assert set(PROVIDER_KEYS) <= set(litellm_env) and litellm_env["LITELLM_MASTER_KEY"] == "sk-master-test"
    assert "LITELLM_API_KEY" not in litellm_env, "the virtual key is the applications', not the proxy's"
    text = ENV_EXAMPLE.read_text()
    assert re.search(r"^LITELLM_API_KEY=$", text, re.M) and "virtual key" in text
    for key in ("LITELLM_MASTER_KEY", "LITELLM_POSTGRES_PASSWORD", "REDIS_PASSWORD", *PROVIDER_KEYS):
        assert re.search(rf"^{key}=$", text, re.M), f".env.example must ship {key} empty"
    # The compose file itself holds no secret, only references.
    compose_text = COMPOSE.read_text()
    assert "sk-" not in compose_text.replace("sk-...", "")


def test_missing_secrets_are_refused_by_name(tmp_path: Path) -> None:
    result = run_compose(filled_env(tmp_path, LITELLM_MASTER_KEY=""), "config")
    assert result.returncode != 0
    assert "set LITELLM_MASTER_KEY in .env" in result.stderr


def test_the_langfuse_callback_without_its_keys_is_refused(tmp_path: Path) -> None:
    # production.yaml lists langfuse: without keys LiteLLM would send every call to Langfuse's cloud.
    result = run_compose(filled_env(tmp_path, LANGFUSE_PUBLIC_KEY=""), "config")
    assert result.returncode != 0 and "set LANGFUSE_PUBLIC_KEY in .env" in result.stderr


# --- the stack as the design lays it out: mounted callbacks, store_model_in_db, .env files, make ---

MAKE_TARGETS = ("litellm_setup", "litellm_ui", "litellm_logs", "litellm_restart", "litellm_reset")


def test_both_env_examples_resolve_and_differ_only_where_they_should(tmp_path: Path) -> None:
    dev = run_compose(filled_env(tmp_path, ENV_DEV), "config")
    assert dev.returncode == 0, dev.stderr
    services = yaml.safe_load(dev.stdout)["services"]
    assert services["litellm"]["environment"]["LITELLM_ENVIRONMENT"] == "development"
    keys = lambda p: [l.split("=", 1)[0] for l in p.read_text().splitlines() if "=" in l and not l.startswith("#")]  # noqa: E731
    assert keys(ENV_DEV) == keys(ENV_EXAMPLE), "the two examples set the same variables"
    assert "make litellm_setup" in ENV_DEV.read_text() and "make litellm_setup" in ENV_EXAMPLE.read_text()


def test_callbacks_are_mounted_with_the_images_copy_as_fallback(resolved) -> None:
    litellm = resolved["services"]["litellm"]
    mounts = {v["target"]: v for v in litellm["volumes"]}
    live = litellm["environment"]["BACKLOG_CALLBACKS_DIR"]
    assert mounts[live]["read_only"] is True and Path(mounts[live]["source"]) == REPO / "callbacks"
    assert "COPY callbacks" in (REPO / "docker" / "litellm.Dockerfile").read_text()  # the fallback in the image


def _imported_from(callbacks_dir: str | None) -> dict:
    """Where the real import (the one LiteLLM does for a config's callbacks) finds two modules."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("BACKLOG_CALLBACKS_DIR", None)
    if callbacks_dir is not None:
        env["BACKLOG_CALLBACKS_DIR"] = callbacks_dir
    code = ("import importlib, json; t = importlib.import_module('backlog_ops.callbacks.ticket_tagger'); "
            "s = importlib.import_module('backlog_ops.callbacks.spend_ledger'); "
            "print(json.dumps({'tagger': t.__file__, 'ledger': s.__file__, 'marker': getattr(t, 'LIVE_MARKER', None)}))")
    out = subprocess.run([os.sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_mounted_callback_runs_first_and_a_missing_one_falls_back(tmp_path: Path) -> None:
    live = tmp_path / "live-callbacks"
    live.mkdir()
    (live / "__init__.py").write_text("")
    (live / "ticket_tagger.py").write_text((REPO / "callbacks" / "ticket_tagger.py").read_text() + "\nLIVE_MARKER = 'mounted'\n")
    found = _imported_from(str(live))
    assert found["tagger"] == str(live / "ticket_tagger.py") and found["marker"] == "mounted"
    assert Path(found["ledger"]).name == "spend_ledger.py" and Path(found["ledger"]).parent != live  # the fallback
    missing = _imported_from(str(tmp_path / "not-mounted"))  # no volume: the image's own copy
    assert missing["marker"] is None and Path(missing["tagger"]).parent != tmp_path / "not-mounted"


def test_store_model_in_db_as_designed(resolved) -> None:
    assert resolved["services"]["litellm"]["environment"]["STORE_MODEL_IN_DB"] == "True"
    production = yaml.safe_load((REPO / "config" / "production.yaml").read_text())
    assert production["general_settings"]["store_model_in_db"] is True


def dry_run(target: str, **variables: str) -> list[str]:
    """The command lines `make -n TARGET` would run (the install step, if due, left out)."""
    args = ["make", "-n", "--no-print-directory", target, *(f"{k}={v}" for k, v in variables.items())]
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [l for l in out.stdout.splitlines() if l and "pip install" not in l and not l.startswith(("python3 -m venv", "touch "))]


@pytest.mark.parametrize("target", MAKE_TARGETS)
def test_every_litellm_make_target_has_a_valid_command_line(target: str, resolved) -> None:
    lines = dry_run(target, COMPOSE="docker-compose")
    assert lines, target
    services = set(resolved["services"])
    for line in lines:
        syntax = subprocess.run(["bash", "-n", "-c", line], capture_output=True, text=True)
        assert syntax.returncode == 0, (line, syntax.stderr)
        if line.startswith("docker-compose "):
            words = line.split()
            assert words[1] in ("logs", "restart", "stop", "up", "exec"), line
            named = [w for w in words[2:] if w in services]
            assert named and named[0] in ("litellm", "postgres"), line


def test_the_make_targets_do_what_the_design_says(resolved) -> None:
    assert dry_run("litellm_logs") == ["docker compose logs -f litellm"]
    assert dry_run("litellm_restart") == ["docker compose restart litellm"]
    setup = dry_run("litellm_setup")
    assert any("backlog-ops keys setup config/virtual_keys.yaml" in l and ". ./.env" in l for l in setup)
    assert (REPO / "config" / "virtual_keys.yaml").is_file()
    assert "/ui" in " ".join(dry_run("litellm_ui"))
    reset = dry_run("litellm_reset")
    drop = next(l for l in reset if "DROP SCHEMA" in l)
    db = resolved["services"]["postgres"]["environment"]
    assert f"-U {db['POSTGRES_USER']} -d {db['POSTGRES_DB']}" in drop and "DROP SCHEMA public CASCADE" in drop
    ledger_schema = resolved["services"]["litellm"]["environment"]["BACKLOG_LEDGER_SCHEMA"]
    assert ledger_schema != "public" and ledger_schema not in drop  # the ledger survives a reset
    assert reset.index(next(l for l in reset if " stop litellm" in l)) < reset.index(drop) < reset.index(
        next(l for l in reset if " up -d litellm" in l))
    assert any("sleep 5" in l for l in reset) and any("litellm_setup" in l for l in reset)


def test_traces_go_to_the_collector_or_to_phoenix(resolved, tmp_path: Path) -> None:
    litellm = resolved["services"]["litellm"]["environment"]
    assert (litellm["OTEL_EXPORTER"], litellm["OTEL_ENDPOINT"]) == ("otlp_http", "http://otel-collector:4318/v1/traces")
    phoenix = run_compose(filled_env(tmp_path, OTEL_ENDPOINT="http://phoenix:6006/v1/traces"), "config")
    assert phoenix.returncode == 0, phoenix.stderr
    services = yaml.safe_load(phoenix.stdout)["services"]
    assert services["litellm"]["environment"]["OTEL_ENDPOINT"] == "http://phoenix:6006/v1/traces"
    published = [p if isinstance(p, str) else f"{p.get('host_ip')}:{p.get('published')}:{p.get('target')}" for p in services["phoenix"]["ports"]]
    assert any(p.startswith("127.0.0.1:") and p.split("/")[0].endswith(":6006") for p in published), published
