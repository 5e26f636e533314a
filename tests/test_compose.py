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
ENV_EXAMPLE = REPO / ".env.example"
PROVIDER_KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GROQ_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS")


def compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is not installed (apt-get install docker-compose)"
        if in_ci():
            pytest.fail(message + "; CI=true: the compose validation must run, not skip")
        pytest.skip(message)
    return binary


def filled_env(tmp_path: Path, **overrides: str) -> Path:
    """.env.example with its secrets filled in, as a user would."""
    toolkit_home = tmp_path / "toolkit-home"
    toolkit_home.mkdir(exist_ok=True)
    values = {
        "LITELLM_MASTER_KEY": "sk-master-test",
        "LITELLM_POSTGRES_PASSWORD": "pg-test",
        "REDIS_PASSWORD": "redis-test",
        "BACKLOG_TOOLKIT_HOME": str(toolkit_home),
        **overrides,
    }
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={values[key]}" if "=" in line and not line.startswith("#") and key in values else line)
    path = tmp_path / "test.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_compose(env_file: Path, *args: str) -> subprocess.CompletedProcess:
    # Only PATH and HOME from our environment: a developer's exported keys must not leak in.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        [compose_binary(), "--env-file", str(env_file), "-f", str(COMPOSE), "--profile", "nats", "--profile", "otel", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:
    result = run_compose(filled_env(tmp_path_factory.mktemp("compose")), "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid_with_every_profile(resolved) -> None:
    assert set(resolved["services"]) == {"litellm", "postgres", "redis", "nats", "otel-collector"}
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
    for name in ("litellm", "postgres", "redis", "nats", "otel-collector"):
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
