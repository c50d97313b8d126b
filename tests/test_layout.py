"""The package's shape: rooms that follow the data, no import circles, no private name used
outside its module, functions short enough to read at once (docs: README "Code layout")."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "proxyrank"
ROOMS = ("data", "curation", "training", "analysis", "reporting", "tools")
MAX_LINES = 60


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, str]]:
    """(module, name) for every `from proxyrank... import name` anywhere in the file, and
    (module, "") for a plain import or a submodule import."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "proxyrank":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub, "") if sub in modules else (node.module, alias.name))
        elif isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name in modules]
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: {target for target, _ in _imports(p, modules) if target in modules and target != m}
            for m, p in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (function-level imports included), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_package_has_its_rooms():
    for room in ROOMS:
        assert (PACKAGE / room / "__init__.py").is_file(), room
    assert not [p.name for p in PACKAGE.glob("*.py")
                if p.stem not in {"__init__", "__main__", "checks", "cli", "config", "errors", "files",
                                  "paths", "stage", "text", "timings"}], "a module outside the rooms"


def test_no_import_circle():
    assert _cycle(_graph()) is None


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_no_private_name_is_imported_from_another_module():
    modules = _modules()
    private = [f"{m} imports {target}.{name}" for m, p in modules.items()
               for target, name in _imports(p, modules) if name.startswith("_")]
    assert private == []


def test_config_imports_only_params_and_leaves():
    """config is loaded by every stage, so whatever it imports is a dep of every stage (dvc.yaml):
    it must not reach the code that trains, analyses or reports."""
    graph, seen, todo = _graph(), set(), ["proxyrank.config"]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph[m]
    heavy = sorted(m for m in seen if m.startswith(("proxyrank.training.", "proxyrank.analysis.",
                                                    "proxyrank.reporting.", "proxyrank.tools."))
                   and not m.endswith((".params", ".presets")))
    assert heavy == []


def test_no_function_is_longer_than_a_screen():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in [*PACKAGE.rglob("*.py"), *(ROOT / "stages").glob("*.py")]
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert long == []


def test_every_third_party_package_the_code_imports_is_declared():
    """A package imported directly must be a declared dependency, not one that happens to come
    with another (pyproject.toml's [project] dependencies, pinned)."""
    import sys
    import tomllib
    from importlib.metadata import packages_distributions

    declared = {d.split("==")[0].split("[")[0].strip().lower().replace("_", "-")
                for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    dists = packages_distributions()
    imported = set()
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "stages").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    third = {m for m in imported if m not in sys.stdlib_module_names and m not in {"proxyrank", "stages"}}
    missing = sorted(f"{m} ({', '.join(dists.get(m, ['?']))})" for m in third
                     if not {d.lower().replace("_", "-") for d in dists.get(m, [m])} & declared)
    assert missing == []


def test_requirements_lock_pins_every_declared_dependency_at_its_declared_version():
    """`make` installs requirements.lock, not pyproject.toml: a dependency bumped or added in one
    and not the other would install a version nobody declared (regenerate with `make lock`).
    torch is the exception by design: the Makefile installs its local CPU wheel on its own."""
    import tomllib

    def norm(name):
        return name.strip().lower().replace("_", "-").replace(".", "-")

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    declared = dict(d.split("#")[0].strip().split("==") for d in declared)
    locked = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().splitlines()
                  if line and not line.startswith("#"))
    locked = {norm(k): v.strip() for k, v in locked.items()}
    torch = declared.pop("torch")
    assert f"TORCH := {torch}" in (ROOT / "Makefile").read_text()
    assert "torch" not in locked and "proxyrank" not in locked
    wrong = {k: (v, locked.get(norm(k))) for k, v in declared.items() if locked.get(norm(k)) != v}
    assert wrong == {}
