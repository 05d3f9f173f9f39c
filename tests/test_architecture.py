"""The package's shape, held by tools: the import-linter contracts in pyproject.toml (layers, no cycles), a handful of
modules at fpt/'s root, and no module over 300 lines."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_hold():
    """`lint-imports` (the README's test command runs it too): the layers and no cycles, imports inside functions included."""
    from importlinter.cli import lint_imports

    here = os.getcwd()
    os.chdir(ROOT)  # where pyproject.toml is
    try:
        assert lint_imports(no_cache=True, no_logo=True) == 0, "lint-imports found a broken contract; run it for the details"
    finally:
        os.chdir(here)


def test_no_import_cycles_anywhere_in_the_package():
    """Stronger than per-package: no cycle at all among fpt's modules (grimp sees the imports inside functions too)."""
    import grimp

    graph = grimp.build_graph("fpt", cache_dir=None)
    modules = sorted(graph.modules)
    edges = {m: {n for n in graph.find_modules_directly_imported_by(m) if n != m} for m in modules}
    edges = {m: {n for n in out if not (m.startswith(n + ".") or n.startswith(m + "."))} for m, out in edges.items()}  # a package and its own modules
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v), on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in modules:
        if m not in index:
            visit(m)
    assert not cycles, cycles


def test_fewer_than_ten_modules_at_the_root_and_none_over_300_lines():
    root = sorted(p.name for p in (ROOT / "fpt").glob("*.py"))
    assert len(root) < 10, root
    files = [p for p in (ROOT / "fpt").rglob("*.py") if p.relative_to(ROOT / "fpt").parts[0] != "tasks"]  # fpt/tasks: the symlink
    files += list((ROOT / "tasks").rglob("*.py"))
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > 300}
    assert files and not long, long


def test_no_function_over_40_lines():
    """Short functions (issue 23): every function and method of fpt/ and tasks/, from its `def` to its last line, docstring
    included, is at most 40 lines; a longer one splits into named steps."""
    import ast

    files = [p for p in (ROOT / "fpt").rglob("*.py") if p.relative_to(ROOT / "fpt").parts[0] != "tasks"]  # fpt/tasks: the symlink
    files += list((ROOT / "tasks").rglob("*.py"))
    long = {}
    for p in files:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (n := node.end_lineno - node.lineno + 1) > 40:
                long[f"{p.relative_to(ROOT)}:{node.lineno} {node.name}"] = n
    assert files and not long, long
