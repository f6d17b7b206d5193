"""The shape of the code: four deployables, the imports allowed between them, their own
dependencies and nothing more, no import circles, no source file over 400 lines.

The rules (docs/architecture.md says why):
- the gateway (``batchsight``) never imports the cloud functions or the tools;
- the cloud functions (``batchsight_pipeline`` and ``cloud/functions/*/app.py``) never import
  the gateway or the tools;
- the detector (``batchsight_detector``) imports none of the others;
- the tools (``batchsight_tools``) may import all of them; nothing imports the tools.
Each package's third-party imports come from its own requirements file.
"""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

from tests.support import REPO

MAX_LINES = 400


@dataclass(frozen=True)
class Deployable:
    name: str
    files: tuple[Path, ...]
    requirements: tuple[Path, ...]
    forbidden: frozenset[str]  # our packages it must never import
    provided: frozenset[str] = frozenset()  # distributions its runtime brings along


def _python_files(*folders: str) -> tuple[Path, ...]:
    return tuple(sorted(p for folder in folders for p in (REPO / folder).rglob("*.py")
                        if "__pycache__" not in p.parts))


OURS = frozenset({"batchsight", "batchsight_detector", "batchsight_pipeline", "batchsight_tools",
                  "batchsight_stack"})
DEPLOYABLES = (
    Deployable("gateway", _python_files("component/batchsight"), (REPO / "component/requirements.txt",),
               frozenset({"batchsight_pipeline", "batchsight_tools", "batchsight_stack"})),
    Deployable("detector", _python_files("detector/batchsight_detector"), (REPO / "detector/requirements.txt",),
               OURS - {"batchsight_detector"}),
    # boto3 comes with Lambda's Python runtime; the layer brings the rest (cloud/pipeline/requirements.txt)
    Deployable("cloud functions", _python_files("cloud/pipeline", "cloud/functions"),
               (REPO / "cloud/pipeline/requirements.txt",),
               frozenset({"batchsight", "batchsight_tools", "batchsight_stack"}), frozenset({"boto3"})),
)


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """(module, line) of every import in a file, lazy ones included, type-checking-only ones not."""
    tree = ast.parse(path.read_text(), str(path))
    type_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                 and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                package = _module_name(path).rsplit(".", node.level)[0]
                base = f"{package}.{node.module}" if node.module else package
                yield from ((f"{base}.{a.name}" if not node.module else base, node.lineno) for a in node.names)
            elif node.module:
                yield node.module, node.lineno


def _module_name(path: Path) -> str:
    relative = path.relative_to(REPO)
    for root in ("component", "detector", "cloud/pipeline", "tools"):
        if relative.is_relative_to(root):
            parts = relative.relative_to(root).with_suffix("").parts
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return ".".join(relative.with_suffix("").parts)


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(_normalise(re.split(r"[\s<>=!~\[;]", line, maxsplit=1)[0]))
    return names


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _closure(distribution: str) -> frozenset[str]:
    """A distribution and everything it requires (unconditionally), as installed here."""
    seen, todo = set(), [_normalise(distribution)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_normalise(re.split(r"[\s<>=!~\[;(]", r, maxsplit=1)[0]) for r in requires if "extra ==" not in r]
    return frozenset(seen)


@cache
def _installed() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def _distributions_of(module: str) -> set[str]:
    return {_normalise(d) for d in _installed().get(module.split(".")[0], [])}


@pytest.mark.parametrize("deployable", DEPLOYABLES, ids=lambda d: d.name)
def test_a_deployable_imports_none_of_the_packages_it_must_not(deployable: Deployable) -> None:
    found = [f"{p.relative_to(REPO)}:{line} imports {module}" for p in deployable.files
             for module, line in imports(p) if module.split(".")[0] in deployable.forbidden]
    assert found == []


def test_nothing_imports_the_tools_but_the_tools() -> None:
    others = [p for d in DEPLOYABLES for p in d.files]
    found = [f"{p.relative_to(REPO)}:{line}" for p in others for module, line in imports(p)
             if module.split(".")[0] == "batchsight_tools"]
    assert found == []


@pytest.mark.parametrize("deployable", DEPLOYABLES, ids=lambda d: d.name)
def test_a_deployable_imports_only_what_its_own_requirements_bring(deployable: Deployable) -> None:
    allowed: set[str] = set()
    for requirement in {n for path in deployable.requirements for n in _requirement_names(path)} | deployable.provided:
        allowed |= _closure(requirement)
    undeclared = []
    for path in deployable.files:
        for module, line in imports(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in OURS or top == "__future__":
                continue
            if not _distributions_of(top) & allowed:
                undeclared.append(f"{path.relative_to(REPO)}:{line} imports {top}")
    assert undeclared == [], f"not in {[str(p.relative_to(REPO)) for p in deployable.requirements]}"


@pytest.mark.parametrize("deployable", DEPLOYABLES, ids=lambda d: d.name)
def test_a_deployables_requirements_are_all_used(deployable: Deployable) -> None:
    used = {d for path in deployable.files for module, _ in imports(path) for d in _distributions_of(module)}
    unused = [name for path in deployable.requirements for name in _requirement_names(path)
              if not _closure(name) & used]
    assert unused == []


def test_the_gateway_and_the_detector_pin_the_libraries_they_share_alike() -> None:
    def pins(path: Path) -> dict[str, str]:
        lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
        return {_normalise(n): v for n, v in (line.split("==") for line in lines if "==" in line)}

    gateway, detector = pins(REPO / "component/requirements.txt"), pins(REPO / "detector/requirements.txt")
    assert {n: (gateway[n], detector[n]) for n in gateway.keys() & detector.keys() if gateway[n] != detector[n]} == {}


def _graph() -> dict[str, set[str]]:
    """Our modules and the modules of ours each imports."""
    files = [p for d in DEPLOYABLES for p in d.files] + list(_python_files("tools"))
    names = {_module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        targets = set()
        for module, _ in imports(path):
            while module and module not in names:
                module = module.rpartition(".")[0]
            if module and module != name:
                targets.add(module)
        graph[name] = targets
    return graph


def test_no_import_circles() -> None:
    graph, circles = _graph(), []
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert circles == []


def test_no_source_file_over_400_lines() -> None:
    tracked = [p for p in REPO.rglob("*.py") if not {".venv", ".tools", ".aws-sam", "build"} & set(p.parts)]
    too_long = {str(p.relative_to(REPO)): n for p in tracked if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert too_long == {}


def test_pyproject_lists_every_package_and_maps_it_to_its_folder() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = setuptools["package-dir"]
    found = {"batchsight_stack"}
    for top, folder in folders.items():
        if top == "batchsight_stack":
            continue
        found |= {".".join([top, *p.parent.relative_to(REPO / folder).parts])
                  for p in (REPO / folder).rglob("__init__.py")}
    assert set(setuptools["packages"]) == found
