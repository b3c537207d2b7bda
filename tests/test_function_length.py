"""No function or method in ``src/mimo`` is over 100 lines (from its ``def`` line to its last
line, nested functions counted in their outer function): a function that long does several
things a reader would want a name for. The allow-list names the ones still to split; it only
shrinks, and an entry must leave it once its function is short.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mimo

SRC = Path(mimo.__file__).parent
MAX_LINES = 100
# "<path under src/mimo>: <qualified name>" of functions still over the limit
ALLOWED_LONG: set[str] = set()


def long_functions(source: str, where: str) -> dict[str, int]:
    """``{"<where>: <qualified name>": lines}`` of the functions in ``source`` over ``MAX_LINES``."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                lines = child.end_lineno - child.lineno + 1
                if not isinstance(child, ast.ClassDef) and lines > MAX_LINES:
                    found[f"{where}: {name}"] = lines
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def _all_long_functions() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sorted(SRC.rglob("*.py")):
        found |= long_functions(path.read_text(encoding="utf-8"), path.relative_to(SRC).as_posix())
    return found


def test_no_function_is_over_100_lines():
    found = _all_long_functions()
    new = {name: lines for name, lines in found.items() if name not in ALLOWED_LONG}
    assert not new, f"functions over {MAX_LINES} lines (split them into named parts): {new}"
    shrunk = ALLOWED_LONG - set(found)
    assert not shrunk, f"now at most {MAX_LINES} lines, remove from ALLOWED_LONG: {sorted(shrunk)}"


def test_the_check_sees_long_methods_and_nested_functions():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    source = f"class Page:\n  def draw(self):\n{body}\n\ndef short():\n    return 1\n"
    assert long_functions(source, "serve/x.py") == {"serve/x.py: Page.draw": MAX_LINES + 1}
    nested = f"def outer():\n  def inner():\n{body}\n"
    assert set(long_functions(nested, "y.py")) == {"y.py: outer", "y.py: outer.inner"}
    assert long_functions(f"def fits():\n{body[: body.rindex(chr(10))]}\n", "z.py") == {}
