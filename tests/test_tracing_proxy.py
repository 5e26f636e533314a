"""OpenTelemetry and Langfuse through the REAL proxy running the shipped production config.

config/production.yaml lists LiteLLM's `otel` callback, backlog-ops' `otel_spans` and LiteLLM's
`langfuse` success/failure callbacks. The test starts the proxy on that config (deployments
pointed at the mock provider, the cache at the local Redis) with:

  - OTEL_EXPORTER=otlp_http, OTEL_ENDPOINT → a local OTLP/HTTP receiver (tests/otlp_receiver.py,
    which decodes the protobuf with opentelemetry-proto). It stands in for the OpenTelemetry
    collector of docker-compose.yml and for Phoenix, which the design points OTEL_ENDPOINT at
    (Phoenix is an OTLP receiver: the same exporter, the same payload);
  - LANGFUSE_HOST → a local stand-in of Langfuse's ingestion API. LiteLLM 1.106's langfuse callback
    uses the langfuse SDK 4.x, which sends OTLP/HTTP protobuf to POST /api/public/otel/v1/traces
    with Basic auth (public key : secret key) and `x-langfuse-ingestion-version: 4`; the stand-in
    checks the credentials and the payload against Langfuse's documented OTel attribute mapping
    (langfuse.observation.type, langfuse.trace.tags, ...).

A tagged call must then arrive at both, carrying ticket / gate / agent.
"""

from __future__ import annotations

import json
import os
import uuid

import httpx
import pytest
import yaml

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
pytest.importorskip("opentelemetry.proto")
pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("langfuse")

from backlog_ops.context.file_store import ContextStore  # noqa: E402
from backlog_ops.context.scope import Scope  # noqa: E402
from backlog_ops.gateway.lint import config_dir, load_proxy_config  # noqa: E402
from backlog_ops.gateway.process import ProxyProcess  # noqa: E402
from backlog_ops.testing.mock_upstream import MockUpstream  # noqa: E402

from conftest import require_service  # noqa: E402
from otlp_receiver import OtlpReceiver  # noqa: E402

PUBLIC, SECRET = "pk-lf-" + uuid.uuid4().hex[:8], "sk-lf-" + uuid.uuid4().hex[:8]

# Langfuse's OTel ingestion (langfuse.com/integrations/native/opentelemetry, the "property mapping"):
# a generation is a span with these attributes; trace-level fields ride on it as langfuse.trace.*.
LANGFUSE_GENERATION = {
    "type": "object",
    "required": ["langfuse.observation.type", "langfuse.observation.model.name", "langfuse.observation.usage_details",
                 "langfuse.trace.tags"],
    "properties": {
        "langfuse.observation.type": {"enum": ["generation", "span", "event"]},
        "langfuse.observation.level": {"enum": ["DEBUG", "DEFAULT", "WARNING", "ERROR"]},
        "langfuse.observation.model.name": {"type": "string", "minLength": 1},
        "langfuse.observation.usage_details": {"type": "string", "contentMediaType": "application/json"},
        "langfuse.observation.cost_details": {"type": "string"},
        "langfuse.observation.input": {"type": "string"},
        "langfuse.observation.output": {"type": "string"},
        "langfuse.trace.tags": {"type": "array", "items": {"type": "string"}},
        "langfuse.trace.name": {"type": "string"},
        "langfuse.trace.user.id": {"type": "string"},
        "langfuse.trace.session.id": {"type": "string"},
    },
}


def production_on_mock(directory, upstream_url: str, namespace: str):
    """config/production.yaml (providers inlined) with every deployment on the mock provider."""
    config = load_proxy_config(config_dir() / "production.yaml")
    for dep in config["model_list"]:
        dep["litellm_params"]["api_base"] = upstream_url
        dep["litellm_params"]["api_key"] = "mock"
    config["litellm_settings"]["cache_params"]["namespace"] = namespace
    path = directory / "production-on-mock.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, config


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    require_service("Redis", "127.0.0.1", 6379)  # production.yaml's response cache
    root = tmp_path_factory.mktemp("tracing")
    namespace = "backlog-tracing-" + uuid.uuid4().hex[:8]
    with MockUpstream(prompt_tokens=400, completion_tokens=50) as up, OtlpReceiver() as otel, \
            OtlpReceiver(auth=(PUBLIC, SECRET)) as langfuse:
        path, config = production_on_mock(root, up.base_url, namespace)
        env = {
            "LITELLM_MASTER_KEY": "sk-test-" + uuid.uuid4().hex,
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379",
            "OTEL_EXPORTER": "otlp_http", "OTEL_ENDPOINT": otel.url + "/v1/traces",
            "LANGFUSE_HOST": langfuse.url, "LANGFUSE_PUBLIC_KEY": PUBLIC, "LANGFUSE_SECRET_KEY": SECRET,
            "LANGFUSE_FLUSH_INTERVAL": "1",
        }
        proc = ProxyProcess(root / "home", config=path, env=env)
        for var in ("DATABASE_URL", "REDIS_PASSWORD", "LITELLM_ENVIRONMENT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            proc.env.pop(var, None)
        proc.start()
        proc.otel, proc.langfuse, proc.config = otel, langfuse, config
        try:
            sid = str(uuid.uuid4())
            ContextStore(root / "home").set({"ticket_id": "TRC-7", "gate": "review", "agent_type": "reviewer",
                                             "project": "my-api"}, Scope(sid))
            r = httpx.post(f"{proc.base_url}/v1/chat/completions", timeout=60,
                           headers={"authorization": f"Bearer {proc.master_key}", "x-backlog-session": sid},
                           json={"model": "cheap", "messages": [{"role": "user", "content": f"trace me {uuid.uuid4()}"}]})
            assert r.status_code == 200, r.text[:300]
            proc.call_id = r.headers["x-litellm-call-id"]
            yield proc
        finally:
            proc.stop()
            import redis

            client = redis.Redis(host="127.0.0.1", port=6379)
            keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
            if keys:
                client.delete(*keys)


def test_the_shipped_production_config_enables_otel_and_langfuse() -> None:
    settings = load_proxy_config(config_dir() / "production.yaml")["litellm_settings"]
    assert "otel" in settings["callbacks"] and "backlog_ops.callbacks.otel_spans.otel_spans" in settings["callbacks"]
    assert settings["success_callback"] == ["langfuse"] and settings["failure_callback"] == ["langfuse"]


def test_a_proxied_call_exports_an_otlp_span_with_the_ticket_context(traced) -> None:
    spans = traced.otel.wait_for(lambda s: s["name"] == "backlog.llm_call" and s["attributes"].get("litellm.call_id") == traced.call_id)
    assert len(spans) == 1, [s["name"] for s in traced.otel.spans]
    attrs = spans[0]["attributes"]
    assert (attrs["backlog.ticket_id"], attrs["backlog.gate"], attrs["backlog.agent_type"], attrs["backlog.project"]) == (
        "TRC-7", "review", "reviewer", "my-api")
    assert attrs["gen_ai.request.model"] == "cheap" and attrs["gen_ai.usage.input_tokens"] == 400
    assert attrs["backlog.cost_usd"] > 0 and spans[0]["end"] >= spans[0]["start"] > 0
    # LiteLLM's own span of the same call went the same way, in the same trace as ours.
    litellm_spans = traced.otel.wait_for(lambda s: s["name"] == "litellm_request")
    assert litellm_spans and all(s["path"] == "/v1/traces" for s in traced.otel.spans)
    assert "application/x-protobuf" in spans[0]["headers"]["content-type"]


def test_langfuse_receives_a_generation_whose_trace_carries_the_ticket_tags(traced) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    spans = traced.langfuse.wait_for(lambda s: s["attributes"].get("langfuse.observation.type") == "generation")
    assert spans, f"nothing reached the Langfuse stand-in (rejected: {traced.langfuse.rejected})"
    assert not traced.langfuse.rejected, "every request carried the project's Basic credentials"
    ours = [s for s in spans if traced.call_id in json.dumps(s["attributes"])]
    assert len(ours) == 1
    span = ours[0]
    jsonschema.validate(span["attributes"], LANGFUSE_GENERATION)
    assert span["path"] == "/api/public/otel/v1/traces"
    assert span["headers"]["x-langfuse-ingestion-version"] == "4"
    assert span["headers"]["x-langfuse-public-key"] == PUBLIC
    tags = span["attributes"]["langfuse.trace.tags"]
    assert {"ticket:TRC-7", "gate:review", "agent:reviewer", "project:my-api"} <= set(tags)
    usage = json.loads(span["attributes"]["langfuse.observation.usage_details"])
    assert (usage["input"], usage["output"]) == (400, 50)


def test_langfuse_listed_without_its_keys_is_refused_at_start(tmp_path) -> None:
    """Without the keys LiteLLM would send every call to Langfuse's cloud: `backlog-ops proxy` refuses."""
    import subprocess
    import sys

    path, _ = production_on_mock(tmp_path, "http://127.0.0.1:9", "unused")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANGFUSE_")}
    env.update(LITELLM_MASTER_KEY="sk-test-x", BACKLOG_HOME=str(tmp_path / "home"))
    done = subprocess.run([sys.executable, "-m", "backlog_ops.cli.main", "proxy", "--config", str(path), "--port", "1"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "lists langfuse but LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are not set" in done.stderr
    assert "Traceback" not in done.stderr and "Uvicorn running" not in done.stderr
