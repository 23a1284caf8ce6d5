"""The layout's rules, checked: where a line goes stays true as the code changes."""

import ast
import re
import subprocess
import sys
from pathlib import Path

from lake_tools.code_map import BEGIN, END, code_map

PROJECT = Path(__file__).resolve().parents[1]
PACKAGE = PROJECT / "lake_assets"
MAX_LINES = 450  # "about 400": a module past this has more than one job


def _module(path: Path) -> str:
    parts = path.relative_to(PROJECT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The lake_assets modules a file imports at module level (not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lake_assets"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("lake_assets")}
    return found


def test_the_readme_code_map_is_the_tree():
    readme = (PROJECT / "README.md").read_text()
    committed = readme[readme.index(BEGIN) + len(BEGIN) : readme.index(END)].strip()
    assert committed == code_map(), "regenerate the code map: python -m lake_tools.code_map"


def test_every_module_says_its_purpose_and_stays_small():
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text()
        assert ast.get_docstring(ast.parse(source)), f"{path.relative_to(PROJECT)} has no docstring"
        assert len(source.splitlines()) <= MAX_LINES, f"{path.relative_to(PROJECT)}: {len(source.splitlines())} lines"


def test_the_library_imports_neither_dagster_nor_the_definitions():
    for path in (PACKAGE / "lib").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        bad = sorted(n for n in names if n.split(".")[0] == "dagster" or n.startswith(("lake_assets.defs", "lake_assets.cli")))
        assert not bad, f"{path.relative_to(PROJECT)} imports {bad}"
        assert "Failure" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}, path


def test_no_import_cycles():
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for nxt in sorted(graph[name]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt) :] + [name, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_the_path_rules_and_the_library_core_import_without_spark_or_dagster():
    code = (
        "import sys\n"
        "import lake_assets.lib.partitions, lake_assets.lib.registry, lake_assets.lib.errors, lake_assets.lib.raw_listing\n"
        "print(sorted(m for m in ('pyspark', 'dagster') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PROJECT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_every_config_field_description_is_one_short_sentence():
    """The launchpad shows these; the README holds the rest. (settings.py's are the README's table cells.)"""
    for path in PACKAGE.rglob("*.py"):
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Field":
                for keyword in node.keywords:
                    if keyword.arg != "description":
                        continue
                    text = ast.literal_eval(keyword.value)
                    where = f"{path.relative_to(PROJECT)}:{node.lineno}"
                    assert len(text) <= 120, f"{where}: {len(text)} characters"
                    assert not re.search(r"[.!?]\s+[A-Z]", text), f"{where}: more than one sentence: {text}"
