"""The code each DVC stage runs, so that dvc.yaml's deps cannot go stale.

A stage's code is its script (stages/X.py, run as `python -m stages.X`) and every module of the package it can import, followed
through module-level and function-level imports alike (an import inside a function runs as surely
as one at the top). `python -m proxyrank.tools.deps` lists, per stage, the modules dvc.yaml is
missing and the ones it lists but the stage never imports; `--fix` rewrites the code deps of
dvc.yaml in place (data deps, params and comments untouched). tests/test_stages.py fails on any gap.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

PACKAGE = "proxyrank"
STAGE_CMD = re.compile(r"python -m stages\.(\w+)")
CODE_DEP = re.compile(r"^(\s*)- ((?:proxyrank|stages)/\S+\.py)\s*$")


def module_file(root: Path, module: str) -> Path | None:
    """The file of a dotted module name inside the repository, or None (not ours, or a name)."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path) -> set[str]:
    """Every package module `path` imports, anywhere in the file (`from a.b import c` counts a.b,
    and a.b.c when c is itself a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def closure(root: Path, script: Path) -> set[str]:
    """The repository-relative files a script runs: itself and every package module it reaches,
    with the non-empty __init__.py files of the packages on the way."""
    init = script.parent / "__init__.py"  # `python -m stages.x` runs stages/__init__.py first
    seen, todo = set(), [script] + ([init] if init.is_file() and init.read_text().strip() else [])
    while todo:
        path = todo.pop()
        rel = path.relative_to(root).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        for module in imported_modules(path):
            parts = module.split(".")
            for i in range(1, len(parts) + 1):  # a.b.c also runs a/__init__.py and a/b/__init__.py
                found = module_file(root, ".".join(parts[:i]))
                if found is not None and (found.name != "__init__.py" or found.read_text().strip()):
                    todo.append(found)
    return seen


def _bodies(root: Path) -> dict[str, dict]:
    """dvc.yaml's stages by name, a foreach stage by its `do` body."""
    import yaml

    return {name: body.get("do") or body for name, body in yaml.safe_load((root / "dvc.yaml").read_text())["stages"].items()}


def stage_scripts(root: Path) -> dict[str, str]:
    """dvc.yaml's stage names and the script each one's cmd runs."""
    out = {}
    for name, body in _bodies(root).items():
        cmd = body["cmd"]
        match = STAGE_CMD.search(cmd)
        if match is None:
            raise ValueError(f"dvc.yaml stage {name}: cmd {cmd!r} does not run python -m stages.<name>")
        out[name] = f"stages/{match.group(1)}.py"
    return out


def code_deps(root: Path) -> dict[str, set[str]]:
    """The code files dvc.yaml lists as each stage's deps."""
    return {name: {d for d in body.get("deps", []) if CODE_DEP.match(f"- {d}")} for name, body in _bodies(root).items()}


def gaps(root: Path) -> dict[str, tuple[set[str], set[str]]]:
    """Per stage: (code it runs that dvc.yaml does not list, code dvc.yaml lists that it never runs)."""
    listed = code_deps(root)
    out = {}
    for name, script in stage_scripts(root).items():
        runs = closure(root, root / script)
        if runs != listed[name]:
            out[name] = (runs - listed[name], listed[name] - runs)
    return out


def fix(root: Path) -> None:
    """Rewrite each stage's code deps in dvc.yaml to exactly its closure (after its data deps)."""
    scripts, lines, out, stage, block = stage_scripts(root), (root / "dvc.yaml").read_text().splitlines(), [], None, []
    for line in lines:
        top = re.match(r"^  (\w+):\s*$", line)
        if top and top.group(1) in scripts:
            stage = top.group(1)
        match = CODE_DEP.match(line)
        if match and stage is not None:
            block.append(match.group(1))
            continue
        if block:
            out += [f"{block[0]}- {f}" for f in sorted(closure(root, root / scripts[stage]), key=_order)]
            block = []
        out.append(line)
    (root / "dvc.yaml").write_text("\n".join(out) + "\n")


def _order(path: str) -> tuple:
    return (not path.startswith("stages/"), path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxyrank.tools.deps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fix", action="store_true", help="rewrite dvc.yaml's code deps to the closures")
    args = parser.parse_args(argv)
    root = Path.cwd()
    if args.fix:
        fix(root)
    found = gaps(root)
    for name, (missing, extra) in found.items():
        print(f"{name}: missing {sorted(missing)}; never imported {sorted(extra)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
