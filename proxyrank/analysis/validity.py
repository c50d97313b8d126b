"""Can this run test the paper's claim at all? (arXiv 2512.24503)

The claim: small proxies rank pretraining data recipes like a large reference model only at a tiny
learning rate, because the reference is tuned per recipe. A run can test that only if

* V1 (tuning matters): the reference grid is fine enough to locate each recipe's optimum, and
  per-recipe tuning changes the reference ranking by more than the seed does. If every recipe
  picks the same LR, a fixed LR ranks exactly like the tuned reference and the mechanism is absent.
* V2 (proxies learned): each proxy LR moved its loss away from initialisation and ranks recipes
  the same way under another seed; a proxy that has not trained ranks by noise.
* V3 (noise ceiling): how well two seeds of the reference agree, the most any proxy can reach, and
  which recipe pairs the reference itself cannot tell apart.
* V4 (the contrast): rho(tiny) - rho(standard) with a paired bootstrap over recipes and seeds.

Lower loss is better everywhere. A diverged run (loss NaN, or `diverged` true) is +inf while
seeds are averaged, so it poisons its seed mean (NaN: nothing to rank, never a reference optimum).
"""
from __future__ import annotations

import dataclasses
import math
from itertools import combinations

import numpy as np
import pandas as pd

from proxyrank.analysis.metrics import (pairwise_accuracy, percentile_interval, round_lrs, rowwise_spearman, same_lr,
                                        spearman)
from proxyrank.analysis.params import ValidityParams
from proxyrank.errors import DataError, ParamsError
from proxyrank.files import json_number

RUN_COLUMNS = ("recipe", "role", "family", "lr", "seed", "loss_mean", "steps")
CURVE_COLUMNS = ("role", "recipe", "family", "lr", "seed", "step", "loss_mean")


Thresholds = ValidityParams  # the pass marks (params.yaml `analysis.validity`)


# --------------------------------------------------------------------------- inputs


def _require(df: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{name} table lacks required columns {missing}; it has {list(df.columns)}")


def _snap(fam: str, tag: str, lr: float, have: list[float]) -> float:
    for x in have:
        if same_lr(x, float(lr)):
            return x
    raise DataError(f"lrs[{fam!r}][{tag!r}] = {lr!r} has no proxy runs; family {fam!r} was run at {have}")


def _prepare(runs: pd.DataFrame, curves: pd.DataFrame, lrs: dict[str, dict[str, float]]):
    """Checked copies of the tables (LRs rounded, `loss` with +inf for a diverged run) and `lrs`
    snapped onto the LRs actually run."""
    _require(runs, RUN_COLUMNS, "runs")
    _require(curves, CURVE_COLUMNS, "curves")
    loss = runs["loss_mean"].astype(float).to_numpy()
    bad = np.isnan(loss) | (runs["diverged"].astype(str).str.lower().eq("true").to_numpy()
                            if "diverged" in runs.columns else False)
    runs = runs.assign(lr=round_lrs(runs["lr"]), loss=np.where(bad, np.inf, loss))
    curves = curves.assign(lr=round_lrs(curves["lr"]))
    if not (runs["role"] == "reference").any():
        raise DataError("runs has no reference runs (role == 'reference'); V1 and V3 need the reference sweep")
    ref_families = sorted(runs.loc[runs["role"] == "reference", "family"].astype(str).unique())
    if len(ref_families) > 1:
        raise DataError(f"reference runs span families {ref_families}; validity expects one reference model")
    if not lrs:
        raise DataError("lrs is empty; give {family: {'standard': lr, 'tiny<ratio>': lr, ...}}")
    proxies = runs[runs["role"] == "proxy"]
    snapped = {}
    for fam, tags in lrs.items():
        have = sorted(proxies.loc[proxies["family"] == fam, "lr"].unique().tolist())
        if not have:
            raise DataError(f"lrs names family {fam!r}, which has no proxy runs; runs has proxy families "
                             f"{sorted(proxies['family'].astype(str).unique())}")
        if "standard" not in tags:
            raise DataError(f"lrs[{fam!r}] lacks the 'standard' tag; it has {list(tags)}")
        odd = [t for t in tags if t != "standard" and not str(t).startswith("tiny")]
        if odd:
            raise DataError(f"lrs[{fam!r}] has tags {odd}; every tag but 'standard' must start with 'tiny'")
        snapped[fam] = {tag: _snap(fam, tag, lr, have) for tag, lr in tags.items()}
    return runs, curves, snapped


# --------------------------------------------------------------------------- primitives


def _cube(df: pd.DataFrame, recipes: list, lrs: list[float], seeds: list) -> np.ndarray:
    """recipe x LR x seed losses; NaN where no run exists, +inf where it diverged."""
    out = np.full((len(recipes), len(lrs), len(seeds)), np.nan)
    g = df.groupby(["recipe", "lr", "seed"])["loss"].mean()
    pos = [pd.Index(axis).get_indexer(g.index.get_level_values(k)) for k, axis in enumerate((recipes, lrs, seeds))]
    keep = (pos[0] >= 0) & (pos[1] >= 0) & (pos[2] >= 0)
    out[pos[0][keep], pos[1][keep], pos[2][keep]] = g.to_numpy()[keep]
    return out


def _matrix(df: pd.DataFrame, recipes: list) -> np.ndarray:
    """recipe x seed losses of one proxy LR."""
    return _cube(df, recipes, sorted(df["lr"].unique()), sorted(df["seed"].unique()))[:, 0, :]


def _seed_mean(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis (seeds), skipping runs that do not exist; a diverged seed (+inf) makes
    the mean NaN, so that recipe (or LR) is not ranked (or chosen) on the surviving seeds alone."""
    have = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(have, x, 0.0).sum(-1) / have.sum(-1)
    return np.where(np.isinf(m), np.nan, m)


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman over the recipes both score finitely."""
    keep = np.isfinite(a) & np.isfinite(b)
    return spearman(a[keep], b[keep])


def _seed_agreement(m: np.ndarray) -> float:
    """Mean Spearman between the recipe rankings of every pair of seeds: the split-half reliability
    of a single seed (nan with fewer than two seeds)."""
    rhos = [_rho(m[:, a], m[:, b]) for a, b in combinations(range(m.shape[1]), 2)]
    rhos = [r for r in rhos if not math.isnan(r)]
    return float(np.mean(rhos)) if rhos else math.nan


def _spearman_brown(r: float, k: int) -> float:
    """Reliability of a k-seed mean from the single-seed reliability r: k r / (1 + (k-1) r)."""
    if math.isnan(r) or k < 1 or 1 + (k - 1) * r == 0:
        return math.nan
    return k * r / (1 + (k - 1) * r)


def _pooled_var(m: np.ndarray) -> float:
    """Mean over recipes of the sample variance across seeds (recipes with >= 2 finite seeds)."""
    rows = [row[np.isfinite(row)] for row in m]
    var = [np.var(r, ddof=1) for r in rows if len(r) >= 2]
    return float(np.mean(var)) if var else math.nan


def _n_seeds(m: np.ndarray) -> int:
    """Seeds behind a seed mean: the fewest any recipe with a run has (what the SE must assume)."""
    n = (~np.isnan(m)).sum(1)
    return int(n[n > 0].min()) if (n > 0).any() else 0


def _pairs(names: list, means: np.ndarray, m: np.ndarray, z: float) -> tuple[dict, tuple]:
    """Which recipe pairs a k-seed mean can tell apart: |difference| > z * sqrt(2 sigma^2 / k), with
    sigma^2 the pooled seed variance. Returns the summary and (i, j, separated) over the pairs of
    finitely scored recipes; separated is None where sigma^2 is unmeasured (one seed)."""
    idx = np.flatnonzero(np.isfinite(means))
    a, b = np.triu_indices(len(idx), 1)
    i, j = idx[a], idx[b]
    sigma2, k = _pooled_var(m), _n_seeds(m)
    se = math.sqrt(2 * sigma2 / k) if k and not math.isnan(sigma2) else math.nan
    diff = means[i] - means[j]
    if math.isnan(se):
        return {"sigma2": None, "se": None, "n_pairs": len(i), "n_separated": None, "within_noise": []}, (i, j, None)
    sep = np.abs(diff) > z * se
    within = sorted(([str(names[x]), str(names[y]), float(d), se] for x, y, d, s in zip(i, j, diff, sep) if not s),
                    key=lambda r: (abs(r[2]), r[0], r[1]))
    summary = {"sigma2": json_number(sigma2), "se": json_number(se), "n_pairs": len(i), "n_separated": int(sep.sum()),
               "within_noise": within}
    return summary, (i, j, sep)


def _pair_accuracy(p: np.ndarray, r: np.ndarray, i: np.ndarray, j: np.ndarray) -> float:
    """metrics.pairwise_accuracy's rule (reference ties skipped, proxy ties 1/2) on chosen pairs."""
    keep = np.isfinite(p[i]) & np.isfinite(p[j]) & (r[i] != r[j])
    if not keep.any():
        return math.nan
    dp, dr = np.sign(p[i] - p[j])[keep], np.sign(r[i] - r[j])[keep]
    return float(np.where(dp == 0, 0.5, dp == dr).mean())


def _lr(x: float) -> str:
    return f"{x:.3g}"  # 3.5e-3 reads 0.0035, not 4e-03


# --------------------------------------------------------------------------- V1 and V3: the reference


def _reference(ref: pd.DataFrame) -> dict:
    """The reference sweep as arrays: cube (recipe x LR x seed), seed means, each recipe's grid
    optimum (lowest seed mean; argmin's first hit is the lower LR on exact ties) and tuned loss."""
    recipes = sorted(ref["recipe"].unique())
    grid = sorted(ref["lr"].unique().tolist())
    cube = _cube(ref, recipes, grid, sorted(ref["seed"].unique()))
    means = _seed_mean(cube)
    filled = np.where(np.isnan(means), np.inf, means)
    opt = filled.argmin(1)
    tuned = filled[np.arange(len(recipes)), opt]
    tuned = np.where(np.isinf(tuned), np.nan, tuned)
    return {"recipes": recipes, "grid": grid, "cube": cube, "means": means, "opt": opt, "tuned": tuned,
            "per_seed": cube[np.arange(len(recipes)), opt, :],
            "n_seeds": int(ref.groupby("recipe")["seed"].nunique().min())}


def _parabola(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float | None:
    """Least-squares loss = a x^2 + b x + c over x = log10(lr); the optimum 10**(-b / 2a) if the fit
    is convex and the vertex lies inside [lo, hi], else None (an optimum off the grid is a guess)."""
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < 3:
        return None
    a, b, _ = np.polyfit(x, y, 2)
    if not a > 0:
        return None
    vertex = -b / (2 * a)
    return float(10 ** vertex) if lo <= vertex <= hi else None


def _v3_reference(refd: dict, th: Thresholds) -> tuple[dict, tuple]:
    """The reference's own seed-to-seed agreement at each recipe's tuned LR, and its pair verdicts."""
    k = refd["n_seeds"]
    ceiling = _seed_agreement(refd["per_seed"]) if k >= 2 else math.nan
    summary, pairs = _pairs(refd["recipes"], refd["tuned"], refd["per_seed"], th.z)
    reasons = []
    if k < 2:
        reasons.append(f"only {k} reference seed: no noise ceiling and no pair verdicts "
                       f"(min_ref_seeds {th.min_ref_seeds})")
    out = {"n_seeds": k, "ceiling": json_number(ceiling), "ceiling_mean": json_number(_spearman_brown(ceiling, k)),
           **summary, "reasons": reasons}
    return out, pairs


def _v3_proxies(refd: dict, v3: dict, pairs: tuple, proxy: dict[tuple[str, str], tuple[float, np.ndarray]]) -> list:
    """Each tagged proxy's seed-mean ranking against the tuned reference, beside the ceiling."""
    i, j, sep = pairs
    ceiling, ref = v3["ceiling_mean"], refd["tuned"]
    rows = []
    for (fam, tag), (lr, m) in proxy.items():
        p = _seed_mean(m)
        keep = np.isfinite(p) & np.isfinite(ref)
        rho = _rho(p, ref)
        rows.append({
            "family": fam, "tag": tag, "lr": lr, "n_recipes": int(keep.sum()), "spearman": json_number(rho),
            "above_ceiling": None if ceiling is None or math.isnan(rho) else bool(rho > ceiling),
            "pairwise_acc": json_number(pairwise_accuracy(p[keep], ref[keep])),
            "pairwise_acc_separated": None if sep is None else json_number(_pair_accuracy(p, ref, i[sep], j[sep])),
        })
    return rows


def _v1_rows(refd: dict) -> list[dict]:
    grid, logs = refd["grid"], np.log10(refd["grid"])
    rows = []
    for r, name in enumerate(refd["recipes"]):
        found = not math.isnan(refd["tuned"][r])
        cube = refd["cube"][r]
        fitted = _parabola(np.repeat(logs, cube.shape[1]), cube.ravel(), logs[0], logs[-1])
        interior = found and 0 < refd["opt"][r] < len(grid) - 1
        rows.append({"recipe": str(name), "grid_opt": grid[refd["opt"][r]] if found else None,
                     "fitted_opt": fitted, "interior": bool(interior), "resolved": bool(interior or fitted)})
    return rows


def _mechanism(best_rho: float | None, ceiling_mean: float | None) -> bool | None:
    """Tuning matters when the best fixed LR ranks below the seed ceiling: per-recipe tuning moves
    the ranking more than redrawing the seeds of a k-seed mean would. Without a ceiling (one seed)
    only a perfect fixed-LR ranking decides it: no ceiling exceeds 1."""
    if best_rho is None:
        return None
    if ceiling_mean is None:
        return False if best_rho >= 1 else None
    return bool(best_rho < ceiling_mean)


def _v1(refd: dict, ceiling_mean: float | None, th: Thresholds) -> dict:
    """Does per-recipe tuning of the reference matter here (the paper's mechanism)?"""
    grid, rows = refd["grid"], _v1_rows(refd)
    ratio = max(b / a for a, b in zip(grid, grid[1:])) if len(grid) > 1 else None
    # a recipe's optimum: its fitted one where the parabola places it, else its grid optimum
    optima = [r["fitted_opt"] or r["grid_opt"] for r in rows if r["fitted_opt"] or r["grid_opt"]]
    fixed = [{"lr": lr, "spearman": json_number(_rho(refd["means"][:, l], refd["tuned"]))} for l, lr in enumerate(grid)]
    picks = [r["grid_opt"] for r in rows if r["grid_opt"] is not None]
    # ties (with an additive recipe effect every LR ranks alike): the LR most recipes pick, then the lower
    scored = [row for row in fixed if row["spearman"] is not None]
    best = max(scored, key=lambda row: (row["spearman"], picks.count(row["lr"]), -row["lr"]), default=None)
    best_rho = best["spearman"] if best else None
    mechanism = _mechanism(best_rho, ceiling_mean)
    out = {
        "grid": grid, "grid_max_ratio": ratio, "n_seeds": refd["n_seeds"], "recipes": rows,
        "optimum_counts": [{"lr": lr, "n_recipes": picks.count(lr)} for lr in grid if lr in picks],
        "optima_spread": max(optima) / min(optima) if optima else None,
        "resolved_share": float(np.mean([r["resolved"] for r in rows])),
        "fixed_lr": fixed, "best_fixed_lr": best["lr"] if best else None, "best_fixed_spearman": best_rho,
        "seed_ceiling": ceiling_mean, "mechanism_present": mechanism,
    }
    out["reasons"] = _v1_reasons(out, picks, th)
    out["pass"] = not out["reasons"]
    return out


def _v1_reasons(v1: dict, picks: list[float], th: Thresholds) -> list[str]:
    reasons, n = [], len(v1["recipes"])
    if v1["grid_max_ratio"] is None:
        reasons.append(f"the reference was run at a single LR ({_lr(v1['grid'][0])}): nothing was tuned "
                       f"(max_grid_ratio {th.max_grid_ratio:g} needs a grid)")
    elif v1["grid_max_ratio"] > th.max_grid_ratio:
        reasons.append(f"neighbouring reference LRs are up to {v1['grid_max_ratio']:.3g}x apart "
                       f"(> max_grid_ratio {th.max_grid_ratio:g}): the grid cannot locate an optimum")
    if v1["n_seeds"] < th.min_ref_seeds:
        reasons.append(f"{v1['n_seeds']} reference seed(s) (< min_ref_seeds {th.min_ref_seeds}): the seed noise "
                       "that V1 and V3 compare against is unmeasured")
    if v1["resolved_share"] < th.min_resolved_share:
        k = sum(r["resolved"] for r in v1["recipes"])
        reasons.append(f"{k} of {n} recipes ({v1['resolved_share']:.0%}) have a resolved reference optimum "
                       f"(< min_resolved_share {th.min_resolved_share:.0%}): the rest sit at the grid's edge "
                       "with no convex fit inside it")
    rho, ceiling, best = v1["best_fixed_spearman"], v1["seed_ceiling"], v1["best_fixed_lr"]
    if v1["mechanism_present"] is None:
        reasons.append("no reference noise ceiling (one seed) or no fixed-LR ranking: whether per-recipe tuning "
                       "changes the ranking beyond seed noise cannot be judged")
    elif not v1["mechanism_present"]:
        same = (f"all {n} recipes pick the same reference LR ({_lr(picks[0])}) and "
                if len(set(picks)) == 1 and len(picks) == n else "")
        versus = f"seed ceiling {ceiling:.3f}" if ceiling is not None else "1, above any seed ceiling"
        reasons.append(f"{same}a fixed LR of {_lr(best)} ranks like the tuned reference (Spearman {rho:.3f} >= "
                       f"{versus}): the paper's mechanism is absent at this scale")
    return reasons


# --------------------------------------------------------------------------- V2: the proxies learned


def _v2_row(fam: str, lr: float, tags: list[str], df: pd.DataFrame, init: pd.Series, th: Thresholds) -> dict:
    """One proxy LR: did it move from its step-0 loss, and does another seed rank recipes alike?"""
    m = _matrix(df, sorted(df["recipe"].unique()))
    finite = np.isfinite(df["loss"])
    n_div, k = int((~finite).sum()), _n_seeds(m)
    init_loss = float(init.mean()) if len(init.dropna()) else math.nan
    final = float(df.loc[finite, "loss"].mean()) if finite.any() else math.nan
    steps = int(df["steps"].max())
    split = _seed_agreement(m) if k >= 2 else math.nan
    means = _seed_mean(m)
    pairs, _ = _pairs(sorted(df["recipe"].unique()), means, m, th.z)
    row = {
        "family": fam, "lr": lr, "tag": tags[0] if tags else None, "tags": tags, "n_seeds": k,
        "init_loss": json_number(init_loss), "final_loss": json_number(final), "loss_drop": json_number(init_loss - final),
        "steps": steps, "lr_x_steps": lr * steps,
        "recipe_spread": json_number(float(np.nanstd(means, ddof=1)) if np.isfinite(means).sum() >= 2 else math.nan),
        "seed_sd": json_number(math.sqrt(_pooled_var(m))), "split_half": json_number(split),
        "reliability": json_number(_spearman_brown(split, k)),
        "n_pairs": pairs["n_pairs"], "n_separated": pairs["n_separated"], "n_diverged": n_div,
    }
    row["reasons"] = _v2_reasons(row, len(df), th)
    row["passed"] = not row["reasons"]
    return row


def _v2_reasons(row: dict, n_runs: int, th: Thresholds) -> list[str]:
    reasons = []
    if row["n_diverged"]:
        reasons.append(f"{row['n_diverged']} of {n_runs} runs diverged (loss NaN): this LR cannot rank every recipe")
    drop, rel = row["loss_drop"], row["reliability"]
    if row["init_loss"] is None:
        reasons.append(f"no step-0 loss in curves for this LR: the loss drop (min_loss_drop {th.min_loss_drop:g} "
                       "nats) cannot be measured")
    elif drop is None or drop < th.min_loss_drop:
        moved = "no final loss" if drop is None else (f"loss fell {drop:.3g} nats" if drop >= 0
                                                     else f"loss rose {-drop:.3g} nats")
        reasons.append(f"{moved} from its step-0 loss {row['init_loss']:.3f} (< min_loss_drop "
                       f"{th.min_loss_drop:g}): the proxy has barely trained")
    if row["n_seeds"] < 2:
        reasons.append(f"{row['n_seeds']} seed: split-half reliability cannot be measured (min_reliability "
                       f"{th.min_reliability:g} needs >= 2 seeds)")
    elif rel is None or rel < th.min_reliability:
        shown = "n/a" if rel is None else f"{rel:.2f}"
        reasons.append(f"split-half reliability {shown} (< min_reliability {th.min_reliability:g}): its recipe "
                       "ranking is mostly seed noise")
    return reasons


def _v2(proxies: pd.DataFrame, curves: pd.DataFrame, lrs: dict[str, dict[str, float]], th: Thresholds) -> list:
    start = curves[(curves["role"] == "proxy") & (curves["step"] == 0)]
    rows = []
    for fam in sorted(lrs):
        fdf = proxies[proxies["family"] == fam]
        for lr, ldf in fdf.groupby("lr", sort=True):
            init = start.loc[(start["family"] == fam) & same_lr(start["lr"], lr), "loss_mean"].astype(float)
            tags = [t for t, x in lrs[fam].items() if same_lr(x, lr)]
            rows.append(_v2_row(fam, float(lr), tags, ldf, init, th))
    return rows


# --------------------------------------------------------------------------- V4: the contrast


def _boot_rhos(cube: np.ndarray, mats: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Each proxy's Spearman against the re-tuned reference, per replicate. A replicate draws
    recipes with replacement, shared by all; for every recipe, seeds with replacement, separately
    for the reference and each proxy. The reference is re-tuned on its resampled seed means (the LR
    choice is part of what the seed noise moves).

    A recipe drawn twice keeps one seed draw for both copies: they tie in every ranking. Drawing
    seeds per copy would make the copies a pair ordered by seed noise alone, in the proxy and the
    reference independently, pulling every replicate's rho towards 0 (a ranking that agrees
    perfectly would never reach 1 in a replicate, and its interval would not cover it).
    """
    n_rec = cube.shape[0]
    idx = rng.integers(0, n_rec, size=(n_boot, n_rec))
    s_ref = rng.integers(0, cube.shape[2], size=(n_boot, n_rec, 1, cube.shape[2]))
    means = _seed_mean(np.take_along_axis(np.broadcast_to(cube, (n_boot, *cube.shape)), s_ref, axis=-1))
    tuned = np.where(np.isnan(means), np.inf, means).min(-1)  # B x R: each recipe re-tuned
    tuned = np.take_along_axis(np.where(np.isinf(tuned), np.nan, tuned), idx, axis=1)
    out = []
    for m in mats:
        s = rng.integers(0, m.shape[1], size=(n_boot, n_rec, m.shape[1]))
        p = _seed_mean(np.take_along_axis(np.broadcast_to(m, (n_boot, *m.shape)), s, axis=-1))
        out.append(rowwise_spearman(np.take_along_axis(p, idx, axis=1), tuned))
    return out


def _v4(refd: dict, proxy: dict[tuple[str, str], tuple[float, np.ndarray]], lrs: dict[str, dict[str, float]],
        n_boot: int, seed: int) -> list[dict]:
    rows = []
    for f, fam in enumerate(sorted(lrs)):
        tiny = [t for t in lrs[fam] if t.startswith("tiny")]
        if not tiny:
            continue
        mats = [proxy[(fam, t)][1] for t in ["standard", *tiny]]
        boot = _boot_rhos(refd["cube"], mats, n_boot, np.random.default_rng([seed, f]))
        rho_std = _rho(_seed_mean(mats[0]), refd["tuned"])
        for t, tag in enumerate(tiny, start=1):
            rho = _rho(_seed_mean(mats[t]), refd["tuned"])
            lo, hi = percentile_interval(boot[t] - boot[0])
            rows.append({"family": fam, "tag": tag, "lr_standard": lrs[fam]["standard"], "lr_tiny": lrs[fam][tag],
                         "rho_standard": json_number(rho_std), "rho_tiny": json_number(rho), "delta": json_number(rho - rho_std),
                         "lo": json_number(lo), "hi": json_number(hi),
                         "excludes_zero": None if math.isnan(lo) else bool(lo > 0 or hi < 0), "n_boot": n_boot})
    return rows


# --------------------------------------------------------------------------- verdict and entry point


def _verdict(fam: str, v1: dict, v2: list[dict], tags: dict[str, float]) -> dict:
    """Can this run test the claim for `fam`: V1 passed, and V2 at the standard and first tiny LR."""
    failed = [] if v1["pass"] else ["V1 (tuning matters) failed: " + "; ".join(v1["reasons"])]
    first_tiny = next((t for t in tags if t.startswith("tiny")), None)
    if first_tiny is None:
        failed.append(f"lrs gives {fam} no tiny tag, so there is no tiny LR to contrast")
    checked = [t for t in ("standard", first_tiny) if t is not None]
    for tag in checked:
        row = next(r for r in v2 if r["family"] == fam and same_lr(r["lr"], tags[tag]))
        if not row["passed"]:
            failed.append(f"V2 (proxies learned) failed at {tag} (lr {_lr(tags[tag])}): " + "; ".join(row["reasons"]))
    if failed:
        return {"can_test": False,
                "text": f"this run cannot test the claim for {fam}, because " + "; and ".join(failed)}
    at = " and ".join(f"{t} (lr {_lr(tags[t])})" for t in checked)
    return {"can_test": True, "text": f"this run can test the claim for {fam}, because V1 passed (per-recipe tuning "
                                      f"changes the reference ranking beyond seed noise) and V2 passed at {at}"}


def headline(checks: dict) -> dict[str, dict]:
    """What `dvc metrics show` prints, a row per family that fits a terminal: can this run test the
    claim, and the paired contrast at the first tiny LR (V4: rho_tiny - rho_standard with its bootstrap
    interval). Every number is also in validity.json (V4, verdict); metrics.json holds the rest."""
    rows = {}
    for fam, verdict in checks["verdict"].items():
        v4 = next((r for r in checks["V4"] if r["family"] == fam), None)  # rows come in tag order
        contrast = {} if v4 is None else {"rho_standard": v4["rho_standard"], "rho_tiny": v4["rho_tiny"],
                                          "delta_rho": v4["delta"], "delta_lo": v4["lo"], "delta_hi": v4["hi"]}
        rows[fam] = {"can_test": verdict["can_test"]} | contrast
    return rows


def validity(runs: pd.DataFrame, curves: pd.DataFrame, lrs: dict[str, dict[str, float]], *,
             thresholds: Thresholds, n_boot: int, seed: int) -> dict:
    """V1-V4 and a verdict per family of `lrs` ({family: {"standard": lr, "tiny<ratio>": lr, ...}}).

    Returns a JSON-serialisable dict (NaN -> None). Recipes the reference did not run are not ranked.
    """
    if n_boot < 1:
        raise ParamsError(f"n_boot must be >= 1, got {n_boot!r}")
    runs, curves, lrs = _prepare(runs, curves, lrs)
    refd = _reference(runs[runs["role"] == "reference"])
    proxies = runs[runs["role"] == "proxy"]
    tagged = {(fam, tag): (lr, _matrix(proxies[(proxies["family"] == fam) & same_lr(proxies["lr"], lr)], refd["recipes"]))
              for fam, tags in sorted(lrs.items()) for tag, lr in tags.items()}
    v3, pairs = _v3_reference(refd, thresholds)
    v3["proxies"] = _v3_proxies(refd, v3, pairs, tagged)
    v1 = _v1(refd, v3["ceiling_mean"], thresholds)
    v2 = _v2(proxies, curves, lrs, thresholds)
    return {
        "thresholds": dataclasses.asdict(thresholds),
        "n_recipes": len(refd["recipes"]),
        "lrs": lrs,
        "V1": v1,
        "V2": v2,
        "V3": v3,
        "V4": _v4(refd, tagged, lrs, n_boot, seed),
        "verdict": {fam: _verdict(fam, v1, v2, lrs[fam]) for fam in sorted(lrs)},
    }
