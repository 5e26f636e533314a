"""A local mock LLM provider: OpenAI chat completions and Anthropic messages, on 127.0.0.1.

Two users: the test suite (fixed, KNOWN usage per reply, scriptable failures) and the offline
development proxy of `backlog-ops proxy` (``estimate_usage=True``: usage in proportion to the
request, so LiteLLM prices calls at the real models' list prices).

LiteLLM deployments point at it with ``api_base``:

    openai/<model>     api_base: <base_url>/v1   (``<base_url>`` works too: both paths are served)
    anthropic/<model>  api_base: <base_url>      (LiteLLM appends ``/v1/messages`` itself)

Not served: OpenAI's ``/v1/responses``. LiteLLM sends ``/v1/messages`` requests for ``openai/``
deployments there unless ``litellm_settings: {use_chat_completions_url_for_anthropic_messages:
true}``; set that when a Claude-style request may land on (or fall back to) an OpenAI deployment.

By default every reply carries a fixed text and KNOWN usage, so tests can assert exact token
counts and costs. Every request is recorded, so tests can check what LiteLLM forwarded. Replies can be
scripted per model (errors, rate limits, context-window overflows, content-policy refusals) to
exercise fallbacks.

Only the standard library is used, so a test or a standalone run costs no extra install:

    with MockUpstream(prompt_tokens=1000, completion_tokens=200) as up:
        up.script(Reply.server_error(), model="gpt-4o-mini", times=2)
        ...  # point LiteLLM at up.base_url
        assert up.requests[0].path == "/v1/chat/completions"

    python -m backlog_ops.testing.mock_upstream --port 8999
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, fields, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPENAI_PATHS = ("/v1/chat/completions", "/chat/completions")
ANTHROPIC_PATHS = ("/v1/messages",)
REQUESTS_PATH = "/_mock/requests"  # GET: {"count": POSTs received, "paths": [...]}

# Wording matters: LiteLLM recognises a context-window overflow by the provider's message
# (and OpenAI's ``code``) and only then raises ContextWindowExceededError, which is what
# triggers ``context_window_fallbacks`` instead of ordinary fallbacks.
OPENAI_CONTEXT_MESSAGE = (
    "This model's maximum context length is 128000 tokens. However, your messages resulted "
    "in 210000 tokens. Please reduce the length of the messages."
)
ANTHROPIC_CONTEXT_MESSAGE = "prompt is too long: 210000 tokens > 200000 maximum"
# The same for a content-policy refusal: these are the providers' own words, which LiteLLM maps
# to ContentPolicyViolationError, the error that triggers ``content_policy_fallbacks``.
OPENAI_CONTENT_POLICY_MESSAGE = (
    "Invalid prompt: your prompt was flagged as potentially violating our usage policy. "
    "Please try again with a different prompt."
)
ANTHROPIC_CONTENT_POLICY_MESSAGE = "Output blocked by content filtering policy"


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``status == 200`` is a success; anything else is an error reply.

    Unset fields fall back to the server's defaults. Error replies keep a neutral ``kind`` and
    are rendered in the shape of the API that was called (OpenAI or Anthropic), so one script
    works for both kinds of deployment.
    """

    status: int = 200
    text: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    kind: str = "ok"  # ok | server_error | rate_limit | context_window | content_policy
    message: str = ""

    @classmethod
    def ok(cls, text: str | None = None, **usage: int) -> Reply:
        return cls(text=text, **usage)

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls(status=status, kind="server_error", message="mock upstream: internal error")

    @classmethod
    def rate_limited(cls) -> Reply:
        return cls(status=429, kind="rate_limit", message="mock upstream: rate limit reached")

    @classmethod
    def context_window_exceeded(cls) -> Reply:
        return cls(status=400, kind="context_window")

    @classmethod
    def content_policy_violation(cls) -> Reply:
        """The provider refuses the request's content (HTTP 400, the provider's own wording)."""
        return cls(status=400, kind="content_policy")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # keys lower-cased: HTTP header names are case-insensitive
    body: Any  # parsed JSON, or the raw text when the body is not JSON
    at: float = field(default_factory=time.time)


class _Server(ThreadingHTTPServer):
    # Daemon threads: an idle keep-alive connection from LiteLLM's HTTP pool must not keep
    # stop() (or interpreter exit) waiting.
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client hanging up mid-request (LiteLLM closing pooled connections, a load generator
        # stopping) is normal here: say nothing. Anything else gets one line, not the stdlib's
        # traceback across the demo's or a benchmark's output.
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError):
            print(f"mock provider: a request from {client_address[0]}:{client_address[1]} failed: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)


class MockUpstream:
    """Threaded HTTP server on 127.0.0.1 that plays an LLM provider; a context manager."""

    def __init__(
        self,
        port: int = 0,
        text: str = "Hello from the mock upstream.",
        prompt_tokens: int = 1000,
        completion_tokens: int = 200,
        cache_read_tokens: int = 0,
        cache_creation_tokens: int = 0,
        verbose: bool = False,
        estimate_usage: bool = False,
        keep_requests: int = 10_000,
    ) -> None:
        self.defaults = Reply(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_creation_tokens=cache_creation_tokens,
        )
        self.verbose = verbose
        self.estimate_usage = estimate_usage
        self._port = port
        self._lock = threading.Lock()
        # Bounded: the development proxy's mock runs for hours.
        self._requests: deque[RecordedRequest] = deque(maxlen=keep_requests)
        # Key None holds replies for any model; a model's own queue is served first.
        self._scripts: dict[str | None, deque[Reply]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """Serve in a background thread; returns ``base_url``."""
        handler = type("Handler", (_Handler,), {"upstream": self})
        self._server = _Server(("127.0.0.1", self._port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="mock-upstream", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    def __enter__(self) -> MockUpstream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("MockUpstream is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting and inspection ---------------------------------------------------------------

    def script(self, *replies: Reply, model: str | None = None, times: int = 1) -> None:
        """Queue replies for the next requests; ``model`` is the upstream model name LiteLLM
        sends (``gpt-4o-mini`` for ``openai/gpt-4o-mini``), or None for any model."""
        with self._lock:
            queue = self._scripts.setdefault(model, deque())
            for _ in range(times):
                queue.extend(replies)

    def next_reply(self, model: str | None) -> Reply:
        with self._lock:
            for key in (model, None):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
        return Reply()

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot: the server keeps appending while tests read."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests and pending scripted replies."""
        with self._lock:
            self._requests.clear()
            self._scripts.clear()

    def resolve(self, reply: Reply, body: dict | None = None) -> Reply:
        """Fill a reply's unset fields from the request (estimate_usage) or the server's defaults."""
        if self.estimate_usage and body is not None:
            prompt = estimate_tokens(body)
            reply = replace(
                reply,
                prompt_tokens=reply.prompt_tokens if reply.prompt_tokens is not None else prompt,
                completion_tokens=(
                    reply.completion_tokens if reply.completion_tokens is not None else min(2000, max(40, prompt // 6))
                ),
            )
        unset = {
            f.name: getattr(self.defaults, f.name)
            for f in fields(reply)
            if getattr(reply, f.name) is None
        }
        return replace(reply, **unset)


class _Handler(BaseHTTPRequestHandler):
    upstream: MockUpstream  # set on the per-server subclass
    # HTTP/1.1 so LiteLLM's pooled client can reuse connections; every non-stream reply
    # therefore carries Content-Length, and streams close the connection to mark their end.
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.upstream.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == REQUESTS_PATH:
            # What the provider was asked, for a test that drives a proxy whose mock it did not start.
            done = [r for r in self.upstream.requests if r.method == "POST"]
            self._send_json(200, {"count": len(done), "paths": [r.path for r in done]})
            return
        self._record(None)
        self._not_found()

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self._record(body)
        path = self.path.split("?", 1)[0]
        if path not in OPENAI_PATHS + ANTHROPIC_PATHS or not isinstance(body, dict):
            self._not_found()
            return
        model = body.get("model")
        reply = self.upstream.resolve(self.upstream.next_reply(model), body)
        anthropic = path in ANTHROPIC_PATHS
        if reply.status != 200:
            self._send_error(reply, anthropic)
        elif anthropic:
            self._anthropic(body, reply)
        else:
            self._openai(body, reply)

    # -- plumbing -------------------------------------------------------------------------------

    def _record(self, body: Any) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.upstream.record(RecordedRequest(self.command, self.path, headers, body))

    def _send_json(self, status: int, payload: dict, extra_headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, data: dict | str, event: str | None = None) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        frame = (f"event: {event}\n" if event else "") + f"data: {text}\n\n"
        self.wfile.write(frame.encode())
        self.wfile.flush()

    def _send_error(self, reply: Reply, anthropic: bool) -> None:
        # retry-after 0: the provider SDKs inside LiteLLM honour it, so retries stay fast.
        headers = {"retry-after": "0"} if reply.kind == "rate_limit" else None
        if anthropic:
            error_type, message = {
                "rate_limit": ("rate_limit_error", reply.message),
                "context_window": ("invalid_request_error", ANTHROPIC_CONTEXT_MESSAGE),
                "content_policy": ("invalid_request_error", ANTHROPIC_CONTENT_POLICY_MESSAGE),
            }.get(reply.kind, ("api_error", reply.message))
            payload = {"type": "error", "error": {"type": error_type, "message": message}}
        else:
            error_type, code, message = {
                "rate_limit": ("requests", "rate_limit_exceeded", reply.message),
                "context_window": (
                    "invalid_request_error", "context_length_exceeded", OPENAI_CONTEXT_MESSAGE
                ),
                "content_policy": ("invalid_request_error", "invalid_prompt", OPENAI_CONTENT_POLICY_MESSAGE),
            }.get(reply.kind, ("server_error", None, reply.message))
            payload = {
                "error": {"message": message, "type": error_type, "param": None, "code": code}
            }
        self._send_json(reply.status, payload, headers)

    # -- OpenAI chat completions ------------------------------------------------------------------

    def _openai(self, body: dict, reply: Reply) -> None:
        model = body.get("model", "mock")
        call_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        usage = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            # OpenAI counts cached tokens inside prompt_tokens and reports them here.
            "prompt_tokens_details": {"cached_tokens": reply.cache_read_tokens},
        }
        if not body.get("stream"):
            self._send_json(200, {
                "id": call_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": "stop",
                }],
                "usage": usage,
            })
            return

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {
                "id": call_id, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        self._start_sse()
        self._sse(chunk({"role": "assistant", "content": ""}))
        for piece in _pieces(reply.text):
            self._sse(chunk({"content": piece}))
        self._sse(chunk({}, "stop"))
        # Like OpenAI: usage only when asked for, in one last chunk with no choices.
        # Without it, callers (LiteLLM included) must count tokens themselves.
        if (body.get("stream_options") or {}).get("include_usage"):
            self._sse({
                "id": call_id, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [], "usage": usage,
            })
        self._sse("[DONE]")

    # -- Anthropic messages -----------------------------------------------------------------------

    def _anthropic(self, body: dict, reply: Reply) -> None:
        model = body.get("model", "mock")
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        # Anthropic's input_tokens EXCLUDES cached tokens; the two cache counts come on top.
        usage = {
            "input_tokens": reply.prompt_tokens,
            "cache_creation_input_tokens": reply.cache_creation_tokens,
            "cache_read_input_tokens": reply.cache_read_tokens,
            "output_tokens": reply.completion_tokens,
        }
        message = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": reply.text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            self._send_json(200, message)
            return

        self._start_sse()
        # As Anthropic does: message_start carries the input side (and a placeholder output
        # count), message_delta the final output count.
        start_usage = dict(usage, output_tokens=1)
        self._sse({"type": "message_start", "message": dict(
            message, content=[], stop_reason=None, usage=start_usage)}, "message_start")
        self._sse({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}, "content_block_start")
        self._sse({"type": "ping"}, "ping")
        for piece in _pieces(reply.text):
            self._sse({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")
        self._sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        self._sse({"type": "message_delta",
                   "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                   "usage": {"output_tokens": reply.completion_tokens}}, "message_delta")
        self._sse({"type": "message_stop"}, "message_stop")


def start(port: int = 0, **defaults: Any) -> tuple[MockUpstream, str]:
    """Start a server outside a ``with`` block; call ``.stop()`` on the first element."""
    upstream = MockUpstream(port=port, **defaults)
    return upstream, upstream.start()


def estimate_tokens(body: dict) -> int:
    """About four characters a token over what a provider bills as input: messages, system, tools."""
    billed = {k: body.get(k) for k in ("messages", "system", "tools") if body.get(k)}
    return max(1, len(json.dumps(billed, ensure_ascii=False)) // 4)


def _pieces(text: str) -> list[str]:
    """Split text into word-sized deltas so streams have several content events."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--prompt-tokens", type=int, default=1000)
    parser.add_argument("--completion-tokens", type=int, default=200)
    parser.add_argument("--cache-read-tokens", type=int, default=0)
    parser.add_argument("--cache-creation-tokens", type=int, default=0)
    parser.add_argument("--text", default="Hello from the mock upstream.")
    args = parser.parse_args()
    up, base_url = start(
        port=args.port, text=args.text, prompt_tokens=args.prompt_tokens,
        completion_tokens=args.completion_tokens, cache_read_tokens=args.cache_read_tokens,
        cache_creation_tokens=args.cache_creation_tokens, verbose=True,
    )
    print(f"mock upstream listening on {base_url}", flush=True)
    # Stop on SIGTERM as on Ctrl-C: a test harness or CI kills background servers with TERM.
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    up.stop()


if __name__ == "__main__":
    main()
