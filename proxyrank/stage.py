"""What every stage script in stages/ shares: its command line, params, errors and timing.

A stage script is `python -m stages.NAME [RECIPE] [--params FILE]` (stages/NAME.py); its `main(p[, recipe])` wires
paths and its params section to library calls. `run` does the rest, once for all stages: it loads
and validates the params file, runs the body, prints a `ProxyrankError` (bad input the user can
fix) as one line on stderr with its exit code (2 for params and options, 1 for data and state;
errors.py), lets any other exception keep its traceback (exit 1: a bug), and records the stage's
wall time in data/timings/ (outside every DVC output; timings.py).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

from proxyrank import timings
from proxyrank.config import load_params
from proxyrank.errors import ProxyrankError

def timed(label: str, fn: Callable[[], None], timing: str | None = None) -> int:
    """Run `fn`: a ProxyrankError becomes one line on stderr and its exit code; success is timed (and,
    for a DVC stage, appended to its timing file for bench/study_wall.py). Other errors propagate."""
    start = time.perf_counter()
    try:
        fn()
    except ProxyrankError as e:
        print(f"proxyrank {label}: error: {e}", file=sys.stderr)
        return e.exit_code
    seconds = time.perf_counter() - start
    if timing is not None:
        timings.append(timings.stage_file(timing), {"kind": "stage", "wall_s": round(seconds, 3)})
    print(f"proxyrank {label}: done in {seconds:.1f} s")
    return 0


def run(name: str, body: Callable, per_recipe: bool = False, argv: list[str] | None = None) -> int:
    """Parse a stage's command line, load params and run `body(p)` (or `body(p, recipe)`)."""
    doc = (getattr(sys.modules.get(body.__module__), "__doc__", None) or "").strip()
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}", description=doc)
    if per_recipe:
        parser.add_argument("recipe", help="recipe name (params.yaml `recipes`)")
    parser.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    recipe = args.recipe if per_recipe else None
    label = f"{name} {recipe}" if per_recipe else name

    def go():
        p = load_params(args.params)
        body(p, recipe) if per_recipe else body(p)

    return timed(label, go, f"{name}@{recipe}" if per_recipe else name)


def main(name: str, body: Callable, per_recipe: bool = False) -> None:
    """The `if __name__ == "__main__"` of a stage script.

    A finished stage leaves with `os._exit`: its outputs are written and closed (atomic writes), so
    the interpreter's teardown has nothing left to do but free torch's and transformers' modules,
    which took 0.8-2.2 s per process here (bench/results/stage_exit.md), once per DVC stage."""
    code = run(name, body, per_recipe)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
