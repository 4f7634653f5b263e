"""The shape of the code: no import cycles in ``app``, and registries that take a new member
with one line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.errors import PluginUnavailable
from app.registry import Member, Registry

APP = Path(__file__).resolve().parent.parent / "app"


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``app`` modules it imports, at any level, except under TYPE_CHECKING."""
    modules = {_module_name(path): path for path in APP.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        skipped: set[int] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _is_type_checking(node):
                skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    imported.add(sub if sub in modules else node.module)
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_app_has_no_import_cycles() -> None:
    graph = import_graph()
    assert graph.get("app.pipeline.describe")
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_registry_lists_only_installed_members_and_says_what_to_install() -> None:
    registry: Registry[object] = Registry(
        "widget",
        {
            "json": "json:dumps",
            "ghost": Member("json:loads", {"no_such_module_here": "no-such-dist"}),
        },
    )
    assert list(registry) == ["json"]
    assert "ghost" not in registry
    with pytest.raises(PluginUnavailable, match=r"pip install no-such-dist"):
        registry.load("ghost")
    with pytest.raises(PluginUnavailable, match=r"unknown widget 'nope'; choose one of: json"):
        registry.check("nope")
    # A name alone, for settings: the packages are checked where the member is used.
    assert registry.known("ghost") == "ghost"
    with pytest.raises(ValueError, match=r"unknown widget 'nope'"):
        registry.known("nope")
