"""The package layout: no import cycles in cmkt, and lower layers never import higher ones.

Every import counts, including those inside functions (a lazy import hides a cycle, it does not
remove it). The graph is read from the source (ast), so a cycle is found without running it."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cmkt"

# Bottom to top: a module may import its own layer's modules and any lower layer's.
LAYERS = [
    ("cmkt", "cmkt.errors", "cmkt.io"),
    ("cmkt.data",),
    ("cmkt.model",),
    ("cmkt.analysis",),
    ("cmkt.baselines",),
    ("cmkt.train",),
    ("cmkt.runs",),
    ("cmkt.educator",),
    ("cmkt.serve", "cmkt.client"),
    ("cmkt.cli", "cmkt.__main__"),
]


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    out = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the cmkt modules it imports (an imported name that is a module counts as it)."""
    mods = module_names(package)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        deps: set[str] = set()
        explicit: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "cmkt":
                    continue
                explicit.add(target)                # `from P import x` runs P itself first
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in mods else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.split(".")[0] == "cmkt")
        # importing a.b.c runs a/__init__ and a/b/__init__ first: those count too
        closed = set()
        for d in deps:
            parts = d.split(".")
            closed.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
        # an implied parent package is left out (Python runs it before this module anyway), one named
        # in `from P import x` is not: P's __init__ may import this module back
        graph[name] = {d for d in closed if d in mods and d != name
                       and (not name.startswith(d + ".") or d in explicit)}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and len(n) > best_len and not (n == "cmkt" and module != "cmkt"):
                best, best_len = i, len(n)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add its package to LAYERS")
    return best


def upward_imports(graph) -> list[str]:
    return [f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
            for a, deps in sorted(graph.items()) for b in sorted(deps) if layer_of(b) > layer_of(a)]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_lower_layers_never_import_higher_ones():
    assert upward_imports(import_graph()) == []


def test_every_module_has_a_layer():
    for name in module_names():
        layer_of(name)


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 420}
    assert long == {}


def test_the_checks_catch_a_baseline_importing_the_trainer(tmp_path):
    """The cycle of wave 2 (bkt -> trainer -> kinds -> baselines) is found, and so is the upward import."""
    import shutil
    copy = tmp_path / "cmkt"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    bkt = copy / "baselines" / "bkt.py"
    bkt.write_text("from cmkt.train.trainer import Trainer\n" + bkt.read_text())
    graph = import_graph(copy)
    found = cycles(graph)
    assert any("cmkt.baselines.bkt" in c and "cmkt.train.trainer" in c for c in found)
    assert any(s.startswith("cmkt.baselines.bkt ") for s in upward_imports(graph))


def test_the_graph_sees_lazy_imports(tmp_path):
    pkg = tmp_path / "cmkt"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("def f():\n    from cmkt.a import y\n")
    (pkg / "a" / "y.py").write_text("from . import x\n")
    assert cycles(import_graph(pkg)) == [["cmkt.a.x", "cmkt.a.y"]]


def test_import_cmkt_pulls_no_streamlit():
    code = ("import sys, cmkt, cmkt.cli, cmkt.runs, cmkt.runs.jobs, cmkt.educator.report, cmkt.runs.export;"
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("module", ["cmkt.runs", "cmkt.train.trainer"])
def test_public_names_stay_where_users_import_them(module):
    import importlib
    m = importlib.import_module(module)
    names = {"cmkt.runs": ["create_run", "execute_run", "read_config", "read_status", "read_metrics", "RunError"],
             "cmkt.train.trainer": ["Trainer", "TrainCallbacks", "Cancelled"]}[module]
    missing = [n for n in names if not hasattr(m, n)]
    assert missing == []
