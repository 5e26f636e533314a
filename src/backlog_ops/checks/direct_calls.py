"""`backlog-ops check-direct-calls`: find LLM calls that neither the gateway nor track_llm_call sees.

A WARNING-ONLY check (llm-tracking-learnings.md, insight 3): it prints file, line and pattern
and exits 0, so it never blocks a commit; ``--strict`` exits 1 when it finds anything.

What is a direct call
    A call of a generation/embedding method on an OpenAI, Anthropic, Google (google-genai,
    google-generativeai, Vertex AI), Groq, Mistral or Cohere client, or of OpenAI's module-level
    API (``openai.ChatCompletion.create``, ``openai.chat.completions.create``). Python is read
    with ``ast``; JavaScript/TypeScript with a coarser pattern match (see _check_js).

Receiver origin, not method names
    ``client.messages.create`` is Anthropic only if ``client`` came from ``anthropic.Anthropic()``
    (Twilio's client has the same method). The checker follows each receiver back, within the
    file: imports (aliases included), assignments in the function, the module or the class
    (``self.client = OpenAI()`` in ``__init__``), ``with ... as client``, wrappers around a
    constructor (``instructor.from_openai(OpenAI())``), objects derived from a client
    (``model.start_chat().send_message``), parameters annotated with a client class and functions
    whose return annotation is one (``def _client(self) -> OpenAI``); ``.with_raw_response`` /
    ``.with_streaming_response`` are seen through. Built bundles (minified JS, ``dist/``) are skipped.
    A receiver bound to anything else (a Twilio client, a MagicMock, a local class named OpenAI)
    is not a provider client. A receiver it cannot follow (an unannotated parameter) counts
    only for unmistakable paths (``.chat.completions.create``, ``.messages.create``,
    ``.generate_content``...) in a file that imports that provider's SDK.
    ``litellm.completion`` & co. are never reported: the gateway's callbacks see them.

Through the gateway (not reported)
    * The client is built with a base URL (``base_url=``/``api_base=``/``server_url=``, or
      ``http_options={"base_url": ...}``) that is the gateway: a literal on localhost/127.0.0.1,
      one naming litellm/gateway/proxy, or the ``llmOps.gateway.baseURL`` of ./backlog.config.json
      or ``$BACKLOG_GATEWAY_URL``; or an expression naming litellm/gateway/proxy
      (``os.environ["LITELLM_PROXY_URL"]``, ``settings.GATEWAY_URL``). An expression that names
      nothing either way (``cfg.base_url``) is given the benefit of the doubt. A literal URL of
      any other host (DeepInfra, OpenRouter, Azure...) or an expression naming a provider
      (``DEEPINFRA_URL``) is NOT the gateway: that traffic is what the gateway never sees.
    * Env-configured: the same file sets the SDK's base-URL variable (``OPENAI_BASE_URL``,
      ``OPENAI_API_BASE``, ``ANTHROPIC_BASE_URL``, ``GROQ_BASE_URL``, ``CO_API_URL``) through
      ``os.environ[...] =`` or ``os.environ.setdefault``, to a value that is not a provider's, or
      sets ``openai.base_url`` / ``openai.api_base`` for the module-level API. The environment
      the checker runs in says nothing about where the code runs, so it is not consulted.
    * A client whose origin the checker cannot see (a parameter) while every client of that
      provider built in the checked files goes through the gateway.
    * A ``# backlog-ops: gateway`` (or ``# backlog-ops: allow-direct``) comment on the call's or
      the client construction's line.

Wrapped in track_llm_call (not reported)
    The call sits inside ``with``/``async with ...track_llm_call(...)`` or inside a function
    decorated with ``@...track_llm_call(...)`` (any receiver: ``self.tracker.track_llm_call``).
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, TextIO

__all__ = ["Finding", "check_paths", "check_source", "run_check"]

# -- what the providers look like ------------------------------------------------------------------

CLIENT_CLASSES = {
    **{f"openai.{c}": "openai" for c in ("OpenAI", "AsyncOpenAI", "AzureOpenAI", "AsyncAzureOpenAI", "Client", "AsyncClient")},
    **{f"anthropic.{c}": "anthropic" for c in ("Anthropic", "AsyncAnthropic", "Client", "AsyncClient", "AnthropicBedrock",
                                                "AsyncAnthropicBedrock", "AnthropicVertex", "AsyncAnthropicVertex")},
    "google.genai.Client": "google",
    "google.genai.client.Client": "google",
    "google.generativeai.GenerativeModel": "google",
    "vertexai.generative_models.GenerativeModel": "google",
    "vertexai.preview.generative_models.GenerativeModel": "google",
    "groq.Groq": "groq",
    "groq.AsyncGroq": "groq",
    "mistralai.Mistral": "mistral",
    "mistralai.client.MistralClient": "mistral",
    "mistralai.async_client.MistralAsyncClient": "mistral",
    **{f"cohere.{c}": "cohere" for c in ("Client", "ClientV2", "AsyncClient", "AsyncClientV2")},
}

_OPENAI_STYLE = {
    "chat.completions.create", "chat.completions.parse", "chat.completions.stream", "beta.chat.completions.parse",
    "beta.chat.completions.stream", "completions.create", "responses.create", "responses.parse", "responses.stream",
    "embeddings.create", "images.generate", "audio.transcriptions.create", "audio.translations.create",
    "audio.speech.create",
}
CLIENT_CALLS = {
    "openai": _OPENAI_STYLE,
    "groq": {"chat.completions.create", "audio.transcriptions.create", "audio.translations.create"},
    "anthropic": {"messages.create", "messages.stream", "messages.parse", "beta.messages.create",
                  "beta.messages.stream", "beta.messages.parse", "completions.create"},
    "google": {"generate_content", "generate_content_async", "models.generate_content", "models.generate_content_stream",
               "aio.models.generate_content", "aio.models.generate_content_stream", "models.embed_content",
               "start_chat.send_message", "start_chat.send_message_async", "chats.create.send_message",
               "chats.create.send_message_stream", "aio.chats.create.send_message"},
    "mistral": {"chat.complete", "chat.complete_async", "chat.stream", "chat.stream_async", "fim.complete",
                "embeddings.create", "chat", "chat_stream", "embeddings"},
    "cohere": {"chat", "chat_stream", "generate", "embed", "rerank"},
}
MODULE_CALLS = {
    "openai.chat.completions.create": "openai", "openai.completions.create": "openai",
    "openai.responses.create": "openai", "openai.embeddings.create": "openai",
    "openai.ChatCompletion.create": "openai", "openai.ChatCompletion.acreate": "openai",
    "openai.Completion.create": "openai", "openai.Completion.acreate": "openai",
    "openai.Embedding.create": "openai", "openai.Embedding.acreate": "openai",
    "google.generativeai.generate_text": "google", "google.generativeai.chat": "google",
    "google.generativeai.embed_content": "google",
}
# For receivers the checker cannot follow: paths no other popular SDK uses.
UNRESOLVED_CALLS = {
    "openai": {"chat.completions.create", "chat.completions.parse", "beta.chat.completions.parse", "responses.create"},
    "groq": {"chat.completions.create"},
    "anthropic": {"messages.create", "messages.stream", "beta.messages.create"},
    "google": {"models.generate_content", "generate_content", "aio.models.generate_content", "models.generate_content_stream"},
    "mistral": {"chat.complete", "chat.complete_async", "chat.stream"},
}
SDK_MODULES = {"openai": "openai", "anthropic": "anthropic", "groq": "groq", "mistralai": "mistral", "cohere": "cohere",
               "google.genai": "google", "google.generativeai": "google", "vertexai": "google"}
ENV_BASE_URLS = {"OPENAI_BASE_URL": "openai", "OPENAI_API_BASE": "openai", "ANTHROPIC_BASE_URL": "anthropic",
                 "GROQ_BASE_URL": "groq", "CO_API_URL": "cohere"}
_URL_KEYWORDS = {"base_url", "api_base", "server_url", "baseURL", "azure_endpoint", "api_endpoint"}
_GATEWAY_HINT = re.compile(r"litellm|gateway|proxy|backlog|localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\]", re.I)
_PROVIDER_HINT = re.compile(
    r"api\.openai\.com|openai\.azure\.com|azure|api\.anthropic\.com|deepinfra|together|fireworks|openrouter|"
    r"groq\.com|mistral\.ai|cohere\.(com|ai)|googleapis|perplexity|deepseek|x\.ai|anyscale|replicate|bedrock",
    re.I,
)
_RESPONSE_WRAPPERS = {"with_raw_response", "with_streaming_response"}
_PRAGMA = re.compile(r"#\s*backlog-ops:\s*(gateway|allow-direct|ignore)\b")
_SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "env", ".env", "node_modules", "__pycache__", "site-packages",
              "build", "dist", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".cache", ".eggs"}
JS_SUFFIXES = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    provider: str
    pattern: str
    reason: str


# -- the Python checker ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    kind: str  # client | module | other | unknown
    provider: str | None = None
    gateway: str | None = None  # gateway | direct | param
    path: tuple[str, ...] = ()
    line: int | None = None
    fq: str | None = None
    detail: str = ""
    node: ast.AST | None = field(default=None, compare=False)  # a def: its return annotation may name a client


_OTHER = _Origin("other")


class _Scope:
    def __init__(self, node: ast.AST, parent: "_Scope | None", cls: "_ClassInfo | None") -> None:
        self.node = node
        self.parent = parent
        self.cls = cls
        self.bindings: dict[str, list] = {}  # name -> [("assign", expr) | ("import", fq) | ("param", annotation) | ("def",)]

    def add(self, name: str, binding: tuple) -> None:
        self.bindings.setdefault(name, []).append(binding)


class _ClassInfo:
    def __init__(self) -> None:
        self.attrs: dict[str, list[ast.expr]] = {}
        self.methods: dict[str, ast.AST] = {}


class _FileChecker:
    def __init__(self, source: str, path: str, gateway_urls: Iterable[str] = ()) -> None:
        self.source = source
        self.path = path
        self.lines = source.splitlines()
        self.gateway_urls = [u.lower().rstrip("/") for u in gateway_urls]
        self.pragma_lines = {i + 1 for i, line in enumerate(self.lines) if _PRAGMA.search(line)}
        self.tree = ast.parse(source, filename=path)
        self.scopes: dict[ast.AST, _Scope] = {}
        self._memo: dict[tuple[int, int], _Origin] = {}
        self._resolving: set[tuple[int, int]] = set()
        self.imported_providers: set[str] = set()
        self.env_gateway: set[str] = set()  # providers whose base URL this file points at the gateway
        self.module_gateway: set[str] = set()  # openai.base_url = <gateway>
        self.constructions: list[_Origin] = []
        self._build_scopes(self.tree, None, None)
        self._scan_config()

    # -- pass 1: scopes and bindings -------------------------------------------------------------

    def _build_scopes(self, node: ast.AST, parent: _Scope | None, cls: _ClassInfo | None) -> _Scope:
        scope = _Scope(node, parent, cls)
        self.scopes[node] = scope
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            for a in args.posonlyargs + args.args + args.kwonlyargs + [x for x in (args.vararg, args.kwarg) if x]:
                scope.add(a.arg, ("param", a.annotation))
        body = node.body if isinstance(node.body, list) else [node.body]
        for child in body:
            self._collect(child, scope, cls)
        return scope

    def _collect(self, node: ast.AST, scope: _Scope, cls: _ClassInfo | None) -> None:
        """Bindings of `scope` from `node`, not descending into nested scopes (they get their own)."""
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scope.add(node.name, ("def", node))
            if cls is not None and isinstance(scope.node, ast.ClassDef):
                cls.methods[node.name] = node
            for d in node.decorator_list:
                self._collect(d, scope, cls)
            self._build_scopes(node, scope, cls)
            return
        if isinstance(node, ast.ClassDef):
            scope.add(node.name, ("class",))
            info = _ClassInfo()
            class_scope = self._build_scopes(node, scope, info)
            for name, bindings in class_scope.bindings.items():
                for b in bindings:
                    if b[0] == "assign":
                        info.attrs.setdefault(name, []).append(b[1])
            return
        if isinstance(node, ast.Lambda):
            self._build_scopes(node, scope, cls)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    scope.add(alias.asname, ("import", alias.name))
                else:
                    root = alias.name.split(".", 1)[0]
                    scope.add(root, ("import", root))
                self._note_import(alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = ("." * node.level) + (node.module or "")
            for alias in node.names:
                fq = f"{module}.{alias.name}" if module else alias.name
                scope.add(alias.asname or alias.name, ("import", fq))
                self._note_import(fq)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            if value is not None:
                for target in targets:
                    self._bind_target(target, value, scope, cls)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    self._bind_target(item.optional_vars, item.context_expr, scope, cls)
        elif isinstance(node, ast.NamedExpr):
            self._bind_target(node.target, node.value, scope, cls)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            for name in _target_names(node.target):
                scope.add(name, ("assign", None))
        for child in ast.iter_child_nodes(node):
            self._collect(child, scope, cls)

    def _bind_target(self, target: ast.AST, value: ast.expr, scope: _Scope, cls: _ClassInfo | None) -> None:
        if isinstance(target, ast.Name):
            scope.add(target.id, ("assign", value))
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id in ("self", "cls") and cls:
            cls.attrs.setdefault(target.attr, []).append(value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                for name in _target_names(elt):
                    scope.add(name, ("assign", None))

    def _note_import(self, fq: str) -> None:
        for module, provider in SDK_MODULES.items():
            if fq == module or fq.startswith(module + "."):
                self.imported_providers.add(provider)

    def _scan_config(self) -> None:
        """Env-configured base URLs and openai.base_url = ... in this file."""
        for node in ast.walk(self.tree):
            key = value = None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                t = node.targets[0]
                if isinstance(t, ast.Subscript) and _dotted(t.value) in ("os.environ", "environ"):
                    key, value = _const_str(t.slice), node.value
                elif isinstance(t, ast.Attribute) and t.attr in ("base_url", "api_base"):
                    origin = self._origin(t.value, self.scopes[self.tree])
                    if origin.kind == "module" and origin.fq == "openai" and self._url_verdict(node.value) != "direct":
                        self.module_gateway.add("openai")
            elif isinstance(node, ast.Call) and _dotted(node.func) in ("os.environ.setdefault", "environ.setdefault", "os.putenv") \
                    and len(node.args) >= 2:
                key, value = _const_str(node.args[0]), node.args[1]
            if key in ENV_BASE_URLS and value is not None and self._url_verdict(value) != "direct":
                self.env_gateway.add(ENV_BASE_URLS[key])
                if ENV_BASE_URLS[key] == "openai":
                    self.module_gateway.add("openai")

    # -- origins ------------------------------------------------------------------------------------

    def _lookup(self, name: str, scope: _Scope) -> tuple[list, _Scope] | None:
        s: _Scope | None = scope
        while s is not None:
            if isinstance(s.node, ast.ClassDef) and s is not scope:
                s = s.parent  # class bodies do not enclose their methods
                continue
            if name in s.bindings:
                return s.bindings[name], s
            s = s.parent
        return None

    def _origin(self, expr: ast.AST | None, scope: _Scope, depth: int = 0) -> _Origin:
        if expr is None or depth > 12:
            return _Origin("unknown")
        key = (id(expr), id(scope))
        memo = self._memo.get(key)
        if memo is not None:
            return memo
        if key in self._resolving:
            return _OTHER  # x = f(x): a cycle says nothing about a client
        self._resolving.add(key)
        try:
            origin = self._origin_of(expr, scope, depth)
        finally:
            self._resolving.discard(key)
        self._memo[key] = origin
        return origin

    def _origin_of(self, expr: ast.AST, scope: _Scope, depth: int) -> _Origin:
        if isinstance(expr, ast.Await):
            return self._origin(expr.value, scope, depth + 1)
        if isinstance(expr, ast.Name):
            found = self._lookup(expr.id, scope)
            if found is None:
                return _Origin("unknown", detail=expr.id)
            bindings, where = found
            return self._from_bindings(bindings, where, depth, expr.id)
        if isinstance(expr, ast.Attribute):
            if isinstance(expr.value, ast.Name) and expr.value.id in ("self", "cls") and scope.cls is not None:
                values = scope.cls.attrs.get(expr.attr)
                if values:
                    return self._first([self._origin(v, scope, depth + 1) for v in values])
                method = scope.cls.methods.get(expr.attr)
                if method is not None:
                    return _Origin("def", detail=f"self.{expr.attr}", node=method)
                return _Origin("unknown", detail=f"self.{expr.attr}")
            base = self._origin(expr.value, scope, depth + 1)
            if base.kind == "module":
                return _Origin("module", fq=f"{base.fq}.{expr.attr}")
            if base.kind in ("client", "unknown"):
                return _Origin(base.kind, base.provider, base.gateway, base.path + (expr.attr,), base.line, detail=base.detail)
            return _OTHER
        if isinstance(expr, ast.Call):
            func = self._origin(expr.func, scope, depth + 1)
            if func.kind == "module" and func.fq in CLIENT_CLASSES:
                verdict, detail = self._constructor_verdict(expr)
                origin = _Origin("client", CLIENT_CLASSES[func.fq], verdict, (), expr.lineno, detail=detail)
                return origin
            if func.kind == "def" and getattr(func.node, "returns", None) is not None:
                owner = self.scopes.get(func.node)
                provider = self._annotation_provider(func.node.returns, owner) if owner else None
                if provider:  # def get_client() -> OpenAI: what it returns is a client of unknown origin
                    return _Origin("client", provider, "param", (), func.node.lineno, detail=f"returned by {func.detail}()")
            if func.kind == "client":
                return func  # a method's result: derived from the client (start_chat(), chats.create())
            for arg in list(expr.args) + [k.value for k in expr.keywords]:
                inner = self._origin(arg, scope, depth + 1)
                if inner.kind == "client" and not inner.path:
                    return inner  # a wrapper around a client: instructor.from_openai(OpenAI())
            return _Origin("unknown", path=func.path, detail=func.detail) if func.kind == "unknown" else _OTHER
        if isinstance(expr, ast.Subscript):
            return _Origin("unknown", detail=_dotted(expr.value) or "[...]")
        if isinstance(expr, (ast.IfExp,)):
            return self._first([self._origin(expr.body, scope, depth + 1), self._origin(expr.orelse, scope, depth + 1)])
        if isinstance(expr, ast.BoolOp):
            return self._first([self._origin(v, scope, depth + 1) for v in expr.values])
        return _OTHER

    def _from_bindings(self, bindings: list, where: _Scope, depth: int, name: str) -> _Origin:
        origins = []
        for b in bindings:
            if b[0] == "import":
                origins.append(_Origin("module", fq=b[1]))
            elif b[0] == "assign":
                origins.append(self._origin(b[1], where, depth + 1) if b[1] is not None else _OTHER)
            elif b[0] == "param":
                provider = self._annotation_provider(b[1], where)
                origins.append(_Origin("client", provider, "param", (), getattr(b[1], "lineno", None))
                               if provider else _Origin("unknown", detail=name))
            elif b[0] == "def":
                origins.append(_Origin("def", detail=name, node=b[1]))
            else:
                origins.append(_OTHER)
        return self._first(origins)

    @staticmethod
    def _first(origins: list[_Origin]) -> _Origin:
        for kind in ("client", "module", "unknown"):
            for o in origins:
                if o.kind == kind:
                    return o
        return _OTHER

    def _annotation_provider(self, annotation: ast.AST | None, scope: _Scope) -> str | None:
        if annotation is None:
            return None
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return None
        for node in ast.walk(annotation):
            if isinstance(node, (ast.Name, ast.Attribute)):
                o = self._origin(node, scope.parent or scope, 0)
                if o.kind == "module" and o.fq in CLIENT_CLASSES:
                    return CLIENT_CLASSES[o.fq]
        return None

    # -- the gateway ------------------------------------------------------------------------------

    def _constructor_verdict(self, call: ast.Call) -> tuple[str, str]:
        urls: list[ast.AST] = []
        for node in ast.walk(call):
            if isinstance(node, ast.keyword) and node.arg in _URL_KEYWORDS:
                urls.append(node.value)
            elif isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values):
                    if _const_str(k) in _URL_KEYWORDS:
                        urls.append(v)
        if not urls:
            return "direct", "without a base_url"
        verdicts = [self._url_verdict(u) for u in urls]
        if "direct" in verdicts:
            shown = ast.get_source_segment(self.source, urls[verdicts.index("direct")]) or "?"
            return "direct", f"with base URL {shown[:60]}, not the gateway"
        return "gateway", ""

    def _url_verdict(self, expr: ast.AST) -> str:
        """'gateway', 'direct' or 'unknown' (a dynamic value naming neither: benefit of the doubt)."""
        words = []
        literals = []
        for node in ast.walk(expr):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                words.append(node.value)
                literals.append(node.value)
            elif isinstance(node, ast.Name):
                words.append(node.id)
                # A module constant: BASE = "https://api.deepinfra.com/v1/openai"
                for b in self.scopes[self.tree].bindings.get(node.id, ()):
                    value = _const_str(b[1]) if b[0] == "assign" else None
                    if value:
                        words.append(value)
                        literals.append(value)
            elif isinstance(node, ast.Attribute):
                words.append(node.attr)
        text = " ".join(words)
        lowered = text.lower()
        if any(g and g in lowered for g in self.gateway_urls) or _GATEWAY_HINT.search(text):
            return "gateway"
        if _PROVIDER_HINT.search(text) or any(s.startswith(("http://", "https://")) for s in literals):
            return "direct"
        return "unknown"

    # -- pass 2: the calls -------------------------------------------------------------------------

    def findings(self, all_gateway: set[str]) -> list[Finding]:
        out: list[Finding] = []
        self._visit(self.tree, self.scopes[self.tree], False, out, all_gateway)
        return out

    def _visit(self, node: ast.AST, scope: _Scope, tracked: bool, out: list[Finding], all_gateway: set[str]) -> None:
        if node in self.scopes and node is not self.tree:
            scope = self.scopes[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(_is_tracker(d) for d in node.decorator_list):
                tracked = True
        if isinstance(node, (ast.With, ast.AsyncWith)) and any(_is_tracker(i.context_expr) for i in node.items):
            for item in node.items:
                self._visit(item, scope, tracked, out, all_gateway)
            for child in node.body:
                self._visit(child, scope, True, out, all_gateway)
            return
        if isinstance(node, ast.Call) and not tracked:
            finding = self._check_call(node, scope, all_gateway)
            if finding is not None:
                out.append(finding)
        for child in ast.iter_child_nodes(node):
            self._visit(child, scope, tracked, out, all_gateway)

    def _check_call(self, call: ast.Call, scope: _Scope, all_gateway: set[str]) -> Finding | None:
        func = call.func
        if not isinstance(func, ast.Attribute):
            if isinstance(func, ast.Name):
                o = self._origin(func, scope)
                if o.kind == "module" and o.fq in MODULE_CALLS and MODULE_CALLS[o.fq] not in self.module_gateway:
                    return self._finding(call, MODULE_CALLS[o.fq], "module-level API, not through the gateway", None)
            return None
        receiver = self._origin(func.value, scope)
        if receiver.kind == "module":
            fq = f"{receiver.fq}.{func.attr}"
            provider = MODULE_CALLS.get(fq)
            if provider and provider not in self.module_gateway:
                return self._finding(call, provider, "module-level API, not through the gateway", None)
            return None
        # .with_raw_response / .with_streaming_response are the same call, seen through a wrapper.
        path = ".".join(p for p in receiver.path + (func.attr,) if p not in _RESPONSE_WRAPPERS)
        if receiver.kind == "client":
            if path not in CLIENT_CALLS.get(receiver.provider, ()):
                return None
            if receiver.gateway == "gateway" or receiver.provider in self.env_gateway:
                return None
            if receiver.gateway == "param":
                if receiver.provider in all_gateway:
                    return None
                how = receiver.detail or "passed in (parameter type)"
                return self._finding(call, receiver.provider, f"{receiver.provider} client {how}", None)
            where = f"client built at line {receiver.line} {receiver.detail}".rstrip()
            return self._finding(call, receiver.provider, where, receiver.line)
        if receiver.kind == "unknown":
            for provider in sorted(self.imported_providers):
                if path in UNRESOLVED_CALLS.get(provider, ()) and provider not in all_gateway \
                        and provider not in self.env_gateway:
                    return self._finding(call, provider, f"receiver not resolved; this file imports {provider}", None)
        return None

    def _finding(self, call: ast.Call, provider: str, reason: str, built_at: int | None) -> Finding | None:
        end = getattr(call, "end_lineno", call.lineno) or call.lineno
        if any(line in self.pragma_lines for line in range(call.lineno, end + 1)):
            return None
        if built_at is not None and built_at in self.pragma_lines:
            return None
        pattern = ast.get_source_segment(self.source, call.func) or ast.unparse(call.func)
        pattern = " ".join(pattern.split())
        if len(pattern) > 70:
            pattern = "..." + pattern[-67:]
        return Finding(self.path, call.lineno, provider, f"{pattern}()", reason)


def _is_tracker(expr: ast.AST) -> bool:
    target = expr.func if isinstance(expr, ast.Call) else expr
    if isinstance(target, ast.Attribute):
        return target.attr == "track_llm_call"
    return isinstance(target, ast.Name) and target.id == "track_llm_call"


def _dotted(expr: ast.AST) -> str | None:
    parts = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if isinstance(expr, ast.Name):
        parts.append(expr.id)
        return ".".join(reversed(parts))
    return None


def _const_str(expr: ast.AST | None) -> str | None:
    return expr.value if isinstance(expr, ast.Constant) and isinstance(expr.value, str) else None


def _target_names(target: ast.AST) -> list[str]:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]


# -- JavaScript / TypeScript (coarse) ------------------------------------------------------------

_JS_MODULES = {"openai": "openai", "@anthropic-ai/sdk": "anthropic", "groq-sdk": "groq", "@google/generative-ai": "google",
               "@google/genai": "google", "@mistralai/mistralai": "mistral", "cohere-ai": "cohere"}
_JS_IMPORT = re.compile(r"""(?:from\s+|require\(\s*|import\(\s*)['"]([^'"]+)['"]""")
_JS_NEW = re.compile(r"\bnew\s+(OpenAI|AzureOpenAI|Anthropic|AnthropicBedrock|AnthropicVertex|Groq|GoogleGenerativeAI|"
                     r"GoogleGenAI|Mistral|CohereClient|CohereClientV2)\s*\(")
_JS_CALL = re.compile(r"\.(?:with(?:Raw|Streaming)Response\.)?(chat\.completions\.create|beta\.chat\.completions\.parse|responses\.create|messages\.create|"
                      r"messages\.stream|models\.generateContent(?:Stream)?|generateContent(?:Stream)?|chat\.complete|"
                      r"chat\.stream)\s*\(")
_JS_CALL_PROVIDER = {"chat.completions.create": ("openai", "groq"), "beta.chat.completions.parse": ("openai",),
                     "responses.create": ("openai",), "messages.create": ("anthropic",), "messages.stream": ("anthropic",),
                     "models.generateContent": ("google",), "models.generateContentStream": ("google",),
                     "generateContent": ("google",), "generateContentStream": ("google",),
                     "chat.complete": ("mistral",), "chat.stream": ("mistral",)}
_JS_PROVIDER_OF_CLASS = {"OpenAI": "openai", "AzureOpenAI": "openai", "Anthropic": "anthropic", "AnthropicBedrock": "anthropic",
                         "AnthropicVertex": "anthropic", "Groq": "groq", "GoogleGenerativeAI": "google", "GoogleGenAI": "google",
                         "Mistral": "mistral", "CohereClient": "cohere", "CohereClientV2": "cohere"}
_JS_URL_KEY = re.compile(r"\b(baseURL|baseUrl|base_url|serverURL|serverUrl|httpOptions)\b\s*:\s*([^,}\n]+)")


def _check_js(source: str, path: str, checker_urls: list[str]) -> list[Finding]:
    """File-level rule: a provider SDK is imported; each provider's clients built here all go through
    the gateway (a baseURL option that names it) or the calls are reported. Calls are recognised by
    their (unmistakable) method paths; pragmas as in Python, with // comments."""
    providers = {_JS_MODULES[m] for m in _JS_IMPORT.findall(source) if m in _JS_MODULES}
    if not providers or _is_bundle(path, source):
        return []
    lines = source.splitlines()
    pragma = {i + 1 for i, line in enumerate(lines) if re.search(r"//\s*backlog-ops:\s*(gateway|allow-direct|ignore)\b", line)}
    built: dict[str, list[bool]] = {}
    for m in _JS_NEW.finditer(source):
        provider = _JS_PROVIDER_OF_CLASS[m.group(1)]
        args = _balanced(source, m.end() - 1)
        line = source.count("\n", 0, m.start()) + 1
        url = _JS_URL_KEY.search(args)
        via = line in pragma or (url is not None and (_GATEWAY_HINT.search(url.group(2)) is not None
                                                      or any(u in url.group(2).lower() for u in checker_urls if u)))
        built.setdefault(provider, []).append(via)
    out = []
    for m in _JS_CALL.finditer(source):
        line = source.count("\n", 0, m.start()) + 1
        if line in pragma:
            continue
        for provider in _JS_CALL_PROVIDER[m.group(1)]:
            if provider not in providers:
                continue
            if built.get(provider) and all(built[provider]):
                break
            start = source.rfind("\n", 0, m.start()) + 1
            receiver = re.findall(r"[\w$.]+$", source[start:m.start()])
            pattern = f"{receiver[0] if receiver else ''}.{m.group(1)}()"
            out.append(Finding(path, line, provider, pattern,
                               "client built here without a gateway baseURL" if built.get(provider)
                               else f"this file imports the {provider} SDK"))
            break
    return out


def _is_bundle(path: str, source: str) -> bool:
    """Built output (minified, bundled): not the code anyone commits by hand, and full of sample strings."""
    if "/_next/" in path or "/static/chunks/" in path or ".min." in path or "/dist/" in path:
        return True
    return any(len(line) > 1000 for line in source.splitlines())


def _balanced(source: str, open_at: int, limit: int = 3000) -> str:
    depth = 0
    for i in range(open_at, min(len(source), open_at + limit)):
        ch = source[i]
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
            if depth == 0:
                return source[open_at:i + 1]
    return source[open_at:open_at + limit]


# -- running it ------------------------------------------------------------------------------------


def gateway_urls() -> list[str]:
    """The gateway's address as configured: $BACKLOG_GATEWAY_URL, ./backlog.config.json."""
    urls = [u.strip() for u in os.environ.get("BACKLOG_GATEWAY_URL", "").split(",") if u.strip()]
    try:
        config = json.loads(Path("backlog.config.json").read_text())
        base = ((config.get("llmOps") or {}).get("gateway") or {}).get("baseURL")
        if isinstance(base, str):
            urls.append(base)
    except (OSError, ValueError, AttributeError):
        pass
    return [re.sub(r"^https?://", "", u).rstrip("/").lower() for u in urls]


def iter_files(paths: Iterable[str]) -> Iterable[Path]:
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            if p.suffix == ".py" or p.name.endswith(JS_SUFFIXES):
                yield p
            continue
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
            for name in sorted(filenames):
                if name.endswith(".py") or (name.endswith(JS_SUFFIXES) and not name.endswith((".min.js", ".d.ts"))):
                    yield Path(dirpath) / name


def check_source(source: str, path: str = "<source>", *, all_gateway: set[str] = frozenset(),
                 gateway: Iterable[str] | None = None) -> list[Finding]:
    """Findings for one file's text (Python, or JS/TS when `path` says so)."""
    urls = list(gateway) if gateway is not None else gateway_urls()
    if path.endswith(JS_SUFFIXES):
        return _check_js(source, path, urls)
    return _FileChecker(source, path, urls).findings(set(all_gateway))


def check_paths(paths: Iterable[str]) -> tuple[list[Finding], int, list[str]]:
    """(findings, files checked, problems such as syntax errors) for files and directories."""
    urls = gateway_urls()
    checkers: list[_FileChecker] = []
    js: list[tuple[str, str]] = []
    problems: list[str] = []
    count = 0
    for file in iter_files(paths):
        count += 1
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{file}: cannot read: {exc}")
            continue
        if file.name.endswith(JS_SUFFIXES):
            js.append((source, str(file)))
            continue
        try:
            checkers.append(_FileChecker(source, str(file), urls))
        except (SyntaxError, ValueError) as exc:
            problems.append(f"{file}: not checked, cannot parse: {exc}")
    # Clients whose origin a file cannot see (parameters) are judged by all the clients built in
    # the checked files: if every one of a provider's clients goes through the gateway, so do they.
    built: dict[str, set[str]] = {}
    for checker in checkers:
        for node in ast.walk(checker.tree):
            if isinstance(node, ast.Call):
                o = checker._origin(node.func, checker.scopes[checker.tree])
                if o.kind == "module" and o.fq in CLIENT_CLASSES:
                    verdict, _ = checker._constructor_verdict(node)
                    provider = CLIENT_CLASSES[o.fq]
                    if node.lineno in checker.pragma_lines or provider in checker.env_gateway:
                        verdict = "gateway"
                    built.setdefault(provider, set()).add(verdict)
    all_gateway = {p for p, verdicts in built.items() if verdicts <= {"gateway"}}
    findings = [f for c in checkers for f in c.findings(all_gateway)]
    for source, name in js:
        findings.extend(_check_js(source, name, urls))
    findings.sort(key=lambda f: (f.path, f.line))
    return findings, count, problems


def run_check(paths: list[str], strict: bool, out: TextIO | None = None) -> int:
    """The CLI command: print the findings; 0 (warning only), or 1 with --strict when any is found."""
    out = out or sys.stdout
    missing = [p for p in paths if not Path(p).exists()]
    for p in missing:
        print(f"backlog-ops: check-direct-calls: no such file or directory: {p}", file=sys.stderr)
    findings, count, problems = check_paths([p for p in paths if p not in missing])
    for problem in problems:
        print(f"backlog-ops: check-direct-calls: {problem}", file=sys.stderr)
    if not findings:
        print(f"check-direct-calls: {count} files checked, no direct LLM calls", file=out)
        return 2 if missing else 0
    files = sorted({f.path for f in findings})
    print("⚠️  DIRECT LLM CALLS DETECTED" + ("" if strict else " (warning only: this check does not block the commit)"), file=out)
    for path in files:
        print(f"\n  {path}:", file=out)
        for f in findings:
            if f.path == path:
                print(f"    Line {f.line}: {f.provider}: {f.pattern} — {f.reason}", file=out)
    print(
        f"\n{len(findings)} direct call{'s' if len(findings) != 1 else ''} in {len(files)} file{'s' if len(files) != 1 else ''} "
        "bypass the gateway and track_llm_call: their cost is missing from `backlog-ops spend`.\n"
        "Route the client through the gateway (base_url = the LiteLLM proxy) or wrap the call:\n"
        "    with track_llm_call(model=...) as call:  call.record(client....create(...))\n"
        "A deliberate exception: add  # backlog-ops: allow-direct  on the call's line.",
        file=out,
    )
    if strict:
        return 1
    return 2 if missing else 0
