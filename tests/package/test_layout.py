"""Imports run one way: the layer order written in the package docstring (and README's Layout section).

Read with ``ast``, so imports made inside functions count too. Fails when a file imports a layer above
its own, when files or layers import each other in a cycle, or when a module outside ``cli`` imports one
of the package's own modules inside a function (``if TYPE_CHECKING:`` blocks are fine). Command-line
parsers are built only in ``cli``: the layers below it declare flags as data.
"""
import ast
import os
import re
from collections import defaultdict
from typing import Dict, List, NamedTuple, Set

import pytest

from helpers import PROJECT_DIR

PACKAGE = "mindcv_res2net"
DEFERRING_LAYER = "cli"  # the programs may defer imports, for a fast --help
INIT = "__init__"  # the room of the package's own __init__


class Arrow(NamedTuple):
    """``source`` imports ``target`` at ``line`` of ``source``; ``deferred``: inside a function."""
    source: str
    target: str
    line: int
    deferred: bool


def module_files(package_dir: str) -> Dict[str, str]:
    """Dotted module name -> file, for every ``.py`` file under ``package_dir``."""
    base = os.path.dirname(package_dir)
    modules = {}
    for folder, _, files in os.walk(package_dir):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
                modules[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return modules


def _imported_modules(module: str, path: str, node: ast.AST, modules: Dict[str, str]) -> Set[str]:
    """The package's modules an import statement of ``module`` (file ``path``) loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            parts = module.split(".")
            package = parts if path.endswith("__init__.py") else parts[:-1]
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    found = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def _in_function_or_type_checking(node: ast.AST, parents: Dict[ast.AST, ast.AST]):
    deferred = type_checking = False
    while node in parents:
        node = parents[node]
        deferred |= isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        type_checking |= isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
    return deferred, type_checking


def import_arrows(package_dir: str) -> List[Arrow]:
    """Every import of one of the package's modules by another, at module level or inside functions."""
    modules = module_files(package_dir)
    arrows = []
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            deferred, type_checking = _in_function_or_type_checking(node, parents)
            if type_checking:
                continue
            targets = _imported_modules(module, path, node, modules)
            arrows += [Arrow(module, target, node.lineno, deferred) for target in sorted(targets)]
    return arrows


def room(module: str) -> str:
    """The top-level subpackage or module of the package a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else INIT


def documented_layers(package_dir: str) -> List[Set[str]]:
    """The layers of the package docstring's list, from the bottom; one bullet may name several rooms."""
    with open(os.path.join(package_dir, "__init__.py"), encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read()))
    layers = [set(re.findall(r"``(\w+)``", line.split(":")[0])) for line in doc.splitlines()
              if line.startswith("- ``")]
    plugin_line = next(line for line in doc.splitlines() if "import only from the layers below them" in line)
    above = {"mindcv_plugin"} if "mindcv_plugin" in plugin_line else set()
    cli = layers.index({DEFERRING_LAYER})
    return layers[:cli] + [above, {INIT}] + layers[cli:]  # the plugin and __init__ sit just below cli


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layout_problems(package_dir: str) -> List[str]:
    """One line per broken rule: a room not in the order, an upward arrow, a cycle, a deferred own import."""
    layers = documented_layers(package_dir)
    level = {name: i for i, layer in enumerate(layers) for name in layer}
    arrows = import_arrows(package_dir)
    problems = []
    for name in sorted({room(m) for m in module_files(package_dir)} - set(level)):
        problems.append(f"{name}: not placed in the layer order of the package docstring")
    file_edges, room_edges = defaultdict(set), defaultdict(set)
    for arrow in arrows:
        file_edges[arrow.source].add(arrow.target)
        src, dst = room(arrow.source), room(arrow.target)
        if src != dst:
            room_edges[src].add(dst)
        if src in level and dst in level and level[dst] > level[src]:
            problems.append(f"{arrow.source}:{arrow.line} imports {arrow.target}: from layer {src} up to {dst}")
        if arrow.deferred and src != DEFERRING_LAYER:
            problems.append(f"{arrow.source}:{arrow.line} imports {arrow.target} inside a function")
    problems += [f"files import each other in a cycle: {', '.join(c)}" for c in cycles(file_edges)]
    problems += [f"layers import each other in a cycle: {', '.join(c)}" for c in cycles(room_edges)]
    return problems


def parsers_outside_cli(package_dir: str) -> List[str]:
    """One line per call of a ``...Parser(...)`` (argparse's or a subclass) in a module outside ``cli``."""
    problems = []
    for module, path in sorted(module_files(package_dir).items()):
        if room(module) == DEFERRING_LAYER:
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name.endswith("Parser"):
                    problems.append(f"{module}:{node.lineno} builds a command-line parser ({name}) outside cli")
    return problems


# ---------------------------------------------------------------------------------------------- the package


def test_the_package_imports_run_one_way():
    problems = layout_problems(os.path.join(PROJECT_DIR, PACKAGE))
    assert problems == [], "\n".join(problems)


def test_every_command_line_parser_is_built_in_cli():
    problems = parsers_outside_cli(os.path.join(PROJECT_DIR, PACKAGE))
    assert problems == [], "\n".join(problems)


def test_readme_layout_names_the_docstring_layers_in_the_same_order():
    with open(os.path.join(PROJECT_DIR, "README.md"), encoding="utf-8") as f:
        layout = f.read().split("## Layout", 1)[1].split("\n## ", 1)[0]
    readme = [set(re.findall(r"`(\w+)`", line.split(":")[0])) for line in layout.splitlines()
              if re.match(r"\d+\. `", line)]
    docstring = [layer for layer in documented_layers(os.path.join(PROJECT_DIR, PACKAGE))
                 if layer - {"mindcv_plugin", INIT}]
    assert readme == docstring


# ---------------------------------------------------------------------------------------------- the checker


def _package(tmp_path, files: Dict[str, str]) -> str:
    doc = '"""Layers:\n\n- ``utils``: bottom;\n- ``models``: networks;\n- ``cli``: programs.\n\n' \
          '``mindcv_plugin`` and this ``__init__`` import only from the layers below them."""\n'
    files = {"__init__.py": doc, "utils/__init__.py": "", "models/__init__.py": "", "cli/__init__.py": "", **files}
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path / "pkg")


@pytest.mark.parametrize("files, problem", [
    ({"utils/io.py": "from ..models import net\n", "models/net.py": ""},
     "pkg.utils.io:1 imports pkg.models.net: from layer utils up to models"),
    ({"models/a.py": "from . import b\n", "models/b.py": "from .a import x\n"},
     "files import each other in a cycle: pkg.models.a, pkg.models.b"),
    ({"models/a.py": "def f():\n    from . import b\n", "models/b.py": ""},
     "pkg.models.a:2 imports pkg.models.b inside a function"),
    ({"extra.py": ""}, "extra: not placed in the layer order of the package docstring"),
    ({"utils/io.py": "import pkg.cli.main\n", "cli/main.py": ""},
     "pkg.utils.io:1 imports pkg.cli.main: from layer utils up to cli"),
])
def test_the_checker_finds_each_broken_rule(tmp_path, files, problem):
    assert problem in layout_problems(_package(tmp_path, files))


def test_the_checker_allows_what_the_rules_allow(tmp_path):
    files = {"models/net.py": "from ..utils import io\nfrom typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from ..cli import main\n",
             "utils/io.py": "def f():\n    import numpy\n",
             "cli/main.py": "def main():\n    from ..models import net\n"}
    assert layout_problems(_package(tmp_path, files)) == []


def test_the_parser_check_finds_a_parser_below_cli_and_allows_one_in_cli(tmp_path):
    package = _package(tmp_path, {"models/flags.py": "import argparse\nP = argparse.ArgumentParser()\n",
                                  "utils/types.py": "import argparse\nclass OneParser(argparse.ArgumentParser):\n"
                                                    "    pass\n",
                                  "cli/main.py": "from ..utils.types import OneParser\nP = OneParser()\n"})
    problem = "pkg.models.flags:2 builds a command-line parser (ArgumentParser) outside cli"
    assert parsers_outside_cli(package) == [problem]
