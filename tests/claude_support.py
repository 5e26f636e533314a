"""The real `claude` CLI in tests: installing it, and a scripted fake Anthropic model it talks to.

The fake model plays the model's part from a script written in the prompt itself, so that any
number of Claude Code sessions and subagents can run against it at once without a shared
queue: every line of a user's text that starts with ``CALL`` is one step,

    CALL mcp__backlog-ops__set_context {"ticket_id": "FEAT-1", "gate": "implement", "agent_type": "backend"}
    CALL Task {"subagent_type": "reviewer", "description": "review", "prompt": "CALL ... / SAY ..."}
    SAY all done

and the model's n-th answer in a conversation plays step n: a ``CALL`` becomes a ``tool_use``
block with that name and input, a ``SAY`` (or the end of the script) a text answer that ends the
turn. Requests that carry no tools (Claude Code's side requests: titles, summaries) get a short
text answer. Replies stream as SSE when asked, as Claude Code always asks.

Only the standard library is used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"
# The version these tests were written against; BACKLOG_CLAUDE_CODE_VERSION overrides it.
CLAUDE_CODE_VERSION = "2.1.197"


# -- installing the CLI --------------------------------------------------------------------------


def require_claude() -> Path:
    """The `claude` binary; fails the test under CI when it cannot be had, skips it elsewhere."""
    import pytest

    from conftest import in_ci

    binary, why = find_claude()
    if binary is None:
        if in_ci():
            pytest.fail(f"the claude CLI is required under CI: {why}")
        pytest.skip(why)
    return binary


def write_proxy_config(path: Path, model_name: str, base_url: str, callbacks: list[str], **extra: Any) -> Path:
    """A proxy config serving `model_name` from the scripted model, with our callbacks (and `extra` sections)."""
    import yaml

    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": model_name, "litellm_params": {
            "model": "anthropic/claude-haiku-4-5", "api_base": base_url, "api_key": "scripted"}}],
        "litellm_settings": {
            "callbacks": [f"backlog_ops.callbacks.{c}.{c}" for c in callbacks],
            "num_retries": 0,
            "disable_add_user_agent_to_request_tags": True,
        },
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        **extra,
    }))
    return path


def claude_code_dir() -> Path:
    return Path(os.environ.get("BACKLOG_CLAUDE_CODE_DIR") or REPO / ".cache" / "claude-code")


def find_claude() -> tuple[Path | None, str]:
    """(path of the claude binary, '') or (None, why not), installing it with npm if needed."""
    explicit = os.environ.get("BACKLOG_CLAUDE_BIN")
    if explicit:
        return (Path(explicit), "") if Path(explicit).exists() else (None, f"BACKLOG_CLAUDE_BIN={explicit} does not exist")
    prefix = claude_code_dir()
    binary = prefix / "node_modules" / ".bin" / "claude"
    version = os.environ.get("BACKLOG_CLAUDE_CODE_VERSION", CLAUDE_CODE_VERSION)
    if binary.exists() and _installed_version(prefix) == version:
        return binary, ""
    npm = shutil.which("npm")
    if npm is None:
        return None, "npm is not installed: cannot install the claude CLI (npm install @anthropic-ai/claude-code)"
    prefix.mkdir(parents=True, exist_ok=True)
    cache_root = prefix.parent
    if cache_root.name == ".cache" and not (cache_root / ".gitignore").exists():
        (cache_root / ".gitignore").write_text("*\n")
    try:
        r = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save",
             f"{CLAUDE_CODE_PACKAGE}@{version}"],
            capture_output=True, text=True, timeout=600,
        )
    except subprocess.TimeoutExpired:
        return None, "npm install @anthropic-ai/claude-code took more than 10 minutes"
    if r.returncode != 0 or not binary.exists():
        return None, f"npm install {CLAUDE_CODE_PACKAGE}@{version} failed: {(r.stderr or r.stdout)[-800:]}"
    return binary, ""


def _installed_version(prefix: Path) -> str | None:
    try:
        return json.loads((prefix / "node_modules" / "@anthropic-ai" / "claude-code" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def claude_env(home: Path, base_url: str, key: str, model: str, backlog_home: Path, bin_dir: Path) -> dict[str, str]:
    """The environment of one `claude -p` run against our proxy (FIELD-NOTES: Claude Code)."""
    # BACKLOG_MCP_PREFORK_IDLE (conftest): a resident `backlog-ops mcp` leaves behind ends soon after the test.
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "TERM", "BACKLOG_MCP_PREFORK_IDLE")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({
        "HOME": str(home),
        "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_AUTH_TOKEN": key,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
        "CLAUDE_CODE_SUBAGENT_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
        "BACKLOG_HOME": str(backlog_home),
    })
    # Claude Code's MCP settings stay at their defaults (no MCP_TIMEOUT, no
    # MCP_CONNECTION_NONBLOCKING): the tests rely on the "alwaysLoad" install writes, as users do.
    return env


# -- the scripted model --------------------------------------------------------------------------


@dataclass
class ModelRequest:
    path: str
    headers: dict[str, str]
    body: dict
    at: float

    @property
    def session_id(self) -> str | None:
        """Claude Code's session: its header when the request came straight from Claude Code, else
        the session_id in the body's metadata.user_id (what the proxy forwards)."""
        if self.headers.get("x-claude-code-session-id"):
            return self.headers["x-claude-code-session-id"]
        user_id = (self.body.get("metadata") or {}).get("user_id")
        try:
            return json.loads(user_id).get("session_id") if isinstance(user_id, str) else None
        except (ValueError, AttributeError):
            return None

    @property
    def agent_id(self) -> str | None:
        return self.headers.get("x-claude-code-agent-id")

    @property
    def tool_names(self) -> list[str]:
        return [t.get("name") for t in self.body.get("tools") or [] if isinstance(t, dict)]


def script_of(body: dict) -> list[tuple[str, str]]:
    """The CALL/SAY steps written in a conversation's user text (not in tool results)."""
    steps: list[tuple[str, str]] = []
    for message in body.get("messages") or []:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for block in blocks:
            if not isinstance(block, dict) or block.get("type") != "text":
                continue
            for line in block.get("text", "").splitlines():
                line = line.strip()
                if line.startswith("CALL "):
                    steps.append(("call", line[5:].strip()))
                elif line.startswith("SAY "):
                    steps.append(("say", line[4:].strip()))
    return steps


def answer_for(body: dict) -> dict:
    """The step this request plays: {'type': 'text', 'text': ...} or {'type': 'tool_use', ...}."""
    if not body.get("tools"):
        return {"type": "text", "text": "Scripted title"}
    steps = script_of(body)
    played = sum(1 for m in body.get("messages") or [] if m.get("role") == "assistant")
    if played >= len(steps):
        return {"type": "text", "text": "done"}
    kind, arg = steps[played]
    if kind == "say":
        return {"type": "text", "text": arg}
    name, _, raw = arg.partition(" ")
    return {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": name, "input": json.loads(raw or "{}")}


class ScriptedModel:
    """A fake Anthropic Messages API on 127.0.0.1 whose answers come from the prompt's script."""

    def __init__(self, prompt_tokens: int = 1200, completion_tokens: int = 80) -> None:
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self._lock = threading.Lock()
        self._requests: list[ModelRequest] = []
        # (session, tool) for tools a script CALLed that Claude Code had not offered in that
        # request (an MCP server not connected yet, say): the first thing to look at when an e2e
        # test fails.
        self.unoffered: list[tuple[str | None, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "ScriptedModel":
        handler = type("Handler", (_Handler,), {"model": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-model", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(10)
            self._server = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[ModelRequest]:
        with self._lock:
            return list(self._requests)

    def record(self, request: ModelRequest) -> None:
        with self._lock:
            self._requests.append(request)
            del self._requests[:-2000]


class _Handler(BaseHTTPRequestHandler):
    model: ScriptedModel
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0]
        request = ModelRequest(path, headers, body if isinstance(body, dict) else {}, time.time())
        self.model.record(request)
        if path.endswith("/count_tokens"):
            self._json(200, {"input_tokens": self.model.prompt_tokens})
            return
        if not path.endswith("/v1/messages") or not isinstance(body, dict):
            self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})
            return
        try:
            block = answer_for(body)
        except (ValueError, KeyError) as exc:
            block = {"type": "text", "text": f"bad script: {exc}"}
        if block["type"] == "tool_use":
            # A tool sent with defer_loading is only named: the model must search for it first.
            offered = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict) and not t.get("defer_loading")}
            if block["name"] not in offered:
                self.model.unoffered.append((request.session_id, block["name"]))
        stop = "tool_use" if block["type"] == "tool_use" else "end_turn"
        usage = {"input_tokens": self.model.prompt_tokens, "output_tokens": self.model.completion_tokens,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        message = {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
                   "model": body.get("model", "scripted"), "content": [block], "stop_reason": stop,
                   "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            self._json(200, message)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        self._sse("message_start", {"type": "message_start", "message": dict(
            message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))})
        if block["type"] == "tool_use":
            self._sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
            self._sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
        else:
            self._sse("content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": {"type": "text", "text": ""}})
            self._sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": block["text"]}})
        self._sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        self._sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                    "usage": {"output_tokens": self.model.completion_tokens}})
        self._sse("message_stop", {"type": "message_stop"})

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, event: str, data: dict) -> None:
        self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()
