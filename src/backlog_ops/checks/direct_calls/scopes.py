"""Pass 1 of the Python check: the scopes of a module and what each name in them is bound to."""

from __future__ import annotations

import ast

from backlog_ops.checks.direct_calls.providers import sdk_provider

__all__ = ["ClassInfo", "Scope", "build_scopes"]


class Scope:
    def __init__(self, node: ast.AST, parent: "Scope | None", cls: "ClassInfo | None") -> None:
        self.node = node
        self.parent = parent
        self.cls = cls
        self.bindings: dict[str, list] = {}  # name -> [("assign", expr) | ("import", fq) | ("param", annotation) | ("def",)]

    def add(self, name: str, binding: tuple) -> None:
        self.bindings.setdefault(name, []).append(binding)


class ClassInfo:
    def __init__(self) -> None:
        self.attrs: dict[str, list[ast.expr]] = {}  # self.<attr> = <expr>, from any method or the class body
        self.methods: dict[str, ast.AST] = {}


def build_scopes(tree: ast.AST) -> tuple[dict[ast.AST, Scope], set[str]]:
    """(scope of each module/class/function/lambda node, providers whose SDK the module imports)."""
    builder = _ScopeBuilder()
    builder.build(tree, None, None)
    return builder.scopes, builder.imported_providers


class _ScopeBuilder:
    def __init__(self) -> None:
        self.scopes: dict[ast.AST, Scope] = {}
        self.imported_providers: set[str] = set()

    def build(self, node: ast.AST, parent: Scope | None, cls: ClassInfo | None) -> Scope:
        scope = Scope(node, parent, cls)
        self.scopes[node] = scope
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            for a in args.posonlyargs + args.args + args.kwonlyargs + [x for x in (args.vararg, args.kwarg) if x]:
                scope.add(a.arg, ("param", a.annotation))
        body = node.body if isinstance(node.body, list) else [node.body]
        for child in body:
            self._collect(child, scope, cls)
        return scope

    def _collect(self, node: ast.AST, scope: Scope, cls: ClassInfo | None) -> None:
        """Bindings of `scope` from `node`, not descending into nested scopes (they get their own)."""
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scope.add(node.name, ("def", node))
            if cls is not None and isinstance(scope.node, ast.ClassDef):
                cls.methods[node.name] = node
            for d in node.decorator_list:
                self._collect(d, scope, cls)
            self.build(node, scope, cls)
            return
        if isinstance(node, ast.ClassDef):
            scope.add(node.name, ("class",))
            info = ClassInfo()
            class_scope = self.build(node, scope, info)
            for name, bindings in class_scope.bindings.items():
                for b in bindings:
                    if b[0] == "assign":
                        info.attrs.setdefault(name, []).append(b[1])
            return
        if isinstance(node, ast.Lambda):
            self.build(node, scope, cls)
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

    def _bind_target(self, target: ast.AST, value: ast.expr, scope: Scope, cls: ClassInfo | None) -> None:
        if isinstance(target, ast.Name):
            scope.add(target.id, ("assign", value))
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id in ("self", "cls") and cls:
            cls.attrs.setdefault(target.attr, []).append(value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                for name in _target_names(elt):
                    scope.add(name, ("assign", None))

    def _note_import(self, fq: str) -> None:
        provider = sdk_provider(fq)
        if provider is not None:
            self.imported_providers.add(provider)


def _target_names(target: ast.AST) -> list[str]:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
