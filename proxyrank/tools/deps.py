"""The code each DVC stage runs, so that no stage's code deps can go stale.

A stage's code is its script (stages/X.py, run as `python -m stages.X`) and every module of the package it can
import, followed through module-level and function-level imports alike (an import inside a function runs as
surely as one at the top).

A stage does not list those modules itself: the `code` stage (stages/code.py) depends on every module any
stage runs and writes one small file per stage, data/code/X.txt, with the SHA-256 of each module in X's
closure (`sha256sum -c` reads it), and stage X depends on that one file. DVC reruns X exactly when a module
X imports changes, as when X listed them, while dvc.lock holds the module list once instead of once per
stage. Why: DVC rewrites the whole dvc.lock (a round-trip YAML parse and dump) after every stage it runs;
with ~40 code deps in each of 83 stages the lock was 519 KB and each rewrite took 5.7 s here (now 210 KB,
2.8 s), about 8 minutes of a full rerun (now 4; bench/results/lock_size.md).

`python -m proxyrank.tools.deps` lists the gaps: modules the `code` stage misses or lists without any stage
running them, and stages that list code directly or lack their data/code file; `--fix` rewrites the `code`
stage's list (data deps, params and comments untouched). tests/test_stages.py fails on any gap.
"""
from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import re
import sys
from pathlib import Path

from proxyrank.files import atomic_path

PACKAGE = "proxyrank"
STAGE_CMD = re.compile(r"python -m stages\.(\w+)")
CODE_DEP = re.compile(r"^(\s*)- ((?:proxyrank|stages)/\S+\.py)\s*$")
CODE_STAGE = "code"
CODE_DIR = "data/code"  # the code stage's output: one digest file per stage


def digest_dep(stage: str) -> str:
    """The one code dep of `stage`: its digest file, written by the code stage."""
    return f"{CODE_DIR}/{stage}.txt"


def module_file(root: Path, module: str) -> Path | None:
    """The file of a dotted module name inside the repository, or None (not ours, or a name)."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path) -> set[str]:
    """Every package module `path` imports, anywhere in the file (`from a.b import c` counts a.b,
    and a.b.c when c is itself a module). Parsed once per version of the file: the code stage
    follows 18 closures over the same modules (4.7 s unmemoised)."""
    st = path.stat()
    return _imports(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=None)
def _imports(path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return frozenset(found)


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


def scripts_on_disk(root: Path) -> dict[str, Path]:
    """Every stage script in stages/ but the code stage's own, by stage name."""
    return {f.stem: f for f in sorted((root / "stages").glob("*.py"))
            if f.stem not in ("__init__", CODE_STAGE)}


def union(root: Path) -> set[str]:
    """What the code stage depends on: every module any stage runs, its own script's included."""
    return set().union(*(closure(root, f) for f in [*scripts_on_disk(root).values(),
                                                     root / "stages" / f"{CODE_STAGE}.py"]))


def digest(root: Path, script: Path) -> str:
    """A stage's digest file: `sha256  path` per module of its closure (sha256sum's format)."""
    return "".join(f"{hashlib.sha256((root / f).read_bytes()).hexdigest()}  {f}\n"
                   for f in sorted(closure(root, script), key=_order))


def write_digests(root: Path, out: Path) -> None:
    """The code stage's body: out/<stage>.txt for every stage script, nothing else in out."""
    out.mkdir(parents=True, exist_ok=True)
    scripts = scripts_on_disk(root)
    for old in out.glob("*.txt"):
        if old.stem not in scripts:
            old.unlink()
    for name, script in scripts.items():
        with atomic_path(out / f"{name}.txt") as tmp:
            tmp.write_text(digest(root, script))


def code_deps(root: Path) -> dict[str, set[str]]:
    """The code files dvc.yaml lists as each stage's deps."""
    return {name: {d for d in body.get("deps", []) if CODE_DEP.match(f"- {d}")} for name, body in _bodies(root).items()}


def gaps(root: Path) -> dict[str, tuple[set[str], set[str]]]:
    """Per stage: (deps it lacks, deps it lists that it should not). The code stage must list exactly
    the union of the closures; every other stage its digest file and no module directly."""
    bodies, listed = _bodies(root), code_deps(root)
    out = {}
    for name in stage_scripts(root):
        if name == CODE_STAGE:
            want, have = union(root), listed[name]
        else:
            want, have = {digest_dep(name)}, listed[name] | {d for d in bodies[name].get("deps", [])
                                                              if d.startswith(CODE_DIR + "/")}
        if want != have:
            out[name] = (want - have, have - want)
    return out


def fix(root: Path) -> None:
    """Rewrite the code stage's deps in dvc.yaml to exactly the union of the stages' closures."""
    lines, out, stage, block = (root / "dvc.yaml").read_text().splitlines(), [], None, []
    for line in lines:
        top = re.match(r"^  (\w+):\s*$", line)
        if top:
            stage = top.group(1)
        match = CODE_DEP.match(line)
        if match and stage == CODE_STAGE:
            block.append(match.group(1))
            continue
        if block:
            out += [f"{block[0]}- {f}" for f in sorted(union(root), key=_order)]
            block = []
        out.append(line)
    (root / "dvc.yaml").write_text("\n".join(out) + "\n")


def _order(path: str) -> tuple:
    return (not path.startswith("stages/"), path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxyrank.tools.deps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fix", action="store_true", help="rewrite the code stage's deps to the union of the closures")
    args = parser.parse_args(argv)
    root = Path.cwd()
    if args.fix:
        fix(root)
    found = gaps(root)
    for name, (missing, extra) in found.items():
        print(f"{name}: lacks {sorted(missing)}; should not list {sorted(extra)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
