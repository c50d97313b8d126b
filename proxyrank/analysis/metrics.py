"""Ranking agreement between proxy models and the tuned reference model.

Every score is a validation loss, so lower is better throughout. The question
is whether a proxy orders the data recipes the way the reference does once the
reference's learning rate has been tuned per recipe.

Two LRs are the same LR when `same_lr` says so: the analyses, the figures, the report and the tools
all ask it, so a rounding difference can never match a row in one place and miss it in another.
"""
from __future__ import annotations

import math
import warnings
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats import rankdata

from proxyrank.errors import DataError, ParamsError
from proxyrank.files import json_number
from proxyrank.training.params import same_lr  # the one LR equality of the project

REQUIRED_COLUMNS = ("recipe", "group", "role", "family", "lr", "seed", "loss_mean")


# --------------------------------------------------------------------------- learning rates


def round_lrs(values) -> list[float]:
    """LRs rounded to 12 significant digits: an LR read back from text can differ from the one
    written in its last bits, and two such copies must group together (metrics and validity)."""
    return [float(f"{x:.12g}") for x in pd.Series(values).astype(float)]


# --------------------------------------------------------------------------- primitives


def _vectors(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"need two 1-d vectors of equal length, got {a.shape} and {b.shape}")
    return a, b


def _correlation(fn, a, b) -> float:
    """nan instead of scipy's warning (or error) when the statistic is undefined."""
    a, b = _vectors(a, b)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(a, b)[0])


def spearman(a, b) -> float:
    return _correlation(stats.spearmanr, a, b)


def rowwise_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman per row of two (B, N) arrays over the columns finite in both: `spearman`'s definition
    (Pearson of average ranks; nan when fewer than two or a constant ranking), vectorised for the
    bootstrap replicates of validity.py's V4, where a loop over `spearman` would call scipy B times.
    It agrees with `spearman` to rounding (tests/test_validity.py), not to the last bit: the two stay
    apart so that each output keeps the numbers it has always had."""
    keep = np.isfinite(a) & np.isfinite(b)
    ra = rankdata(np.where(keep, a, np.nan), axis=1, nan_policy="omit")
    rb = rankdata(np.where(keep, b, np.nan), axis=1, nan_policy="omit")
    n = keep.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        da = np.where(keep, ra - np.nanmean(ra, 1, keepdims=True), 0.0)
        db = np.where(keep, rb - np.nanmean(rb, 1, keepdims=True), 0.0)
        den = np.sqrt((da**2).sum(1) * (db**2).sum(1))
        r = (da * db).sum(1) / den
    return np.where((n >= 2) & (den > 0), r, np.nan)


def kendall(a, b) -> float:
    return _correlation(stats.kendalltau, a, b)


def pairwise_accuracy(proxy, ref) -> float:
    """Share of recipe pairs the proxy orders like the reference.

    Pairs the reference cannot separate carry no signal and are skipped; a proxy
    tie is a coin flip, hence 0.5.
    """
    p, r = _vectors(proxy, ref)
    i, j = np.triu_indices(len(p), 1)
    dp, dr = np.sign(p[i] - p[j]), np.sign(r[i] - r[j])
    keep = dr != 0
    if not keep.any():
        return math.nan
    return float(np.where(dp[keep] == 0, 0.5, dp[keep] == dr[keep]).mean())


def _expected_min(sorted_values: np.ndarray, m: int, cap: float) -> float:
    """E[min(cap, min of m values drawn without replacement)], exactly.

    The j-th smallest of g values is the minimum of the draw with probability C(g-j, m-1) / C(g, m),
    built by the ratio p(j+1) / p(j) = (g-j-m+1) / (g-j), which needs no large binomials.
    """
    g = len(sorted_values)
    j = np.arange(1, g)
    ratios = np.clip((g - j - m + 1) / (g - j), 0, None)
    p = m / g * np.concatenate([[1.0], np.cumprod(ratios)])
    return float(np.sum(p * np.minimum(sorted_values, cap)))


def regret_curve(proxy, ref) -> list[float]:
    """Reference loss given up by trusting the proxy's top k, k = 1..N.

    Ties in the proxy are broken at random and the regret is its exact expectation, so the answer
    never depends on recipe names or row order (at a tiny LR, rounding alone can tie recipes). With
    every recipe tied it is the random-pick baseline (random_regret).
    """
    p, r = _vectors(proxy, ref)
    if not len(p):
        return []
    best, out = math.inf, []
    for level in np.unique(p):  # ascending: the proxy's best first
        group = np.sort(r[p == level])
        out += [_expected_min(group, k, best) for k in range(1, len(group) + 1)]
        best = min(best, group[0])
    return (np.array(out) - r.min()).tolist()


def random_regret(ref) -> list[float]:
    """The exact expected regret of carrying k recipes drawn at random, k = 1..N: the bar to clear."""
    return regret_curve(np.zeros(len(ref)), ref)


def topk_regret(proxy, ref, k: int) -> float:
    curve = regret_curve(proxy, ref)
    if not 1 <= k <= len(curve):
        raise ValueError(f"k must be in 1..{len(curve)}, got {k}")
    return curve[k - 1]


def bootstrap_ci(stat, proxy, ref, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval over recipe resamples; undefined resamples are dropped."""
    p, r = _vectors(proxy, ref)
    if not len(p) or n_boot < 1:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, len(p), size=(n_boot, len(p)))
    return percentile_interval([stat(p[i], r[i]) for i in idx], level)


def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The central `level` interval of bootstrap values, NaNs (undefined resamples) dropped."""
    vals = np.asarray(values, dtype=float)
    vals = vals[~np.isnan(vals)]
    if not vals.size:
        return math.nan, math.nan
    tail = 50 * (1 - level)
    lo, hi = np.percentile(vals, [tail, 100 - tail])
    return float(lo), float(hi)


# --------------------------------------------------------------------------- analysis helpers


def _aligned(a: pd.Series, b: pd.Series) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Recipes both series score finitely (a diverged run has nothing to rank)."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").sort_index()
    both = both[np.isfinite(both.to_numpy(dtype=float)).all(axis=1)]
    return list(both.index), both["a"].to_numpy(float), both["b"].to_numpy(float)


def _validate(runs: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in runs.columns]
    if missing:
        raise DataError(f"runs table lacks required columns: {missing}")
    if not (runs["role"] == "reference").any():
        raise DataError("no reference runs (role == 'reference') in the runs table")
    return runs.assign(lr=round_lrs(runs["lr"]))  # merged before grouping


def _find_lr(family: str, lrs: list[float], target: float) -> float:
    for lr in lrs:
        if same_lr(lr, target):
            return lr
    raise ParamsError(f"family {family!r} has no proxy runs at lr={target:g}; its LRs are {lrs}")


def tiny_tag(ratio: float) -> str:
    return f"tiny{ratio:g}"


def pick_lrs(proxies: pd.DataFrame, standard_lr: str | dict[str, float], tiny_ratios: list[float],
             tiny_lr: float) -> dict[str, dict]:
    """Each family's standard LR and its tiny LRs, tagged: {"standard", "tiny30", ..., "tiny"}.

    standard_lr "tuned": the family's lowest loss in its sweep, averaged over recipes and seeds (the
    practitioner tunes once on the average and keeps that LR for every recipe). A tiny LR is the
    grid LR nearest standard / ratio in log space; its achieved ratio is kept beside it ("ratios"),
    so a grid that cannot hold the ratio shows. "tiny" is the absolute tiny_lr where it was run.
    "edge": a tuned standard LR at either end of its sweep, which may not be the best (a fixed one
    is where the user put it, often the top of a grid built below it).
    """
    out = {}
    for fam, fdf in proxies.groupby("family", sort=True):
        seed_means = fdf.groupby(["lr", "recipe"])["loss_mean"].mean()
        by_lr = seed_means.groupby("lr").mean()  # a diverged run (NaN) disqualifies its LR
        by_lr = by_lr[seed_means.groupby("lr").apply(lambda x: bool(np.isfinite(x).all()))]
        lrs = sorted(fdf["lr"].unique().tolist())
        if isinstance(standard_lr, str):
            if by_lr.empty:
                raise DataError(f"family {fam!r}: every LR of its sweep diverged on some recipe; no standard LR")
            std = float(by_lr.idxmin())
        elif fam not in standard_lr:
            raise ParamsError(f"standard_lr has no entry for family {fam!r}")
        else:
            std = _find_lr(fam, lrs, standard_lr[fam])
        tags = {"standard": std}
        for ratio in tiny_ratios:
            tags[tiny_tag(ratio)] = min(lrs, key=lambda lr: (abs(math.log(std / ratio / lr)), lr))
        if any(same_lr(lr, tiny_lr) for lr in lrs) and not any(same_lr(lr, tiny_lr) for lr in tags.values()):
            tags["tiny"] = _find_lr(fam, lrs, tiny_lr)  # the absolute one, unless a ratio already landed there
        out[fam] = {"lrs": tags, "ratios": {t: std / lr for t, lr in tags.items()},
                    "edge": isinstance(standard_lr, str) and std in (lrs[0], lrs[-1]), "sweep": {float(k): float(v) for k, v in by_lr.items()}}
    return out


def tune(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Per recipe, the LR with the lowest seed-mean loss_mean and all `cols` at that LR.

    Domain losses are read at that LR rather than minimised separately: the tuned
    model is the one selected on mean loss. `edge` flags a best LR on the grid's
    boundary, where the tuning may not have converged.
    """
    by_lr = df.groupby(["recipe", "lr"])[cols].mean().reset_index()
    grid = by_lr.groupby("recipe")["lr"].agg(["min", "max"])
    finite = by_lr[np.isfinite(by_lr["loss_mean"])]
    best = finite.loc[finite.groupby("recipe")["loss_mean"].idxmin()].set_index("recipe")
    best["edge"] = best["lr"].eq(grid["min"]) | best["lr"].eq(grid["max"])
    return best


def _compare(proxy: pd.Series, ref: pd.Series, ci: bool, n_boot: int, seed: int) -> dict:
    _, p, r = _aligned(proxy, ref)
    sp_ci = bootstrap_ci(spearman, p, r, n_boot, seed) if ci else (None, None)
    pw_ci = bootstrap_ci(pairwise_accuracy, p, r, n_boot, seed) if ci else (None, None)
    return {
        "n_recipes": len(p),
        "spearman": json_number(spearman(p, r)),
        "spearman_lo": json_number(sp_ci[0]),
        "spearman_hi": json_number(sp_ci[1]),
        "kendall": json_number(kendall(p, r)),
        "pairwise_acc": json_number(pairwise_accuracy(p, r)),
        "pairwise_lo": json_number(pw_ci[0]),
        "pairwise_hi": json_number(pw_ci[1]),
        "regret": regret_curve(p, r),
    }


def _seed_spread(family: str, lr: float, df: pd.DataFrame) -> dict | None:
    """How much the proxy's ranking moves with the seed alone: the noise floor."""
    table = df.pivot_table(index="recipe", columns="seed", values="loss_mean", aggfunc="mean")
    if table.shape[1] < 2:
        return None
    rhos = [spearman(*_aligned(table[a], table[b])[1:]) for a, b in combinations(table.columns, 2)]
    rhos = [x for x in rhos if not math.isnan(x)]
    return {
        "family": family,
        "lr": lr,
        "n_seeds": table.shape[1],
        "spearman_mean": json_number(float(np.mean(rhos))) if rhos else None,
        "spearman_min": json_number(min(rhos)) if rhos else None,
    }


def _flips(family: str, lo: float, hi: float, a: pd.Series, b: pd.Series, groups: pd.Series) -> dict:
    """Recipe pairs whose winner changes between two adjacent LRs."""
    names, x, y = _aligned(a, b)
    i, j = np.triu_indices(len(names), 1)
    dx, dy = x[i] - x[j], y[i] - y[j]
    flip = np.sign(dx) * np.sign(dy) < 0
    g = groups.reindex(names).astype(str).to_numpy()
    keys = np.array(["|".join(sorted(pair)) for pair in zip(g[i], g[j])])
    largest = None
    if flip.any():
        m = int(np.argmax(np.where(flip, np.abs(dx - dy), -np.inf)))
        largest = {"recipes": [names[i[m]], names[j[m]]], "delta_from": float(dx[m]), "delta_to": float(dy[m])}
    return {
        "family": family,
        "lr_from": lo,
        "lr_to": hi,
        "n_recipes": len(names),
        "n_pairs": len(i),
        "n_flips": int(flip.sum()),
        "flip_share": json_number(float(flip.mean())) if len(i) else None,
        "largest_flip": largest,
        "group_flips": {k: int(flip[keys == k].sum()) for k in sorted(set(keys))},
    }


def frontier(curves: pd.DataFrame, ref: pd.Series, n_boot: int, seed: int) -> list[dict]:
    """Spearman against the tuned reference at every logged validation point of every proxy LR:
    what a shorter (cheaper) proxy run would have ranked, read off the runs already trained."""
    proxies = _validate_curves(curves)
    out = []
    for (fam, lr, step), df in proxies.groupby(["family", "lr", "step"], sort=True):
        vec = df.groupby("recipe")["loss_mean"].mean()
        row = _compare(vec, ref, True, n_boot, seed)
        out.append({"family": fam, "lr": float(lr), "step": int(step), "tokens": int(df["tokens"].iloc[0]),
                    "n_seeds": int(df["seed"].nunique()), **{k: v for k, v in row.items() if k != "regret"}})
    return out


def cheapest(rows: list[dict], family: str, target: float) -> dict | None:
    """The fewest proxy tokens at which some LR of `family` reaches Spearman >= target (ties: the
    LR with the higher Spearman)."""
    hits = [r for r in rows if r["family"] == family and r["spearman"] is not None and r["spearman"] >= target]
    return min(hits, key=lambda r: (r["tokens"], -r["spearman"]), default=None)


ALIGNMENT_SCORES = ("alignment", "adam_alignment", "cosine")  # alignment.py; higher = predicted lower loss
HELDOUT = "half_b_loss"  # the held-out half the alignment scores are judged on (training/batches.halves)


def alignment_rows(scores: pd.DataFrame, ref: pd.Series, tiny: dict[str, pd.Series], proxy_tokens: dict[str, float],
                   n_boot: int, seed: int) -> list[dict]:
    """The zero-training proxy against the tuned reference and against the tiny-LR proxies, with its
    cost in tokens passed forward and backward per recipe, beside a proxy run's trained tokens.

    The scores take their validation gradient from held-out half A (alignment.py), so `ref` and
    `tiny` are the rankings on half B (`half_b_loss`): text the score never saw. `tiny_spearman`
    is the tiny-LR proxy's own Spearman against the reference on the same half, the like-for-like
    comparison."""
    missing = [c for c in ("family", "seed", "state", "recipe", "tokens", *ALIGNMENT_SCORES) if c not in scores]
    if missing:
        raise DataError(f"alignment table lacks required columns: {missing}")
    out = []
    for (fam, state), df in scores.groupby(["family", "state"], sort=True):
        tokens = float(df.groupby("seed")["tokens"].sum().mean() / df["recipe"].nunique())
        for name in ALIGNMENT_SCORES:
            predicted = -df.groupby("recipe")[name].mean()  # seed mean; more alignment, lower loss
            row = _compare(predicted, ref, True, n_boot, seed)
            _, p, t = _aligned(predicted, tiny[fam]) if fam in tiny else ([], [], [])
            _, q, r = _aligned(tiny[fam], ref) if fam in tiny else ([], [], [])
            out.append({"family": fam, "state": state, "score": name, "n_seeds": int(df["seed"].nunique()),
                        "heldout": "half_b",
                        **{k: v for k, v in row.items() if k != "regret"},
                        "spearman_vs_tiny": json_number(spearman(p, t)) if len(p) else None,
                        "tiny_spearman": json_number(spearman(q, r)) if len(q) else None,
                        "tokens_per_recipe": tokens,
                        "cost_vs_proxy_run": tokens / proxy_tokens[fam] if fam in proxy_tokens else None})
    return out


def _validate_curves(curves: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("role", "recipe", "family", "lr", "seed", "step", "tokens", "loss_mean")
               if c not in curves.columns]
    if missing:
        raise DataError(f"curves table lacks required columns: {missing}")
    proxies = curves[curves["role"] == "proxy"]
    return proxies.assign(lr=round_lrs(proxies["lr"]))


# --------------------------------------------------------------------------- entry point


def analyze(
    runs: pd.DataFrame, *, standard_lr: str | dict[str, float], tiny_ratios: list[float], tiny_lr: float,
    n_boot: int, seed: int, curves: pd.DataFrame | None = None, frontier_target: float = 0.9,
    alignment: pd.DataFrame | None = None,
) -> tuple[dict, dict]:
    """Score every proxy (family x LR x seed) against the tuned reference; with `curves`, also at
    every logged validation point (the compute-reliability frontier); with `alignment`, the
    zero-training proxy too.

    Returns (headline, detail): headline is a nested dict for `dvc metrics`,
    detail holds every comparison row (and "picked", each family's tagged LRs). Both are
    JSON-serialisable.
    """
    runs = _validate(runs)
    domains = [c[len("loss_"):] for c in runs.columns if c.startswith("loss_") and c != "loss_mean"]
    cols = ["loss_mean"] + [f"loss_{d}" for d in domains]
    proxies = runs[runs["role"] == "proxy"]
    families = sorted(proxies["family"].unique())
    picked = pick_lrs(proxies, standard_lr, tiny_ratios, tiny_lr)  # a bad config fails before the bootstrap
    ref = tune(runs[runs["role"] == "reference"], cols)
    cross, within, spread, flips = _score_proxies(proxies, ref, cols, domains, runs.groupby("recipe")["group"].first(),
                                                   n_boot, seed)
    front = frontier(curves, ref["loss_mean"], n_boot, seed) if curves is not None else []
    aligned = []
    if alignment is not None:  # judged on held-out half B, the text its validation gradient left out
        if HELDOUT not in runs:
            raise DataError(f"runs table lacks {HELDOUT!r}, the loss on held-out half B against which the "
                            f"zero-training proxy is scored; rerun the training stages (older run records "
                            f"lack it) or score without the alignment table")
        first_tiny = tiny_tag(tiny_ratios[0])
        tiny = {fam: proxies[(proxies.family == fam) & same_lr(proxies.lr, v["lrs"][first_tiny])]
                .groupby("recipe")[HELDOUT].mean() for fam, v in picked.items()}
        tokens = {fam: float(proxies.loc[proxies.family == fam, "tokens"].mean()) for fam in families}
        ref_b = tune(runs[runs["role"] == "reference"], ["loss_mean", HELDOUT])[HELDOUT]
        aligned = alignment_rows(alignment, ref_b, tiny, tokens, n_boot, seed)
    n = len(ref)
    headline: dict = {"n_recipes": n, "n_pairs": n * (n - 1) // 2,
                      "random_regret1": random_regret(ref["loss_mean"].to_numpy(float))[0]}
    for fam in families:
        headline[fam] = _family_headline(fam, picked[fam]["lrs"], cross, spread, front, aligned, frontier_target,
                                         curves is not None)
    detail = {
        "picked": picked,
        "reference": {
            rec: {"best_lr": float(row["lr"]), "loss": json_number(row["loss_mean"]), "edge": bool(row["edge"])}
            for rec, row in ref.iterrows()
        },
        "cross_scale": cross,
        "within_scale": within,
        "seed_spread": spread,
        "flips": flips,
        "frontier": front,
        "alignment": aligned,
        "frontier_target": frontier_target,
        "random_regret": random_regret(ref["loss_mean"].to_numpy(float)),
        "n_recipes": n,
        "n_pairs": n * (n - 1) // 2,
        "domains": domains,
    }
    return headline, detail


def _score_proxies(proxies: pd.DataFrame, ref: pd.DataFrame, cols: list[str], domains: list[str],
                   groups: pd.Series, n_boot: int, seed: int) -> tuple[list, list, list, list]:
    """Every family x LR x seed (and seed mean) against the tuned reference, per domain; against the
    family's own tuned ranking; seed-to-seed agreement; and the pairs that flip between adjacent LRs."""
    cross, within, spread, flips = [], [], [], []
    for fam, fdf in proxies.groupby("family", sort=True):
        tuned = tune(fdf, ["loss_mean"])["loss_mean"]
        means = {}
        for lr, ldf in fdf.groupby("lr", sort=True):
            means[lr] = ldf.groupby("recipe")[cols].mean()
            variants = [(int(s), sdf.groupby("recipe")[cols].mean()) for s, sdf in ldf.groupby("seed", sort=True)]
            for s, vec in variants + [("mean", means[lr])]:
                key = {"family": fam, "lr": float(lr), "seed": s}
                ci = s == "mean"  # CIs for the seed mean over domains; per domain and per seed, the point only
                for d, col in zip(["mean"] + domains, cols):
                    cross.append({**key, "domain": d, **_compare(vec[col], ref[col], ci and d == "mean", n_boot, seed)})
                within.append({**key, "domain": "mean", **_compare(vec["loss_mean"], tuned, ci, n_boot, seed)})
            row = _seed_spread(fam, float(lr), ldf)
            if row:
                spread.append(row)
        lrs = list(means)
        flips += [_flips(fam, lo, hi, means[lo]["loss_mean"], means[hi]["loss_mean"], groups)
                  for lo, hi in zip(lrs, lrs[1:])]
    return cross, within, spread, flips


def _family_headline(fam: str, tags: dict[str, float], cross: list[dict], spread: list[dict], front: list[dict],
                     aligned: list[dict], frontier_target: float, with_curves: bool) -> dict:
    """A family's few numbers for `dvc metrics show`: its LRs, and each tagged LR's agreement."""
    rows = {r["lr"]: r for r in cross if r["family"] == fam and r["seed"] == "mean" and r["domain"] == "mean"}
    block: dict = {f"{tag}_lr": lr for tag, lr in tags.items()}
    for tag, lr in tags.items():
        r = rows[lr]
        block[f"spearman_{tag}"] = r["spearman"]
        block[f"pairwise_{tag}"] = r["pairwise_acc"]
        block[f"regret1_{tag}"] = r["regret"][0] if r["regret"] else None
        row = next((x for x in spread if x["family"] == fam and same_lr(x["lr"], lr)), None)
        if row:  # the noise floor: seed-to-seed agreement
            block[f"seed_spearman_{tag}"] = row["spearman_mean"]
    scored = {lr: r["spearman"] for lr, r in rows.items() if r["spearman"] is not None}
    block["best_spearman_lr"] = max(scored, key=lambda lr: (scored[lr], -lr)) if scored else None  # ties: lower LR
    if with_curves:  # the cheapest logged proxy budget that reaches the target
        hit = cheapest(front, fam, frontier_target)
        block["frontier_tokens"] = hit["tokens"] if hit else None
        block["frontier_lr"] = hit["lr"] if hit else None
    for r in aligned:  # the zero-training proxy's headline, named in advance: the paper's first-order term
        if r["family"] == fam and r["score"] == "alignment":
            block[f"alignment_spearman_{r['state']}"] = r["spearman"]
    return block
