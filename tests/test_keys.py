"""`backlog-ops keys`: setup / list / revoke against a fake key API checked against the real proxy.

LiteLLM's key API needs its database, which cannot run here. The tests therefore run the client
against tests/fake_key_api.py, and validate every request the client sent and every documented
response the fake gave against the OpenAPI document that a REAL running proxy serves
(`GET /openapi.json`, fetched once per module): if LiteLLM renames or drops a field we send or
read, these tests fail. Unknown fields fail too (the check is stricter than the schema, which
allows extra properties that the proxy would silently ignore).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from pathlib import Path

import httpx
import jsonschema
import pytest

from backlog_ops.cli.main import main
from backlog_ops.errors import ConfigError
from backlog_ops.gateway.keys_file import load_keys_file
from backlog_ops.gateway.process import free_port

from fake_key_api import FakeKeyAPI
from proxy_support import start_proxy, write_config

REPO = Path(__file__).resolve().parent.parent
MASTER = "sk-master-" + secrets.token_hex(16)

TENANTS_YAML = """
defaults:
  models: [cheap]
  metadata: {platform_id: dcoder-main}
keys:
  - alias: backlog-dev
    env: LITELLM_API_KEY
    metadata: {environment: dev}
  - key: tenant-123-key            # the service brief's shape
    team_id: tenant-123
    metadata: {tenant_id: tenant-123-uuid, tenant_name: Example Corp}
    budget: 1000.0
    budget_duration: 1mo
    duration: 30d
    models: [balanced, frontier]
    max_parallel_requests: 10
    tpm_limit: 100000
    rpm_limit: 1000
"""


# --------------------------------------------------------------------------------------------
# The real proxy and its OpenAPI document
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_proxy(tmp_path_factory):
    """A real `backlog-ops proxy` (no database, as everywhere here), its /openapi.json and an error."""
    root = tmp_path_factory.mktemp("real-proxy")
    config = write_config(root / "cfg", "http://127.0.0.1:9", ours=False)
    proxy = start_proxy(root / "home", config)
    try:
        doc = httpx.get(f"{proxy.base_url}/openapi.json", timeout=120).json()
        error = httpx.get(f"{proxy.base_url}/key/list", headers={"Authorization": f"Bearer {proxy.master_key}"}, timeout=30)
        yield proxy, doc, error
    finally:
        proxy.stop()


class OpenAPICheck:
    """Validates requests and responses against an OpenAPI 3.1 document (JSON Schema 2020-12)."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc

    def operation(self, method: str, path: str) -> dict:
        assert path in self.doc["paths"], f"{path} is not in the proxy's OpenAPI document"
        op = self.doc["paths"][path].get(method.lower())
        assert op is not None, f"{method} {path} is not in the proxy's OpenAPI document"
        return op

    def resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.doc["components"]["schemas"][name]
        return schema

    def validate(self, schema: dict, instance, what: str) -> None:
        root = {**schema, "components": self.doc["components"]}
        errors = sorted(jsonschema.Draft202012Validator(root).iter_errors(instance), key=str)
        assert not errors, f"{what}: {errors[0].message} at {list(errors[0].absolute_path)}"
        strict = self.unknown_fields(schema, instance)
        assert not strict, f"{what}: fields the proxy does not document: {strict}"

    def unknown_fields(self, schema: dict, instance, where: str = "") -> list[str]:
        schema = self.resolve(schema)
        for combinator in ("anyOf", "oneOf"):
            if combinator in schema:
                results = []
                for branch in schema[combinator]:
                    branch_root = {**branch, "components": self.doc["components"]}
                    if jsonschema.Draft202012Validator(branch_root).is_valid(instance):
                        results.append(self.unknown_fields(branch, instance, where))
                return min(results, key=len) if results else []
        found: list[str] = []
        if isinstance(instance, dict) and "properties" in schema:
            for name, value in instance.items():
                if name not in schema["properties"]:
                    found.append(f"{where}{name}")
                else:
                    found += self.unknown_fields(schema["properties"][name], value, f"{where}{name}.")
        elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for i, item in enumerate(instance):
                found += self.unknown_fields(schema["items"], item, f"{where}[{i}].")
        return found

    def check_request(self, ex) -> None:
        op = self.operation(ex.method, ex.path)
        params = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
        for name, values in ex.query.items():
            assert name in params, f"{ex.method} {ex.path}: query parameter {name!r} is not documented"
            schema = params[name]["schema"]
            for value in values:
                self.validate(schema, _coerce(value, self.resolve(schema), self), f"{ex.path}?{name}")
        if "requestBody" in op:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            self.validate(schema, ex.body, f"{ex.method} {ex.path} request body")
        else:
            assert ex.body is None, f"{ex.method} {ex.path} takes no body"

    def check_response(self, ex) -> bool:
        """Validates the response when the document describes it; True when it did."""
        op = self.operation(ex.method, ex.path)
        described = op["responses"].get(str(ex.status))
        schema = ((described or {}).get("content", {}).get("application/json") or {}).get("schema")
        if not schema:
            return False
        self.validate(schema, ex.response, f"{ex.method} {ex.path} {ex.status} response")
        return True


def _coerce(value: str, schema: dict, check: OpenAPICheck):
    """A query string value as the type the parameter's schema wants."""
    kinds = {check.resolve(s).get("type") for s in schema.get("anyOf", [schema])}
    if "integer" in kinds and value.lstrip("-").isdigit():
        return int(value)
    if "boolean" in kinds and value in ("true", "false"):
        return value == "true"
    return value


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("LITELLM_MASTER_KEY", MASTER)
    monkeypatch.delenv("LITELLM_BASE_URL", raising=False)
    with FakeKeyAPI(MASTER) as api:
        yield api


@pytest.fixture
def keys_file(tmp_path) -> Path:
    path = tmp_path / "virtual_keys.yaml"
    path.write_text(TENANTS_YAML)
    return path


def keys(*args: str) -> int:
    return main(["keys", *args])


# --------------------------------------------------------------------------------------------
# The fake against the real document
# --------------------------------------------------------------------------------------------


@pytest.mark.proxy
def test_every_exchange_matches_the_real_proxys_openapi_document(real_proxy, fake, keys_file, capsys):
    """setup, setup again, list, list --json, revoke: each request and documented response is valid."""
    _, doc, _ = real_proxy
    assert keys("setup", str(keys_file), "--url", fake.base_url, "--wait", "5") == 0
    assert keys("setup", str(keys_file), "--url", fake.base_url, "--wait", "5") == 0
    assert keys("list", "--url", fake.base_url) == 0
    assert keys("list", "--url", fake.base_url, "--json") == 0
    assert keys("revoke", "backlog-dev", "--url", fake.base_url) == 0
    # /key/info is part of the fake too (the brief's monitoring uses it): exercise it once
    token = next(iter(fake.keys))
    assert httpx.get(f"{fake.base_url}/key/info", params={"key": token}, headers={"Authorization": f"Bearer {MASTER}"}).status_code == 200

    check = OpenAPICheck(doc)
    seen = {(ex.method, ex.path) for ex in fake.exchanges}
    assert {("GET", "/health/readiness"), ("POST", "/key/generate"), ("GET", "/key/list"), ("POST", "/key/delete"), ("GET", "/key/info")} <= seen
    validated = set()
    for ex in fake.exchanges:
        check.check_request(ex)
        if check.check_response(ex):
            validated.add(ex.path)
    # The document describes these two responses (GenerateKeyResponse, KeyListResponseObject).
    assert {"/key/generate", "/key/list"} <= validated
    capsys.readouterr()


@pytest.mark.proxy
def test_the_checker_rejects_a_field_the_proxy_does_not_have(real_proxy):
    """The check is not vacuous: a misspelt field or a wrong type is caught."""
    from fake_key_api import Exchange

    check = OpenAPICheck(real_proxy[1])
    with pytest.raises(AssertionError, match="max_budgett"):
        check.check_request(Exchange("POST", "/key/generate", {}, {}, {"key_alias": "a", "max_budgett": 1}))
    with pytest.raises(AssertionError, match="request body"):
        check.check_request(Exchange("POST", "/key/generate", {}, {}, {"key_alias": "a", "rpm_limit": "many"}))
    with pytest.raises(AssertionError, match="alias"):
        check.check_request(Exchange("GET", "/key/list", {"alias": ["a"]}, {}, None))


@pytest.mark.proxy
def test_the_fakes_errors_have_the_real_proxys_envelope(real_proxy, fake):
    _, _, real_error = real_proxy
    assert real_error.status_code == 500
    fake.db = "Not connected"
    fake_error = httpx.get(f"{fake.base_url}/key/list", headers={"Authorization": f"Bearer {MASTER}"})
    assert fake_error.status_code == real_error.status_code
    assert fake_error.json() == real_error.json()  # the same message, type, param and code


@pytest.mark.proxy
def test_setup_against_the_real_proxy_explains_the_missing_database(real_proxy, keys_file, monkeypatch, capsys, caplog):
    proxy = real_proxy[0]
    monkeypatch.setenv("LITELLM_MASTER_KEY", proxy.master_key)
    caplog.set_level(logging.DEBUG)
    assert keys("setup", str(keys_file), "--url", proxy.base_url, "--wait", "5") == 1
    out, err = capsys.readouterr()
    assert "has no database" in err and "DATABASE_URL" in err
    assert proxy.master_key not in out + err + caplog.text
    # list answers with LiteLLM's own error, still without the key
    assert keys("list", "--url", proxy.base_url) == 1
    out, err = capsys.readouterr()
    assert "Database not connected" in err
    assert proxy.master_key not in out + err + caplog.text


# --------------------------------------------------------------------------------------------
# Behaviour
# --------------------------------------------------------------------------------------------


def test_setup_creates_every_key_and_prints_its_env_line(fake, keys_file, capsys):
    assert keys("setup", str(keys_file), "--url", fake.base_url, "--wait", "5") == 0
    out, err = capsys.readouterr()
    secrets_by_alias = {ex.response["key_alias"]: ex.response["key"] for ex in fake.exchanges if ex.path == "/key/generate"}
    assert out.splitlines()[1:] == [
        f"LITELLM_API_KEY={secrets_by_alias['backlog-dev']}",
        f"TENANT_123_KEY={secrets_by_alias['tenant-123-key']}",
    ]
    assert "2 created, 0 already there" in err
    bodies = {ex.body["key_alias"]: ex.body for ex in fake.exchanges if ex.path == "/key/generate"}
    assert bodies["backlog-dev"] == {
        "key_alias": "backlog-dev",
        "models": ["cheap"],
        "metadata": {"platform_id": "dcoder-main", "environment": "dev"},
    }
    assert bodies["tenant-123-key"] == {
        "key_alias": "tenant-123-key",
        "team_id": "tenant-123",
        "max_budget": 1000.0,
        "budget_duration": "1mo",
        "duration": "30d",
        "models": ["balanced", "frontier"],
        "rpm_limit": 1000,
        "tpm_limit": 100000,
        "max_parallel_requests": 10,
        "metadata": {"platform_id": "dcoder-main", "tenant_id": "tenant-123-uuid", "tenant_name": "Example Corp"},
    }
    assert "key" not in bodies["tenant-123-key"]  # the brief's `key:` is the alias, never a chosen secret


def test_setup_is_idempotent(fake, keys_file, capsys):
    assert keys("setup", str(keys_file), "--url", fake.base_url) == 0
    capsys.readouterr()
    assert keys("setup", str(keys_file), "--url", fake.base_url) == 0
    out, err = capsys.readouterr()
    assert fake.aliases() == ["backlog-dev", "tenant-123-key"]  # no duplicates
    assert sum(ex.path == "/key/generate" for ex in fake.exchanges) == 2
    assert "0 created, 2 already there" in err
    assert not re.search(r"^[A-Z_]+=", out, re.M)  # nothing to paste: LiteLLM never returns an old secret
    assert "# LITELLM_API_KEY: key 'backlog-dev' exists already" in out
    # one revoked key is created again, the other is left alone
    assert keys("revoke", "backlog-dev", "--url", fake.base_url) == 0
    assert keys("setup", str(keys_file), "--url", fake.base_url) == 0
    out, err = capsys.readouterr()
    assert re.search(r"^LITELLM_API_KEY=sk-", out, re.M) and "1 created, 1 already there" in err
    assert fake.aliases() == ["backlog-dev", "tenant-123-key"]


def test_setup_waits_for_readiness_with_a_bounded_retry(fake, keys_file, capsys):
    fake.not_ready_times = 2
    assert keys("setup", str(keys_file), "--url", fake.base_url, "--wait", "10") == 0
    assert fake.readiness_calls == 3
    assert "waiting for" in capsys.readouterr().err


def test_setup_gives_up_when_nothing_answers(keys_file, monkeypatch, capsys):
    monkeypatch.setenv("LITELLM_MASTER_KEY", MASTER)
    url = f"http://127.0.0.1:{free_port()}"
    assert keys("setup", str(keys_file), "--url", url, "--wait", "1.5") == 1
    err = capsys.readouterr().err
    assert "waiting for" in err and "ConnectError" in err
    assert err.splitlines()[-1] == (f"backlog-ops: error: no proxy answers at {url} (connection refused: nothing listens there): "
                                    "start it with `backlog-ops proxy` (or `backlog-ops proxy --config litellm.yaml`), "
                                    "or pass --url with the proxy's address")


@pytest.mark.parametrize("action", [["list"], ["list", "--json"], ["revoke", "backlog-dev"]])
def test_a_proxy_that_is_down_is_named_with_how_to_start_it(action, monkeypatch, capsys):
    monkeypatch.setenv("LITELLM_MASTER_KEY", MASTER)
    url = f"http://127.0.0.1:{free_port()}"
    assert keys(*action, "--url", url) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert f"no proxy answers at {url}" in err and "start it with `backlog-ops proxy`" in err


def test_no_master_key_and_no_proxy_says_start_the_proxy(monkeypatch, capsys, backlog_home):
    monkeypatch.delenv("LITELLM_MASTER_KEY", raising=False)
    monkeypatch.delenv("LITELLM_BASE_URL", raising=False)
    url = f"http://127.0.0.1:{free_port()}"
    assert keys("list", "--url", url) == 1
    assert "start it with `backlog-ops proxy`" in capsys.readouterr().err


def test_the_wait_takes_the_duration_grammar(fake, keys_file, capsys):
    assert keys("setup", str(keys_file), "--url", fake.base_url, "--wait", "1m") == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        keys("setup", str(keys_file), "--wait", "later")
    assert exit_.value.code == 2 and "'later' is not a duration" in capsys.readouterr().err


def test_list_shows_keys_without_secrets(fake, keys_file, capsys):
    keys("setup", str(keys_file), "--url", fake.base_url)
    secrets_made = [ex.response["key"] for ex in fake.exchanges if ex.path == "/key/generate"]
    capsys.readouterr()
    assert keys("list", "--url", fake.base_url) == 0
    table = capsys.readouterr().out
    assert "backlog-dev" in table and "tenant-123-key" in table and "$1000" in table and "1mo" in table
    assert keys("list", "--url", fake.base_url, "--json") == 0
    rows = {r["alias"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tenant-123-key"]["team_id"] == "tenant-123"
    assert rows["tenant-123-key"]["metadata"]["tenant_id"] == "tenant-123-uuid"
    assert rows["tenant-123-key"]["key_name"].startswith("sk-...")
    assert not any(s in table + json.dumps(rows) for s in secrets_made)


def test_list_reads_every_page(fake, capsys):
    for i in range(130):
        fake._generate(type("E", (), {"body": {"key_alias": f"k-{i:03d}"}})())
    assert keys("list", "--url", fake.base_url, "--json") == 0
    assert len(json.loads(capsys.readouterr().out)) == 130
    pages = [ex.query["page"] for ex in fake.exchanges if ex.path == "/key/list"]
    assert pages == [["1"], ["2"]]


def test_revoke_by_alias_reports_missing_ones(fake, keys_file, capsys):
    keys("setup", str(keys_file), "--url", fake.base_url)
    capsys.readouterr()
    assert keys("revoke", "tenant-123-key", "no-such-key", "--url", fake.base_url) == 1
    out, err = capsys.readouterr()
    assert "revoked tenant-123-key" in out and "no key with alias 'no-such-key'" in err
    assert fake.aliases() == ["backlog-dev"]
    delete = [ex.body for ex in fake.exchanges if ex.path == "/key/delete"]
    assert delete == [{"key_aliases": ["tenant-123-key"]}]


def test_base_url_from_the_environment(fake, keys_file, monkeypatch, capsys):
    monkeypatch.setenv("LITELLM_BASE_URL", fake.base_url + "/")
    assert keys("list") == 0
    assert fake.exchanges


def test_master_key_from_the_proxys_key_file(fake, backlog_home, monkeypatch, capsys):
    monkeypatch.delenv("LITELLM_MASTER_KEY")
    assert keys("list", "--url", fake.base_url) == 1
    assert "no master key" in capsys.readouterr().err
    backlog_home.mkdir(parents=True, exist_ok=True)
    (backlog_home / "master-key").write_text(MASTER + "\n")
    assert keys("list", "--url", fake.base_url) == 0


# --------------------------------------------------------------------------------------------
# The master key never shows
# --------------------------------------------------------------------------------------------


def test_the_master_key_appears_in_no_output(fake, keys_file, monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log requests at DEBUG/INFO
    outputs = []

    def run(*args: str) -> int:
        rc = keys(*args)
        out, err = capsys.readouterr()
        outputs.append(out + err)
        return rc

    assert run("setup", str(keys_file), "--url", fake.base_url) == 0
    assert run("list", "--url", fake.base_url, "--json") == 0
    assert run("revoke", "backlog-dev", "--url", fake.base_url) == 0
    fake.echo_auth_in_errors = True  # the server repeats the credential in its error message
    assert run("list", "--url", fake.base_url) == 1
    assert "[master key]" in outputs[-1]
    fake.echo_auth_in_errors = False
    assert run("list", "--url", f"http://127.0.0.1:{free_port()}") == 1  # httpx ConnectError
    assert run("setup", str(keys_file), "--url", f"http://127.0.0.1:{free_port()}", "--wait", "0.5") == 1
    monkeypatch.setenv("LITELLM_MASTER_KEY", MASTER + "-wrong")  # 401 path
    assert run("list", "--url", fake.base_url) == 1
    assert "Authentication Error" in outputs[-1]
    everything = "\n".join(outputs) + caplog.text
    assert MASTER not in everything
    assert "sk-master" not in everything


# --------------------------------------------------------------------------------------------
# virtual_keys.yaml
# --------------------------------------------------------------------------------------------


def test_the_shipped_file_is_valid():
    specs = load_keys_file(REPO / "config" / "virtual_keys.yaml")
    assert {s.metadata["environment"] for s in specs} == {"dev", "test", "eval", "prod"}
    assert [s.env_name for s in specs][:1] == ["LITELLM_API_KEY"]
    prod = next(s for s in specs if s.alias == "backlog-prod")
    assert (prod.max_budget, prod.budget_duration, prod.max_parallel_requests) == (1000.0, "1mo", 10)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("- alias: a\n  budget: lots", r"keys\[0\] \('a'\): max_budget: Input should be a valid number"),
        ("- alias: a\n  budget_duration: 1 month", r"keys\[0\] \('a'\): budget_duration: .*'1 month' is not a LiteLLM duration"),
        ("- alias: a\n  duration: 12m", r"keys\[0\] \('a'\): duration: .*'12m' means 12 minute\(s\) to LiteLLM"),
        ("- alias: a\n  rpm: 10", r"keys\[0\] \('a'\): rpm: unknown field"),
        ("- alias: a\n  env: lower-case", r"keys\[0\] \('a'\): env: .*not an environment variable name"),
        ("- alias: a\n  tpm_limit: 0", r"keys\[0\] \('a'\): tpm_limit: Input should be greater than or equal to 1"),
        ("- alias: a\n- alias: a", r"keys\[1\] \('a'\): alias 'a' is also used by keys\[0\]"),
        ("- alias: a-key\n- alias: a\n  env: A_KEY", r"keys\[1\] \('a'\): env variable 'A_KEY' is also used by keys\[0\]"),
        ("- team_id: t", r"keys\[0\]: alias: Field required"),
        ("[]", r"keys: List should have at least 1 item"),
    ],
)
def test_schema_errors_name_the_key_and_the_field(tmp_path, entry, message):
    path = tmp_path / "virtual_keys.yaml"
    path.write_text("keys:\n" + "\n".join("  " + line for line in entry.splitlines()) if entry != "[]" else "keys: []\n")
    with pytest.raises(ConfigError, match=message):
        load_keys_file(path)


def test_durations_follow_litellms_grammar_and_are_sent_as_checked(tmp_path):
    path = tmp_path / "virtual_keys.yaml"
    path.write_text("keys:\n  - alias: a\n    budget_duration: Monthly\n    duration: ' 30D'\n")
    (spec,) = load_keys_file(path)
    assert (spec.request_body()["budget_duration"], spec.request_body()["duration"]) == ("monthly", "30d")


def test_a_bad_file_fails_before_any_request(fake, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("keys:\n  - alias: a\n    models: cheap\n")
    assert keys("setup", str(path), "--url", fake.base_url) == 1
    assert "keys[0] ('a'): models: Input should be a valid list" in capsys.readouterr().err
    assert fake.exchanges == []
