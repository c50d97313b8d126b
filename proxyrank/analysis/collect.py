"""The `collect` stage: every run record of the declared recipes into two tables, the analyses' input.

reports/runs.csv holds one row per run (its final losses), reports/curves.csv one row per
validation point of every run (the frontier and the V2 checks read those). Both are written at full
precision: at a tiny LR the recipes differ in the 4th digit of their loss.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from proxyrank.config import Params
from proxyrank.errors import DataError
from proxyrank.files import atomic_path

FIRST_COLUMNS = ["recipe", "group", "role", "family", "model", "n_params", "lr", "seed", "tokens", "steps",
                 "diverged", "loss_mean", "half_a_loss", "half_b_loss"]  # then loss_<domain>, sorted


def collect(p: Params, runs_dir: Path, runs_csv: Path, curves_csv: Path) -> pd.DataFrame:
    """One row per run (runs.csv) and one row per validation point (curves.csv).

    Only what the runs' inputs determine: no wall time, which differs between machines and would
    make these outputs (and dvc.lock) differ with it (timings.py keeps it apart)."""
    rows, curves = _records(p, runs_dir)
    df = pd.DataFrame(rows)
    df = df[FIRST_COLUMNS + sorted(c for c in df.columns if c.startswith("loss_") and c != "loss_mean")]
    df = df.sort_values(["role", "family", "recipe", "lr", "seed"]).reset_index(drop=True)
    for frame, path in ((df, runs_csv), (pd.DataFrame(curves), curves_csv)):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)  # full precision: at a tiny LR recipes differ in the 4th digit
    print(f"collect: {len(df)} runs ({(df.role == 'proxy').sum()} proxy, "
          f"{(df.role == 'reference').sum()} reference), {df.tokens.sum():,} training tokens")
    return df


def _records(p: Params, runs_dir: Path) -> tuple[list[dict], list[dict]]:
    """The run records (their curve split off, group and model named) and the curve points, in
    path order. Only the declared recipes: a removed recipe's outputs stay in the workspace (DVC
    keeps them)."""
    rows, curves = [], []
    paths = sorted(path for role in ("proxies", "references") for name in p.recipes
                   for path in (runs_dir / role / name).glob("*.json"))
    for path in paths:
        r = json.loads(path.read_text())
        for point in r.pop("curve"):
            curves.append({"role": r["role"], "recipe": r["recipe"], "run_id": r["run_id"],
                           "family": r["family"], "lr": r["lr"], "seed": r["seed"], **point})
        r["group"] = p.recipe(r["recipe"]).group
        r["model"] = r.pop("preset")
        rows.append(r)
    if not rows:
        raise DataError(f"collect: no run results under {runs_dir}")
    return rows, curves
