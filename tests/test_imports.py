"""mimo's import graph, read with ``ast`` from the sources: no circle between modules, and every
import between packages goes down the floors of docs/architecture.md.

Every import statement counts, deferred ones inside functions too (a deferred import that
closes a circle is still a circle, only hidden until run time); imports under
``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import mimo

SRC = Path(mimo.__file__).parent
# Floor of each package: a module may import its own package and any package on a lower floor.
FLOORS = {"core": 0, "data": 1, "model": 2, "eval": 2, "infer": 3, "train": 3, "serve": 4, "cli": 5}
# Circles still to break (each a sorted tuple of module names); the list only shrinks.
KNOWN_CIRCLES: set[tuple[str, ...]] = set()  # none is left


def _modules() -> dict[str, Path]:
    modules = {}
    for path in SRC.rglob("*.py"):
        parts = ["mimo", *path.relative_to(SRC).with_suffix("").parts]
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _import_nodes(tree: ast.Module):
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        else:
            stack.extend(ast.iter_child_nodes(node))


def _targets(node: ast.Import | ast.ImportFrom, package: str, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parent = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parent, *([node.module] if node.module else [])])
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]


def import_graph() -> dict[str, set[str]]:
    """Module -> the mimo modules it imports (with the packages whose ``__init__`` that runs)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(node, package, modules):
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                while target not in ("", "mimo", name) and not name.startswith(target + "."):
                    graph[name].add(target)  # the module and the package __init__s above it
                    target = target.rpartition(".")[0]
    return graph


def circles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[tuple[str, ...]] = set()
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(tuple(sorted(component)))
    return found


def test_the_graph_sees_deferred_imports():
    graph = import_graph()
    assert "mimo.data.perspectives" in graph["mimo.data.build"]  # imported inside a function
    assert "mimo.core.results" in graph["mimo.eval.sample"]
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {("a", "b", "c")}


def test_no_import_circle_beyond_the_known_ones():
    assert circles(import_graph()) <= KNOWN_CIRCLES


def test_imports_between_packages_go_down_the_floors():
    graph = import_graph()
    packages = {name.split(".")[1] for name in graph if name != "mimo"}
    assert packages - set(FLOORS) == set(), "give each package its floor here and in docs/architecture.md"
    upward = []
    for module, targets in graph.items():
        if module == "mimo":
            continue  # its names are imported lazily, by name (see mimo/__init__.py)
        floor = FLOORS[module.split(".")[1]]
        for target in targets:
            package = target.split(".")[1]
            if package != module.split(".")[1] and FLOORS[package] >= floor:
                upward.append(f"{module} -> {target}")
    assert upward == []
