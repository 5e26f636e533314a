"""check-direct-calls: precision and recall on a realistic sample, each rule, the CLI and the hook file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from backlog_ops.checks.direct_calls import check_paths, check_source
from backlog_ops.cli.check_cmd import run_check

CORPUS = Path(__file__).parent / "data" / "direct_calls"
REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "backlog-ops"


@pytest.fixture(autouse=True)
def _hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./backlog.config.json
    monkeypatch.delenv("BACKLOG_GATEWAY_URL", raising=False)


def expected_findings() -> set[tuple[str, int]]:
    out = set()
    for f in CORPUS.rglob("*"):
        if f.suffix in (".py", ".ts", ".js"):
            for n, line in enumerate(f.read_text().splitlines(), 1):
                if "expect: direct" in line:
                    out.add((str(f.relative_to(CORPUS)), n))
    return out


def test_precision_and_recall_on_the_sample() -> None:
    findings, files, problems = check_paths([str(CORPUS)])
    got = {(str(Path(f.path).relative_to(CORPUS)), f.line) for f in findings}
    want = expected_findings()
    tp, fp, fn = len(got & want), sorted(got - want), sorted(want - got)
    precision = tp / len(got) if got else 1.0
    recall = tp / len(want) if want else 1.0
    print(f"\ncheck-direct-calls on tests/data/direct_calls: {files} files, {len(want)} expected, "
          f"{len(got)} reported, TP={tp} FP={len(fp)} FN={len(fn)}, precision={precision:.2f}, recall={recall:.2f}")
    assert files == 16 and not problems
    assert len(want) >= 19  # the sample is not trivially small
    assert precision >= 0.95 and recall >= 0.95, f"false positives {fp}, missed {fn}"
    assert (precision, recall) == (1.0, 1.0), f"false positives {fp}, missed {fn}"


def findings(source: str, path: str = "app.py") -> list[tuple[int, str]]:
    return [(f.line, f.provider) for f in check_source(source, path, gateway=[])]


def test_receiver_origin_not_method_names() -> None:
    twilio = "from twilio.rest import Client\nclient = Client('sid', 'tok')\nclient.messages.create(to='+1', body='hi')\n"
    claude = "from anthropic import Anthropic\nclient = Anthropic()\nclient.messages.create(model='m', messages=[])\n"
    assert findings(twilio) == []
    assert findings(claude) == [(3, "anthropic")]
    # The same name rebound per function: each function's own binding counts.
    mixed = ("import anthropic\nfrom twilio.rest import Client\n"
             "def a():\n    client = Client('s', 't')\n    client.messages.create(body='x')\n"
             "def b():\n    client = anthropic.Anthropic()\n    client.messages.create(model='m')\n")
    assert findings(mixed) == [(8, "anthropic")]
    # litellm is the gateway's own path.
    assert findings("import litellm\nlitellm.completion(model='cheap', messages=[])\n") == []
    # An unresolved receiver counts only with the SDK imported and an unmistakable path.
    assert findings("def f(c):\n    c.chat.completions.create(model='m')\n") == []
    assert findings("import openai\ndef f(c):\n    c.chat.completions.create(model='m')\n") == [(3, "openai")]
    assert findings("import cohere\ndef f(c):\n    c.chat(message='hi')\n") == []  # too generic unresolved


@pytest.mark.parametrize("construct, reported", [
    ("OpenAI()", True),
    ("OpenAI(base_url='https://api.deepinfra.com/v1/openai')", True),
    ("OpenAI(base_url='https://openrouter.ai/api/v1')", True),
    ("OpenAI(base_url=os.environ['DEEPINFRA_URL'])", True),
    ("OpenAI(base_url='http://localhost:4000')", False),
    ("OpenAI(base_url='http://litellm.internal:4000/v1')", False),
    ("OpenAI(base_url=os.environ['LITELLM_PROXY_URL'])", False),
    ("OpenAI(base_url=settings.GATEWAY_URL)", False),
    ("OpenAI(base_url=cfg.base_url)", False),  # names neither: benefit of the doubt
    ("OpenAI(base_url='https://llm.mycorp.example')", True),  # unless it is the configured gateway:
])
def test_gateway_rule(construct: str, reported: bool) -> None:
    source = f"import os\nfrom openai import OpenAI\nclient = {construct}\nclient.chat.completions.create(model='m')\n"
    assert bool(findings(source)) is reported


def test_configured_gateway_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    source = "from openai import OpenAI\nclient = OpenAI(base_url='https://llm.mycorp.example/v1')\nclient.responses.create(model='m')\n"
    assert check_source(source, gateway=["llm.mycorp.example"]) == []
    monkeypatch.setenv("BACKLOG_GATEWAY_URL", "https://llm.mycorp.example")
    assert check_source(source) == []
    env = "import os\nfrom anthropic import Anthropic\nos.environ['ANTHROPIC_BASE_URL'] = GATEWAY\nAnthropic().messages.create(model='m')\n"
    assert findings(env) == []
    env_provider = "import os\nfrom anthropic import Anthropic\nos.environ['ANTHROPIC_BASE_URL'] = 'https://api.anthropic.com'\nAnthropic().messages.create(model='m')\n"
    assert findings(env_provider) == [(4, "anthropic")]


def test_tracked_calls_and_pragmas() -> None:
    base = "from openai import OpenAI\nfrom backlog_ops.capture.tracking import track_llm_call\nc = OpenAI()\n"
    assert findings(base + "with track_llm_call(model='m') as call:\n    call.record(c.chat.completions.create(model='m'))\n") == []
    assert findings(base + "async def f():\n    async with self.tracker.track_llm_call() as t:\n        await c.chat.completions.create()\n") == []
    assert findings(base + "@track_llm_call(model='m')\ndef f():\n    return c.chat.completions.create(model='m')\n") == []
    assert findings(base + "@track_llm_call\nasync def f():\n    return await c.chat.completions.create(model='m')\n") == []
    assert findings(base + "with open('x') as fh:\n    c.chat.completions.create(model='m')\n") == [(5, "openai")]
    assert findings(base + "c.chat.completions.create(model='m')  # backlog-ops: allow-direct\n") == []
    assert findings(base + "c.chat.completions.create(\n    model='m',  # backlog-ops: gateway\n)\n") == []


def test_parameter_clients_follow_the_project(tmp_path: Path) -> None:
    (tmp_path / "clients.py").write_text("from openai import OpenAI\nclient = OpenAI(base_url='http://127.0.0.1:4000')\n")
    (tmp_path / "use.py").write_text("from openai import OpenAI\ndef ask(c: OpenAI):\n    return c.chat.completions.create(model='m')\n"
                                     "def ask2(c):\n    return c.chat.completions.create(model='m')\n")
    found, _, _ = check_paths([str(tmp_path)])
    assert found == []  # every OpenAI client built in the project goes through the gateway
    (tmp_path / "direct.py").write_text("from openai import OpenAI\nraw = OpenAI()\n")
    found, _, _ = check_paths([str(tmp_path)])
    assert [(Path(f.path).name, f.line) for f in found] == [("use.py", 3), ("use.py", 5)]


def test_syntax_errors_are_reported_not_fatal(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "broken.py").write_text("def f(:\n")
    (tmp_path / "ok.py").write_text("from openai import OpenAI\nOpenAI().responses.create(model='m')\n")
    assert run_check([str(tmp_path)], strict=False) == 0
    out = capsys.readouterr()
    assert "broken.py: not checked, cannot parse" in out.err and "ok.py" in out.out and "Line 2: openai" in out.out


def test_cli_subprocess_warns_and_exits_0_or_1_with_strict(tmp_path: Path) -> None:
    r = subprocess.run([str(CLI), "check-direct-calls", str(CORPUS)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "DIRECT LLM CALLS DETECTED (warning only" in r.stdout
    assert f"{CORPUS / 'services' / 'multi_model_service.py'}:" in r.stdout
    assert "Line 31: openai: self.openai_client.chat.completions.create()" in r.stdout
    assert "19 direct calls in 11 files" in r.stdout
    strict = subprocess.run([str(CLI), "check-direct-calls", "--strict", str(CORPUS / "web")],
                            capture_output=True, text=True, timeout=60)
    assert strict.returncode == 1 and "web/chat.ts" in strict.stdout and "sms.js" not in strict.stdout
    clean = subprocess.run([str(CLI), "check-direct-calls", "--strict", str(CORPUS / "notifications"),
                            str(CORPUS / "fakes" / "llm_fakes.py")], capture_output=True, text=True, timeout=60)
    assert clean.returncode == 0 and "2 files checked, no direct LLM calls" in clean.stdout
    missing = subprocess.run([str(CLI), "check-direct-calls", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_pre_commit_hook_definition() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    warn, strict = hooks["check-direct-llm-calls"], hooks["check-direct-llm-calls-strict"]
    assert warn["entry"] == "backlog-ops check-direct-calls" and warn["language"] == "python"
    assert warn["verbose"] is True  # pre-commit hides a passing hook's output otherwise
    assert "python" in warn["types_or"] and "ts" in warn["types_or"]
    assert strict["entry"].endswith("--strict")
    for hook in (warn, strict):  # the base install is all the hook gets: no extras, nothing added
        assert "additional_dependencies" not in hook


def test_the_check_needs_only_the_standard_library(tmp_path: Path) -> None:
    """What `backlog-ops check-direct-calls` imports, so the hook runs on the base install alone."""
    probe = ("import sys\n"
             "before = set(sys.modules)\n"
             "from backlog_ops.cli import main\n"
             f"assert main(['check-direct-calls', {str(tmp_path)!r}]) == 0\n"
             "print(sorted(m for m in set(sys.modules) - before\n"
             "             if m.split('.')[0] not in sys.stdlib_module_names and m.split('.')[0] != 'backlog_ops'))\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "[]", r.stdout
