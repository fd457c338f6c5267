"""The house's rules, read from the code's own imports (every import, at module level or
inside a function): dependencies point one way, nothing under report/ imports a buyer or a
model, the valuation and market layers know nothing of buyers, and no modules import each
other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "dataprice"

#: What each layer may not import (packages or modules of dataprice).
FORBIDDEN = {
    "valuation": {"market", "buyers", "scenario", "experiment", "report", "agents", "cli", "api"},
    "market": {"buyers", "scenario", "experiment", "report", "agents", "cli", "api"},
    "models": {"buyers", "market", "scenario", "experiment", "report", "agents", "cli", "api"},
    "data": {"buyers", "market", "scenario", "experiment", "report", "agents", "models", "cli", "api"},
    "buyers": {"scenario", "experiment", "report", "agents", "cli", "api"},
    "agents": {"buyers", "scenario", "experiment", "report", "cli", "api"},
    "scenario": {"experiment", "report", "agents", "cli", "api"},
    "experiment": {"report", "cli", "api"},
    "report": {"buyers", "models", "agents", "cli", "api"},
    "engine": {"valuation", "market", "buyers", "scenario", "experiment", "report", "agents", "models", "data"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the dataprice modules it imports anywhere (resolved to existing modules)."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                # ``from package import module`` names the module; ``from module import name``, the module
                candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                              for alias in node.names]
            else:
                continue
            for candidate in candidates:
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate.startswith("dataprice") and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    return graph


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_dependencies_point_one_way():
    wrong = []
    for module, targets in _imports().items():
        for target in targets:
            if _layer(target) in FORBIDDEN.get(_layer(module), set()):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_modules_import_each_other_in_a_circle():
    graph = _imports()
    graph.pop("dataprice", None)  # the package re-exports the notebook API lazily: its only upward import
    index, low, stack, on_stack, circles, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # a package importing its own submodules (re-exports) is not a circle of files
            files = [c for c in component if not any(o.startswith(c + ".") for o in component)]
            if len(files) > 1:
                circles.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    assert not circles, circles
