"""The Python check: follow each call's receiver back to where it came from, and judge the call."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Iterable

from backlog_ops.checks.direct_calls.allowlist import (
    PROVIDER_HINT,
    names_gateway,
    pragma_lines,
)
from backlog_ops.checks.direct_calls.finding import Finding
from backlog_ops.checks.direct_calls.providers import (
    CLIENT_CALLS,
    CLIENT_CLASSES,
    ENV_BASE_URLS,
    MODULE_CALLS,
    RESPONSE_WRAPPERS,
    UNRESOLVED_CALLS,
    URL_KEYWORDS,
)
from backlog_ops.checks.direct_calls.scopes import Scope, build_scopes

__all__ = ["FileChecker"]


@dataclass(frozen=True)
class _Origin:
    kind: str  # client | module | def | other | unknown
    provider: str | None = None
    gateway: str | None = None  # gateway | direct | param
    path: tuple[str, ...] = ()
    line: int | None = None
    fq: str | None = None
    detail: str = ""
    node: ast.AST | None = field(default=None, compare=False)  # a def: its return annotation may name a client


_OTHER = _Origin("other")


class FileChecker:
    """One Python file: its scopes, its clients' origins, and the provider calls that bypass the gateway."""

    def __init__(self, source: str, path: str, gateway_urls: Iterable[str] = ()) -> None:
        self.source = source
        self.path = path
        self.lines = source.splitlines()
        self.gateway_urls = [u.lower().rstrip("/") for u in gateway_urls]
        self.pragma_lines = pragma_lines(self.lines)
        self.tree = ast.parse(source, filename=path)
        self._memo: dict[tuple[int, int], _Origin] = {}
        self._resolving: set[tuple[int, int]] = set()
        self.env_gateway: set[str] = set()  # providers whose base URL this file points at the gateway
        self.module_gateway: set[str] = set()  # openai.base_url = <gateway>
        self.scopes, self.imported_providers = build_scopes(self.tree)
        self._scan_config()

    def built_clients(self) -> dict[str, set[str]]:
        """The verdicts ("gateway", "direct") of the clients this file builds, per provider."""
        built: dict[str, set[str]] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                o = self._origin(node.func, self.scopes[self.tree])
                if o.kind == "module" and o.fq in CLIENT_CLASSES:
                    verdict, _ = self._constructor_verdict(node)
                    provider = CLIENT_CLASSES[o.fq]
                    if node.lineno in self.pragma_lines or provider in self.env_gateway:
                        verdict = "gateway"
                    built.setdefault(provider, set()).add(verdict)
        return built

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

    def _lookup(self, name: str, scope: Scope) -> tuple[list, Scope] | None:
        s: Scope | None = scope
        while s is not None:
            if isinstance(s.node, ast.ClassDef) and s is not scope:
                s = s.parent  # class bodies do not enclose their methods
                continue
            if name in s.bindings:
                return s.bindings[name], s
            s = s.parent
        return None

    def _origin(self, expr: ast.AST | None, scope: Scope, depth: int = 0) -> _Origin:
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

    def _origin_of(self, expr: ast.AST, scope: Scope, depth: int) -> _Origin:
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

    def _from_bindings(self, bindings: list, where: Scope, depth: int, name: str) -> _Origin:
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

    def _annotation_provider(self, annotation: ast.AST | None, scope: Scope) -> str | None:
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
            if isinstance(node, ast.keyword) and node.arg in URL_KEYWORDS:
                urls.append(node.value)
            elif isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values):
                    if _const_str(k) in URL_KEYWORDS:
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
        if names_gateway(text, self.gateway_urls):
            return "gateway"
        if PROVIDER_HINT.search(text) or any(s.startswith(("http://", "https://")) for s in literals):
            return "direct"
        return "unknown"

    # -- the calls ------------------------------------------------------------------------------------

    def findings(self, all_gateway: set[str]) -> list[Finding]:
        out: list[Finding] = []
        self._visit(self.tree, self.scopes[self.tree], False, out, all_gateway)
        return out

    def _visit(self, node: ast.AST, scope: Scope, tracked: bool, out: list[Finding], all_gateway: set[str]) -> None:
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

    def _check_call(self, call: ast.Call, scope: Scope, all_gateway: set[str]) -> Finding | None:
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
        path = ".".join(p for p in receiver.path + (func.attr,) if p not in RESPONSE_WRAPPERS)
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


