"""`proxyrank score TABLE --small COL --large COL`: would the small runs have picked what the large runs prefer?

Data teams already hold ablations run at two scales: one row per recipe (or per recipe and seed),
one column per scale. This module scores the small scale as a proxy for the large one with the
study's own statistics (metrics.py: Spearman, Kendall's tau-b, pairwise accuracy, bootstrap), adds
the top-k regret against the exact expected regret of picking k recipes at random (the bar a proxy
has to clear), and gives a verdict per recipe pair. With a seed column it also asks whether the large
scale itself can tell each pair apart: a pair the large runs cannot separate is noise, and a proxy
cannot be blamed for ordering it either way, so pairwise accuracy is reported over all pairs and
over separated pairs only.

Internally every value is oriented so that lower is better (the convention of metrics.py, whose
scores are losses); `--higher-is-better` negates both columns on the way in, and every number
shown is turned back into the table's own units. The statistics are invariant under that flip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from proxyrank.analysis.metrics import (bootstrap_ci, kendall, pairwise_accuracy, percentile_interval, random_regret,
                                        regret_curve, spearman)
from proxyrank.errors import DataError, ParamsError
from proxyrank.files import atomic_path, json_number, write_json, write_text

LEVEL = 0.95  # every interval
MIN_RECIPES = 3
READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
RULES = (
    "Spearman and Kendall's tau-b compare the two orderings of the recipes (ties get average ranks); "
    "pairwise accuracy is the share of recipe pairs the small scale orders like the large one, a tie at "
    "the small scale counting 1/2 and a tie at the large scale leaving the pair out (metrics.py).",
    "Top-k regret: carry the small scale's k best recipes to the large scale and keep the best of them; "
    "the regret is how far that falls short of the large scale's best, in the table's units. Recipes "
    "tied at the small scale are picked in random order and the regret is its exact expectation.",
    "Random pick: the exact expected regret of carrying k recipes drawn at random, "
    "sum_j v_(j) C(n-j, k-1) / C(n, k) minus the best v_(1), for large-scale values sorted best first.",
    f"Intervals are {LEVEL:.0%} percentile intervals of a bootstrap that resamples recipes and, with a "
    "seed column, each drawn recipe's seed rows too (values are averaged over seeds per recipe).",
    "With seeds, a pair is *separated* when the interval of its paired large-scale difference (both "
    "recipes at the same seeds, seeds resampled together) excludes 0; otherwise the large scale cannot "
    "tell the two apart and the small scale's order of them carries no information.",
)


@dataclass(frozen=True)
class Table:
    """A checked two-scale table: values[recipe, seed], oriented so that lower is better."""
    recipes: list[str]
    small: np.ndarray
    large: np.ndarray
    seeds: list[str] | None  # seed labels (columns of small/large), None without a seed column
    sign: float  # +1 lower is better, -1 higher is better: raw value = sign * internal value


# --------------------------------------------------------------------------- reading and checking


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (every cell read as text, so an error can quote it) or a parquet file, by suffix."""
    path = Path(path)
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise ParamsError(f"{path}: unsupported file type {path.suffix!r}; give a .csv or .parquet table")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        return pd.read_csv(path, dtype=str) if kind == "csv" else pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise DataError(f"{path}: cannot read it as {kind}: {e}") from None


def _require_columns(df: pd.DataFrame, path: Path, wanted: dict[str, str]) -> None:
    """Each option's column must exist; the error lists the columns there are."""
    for option, col in wanted.items():
        if col not in df.columns:
            have = ", ".join(map(str, df.columns))
            raise ParamsError(f"{path}: no column {col!r} ({option}); its columns are: {have}; "
                              f"pass {option} with one of them")


def _numbers(df: pd.DataFrame, col: str, recipes: pd.Series, path: Path) -> np.ndarray:
    """The column as floats; an empty, non-numeric or infinite cell is refused, naming its recipe."""
    raw = df[col]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    for i in np.flatnonzero(~np.isfinite(values)):
        cell = raw.iloc[i]
        what = ("is empty (NaN)" if pd.isna(cell) or str(cell).strip().lower() in ("", "nan") else
                f"{str(cell)!r} is not a finite number")
        raise DataError(f"{path}: recipe {recipes.iloc[i]!r}, column {col!r}: {what}; fill in the "
                          f"value or drop the row")
    return values


def _recipe_names(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    names = df[col]
    empty = np.flatnonzero(names.isna().to_numpy())
    if empty.size:
        raise DataError(f"{path}: data row {empty[0] + 1} has no recipe name in column {col!r}; "
                          f"name every recipe")
    return names.astype(str)


def _check_rows(keys: pd.DataFrame, seeds: str | None, path: Path) -> None:
    """One row per recipe, or per recipe and seed; the same seeds for every recipe."""
    dup = keys[keys.duplicated(keep=False)]
    if len(dup):
        first = dup.iloc[0]
        if seeds is None:
            rows = int((keys["recipe"] == first["recipe"]).sum())
            raise DataError(f"{path}: recipe {first['recipe']!r} has {rows} rows; give one row per recipe, "
                              f"or name the seed column with --seeds")
        raise DataError(f"{path}: recipe {first['recipe']!r} has more than one row for seed "
                          f"{first['seed']!r} (column {seeds!r}); give one row per recipe and seed")
    n = keys["recipe"].nunique()
    if n < MIN_RECIPES:
        raise DataError(f"{path}: {n} recipe(s); at least {MIN_RECIPES} are needed to compare two rankings")
    if seeds is None:
        return
    sets = keys.groupby("recipe", sort=False)["seed"].agg(lambda s: tuple(sorted(s)))
    if sets.nunique() > 1:
        a, b = sets.index[0], sets.index[(sets != sets.iloc[0]).to_numpy().argmax()]
        raise DataError(f"{path}: recipe {a!r} has seeds {list(sets[a])} but recipe {b!r} has "
                          f"{list(sets[b])} (column {seeds!r}); give every recipe the same seeds, since a "
                          f"pair's large-scale difference is taken seed by seed")
    if len(sets.iloc[0]) < 2:
        raise DataError(f"{path}: one seed per recipe in column {seeds!r}; at least 2 are needed to "
                          f"measure the large scale's noise, or drop --seeds")


def load(path: Path, small: str, large: str, recipe: str = "recipe", seeds: str | None = None,
         higher_is_better: bool = False) -> Table:
    """Read and check the whole table before computing anything; every error names its column."""
    if small == large:
        raise ParamsError(f"--small and --large both name {small!r}; give the columns of two scales")
    df = read_table(path)
    wanted = {"--recipe": recipe, "--small": small, "--large": large} | ({"--seeds": seeds} if seeds else {})
    _require_columns(df, path, wanted)
    names = _recipe_names(df, recipe, path)
    if seeds and df[seeds].isna().any():
        bad = names[df[seeds].isna().to_numpy()].iloc[0]
        raise DataError(f"{path}: recipe {bad!r} has no seed in column {seeds!r}; fill it in")
    keys = pd.DataFrame({"recipe": names, "seed": df[seeds].astype(str) if seeds else "0"})
    _check_rows(keys, seeds, path)
    sign = -1.0 if higher_is_better else 1.0
    values = keys.assign(small=sign * _numbers(df, small, names, path), large=sign * _numbers(df, large, names, path))
    order = list(dict.fromkeys(names))  # the table's order of recipes
    grid = {col: values.pivot(index="recipe", columns="seed", values=col).loc[order] for col in ("small", "large")}
    return Table(order, grid["small"].to_numpy(float), grid["large"].to_numpy(float),
                 [str(s) for s in grid["small"].columns] if seeds else None, sign)


# --------------------------------------------------------------------------- statistics


def top1_regret(small, large) -> float:
    return float(regret_curve(small, large)[0])


STATISTICS = {"spearman": spearman, "kendall_tau_b": kendall, "pairwise_accuracy": pairwise_accuracy,
              "top1_regret": top1_regret}


def _interval(values) -> tuple[float, float]:
    return percentile_interval(values, LEVEL)


def seed_resamples(small: np.ndarray, large: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_boot, recipes) seed means after resampling recipes, then each drawn recipe's seed rows.

    The recipe draw is the first draw of the same generator metrics.bootstrap_ci uses, so with
    identical seed rows the intervals are the recipe-only bootstrap's.
    """
    n, k = small.shape
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))[..., None]
    rows = rng.integers(0, k, size=(n_boot, n, k))
    return small[idx, rows].mean(axis=2), large[idx, rows].mean(axis=2)


def intervals(t: Table, n_boot: int, seed: int) -> dict[str, tuple[float, float]]:
    """Bootstrap interval of every statistic, in internal (lower-is-better) units."""
    if t.seeds is None:
        s, l = t.small[:, 0], t.large[:, 0]
        return {name: bootstrap_ci(fn, s, l, n_boot, seed, LEVEL) for name, fn in STATISTICS.items()}
    boot_s, boot_l = seed_resamples(t.small, t.large, n_boot, seed)
    return {name: _interval([fn(a, b) for a, b in zip(boot_s, boot_l)]) for name, fn in STATISTICS.items()}


def separation(large: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Interval of each pair's large-scale difference (i minus j over pairs i < j, internal units),
    seeds resampled together so that the difference is paired seed by seed."""
    n, k = large.shape
    draws = np.random.default_rng(seed).integers(0, k, size=(n_boot, k))
    means = large[:, draws].mean(axis=2).T  # (n_boot, recipes)
    tail = 50 * (1 - LEVEL)
    lo, hi = [], []
    for i in range(n - 1):  # one row of pairs at a time: memory n_boot x recipes
        a, b = np.percentile(means[:, [i]] - means[:, i + 1:], [tail, 100 - tail], axis=0)
        lo.append(a)
        hi.append(b)
    return np.concatenate(lo), np.concatenate(hi)


def pair_verdicts(t: Table, n_boot: int, seed: int) -> list[dict]:
    """Per pair: which recipe the large scale prefers, by how much, and whether the small scale agrees.

    Gaps are in the table's units and point the large scale's way: a positive small-scale gap means
    the small scale prefers the same recipe. `credit` is what the pair adds to pairwise accuracy.
    """
    s, l = t.small.mean(axis=1), t.large.mean(axis=1)
    i, j = np.triu_indices(len(s), 1)
    lo, hi = separation(t.large, n_boot, seed) if t.seeds else (None, None)
    rows = []
    for p, (a, b) in enumerate(zip(i, j)):
        flip = l[b] < l[a]  # put the large scale's preferred recipe first
        x, y = (b, a) if flip else (a, b)
        row = {"better_at_large": t.recipes[x], "worse_at_large": t.recipes[y],
               "large_gap": float(l[y] - l[x]), "small_gap": float(s[y] - s[x])}
        row["verdict"] = ("tie at large" if row["large_gap"] == 0 else "tie at small" if row["small_gap"] == 0
                          else "agree" if row["small_gap"] > 0 else "disagree")
        row["credit"] = {"agree": 1.0, "disagree": 0.0, "tie at small": 0.5}.get(row["verdict"], math.nan)
        if lo is not None:
            d_lo, d_hi = (-hi[p], -lo[p]) if flip else (lo[p], hi[p])  # interval of l[x] - l[y]
            row |= {"large_gap_lo": float(-d_hi), "large_gap_hi": float(-d_lo),
                    "separated": bool(d_lo > 0 or d_hi < 0)}
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- the summary


def _stat(value: float, ci: tuple[float, float]) -> dict:
    """A statistic and its interval; an undefined one (nan) is None."""
    return {"value": json_number(value), "lo": json_number(ci[0]), "hi": json_number(ci[1])}


def _recipes(t: Table) -> list[dict]:
    """One row per recipe in the table's units, with its rank at each scale (1 = best), best at large first."""
    from scipy.stats import rankdata

    s, l = t.small.mean(axis=1), t.large.mean(axis=1)
    rs, rl = rankdata(s), rankdata(l)
    rows = [{"recipe": r, "small": t.sign * s[k], "large": t.sign * l[k], "small_rank": float(rs[k]),
             "large_rank": float(rl[k])} for k, r in enumerate(t.recipes)]
    if t.seeds:
        for k, row in enumerate(rows):
            row |= {"small_sd": float(t.small[k].std(ddof=1)), "large_sd": float(t.large[k].std(ddof=1))}
    return sorted(rows, key=lambda row: (row["large_rank"], row["recipe"]))


def score(t: Table, n_boot: int = 2000, seed: int = 0) -> dict:
    """Every statistic, interval, regret and pair verdict of one table (JSON-serialisable)."""
    if n_boot < 1:
        raise ParamsError(f"--n-boot: {n_boot}; give at least 1 bootstrap resample (default 2000)")
    s, l = t.small.mean(axis=1), t.large.mean(axis=1)
    ci = intervals(t, n_boot, seed)
    pairs = pair_verdicts(t, n_boot, seed)
    counted = [p for p in pairs if p["verdict"] != "tie at large"]
    regret, rand = regret_curve(s, l), random_regret(l)
    stats = {name: _stat(fn(s, l), ci[name]) for name, fn in STATISTICS.items()}
    stats["pairwise_accuracy"] |= {"agree": sum(p["credit"] for p in counted), "of": len(counted)}
    stats["top1_regret"]["random"] = float(rand[0])
    summary = {"n_recipes": len(t.recipes), "n_pairs": len(pairs), "statistics": stats,
               "top_pick": {"small": t.recipes[int(np.argmin(s))], "large": t.recipes[int(np.argmin(l))]},
               "regret": [{"k": k + 1, "regret": float(r), "random": float(b)}
                          for k, (r, b) in enumerate(zip(regret, rand))],
               "separated": None, "recipes": _recipes(t), "pairs": pairs}
    if t.seeds:
        sep = [p for p in counted if p["separated"]]
        summary["separated"] = {"pairs": len(sep), "of": len(pairs),
                                "pairwise_accuracy": float(np.mean([p["credit"] for p in sep])) if sep else None,
                                "agree": sum(p["credit"] for p in sep)}
    return summary


# --------------------------------------------------------------------------- outputs


def _fmt(x, spec: str = ".4g") -> str:
    return "n/a" if x is None else f"{x:{spec}}"


def _with_ci(stat: dict, spec: str = ".3f") -> str:
    ci = f" [{_fmt(stat['lo'], spec)}, {_fmt(stat['hi'], spec)}]" if stat["lo"] is not None else ""
    return _fmt(stat["value"], spec) + ci


def _headline(summary: dict) -> str:
    st, run = summary["statistics"], summary["run"]
    pw, r1 = st["pairwise_accuracy"], st["top1_regret"]
    line = (f"Spearman {_with_ci(st['spearman'])}, Kendall tau-b {_with_ci(st['kendall_tau_b'])}, pairwise "
            f"accuracy {_with_ci(pw)} ({_fmt(pw['agree'], 'g')} of {pw['of']} pairs); `{run['small']}`'s top pick "
            f"`{summary['top_pick']['small']}` gives up {_fmt(r1['value'])} at `{run['large']}` (a random pick "
            f"{_fmt(r1['random'])}), whose top pick is `{summary['top_pick']['large']}`.")
    sep = summary["separated"]
    if sep:
        line += (f" The large scale separates {sep['pairs']} of {sep['of']} pairs; on those the pairwise accuracy "
                 f"is {_fmt(sep['pairwise_accuracy'], '.3f')}.")
    return line


def _recipe_table(summary: dict) -> str:
    run = summary["run"]
    sd = summary["separated"] is not None
    head = f"| recipe | {run['small']} | rank | {run['large']} | rank |" + (" sd small | sd large |" if sd else "")
    lines = [head, "|" + "---|" * (7 if sd else 5)]
    for r in summary["recipes"]:
        extra = f" {r['small_sd']:.3g} | {r['large_sd']:.3g} |" if sd else ""
        lines.append(f"| {r['recipe']} | {r['small']:.6g} | {r['small_rank']:g} | {r['large']:.6g} | "
                     f"{r['large_rank']:g} |{extra}")
    return "\n".join(lines)


def _pair_lines(pairs: list[dict], sd: bool) -> str:
    head = "| preferred at large | other | gap at large | gap at small |" + (" large-gap 95% CI | separated |"
                                                                           if sd else "")
    lines = [head, "|" + "---|" * (6 if sd else 4)]
    for p in pairs:
        extra = (f" [{p['large_gap_lo']:.3g}, {p['large_gap_hi']:.3g}] | {'yes' if p['separated'] else 'no'} |"
                 if sd else "")
        lines.append(f"| {p['better_at_large']} | {p['worse_at_large']} | {p['large_gap']:.3g} | "
                     f"{p['small_gap']:+.3g} |{extra}")
    return "\n".join(lines)


def _pairs_section(summary: dict) -> str:
    sd = summary["separated"] is not None
    wrong = sorted((p for p in summary["pairs"] if p["verdict"] in ("disagree", "tie at small")),
                   key=lambda p: -p["large_gap"])
    text = (f"## Pairs the small scale orders differently ({len(wrong)})\n\nGaps point the large scale's way: "
            f"a negative gap at small is a pair the small scale orders the other way.\n\n"
            + (_pair_lines(wrong, sd) if wrong else "None.") + "\n")
    if sd:
        unsep = sorted((p for p in summary["pairs"] if not p["separated"]), key=lambda p: -p["large_gap"])
        text += (f"\n## Pairs the large scale cannot separate ({len(unsep)})\n\nThe {LEVEL:.0%} interval of the "
                 f"paired large-scale gap includes 0: the small scale's order of these pairs is not checked by "
                 f"the large runs.\n\n" + (_pair_lines(unsep, sd) if unsep else "None.") + "\n")
    return text


def _regret_table(summary: dict) -> str:
    lines = ["| k | regret | random pick (expected) |", "|---|---|---|"]
    lines += [f"| {r['k']} | {r['regret']:.4g} | {r['random']:.4g} |" for r in summary["regret"]]
    return "\n".join(lines)


def markdown(summary: dict) -> str:
    run = summary["run"]
    better = "higher" if run["higher_is_better"] else "lower"
    seeds = (f"seeds from column `{run['seeds']}` ({run['n_seeds']} per recipe, averaged)" if run["seeds"]
             else "one run per recipe and scale (no seed column: the large scale's own noise is unknown)")
    return (f"# Two-scale agreement: {run['table']}\n\nWould the runs at `{run['small']}` have picked what the runs "
            f"at `{run['large']}` prefer? {summary['n_recipes']} recipes, {summary['n_pairs']} pairs, {better} is "
            f"better; {seeds}.\n\n{_headline(summary)}\n\n![small vs large, and top-k regret](score.png)\n\n"
            f"## Recipes, best at `{run['large']}` first\n\n{_recipe_table(summary)}\n\n"
            f"## Top-k regret (in the table's units)\n\n{_regret_table(summary)}\n\n{_pairs_section(summary)}\n"
            f"## Rules\n\n" + "\n".join(f"- {r}" for r in RULES)
            + f"\n\n## What was run\n\n- table `{run['table']}`: recipe column `{run['recipe']}`, "
            f"small `{run['small']}`, large `{run['large']}`\n"
            f"- bootstrap: {run['n_boot']} resamples, seed {run['seed']}\n")


def figure(summary: dict, path: Path) -> None:
    """Left: each recipe at the small scale against the large one; right: top-k regret against random."""
    from proxyrank.reporting.figures import pyplot, write_png

    plt = pyplot()
    run, recipes = summary["run"], summary["recipes"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.5, 1]})
    x, y = [r["small"] for r in recipes], [r["large"] for r in recipes]
    if summary["separated"] is not None:
        left.errorbar(x, y, xerr=[r["small_sd"] for r in recipes], yerr=[r["large_sd"] for r in recipes],
                      fmt="none", ecolor="0.75", lw=1, label="±1 sd over seeds")
        left.legend(fontsize=8, loc="lower right")
    left.scatter(x, y, s=22, color="#1f77b4", zorder=3)
    labels = [left.annotate(r["recipe"], (r["small"], r["large"]), fontsize=7, xytext=(4, 2),
                            textcoords="offset points") for r in recipes]
    st, better = summary["statistics"], "higher" if run["higher_is_better"] else "lower"
    left.set(xlabel=f"{run['small']} (small scale, {better} is better)",
             ylabel=f"{run['large']} (large scale, {better} is better)",
             title=f"Spearman {_with_ci(st['spearman'], '.2f')}, pairwise {_with_ci(st['pairwise_accuracy'], '.2f')}")
    span = (max(x) - min(x)) or 1.0
    left.set_xlim(min(x) - 0.05 * span, max(x) + 0.3 * span)  # room for labels written to the right
    k = [r["k"] for r in summary["regret"]]
    right.plot(k, [r["regret"] for r in summary["regret"]], "o-", color="#1f77b4", ms=4,
               label=f"top k at {run['small']}")
    right.plot(k, [r["random"] for r in summary["regret"]], "--", color="0.5", label="k at random (expected)")
    right.set(xlabel="k: recipes carried to the large scale", ylabel=f"regret at {run['large']}",
              title="Top-k regret (0 = the large scale's best is kept)", xticks=k if len(k) <= 20 else None)
    top = max(max(r["random"] for r in summary["regret"]), max(r["regret"] for r in summary["regret"])) or 1.0
    right.set_ylim(-0.04 * top, 1.08 * top)  # a regret of 0 stays in view
    right.legend(fontsize=8)
    fig.tight_layout()
    place_labels(fig, left, labels)
    write_png(fig, path)


def place_labels(fig, ax, labels) -> None:
    """Keep point labels readable: a label that would cross the right frame goes to the left of its point,
    and one that would cover a label already placed (higher points first) moves down until it is clear."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed = []
    for text in sorted(labels, key=lambda t: -t.xy[1]):
        if text.get_window_extent(renderer).x1 > frame.x1:
            text.set(ha="right", position=(-4, 2))
        for _ in range(20):
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            x, y = text.get_position()
            text.set_position((x, y - 4))
        placed.append(text.get_window_extent(renderer))


def write_outputs(summary: dict, out: Path) -> None:
    """score.md / .json / .png, pairs.csv and regret.csv, each written atomically."""
    out = Path(out)
    for name, rows in (("pairs.csv", summary["pairs"]), ("regret.csv", summary["regret"])):
        with atomic_path(out / name) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.10g")
    write_json(out / "score.json", summary)
    write_text(out / "score.md", markdown(summary))
    figure(summary, out / "score.png")


# --------------------------------------------------------------------------- the command


def run_score(table: Path, small: str, large: str, out: Path, recipe: str = "recipe", seeds: str | None = None,
              higher_is_better: bool = False, n_boot: int = 2000, seed: int = 0) -> dict:
    """Load, score and write one table; returns the summary written to score.json."""
    t = load(table, small, large, recipe, seeds, higher_is_better)
    summary = score(t, n_boot, seed)
    summary["run"] = {"table": str(table), "recipe": recipe, "small": small, "large": large, "seeds": seeds,
                      "n_seeds": len(t.seeds) if t.seeds else 1, "higher_is_better": higher_is_better,
                      "n_boot": n_boot, "seed": seed, "level": LEVEL}
    summary["rules"] = list(RULES)
    summary = {"run": summary.pop("run"), **summary}
    write_outputs(summary, out)
    print(_headline(summary))
    print(f"score: wrote {out}/score.md, score.json, score.png, pairs.csv, regret.csv")
    return summary
