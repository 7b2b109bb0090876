"""The product's import graph, read from the source with `ast` (nothing imported).

Every project-internal import is an edge, wherever it is written: at module level,
inside a function, or under `if TYPE_CHECKING:`. Each edge carries its kind, so a
test can say which one closes a cycle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("agent", "collectors", "tuning")


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    line: int
    kind: str  # module | function | type_checking


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules(root: Path) -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            out[module_name(root, path)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of `name` that is a product module."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in modules:
            return cand
        parts.pop()
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, this: str, is_pkg: bool) -> list[tuple[str, int, str]]:
    out: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            k = kind
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                k = "function" if kind == "module" else kind
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit_stmt(stmt, "type_checking")
                for stmt in child.orelse:
                    visit_stmt(stmt, k)
                continue
            visit_stmt(child, k)

    def visit_stmt(node: ast.AST, kind: str) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((alias.name, node.lineno, kind))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = this.split(".")
                if not is_pkg:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for alias in node.names:
                out.append((f"{prefix}.{alias.name}", node.lineno, kind))
        else:
            visit(node, kind)

    visit(tree, "module")
    return out


def edges(root: Path) -> list[Edge]:
    modules = product_modules(root)
    out = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for target, line, kind in _imports(tree, name, path.name == "__init__.py"):
            dst = _resolve(target, modules)
            if dst and dst != name:
                out.append(Edge(name, dst, line, kind))
    return out


def cycles(mods: list[str], es: list[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for e in es:
        graph.setdefault(e.src, set()).add(e.dst)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        # Iterative, so a deep graph cannot hit the recursion limit.
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))

    for m in sorted(graph):
        if m not in index:
            strong(m)
    return found


if __name__ == "__main__":
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    mods = list(product_modules(root))
    es = edges(root)
    for kinds in (("module",), ("module", "function"), ("module", "function", "type_checking")):
        cs = cycles(mods, [e for e in es if e.kind in kinds])
        print("+".join(kinds), [len(c) for c in cs])
        for c in cs:
            print("   ", " ".join(c))
