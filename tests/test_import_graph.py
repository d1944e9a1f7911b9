"""No import cycles among nengoseg's modules (read statically from the sources).

Every ``import`` counts, also those inside functions: a lazy import hides a circle
from Python but not from a reader, and the next change makes it eager.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# source folder -> the package it is installed as (setup.cfg: nengoseg.loihi = loihi)
PACKAGES = {"nengoseg": "nengoseg", "loihi": "nengoseg.loihi"}
# the one import that points back up by design: the package nengoseg.convert is also the
# Python API's verb ``ns.convert(model)``, whose call hands over to the API module
FACADES = {("nengoseg.convert", "nengoseg.spiking_model")}


def modules():
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports(name, path, known):
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
    # importing a.b.c runs a/__init__.py and a/b/__init__.py first: those are imported too
    found |= {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 1)}
    return {m for m in found if m in known and m != name and not name.startswith(m + ".")
            and (name, m) not in FACADES}


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycles():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert len(graph) > 40
    assert cycles(graph) == []


def test_the_facade_import_is_the_only_exemption():
    """The exempt import exists (else drop it from FACADES) and sits in a function."""
    known = modules()
    for name, target in FACADES:
        tree = ast.parse(known[name].read_text())
        top = {a.name for node in tree.body if isinstance(node, ast.ImportFrom)
               for a in node.names if node.module == target}
        nested = {node.module for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module == target}
        assert nested == {target} and not top


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
