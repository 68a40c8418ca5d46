"""No import cycle between keras_tricks's modules (issue: lr_finder <-> callbacks).

The graph is read from the source (AST), not by importing, so it covers every
module, including the lazy ones. An edge `a -> b` is an import that runs when
`a` is imported: module-level statements (also inside `if`, `try`, `with` and
class bodies), not imports inside functions (deliberately lazy) nor under
`if TYPE_CHECKING:`. Importing `keras_tricks.x.y` runs `keras_tricks.x`'s
`__init__` first, so that package is an edge too, except where it is an
ancestor of the importing module (a package is always initialised before its
own submodules, so that edge adds nothing).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = "keras_tricks"
ROOT = pathlib.Path(__file__).resolve().parents[1] / PACKAGE


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
    return name == "TYPE_CHECKING"


def _imports_run_at_import(body: list[ast.stmt]):
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node):
                yield from _imports_run_at_import(node.body)
            yield from _imports_run_at_import(node.orelse)
        elif isinstance(node, ast.Try | ast.With | ast.ClassDef):
            for field in ("body", "orelse", "finalbody"):
                yield from _imports_run_at_import(getattr(node, field, []))
            for handler in getattr(node, "handlers", []):
                yield from _imports_run_at_import(handler.body)


def _with_packages(name: str, known: set[str]) -> set[str]:
    """`name` and every package above it, that are keras_tricks modules."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & known


def import_graph() -> dict[str, set[str]]:
    """`{module: modules its import runs}` over keras_tricks (see module doc)."""
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for node in _imports_run_at_import(tree.body):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets |= _with_packages(alias.name, known)
                continue
            source = node.module or ""
            if node.level:
                base = name.split(".")
                keep = len(base) - node.level + (path.name == "__init__.py")
                source = ".".join([*base[:keep], *([source] if source else [])])
            targets |= _with_packages(source, known)
            targets |= {f"{source}.{a.name}" for a in node.names} & known
        graph[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles a depth-first search meets (empty: the graph is acyclic)."""
    done: set[str] = set()
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target in stack:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in done:
                visit(target)
        stack.pop()
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node)
    return cycles


def test_the_module_import_graph_is_acyclic():
    cycles = find_cycles(import_graph())
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_lr_finder_and_callbacks_do_not_import_each_other():
    graph = import_graph()
    assert "keras_tricks.callbacks" not in graph["keras_tricks.lr_finder"]
    assert "keras_tricks._learning_rate" in graph["keras_tricks.lr_finder"]
    assert graph["keras_tricks._learning_rate"] == set()


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        # The cycle this test was written for: a module importing a name from
        # a subpackage that re-exports the module itself.
        (
            {
                "lr_finder.py": "from keras_tricks.callbacks._base import f\n",
                "callbacks/__init__.py": "from keras_tricks.lr_finder import g\n",
                "callbacks/_base.py": "",
            },
            [
                [
                    "keras_tricks.callbacks",
                    "keras_tricks.lr_finder",
                    "keras_tricks.callbacks",
                ]
            ],
        ),
        # A package importing its own submodules, lazy imports in functions
        # and TYPE_CHECKING imports are no cycle.
        (
            {
                "callbacks/__init__.py": "from keras_tricks.callbacks.a import A\n",
                "callbacks/a.py": (
                    "from typing import TYPE_CHECKING\n"
                    "from keras_tricks.callbacks import _b\n"
                    "if TYPE_CHECKING:\n    import keras_tricks.lab\n"
                    "def f():\n    import keras_tricks.lab\n"
                ),
                "callbacks/_b.py": "",
                "lab.py": "from keras_tricks.callbacks import a\n",
            },
            [],
        ),
    ],
)
def test_the_checker_finds_a_cycle_and_only_a_cycle(
    tmp_path, monkeypatch, sources, expected
):
    for relative, text in {"__init__.py": "", **sources}.items():
        path = tmp_path / PACKAGE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path / PACKAGE)
    assert find_cycles(import_graph()) == expected
