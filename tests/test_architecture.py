"""The package's shape, checked: no import cycles between fomm's modules (a cycle held apart by a
function-local import counts), argparse only in ``fomm.cli``, and no ``print`` in library code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fomm"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name a ``from ... import`` statement reads from."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(module: str) -> set[str]:
    """fomm modules that ``module`` imports anywhere in its body (top level or inside functions)."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            # `from pkg import name` reads pkg.name when that is a module, else pkg itself.
            names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in MODULES and name != module)
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

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
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_fomm_modules():
    graph = {module: imported_modules(module) for module in MODULES}
    assert sum(len(targets) for targets in graph.values()) > 50, "the import scan found too few imports"
    assert find_cycles(graph) == []


def _library_modules() -> list[str]:
    return [module for module in MODULES if not module.startswith("fomm.cli")]


@pytest.mark.parametrize("module", _library_modules())
def test_library_modules_have_no_argparse_and_no_print(module):
    tree = ast.parse(MODULES[module].read_text())
    imports = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imports |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert "argparse" not in imports, f"{module} imports argparse: command-line parsing belongs in fomm.cli"
    prints = [node.lineno for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]
    assert not prints, f"{module} prints (lines {prints}): library code logs, the CLI prints"


def test_every_command_module_has_the_command_interface():
    from fomm.cli import COMMANDS, _load_command

    for name in COMMANDS:
        add, run = _load_command(name)
        assert callable(add) and callable(run), name


# --------------------------------------------------------------------------------------------
# the dependency table of docs/architecture.md

ARCHITECTURE = PACKAGE.parents[1] / "docs" / "architecture.md"


def documented_dependencies() -> dict[str, set[str]]:
    """The table between ``<!-- dependencies`` and ``<!-- /dependencies -->``: unit -> units it may
    import (a row may name several units, comma-separated)."""
    text = ARCHITECTURE.read_text()
    table = text[text.index("<!-- dependencies"):text.index("<!-- /dependencies -->")]
    allowed: dict[str, set[str]] = {}
    for row in table.splitlines():
        if not row.startswith("|"):
            continue
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("unit", "---"):
            continue
        targets = {name.strip() for name in cells[1].split(",") if name.strip()}
        for unit in cells[0].split(","):
            allowed[unit.strip()] = targets
    return allowed


def unit_of(module: str) -> str:
    """``fomm.models.fomm.generator`` -> ``models``; ``fomm`` -> ``fomm``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "fomm"


def test_the_documented_table_names_every_unit():
    units = {unit_of(module) for module in MODULES}
    assert set(documented_dependencies()) == units


def forbidden_imports(graph: dict[str, set[str]], allowed: dict[str, set[str]]) -> list[str]:
    """``module -> imported module`` for every import between units that ``allowed`` does not allow."""
    return sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                  if unit_of(target) != unit_of(module) and unit_of(target) not in allowed.get(unit_of(module), set()))


def test_every_import_between_units_is_one_the_documented_table_allows():
    graph = {module: imported_modules(module) for module in MODULES}
    forbidden = forbidden_imports(graph, documented_dependencies())
    assert forbidden == [], "imports docs/architecture.md does not allow (change the code, or the table with a reason)"


def test_the_table_checker_finds_a_forbidden_import():
    graph = {"fomm.models.fomm.generator": {"fomm.config", "fomm.models.blocks"}, "fomm.config": {"fomm.cli.train"}}
    assert forbidden_imports(graph, {"models": {"config"}, "config": set()}) == ["fomm.config -> fomm.cli.train"]
