"""The layering of docs/architecture.md, checked on the sources with ast (so a lazy import
inside a function counts, and a violation fails here even when nothing imports the offending
module): the layers import each other along exactly the documented edges, no two modules
import each other in a cycle, and models/ names softpool_video absolutely."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "softpool_video"
# source folder -> the package it installs as (setup.cfg's package_dir)
SOURCES = {ROOT / "softpool_video": PACKAGE, ROOT / "models": f"{PACKAGE}.models",
           ROOT / "datamodules": f"{PACKAGE}.datamodules"}
COMPILED = {f"{PACKAGE}._C"}  # the extension: a module without Python source
ARCHITECTURE = ROOT / "docs" / "architecture.md"
EDGES_BLOCK = re.compile(r"<!-- layering-edges -->\n(.*?)<!-- /layering-edges -->", re.S)


def source_modules(sources: dict[Path, str] = SOURCES) -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package's __init__), for every .py file of the package."""
    modules = {}
    for folder, package in sources.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if folder.name == PACKAGE and parts[0] in ("models", "datamodules"):
                continue  # only the mapped top-level folders are those packages
            is_package = parts[-1] == "__init__"
            modules[".".join([package, *parts[:-1]] if is_package else [package, *parts])] = (path, is_package)
    return modules


def imported_modules(path: Path, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The known modules `path` imports anywhere in it, relative imports resolved. `from a
    import b` counts a.b when that is a module, else a itself."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            submodules = {f"{origin}.{alias.name}" for alias in node.names} & known
            found |= submodules
            if len(submodules) < len(node.names):
                found.add(origin)
    return {name for name in found if name in known and name != module}


def import_graph(sources: dict[Path, str] = SOURCES) -> dict[str, set[str]]:
    modules = source_modules(sources)
    known = set(modules) | COMPILED
    graph = {name: imported_modules(path, name, is_package, known) for name, (path, is_package) in modules.items()}
    return graph | {name: set() for name in COMPILED}


def layer_of(module: str) -> str:
    """`softpool_video.training.cli` -> training; `softpool_video.measure` -> measure; the package -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Layer -> the other layers it imports. Importing the package itself (`from softpool_video
    import __version__`) is no edge: every submodule's import loads it first."""
    edges: dict[str, set[str]] = {}
    for module, targets in graph.items():
        for target in targets:
            if target != PACKAGE and layer_of(target) != layer_of(module):
                edges.setdefault(layer_of(module), set()).add(layer_of(target))
    return edges


def documented_edges(text: str) -> dict[str, set[str]]:
    """The `- a -> b, c` lines between the layering-edges markers; "any layer but `x`" is
    kept as {"*", "-x"}."""
    block = EDGES_BLOCK.search(text)
    assert block, "docs/architecture.md has no <!-- layering-edges --> block"
    edges = {}
    for line in block.group(1).splitlines():
        match = re.fullmatch(r"- (\S+) -> (.+)", line.strip())
        assert match, f"unreadable line in the layering-edges block: {line!r}"
        source, targets = match.group(1).strip("`"), match.group(2)
        if any_but := re.fullmatch(r"any layer but `?(\w+)`?", targets):
            edges[source] = {"*", f"-{any_but.group(1)}"}
        else:
            edges[source] = {t.strip().strip("`") for t in targets.split(",")}
    return edges


def layering_errors(actual: dict[str, set[str]], documented: dict[str, set[str]]) -> list[str]:
    errors = []
    for layer in sorted(set(actual) | set(documented)):
        allowed, found = documented.get(layer, set()), actual.get(layer, set())
        if "*" in allowed:
            banned = {name[1:] for name in allowed if name.startswith("-")}
            errors += [f"{layer} imports {t}, which it must not" for t in sorted(found & banned)]
            continue
        errors += [f"{layer} imports {t}: not a documented edge" for t in sorted(found - allowed)]
        errors += [f"{layer} -> {t} is documented but no longer in the code" for t in sorted(allowed - found)]
    return errors


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


# ---- the checks on this project ----------------------------------------------------------------
def test_the_checks_see_the_sources():
    graph = import_graph()
    assert len(graph) > 100
    assert {layer_of(m) for m in graph} >= {"pooling", "models", "datamodules", "checkpoint", "training",
                                            "profiling", "export", "inference", "commands", "cli"}


def test_layers_import_each_other_along_the_documented_edges_only():
    errors = layering_errors(layer_edges(import_graph()), documented_edges(ARCHITECTURE.read_text()))
    assert not errors, "docs/architecture.md's layering and the code disagree:\n" + "\n".join(errors)


def test_no_import_cycles():
    cycles = import_cycles(import_graph())
    assert not cycles, f"modules that import each other (lazy imports included): {cycles}"


@pytest.mark.parametrize("path", sorted((ROOT / "models").glob("*.py")), ids=lambda p: p.name)
def test_models_import_beyond_their_package_absolutely(path):
    """`from ..pooling import X` only works when models/ sits inside softpool_video; the
    folder is mapped there by packaging, so imports from outside it name softpool_video."""
    tree = ast.parse(path.read_text(), filename=str(path))
    beyond = [f"line {n.lineno}: {'.' * n.level}{n.module or ''}" for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.level >= 2]
    assert not beyond, f"{path.name} imports relatively beyond softpool_video.models: {beyond}"


# ---- the checks on made-up sources -------------------------------------------------------------
def _write(root: Path, files: dict[str, str]) -> dict[Path, str]:
    for name, text in files.items():
        path = root / "softpool_video" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {root / "softpool_video": PACKAGE}


def test_the_resolver_sees_relative_absolute_and_lazy_imports(tmp_path):
    sources = _write(tmp_path, {
        "__init__.py": "", "reporting.py": "", "pooling/__init__.py": "from .ops import f\n",
        "pooling/ops.py": "from .. import reporting\n", "training/__init__.py": "",
        "training/cli.py": "def main():\n    from softpool_video.pooling import ops\n    import softpool_video.reporting\n",
    })
    graph = import_graph(sources)
    assert graph["softpool_video.pooling"] == {"softpool_video.pooling.ops"}
    assert graph["softpool_video.pooling.ops"] == {"softpool_video.reporting"}
    assert graph["softpool_video.training.cli"] == {"softpool_video.pooling.ops", "softpool_video.reporting"}
    assert layer_edges(graph) == {"pooling": {"reporting"}, "training": {"pooling", "reporting"}}


def test_the_checks_catch_a_new_edge_a_stale_edge_and_a_cycle(tmp_path):
    sources = _write(tmp_path, {
        "__init__.py": "", "pooling/__init__.py": "", "pooling/a.py": "def f():\n    from . import b\n",
        "pooling/b.py": "from .a import f\nfrom ..training import loop\n", "training/__init__.py": "",
        "training/loop.py": "",
    })
    graph = import_graph(sources)
    assert import_cycles(graph) == [["softpool_video.pooling.a", "softpool_video.pooling.b"]]
    documented = documented_edges("<!-- layering-edges -->\n- pooling -> measure\n- commands -> any layer but `cli`\n"
                                  "<!-- /layering-edges -->")
    assert documented == {"pooling": {"measure"}, "commands": {"*", "-cli"}}
    assert layering_errors(layer_edges(graph), documented) == [
        "pooling imports training: not a documented edge", "pooling -> measure is documented but no longer in the code"]
    assert layering_errors({"commands": {"cli", "models"}}, {"commands": documented["commands"]}) == [
        "commands imports cli, which it must not"]
