"""The product's modules import each other without cycles, and the layers stay apart:
the extraction engine (pure functions over responses) does not load the database layer,
and loading Scrapy's settings loads no component code."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("crawler", "middlewares", "pipelines", "spiders")


def product_modules() -> dict[str, Path]:
    modules = {}
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the product modules it imports anywhere (top level or inside a function)."""

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {resolve(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {resolve(f"{node.module}.{alias.name}") for alias in node.names}
        targets.discard(None)
        # importing b.y first runs b/__init__.py: an eager package __init__ is part of the path (the
        # importing module's own packages are already being imported, so they add no edge)
        own = set(ancestors(module))
        for target in list(targets):
            targets |= {parent for parent in ancestors(target) if parent in modules and parent not in own}
        graph[module] = targets - {module}
    return graph


def ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_product_modules():
    graph = import_graph(product_modules())
    assert "crawler.db.pool" in graph["crawler.db.writer"]  # the graph sees real imports
    assert cycles(graph) == []


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_the_extraction_engine_does_not_load_the_database_layer():
    loaded = loaded_after("import crawler.extraction.engine")
    assert "crawler.items" in loaded
    assert not {m for m in loaded if m == "crawler.db" or m.startswith("crawler.db.")}
    assert "psycopg" not in loaded


def test_loading_the_settings_loads_declarations_only():
    loaded = loaded_after("import crawler.settings")
    assert "middlewares.settings_spec" in loaded
    heavy = {
        "middlewares.rate_limit",
        "pipelines.match",
        "crawler.db.pool",
        "psycopg",
        "redis",
        "twisted.internet.reactor",
    }
    assert not heavy & loaded
