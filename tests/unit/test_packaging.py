"""Packaging and layout rules: every package installed, imports flow one way, modules documented."""

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"okrsync": "okrsync", "connectors": "okrsync.connectors", "engine": "okrsync.engine",
           "mappings": "okrsync.mappings", "config": "okrsync.config", "domain": "okrsync.domain"}


def packages_on_disk() -> set[str]:
    out = set()
    for folder, prefix in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            out.add(".".join([prefix, *rel.parts]) if rel.parts else prefix)
    return out


def modules() -> list[Path]:
    return [p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")]


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert packages_on_disk() == listed


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            # relative import: resolve against the file's package
            parts = path.relative_to(ROOT).with_suffix("").parts[:-node.level]
            base = ".".join([FOLDERS.get(parts[0], parts[0]), *parts[1:]]) if parts else ""
            names.add(f"{base}.{node.module}" if node.module else base)
    return names


@pytest.mark.parametrize("folder,forbidden", [
    ("connectors", ("okrsync.engine", "okrsync.mappings", "okrsync.cli", "okrsync.sandbox")),
    ("mappings", ("okrsync.engine", "okrsync.connectors", "okrsync.cli")),
    ("config", ("okrsync.engine", "okrsync.connectors", "okrsync.mappings", "okrsync.cli")),
    ("engine", ("okrsync.cli", "okrsync.sandbox", "okrsync.report")),
])
def test_imports_flow_one_way(folder, forbidden):
    bad = []
    for path in (ROOT / folder).rglob("*.py"):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert bad == []


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [FOLDERS[rel.parts[0]], *rel.parts[1:]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (`from pkg import mod` counts as importing pkg.mod)."""
    names = {_module_name(p): p for p in modules()}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        edges = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(path, node)
                edges.add(base)
                edges |= {f"{base}.{a.name}" for a in node.names}
        graph[name] = {e for e in edges if e in names and e != name}
    return graph


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:` (annotations only, never imported at run time)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = path.relative_to(ROOT).with_suffix("").parts[:-node.level]
    base = ".".join([FOLDERS.get(parts[0], parts[0]), *parts[1:]]) if parts else ""
    return f"{base}.{node.module}" if node.module else base


def test_no_import_cycles():
    graph = import_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # package __init__ modules re-exporting their own submodules are not cycles between modules
    real = [c for c in cycles if not any(a.startswith(b + ".") or b.startswith(a + ".") for a, b in zip(c, c[1:]))]
    assert real == []


def test_the_domain_imports_nothing_of_ours():
    names = {n for path in (ROOT / "domain").rglob("*.py") for n in _imports(path)}
    assert not [n for n in names if n.startswith("okrsync") and not n.startswith("okrsync.domain")]


def test_every_module_has_a_docstring():
    missing = [str(p.relative_to(ROOT)) for p in modules() if p.stat().st_size and not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []


@pytest.mark.slow
def test_wheel_contains_the_sub_packages(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("okrsync-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for must in ("okrsync/cli.py", "okrsync/engine/store.py", "okrsync/connectors/http.py", "okrsync/mappings/metrics.py",
                 "okrsync/config/workspace.py", "okrsync/templates/okrsync.yaml"):
        assert must in names
    assert not any(n.startswith(("engine/", "connectors/", "config/", "mappings/", "domain/")) for n in names)
