"""Every figure of the study, drawn from the reports folder alone.

Each picture has to be read without the report's text: its axes carry units, its reference lines
say what they are, and the learning rates it marks are the ones the analysis picked from the data
(analysis.json "picked": each family's best-loss LR as "standard", standard/30 and standard/300 as
"tiny30" and "tiny300"), never the ones in params.yaml.

The figures of the `rank` and `score` commands are drawn in their own modules with the helpers here
(pyplot, save_png, write_png), so that every PNG of the project is made the same way.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from proxyrank.analysis.metrics import same_lr
from proxyrank.config import FAMILIES, Params
from proxyrank.errors import DataError
from proxyrank.files import atomic_dir, atomic_path

FAMILY_COLOURS = dict(zip(FAMILIES, ("#1f77b4", "#d62728", "#2ca02c")))
# the standard LR and the tiny ones in every figure that compares them (ColorBrewer Dark2)
TAG_COLOURS = ("#d95f02", "#7570b3", "#1b9e77", "#e7298a", "#66a61e")
# the paper's headline numbers (arXiv 2512.24503), drawn as labelled reference lines
PAPER_SPEARMAN_TINY = 0.92  # "> 0.92" at a tiny LR
PAPER_SPEARMAN_STANDARD = 0.75  # "< 0.75" at a standard LR
PAPER_REGRET = 0.25  # top-k regret at the standard LR, about 0.25 nats
REFERENCE_GREY = "0.45"


# --------------------------------------------------------------------------- reading the reports


def load(reports: Path) -> tuple[dict, dict, pd.DataFrame]:
    """(metrics.json, analysis.json, runs.csv) of a reports folder."""
    detail = json.loads((reports / "analysis.json").read_text())
    metrics = json.loads((reports / "metrics.json").read_text())
    return metrics, detail, pd.read_csv(reports / "runs.csv")


def table_rows(detail: dict, key: str, **match) -> pd.DataFrame:
    """analysis.json's list `key` as a table, filtered on columns equal (as text) to `match`."""
    df = pd.DataFrame(detail[key])
    for k, v in match.items():
        df = df[df[k].astype(str) == str(v)]
    return df


def _need(detail: dict, key: str):
    """detail[key], or a DataError saying which stage writes it: an analysis.json from before the
    data-defined LRs would otherwise fail as a bare KeyError deep inside a figure."""
    if key not in detail:
        raise DataError(f"analysis.json: no {key!r}; it comes from this version of `python -m proxyrank metrics`: "
                         f"rerun that stage (dvc repro metrics)")
    return detail[key]


def _at_lr(df: pd.DataFrame, lr: float) -> pd.DataFrame:
    """The rows at one LR (LRs read back from text differ in the last bits)."""
    return df[same_lr(df.lr.astype(float), lr)]


def family_at_lr(df: pd.DataFrame, family: str, lr: float) -> pd.DataFrame:
    """The rows of one family at one LR, in table order (the figures and the report pick rows so)."""
    return _at_lr(df[df.family == family], lr)


def _tag_rank(tag: str) -> tuple[int, float]:
    """standard first, then tinyN by N, then the paper's absolute "tiny"."""
    if tag == "standard":
        return 0, 0.0
    return (1, float(tag[4:])) if tag.startswith("tiny") and tag != "tiny" else (2, 0.0)


def tagged_lrs(detail: dict) -> dict[str, dict[str, float]]:
    """Each family's tagged LRs, in display order, from analysis.json "picked" (data-defined)."""
    picked = _need(detail, "picked")
    return {fam: dict(sorted(v["lrs"].items(), key=lambda kv: _tag_rank(kv[0]))) for fam, v in picked.items()}


def _ratio_tags(tags: dict[str, float]) -> dict[str, float]:
    """standard and standard/N: the absolute "tiny" (the paper's 1e-5) is marked apart."""
    return {t: lr for t, lr in tags.items() if t != "tiny"}


def _first_tiny(tags: dict[str, float]) -> str:
    tiny = [t for t in _ratio_tags(tags) if t != "standard"]
    if not tiny:
        raise DataError(f"analysis.json picked: no tiny LR (tiny30, ...) among {list(tags)}; set "
                         f"analysis.tiny_ratios in params.yaml and rerun the metrics stage")
    return tiny[0]


def _tiny_names(tags: dict[str, dict[str, float]]) -> str:
    """"/30, /300": the tiny ratios the study used, for legends and axis labels."""
    every = sorted({t for v in tags.values() for t in _ratio_tags(v)}, key=_tag_rank)
    return ", ".join(_tag_label(t) for t in every if t != "standard")


def _tag_label(tag: str) -> str:
    return {"standard": "standard", "tiny": "paper's tiny"}.get(tag, f"/{tag[4:]}")


def _tag_colour(tag: str, tags: dict[str, float]) -> str:
    """standard orange, the tiny LRs in their ratio order after it (every family has the same tags)."""
    order = list(_ratio_tags(tags))
    return TAG_COLOURS[min(order.index(tag), len(TAG_COLOURS) - 1)] if tag in order else TAG_COLOURS[-1]


def _lr_label(lr: float, tags: dict[str, float]) -> str:
    """"3e-3 (std)": an LR with the tags that fall on it."""
    names = [("std" if t == "standard" else _tag_label(t)) for t, x in _ratio_tags(tags).items()
             if same_lr(x, lr)]
    return _lr_text(lr) + (f" ({', '.join(names)})" if names else "")


def _lr_text(lr: float) -> str:
    """Two significant digits, short: 3.5e-3, 1e-5 (the reference's grid is 2x apart)."""
    mantissa, exponent = f"{lr:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _families(present) -> list[str]:
    present = set(present)
    return [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES))


def _group_colours(groups) -> dict[str, tuple]:
    import matplotlib.pyplot as plt

    return {g: plt.get_cmap("tab10")(i % 10) for i, g in enumerate(sorted(set(groups)))}


def _seed_stats(df: pd.DataFrame) -> pd.DataFrame:
    """Per recipe: mean and sd (ddof 1; 0 with one seed) of loss_mean over seeds."""
    out = df.groupby("recipe").loss_mean.agg(["mean", "std"])
    return out.fillna({"std": 0.0})


def pyplot():
    """matplotlib.pyplot on the Agg backend: every figure goes to a file, on machines without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path) -> None:
    """The one way a figure is saved (size, resolution, trimmed margins), then freed."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def write_png(fig, path: Path) -> None:
    """save_png to a file of its own, atomically: a figure drawn alone (the rank and score commands),
    not inside the folder `figures` replaces whole."""
    with atomic_path(path) as tmp:
        save_png(fig, tmp)


def _hline(ax, y: float, text: str, ls: str = "--", colour: str = REFERENCE_GREY, right: bool = True) -> None:
    """A horizontal reference line with its label on it, at the panel's right (or left) edge."""
    ax.axhline(y, ls=ls, color=colour, lw=1, zorder=1)
    ax.text(0.99 if right else 0.01, y, text, transform=ax.get_yaxis_transform(), ha="right" if right else "left",
            va="bottom", fontsize=7, color=colour, zorder=5)


# --------------------------------------------------------------------------- entry point


def figures(p: Params, reports: Path) -> None:
    """Every figure into a temporary folder that replaces reports/figures whole, and the two
    `dvc plots` tables (reports/plots), at full precision."""
    pyplot()
    metrics, detail, runs = load(reports)
    tags = tagged_lrs(detail)
    cross = table_rows(detail, "cross_scale", seed="mean", domain="mean")
    curves = pd.read_csv(reports / "curves.csv")
    seed_means = runs[runs.role == "proxy"].groupby(["family", "lr", "recipe"]).loss_mean.mean()
    with atomic_dir(reports / "figures") as out:
        _fig_spearman(cross, tags, metrics["n_recipes"], out / "spearman_vs_lr.png")
        _fig_scatter(runs, curves, detail, tags, cross, out / "loss_scatter.png")
        _fig_regret(cross, tags, _need(detail, "random_regret"), out / "topk_regret.png")
        _fig_domains(detail, tags, out / "per_domain_spearman.png")
        _fig_flip(detail, seed_means, out / "flip.png")
        _fig_curves(curves, tags, detail, out / "training_curves.png")
        _fig_frontier(detail, tags, out / "frontier.png")
        _fig_reference_lr(runs, out / "reference_lr.png")
        if (reports / "theory.csv").exists():
            _fig_theory(pd.read_csv(reports / "theory.csv"), p.theory.n_recipes, out / "theory.png")
        if (reports / "ladder.csv").exists():
            _fig_ladder(pd.read_csv(reports / "ladder.csv"), out / "ladder.png")
    wide = cross.assign(spearman=cross.spearman.astype(float)).pivot_table(
        index="lr", columns="family", values="spearman", dropna=False).reindex(columns=list(FAMILIES))
    with atomic_path(reports / "plots" / "spearman_vs_lr.csv") as tmp:
        wide = wide.reset_index()  # log10_lr: `dvc plots` draws linear axes, where 1e-5 ... 1e-3 pile up at 0
        wide.insert(1, "log10_lr", np.log10(wide.lr.astype(float)))
        wide.to_csv(tmp, index=False)
    with atomic_path(reports / "plots" / "curves.csv") as tmp:
        _plot_curves(curves, tags).to_csv(tmp, index=False)


def _plot_curves(curves: pd.DataFrame, tags: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Validation loss during training at each tagged LR, mean over recipes and seeds: one column
    per family x tag ("gpt2_standard", "gpt2_tiny30", ...) for every family, run or not, so
    `dvc plots diff` lines up across revisions."""
    proxies = curves[curves.role == "proxy"]
    every = sorted({t for v in tags.values() for t in v}, key=_tag_rank)
    columns = {}
    for fam in FAMILIES:
        for tag in every:
            lr = tags.get(fam, {}).get(tag)
            df = family_at_lr(proxies, fam, lr) if lr is not None else proxies.iloc[:0]
            columns[f"{fam}_{tag}"] = df.groupby("tokens").loss_mean.mean()
    return pd.DataFrame(columns).rename_axis("tokens").reset_index()


# --------------------------------------------------------------------------- the figures


def _fig_spearman(cross: pd.DataFrame, tags: dict[str, dict[str, float]], n_recipes: int, path: Path) -> None:
    """Spearman against LR per family, the family's own standard and tiny LRs circled on its line."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.6, 4.8))
    for i, fam in enumerate(_families(cross.family)):
        df, c = cross[cross.family == fam].sort_values("lr"), FAMILY_COLOURS.get(fam)
        ax.plot(df.lr, df.spearman.astype(float), "o-", ms=4, color=c, label=f"{fam} proxy")
        ax.fill_between(df.lr, df.spearman_lo.astype(float), df.spearman_hi.astype(float), color=c, alpha=0.09, lw=0)
        marks: dict[float, list[str]] = {}  # tags on the same grid LR share a marker and a label
        for tag, lr in _ratio_tags(tags.get(fam, {})).items():
            marks.setdefault(lr, []).append(tag)
        for lr, on in marks.items():
            row = family_at_lr(df, fam, lr)
            y = float(row.spearman.iloc[0]) if len(row) and row.spearman.iloc[0] is not None else math.nan
            if not np.isfinite(y):
                continue
            std = "standard" in on
            ax.scatter([lr], [y], s=260 if std else 110, marker="o" if std else "s", facecolors="none",
                       edgecolors=c, linewidths=1.6, zorder=4)
            # the tags' names in the family's lane above the panel: names never cover the data
            ax.text(lr, 1.02 + 0.055 * i, ", ".join(map(_tag_label, on)), transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=7, color=c)
        ax.text(-0.01, 1.02 + 0.055 * i, fam, transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color=c)
    _hline(ax, PAPER_SPEARMAN_TINY, f"paper, tiny LR: > {PAPER_SPEARMAN_TINY}", right=False)
    _hline(ax, PAPER_SPEARMAN_STANDARD, f"paper, standard LR: < {PAPER_SPEARMAN_STANDARD}", ls=":", right=False)
    absolute = {v["tiny"] for v in tags.values() if "tiny" in v}
    for lr in absolute:
        ax.axvline(lr, color="k", lw=0.6, alpha=0.35)
    handles, _ = ax.get_legend_handles_labels()
    tiny = _tiny_names(tags)
    handles += [Line2D([], [], marker="o", ms=13, mfc="none", mec="k", ls="none",
                       label="standard: the family's best-loss LR"),
                Line2D([], [], marker="s", ms=9, mfc="none", mec="k", ls="none",
                       label=f"{tiny}: the standard LR {tiny} (nearest grid LR)")]
    if absolute:
        handles.append(Line2D([], [], color="k", lw=0.6, alpha=0.35,
                              label="paper's tiny LR " + ", ".join(_lr_text(x) for x in sorted(absolute))))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set(xscale="log", ylim=(-1.05, 1.05), xlabel="proxy learning rate",
           ylabel="Spearman vs tuned reference\n(points: mean over seeds; band: 95% CI)")
    ax.set_title(f"Proxy ranking of {n_recipes} recipes vs the reference tuned per recipe\n"
                 "(above: where each family's standard and tiny LRs are)", pad=12 + 14 * len(tags), fontsize=10)
    save_png(fig, path)


def _at_tuned_lr(ref: pd.DataFrame, detail: dict) -> pd.DataFrame:
    """The reference rows (runs or curve points) at each recipe's tuned LR (analysis.json)."""
    best = {r: v["best_lr"] for r, v in _need(detail, "reference").items()}
    keep = [same_lr(lr, best.get(rec, math.nan)) for rec, lr in zip(ref.recipe, ref.lr)]
    return ref[np.asarray(keep, dtype=bool)]


def _mark_init(ax, init: float | None, x: pd.Series) -> None:
    """The proxies' step-0 loss: a line where it lies near the points; off the panel, an arrow to it
    with its distance, so the points keep the panel's width."""
    if init is None or not np.isfinite(init) or not x.notna().any():
        return
    lo, hi = float(x.min()), float(x.max())
    if init <= hi + (hi - lo):
        ax.axvline(init, color="k", ls=":", lw=1.2)
        ax.text(init, 0.98, f" step 0: {init:.3f}", transform=ax.get_xaxis_transform(), rotation=90,
                ha="right", va="top", fontsize=7)
    else:
        ax.text(0.99, 0.02, f"step-0 loss {init:.3f} →\n({init - hi:.2f} nats right)", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7)


def _initial_loss(curves: pd.DataFrame, fam: str, lr: float) -> float | None:
    start = family_at_lr(curves[(curves.role == "proxy") & (curves.step == 0)], fam, lr)
    return float(start.loss_mean.mean()) if len(start) else None


def _fig_scatter(runs: pd.DataFrame, curves: pd.DataFrame, detail: dict, tags: dict[str, dict[str, float]],
                 cross: pd.DataFrame, path: Path) -> None:
    """Per family, at its standard and its first tiny LR: each recipe's proxy loss against its tuned
    reference loss, seed spread as bars. Each panel has its own x-range (they differ ~100x)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    ref, proxies = _seed_stats(_at_tuned_lr(runs[runs.role == "reference"], detail)), runs[runs.role == "proxy"]
    groups = runs.groupby("recipe").group.first()
    colours = _group_colours(groups)
    fams = [f for f in _families(proxies.family) if f in tags]
    fig, axes = plt.subplots(2, len(fams), figsize=(3.9 * len(fams), 7.4), sharey=True, squeeze=False)
    spans = []
    for col, fam in enumerate(fams):
        for row, tag in enumerate(("standard", _first_tiny(tags[fam]))):
            ax, lr = axes[row, col], tags[fam][tag]
            x = _seed_stats(family_at_lr(proxies, fam, lr)).reindex(ref.index)
            ax.errorbar(x["mean"], ref["mean"], xerr=x["std"], yerr=ref["std"], fmt="none", ecolor="0.65", lw=0.8)
            ax.scatter(x["mean"], ref["mean"], c=[colours[groups[r]] for r in ref.index], s=22, zorder=3)
            _mark_init(ax, _initial_loss(curves, fam, lr), x["mean"])
            rho = family_at_lr(cross, fam, lr).spearman.astype(float)
            ax.set_title(f"{fam} @ {_lr_text(lr)} ({_tag_label(tag)} LR)\nSpearman "
                         + (f"{rho.iloc[0]:.2f}" if len(rho) and np.isfinite(rho.iloc[0]) else "n/a"), fontsize=9)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.set_xlabel("proxy validation loss (nats)", fontsize=8)
            spans.append(float(np.ptp(x["mean"].dropna())) if x["mean"].notna().any() else math.nan)
        for row in range(2):
            axes[row, 0].set_ylabel("tuned reference loss (nats)", fontsize=8)
    spans = [s for s in spans if np.isfinite(s) and s > 0]
    ratio = f" (widest / narrowest: {max(spans) / min(spans):.0f}x)" if len(spans) > 1 else ""
    fig.suptitle("Proxy vs tuned reference loss, one point per recipe: top row standard LR, bottom row tiny LR.\n"
                 f"Every panel has its own x-range{ratio}: compare orders, not positions.", fontsize=10)
    handles = [Line2D([], [], marker="o", ls="none", color=c, label=f"{g} recipes") for g, c in colours.items()]
    handles.append(Line2D([], [], color="0.65",
                          label="bars: ±1 sd over seeds (x: proxy, y: reference at its tuned LR)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save_png(fig, path)


def _fig_regret(cross: pd.DataFrame, tags: dict[str, dict[str, float]], random: list[float], path: Path) -> None:
    """Per family: the reference loss given up by trusting the proxy's top k, at its standard and its
    first tiny LR, against picking k recipes at random (the exact expectation)."""
    import matplotlib.pyplot as plt

    fams = [f for f in _families(cross.family) if f in tags]
    fig, axes = plt.subplots(1, len(fams), figsize=(4.2 * len(fams), 4.2), sharey=True, squeeze=False)
    for ax, fam in zip(axes[0], fams):
        ax.plot(np.arange(1, len(random) + 1), random, color=REFERENCE_GREY, ls=":", lw=1.6,
                label="random pick (expected)")
        for tag, marker in (("standard", "o-"), (_first_tiny(tags[fam]), "s--")):
            lr = tags[fam][tag]
            row = family_at_lr(cross, fam, lr)
            if len(row) and len(row.iloc[0].regret):
                reg = np.asarray(row.iloc[0].regret, dtype=float)
                ax.plot(np.arange(1, len(reg) + 1), reg, marker, ms=4 if tag == "standard" else 3, mfc="none",
                        color=_tag_colour(tag, tags[fam]), label=f"{_tag_label(tag)} LR ({_lr_text(lr)})")
        _hline(ax, PAPER_REGRET, "paper: ~0.25 (standard LR)")
        ax.set(title=f"{fam} proxy", xlabel="k: recipes kept (the proxy's top k)")
        ax.legend(fontsize=7, loc="center right")
    axes[0, 0].set_ylim(-0.01, max(axes[0, 0].get_ylim()[1], PAPER_REGRET * 1.12))
    axes[0, 0].set_ylabel("top-k regret (nats): best reference loss in\nthe proxy's top k minus the best overall")
    fig.suptitle("Decision regret of trusting the proxy: standard vs tiny LR, random pick as the bar", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


def _fig_domains(detail: dict, tags: dict[str, dict[str, float]], path: Path) -> None:
    """Spearman per validation domain (rows; the mean over domains last) and family x LR (columns)."""
    import matplotlib.pyplot as plt

    rows = table_rows(detail, "cross_scale", seed="mean")
    if not (rows.domain != "mean").any():
        return
    table = rows.assign(spearman=rows.spearman.astype(float)).pivot_table(
        index="domain", columns=["family", "lr"], values="spearman", dropna=False)
    table = table.reindex([d for d in sorted(table.index) if d != "mean"] + ["mean"])
    table = table[[c for f in _families(table.columns.get_level_values(0)) for c in table.columns if c[0] == f]]
    table = table.loc[:, table.notna().any()]  # each family's own LRs, not every family's
    values = table.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.62 * values.shape[1] + 2.5), 0.42 * values.shape[0] + 2.4))
    im = ax.imshow(values, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, "n/a" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                color="white" if np.isfinite(v) and abs(v) > 0.6 else "black")
    ax.set_xticks(range(values.shape[1]), [_lr_label(lr, tags.get(f, {})).replace(" (", "\n(")
                                           for f, lr in table.columns], fontsize=7)
    ax.set_yticks(range(values.shape[0]), ["mean loss, all domains" if d == "mean" else d for d in table.index])
    ax.axhline(values.shape[0] - 1.5, color="k", lw=1.5)
    fams = list(table.columns.get_level_values(0))
    for f in dict.fromkeys(fams):
        first, last = fams.index(f), len(fams) - 1 - fams[::-1].index(f)
        ax.text((first + last) / 2, -0.7, f"{f} proxy", ha="center", va="bottom", fontsize=9, fontweight="bold")
        if first:
            ax.axvline(first - 0.5, color="k", lw=1.5)
    tiny = _tiny_names(tags)
    ax.set_xlabel(f"proxy learning rate (std: the family's standard LR; {tiny}: std {tiny})")
    ax.set_title("Spearman vs tuned reference per validation domain (seed means)", pad=22)
    fig.colorbar(im, ax=ax, shrink=0.85).set_label("Spearman vs tuned reference")
    save_png(fig, path)


def _fig_flip(detail: dict, proxies: pd.Series, path: Path) -> None:
    """The pair whose loss gap swings most while its winner flips between adjacent LRs."""
    import matplotlib.pyplot as plt

    flips = [f for f in detail["flips"] if f.get("largest_flip")]
    if not flips:
        return
    best = max(flips, key=lambda f: abs(f["largest_flip"]["delta_from"] - f["largest_flip"]["delta_to"]))
    a, b = best["largest_flip"]["recipes"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, ls in ((a, "o-"), (b, "s--")):
        s = proxies.loc[best["family"]].xs(name, level="recipe").sort_index()
        ax.plot(s.index, s.values, ls, label=name)
    ax.axvspan(best["lr_from"], best["lr_to"], color="orange", alpha=0.15, label="winner flips")
    ax.set(xscale="log", xlabel="proxy learning rate", ylabel="validation loss (mean over domains)",
           title=f"The flip: {best['family']} proxy, {a} vs {b}")
    ax.legend(fontsize=8)
    save_png(fig, path)


def _fig_curves(curves: pd.DataFrame, tags: dict[str, dict[str, float]], detail: dict, path: Path) -> None:
    """Validation loss from step 0 (where logged) per LR, mean over recipes and seeds: one panel per
    proxy family, its standard LR thick, and the reference with its tuned-per-recipe curve."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    proxies, ref = curves[curves.role == "proxy"], curves[curves.role == "reference"]
    panels = [(f"{f} proxies", proxies[proxies.family == f], tags.get(f, {})) for f in _families(proxies.family)]
    if len(ref):
        panels.append((f"{ref.family.iloc[0]} reference", ref, {}))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.7 * len(panels), 4.6), sharey=True, squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, (title, df, ftags) in zip(axes[0], panels):
        lrs = sorted(df.lr.unique())
        for i, lr in enumerate(lrs):
            mean = _at_lr(df, lr).groupby("tokens").loss_mean.mean()
            thick = "standard" in ftags and same_lr(lr, ftags["standard"])
            ax.plot(mean.index, mean.values, "o-", ms=2.5, lw=3.2 if thick else 1.1, zorder=3 if thick else 2,
                    color=cmap(0.9 * i / max(1, len(lrs) - 1)), label=_lr_label(lr, ftags))  # no pale yellow
        if not ftags:
            tuned = _at_tuned_lr(df, detail).groupby("tokens").loss_mean.mean()  # each recipe at its own LR
            if len(tuned):
                ax.plot(tuned.index, tuned.values, "--", lw=1.6, color="k", zorder=4, label="tuned per recipe")
        ax.set(xlabel="training tokens", title=title)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.legend(title="LR (thick: standard)" if ftags else "LR", fontsize=7, title_fontsize=7,
                  loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    axes[0, 0].set_ylabel("validation loss (nats)\nmean over recipes and seeds")
    fig.tight_layout()
    save_png(fig, path)


def _alignment_points(ax, aligned: pd.DataFrame) -> None:
    """The zero-training scores at their cost: marker by score, colour by state, nudged apart in x."""
    markers = {"alignment": "*", "adam_alignment": "P", "cosine": "X"}
    for i, ((state, score), d) in enumerate(aligned.groupby(["state", "score"]) if len(aligned) else []):
        r = d.iloc[0]
        y, lo, hi = (float(r[k]) if r[k] is not None else math.nan for k in ("spearman", "spearman_lo", "spearman_hi"))
        ax.errorbar(r.tokens_per_recipe * 1.12 ** i, y, yerr=[[y - lo], [hi - y]], fmt=markers.get(score, "D"), ms=7,
                    capsize=2, lw=0.8, color="#a50f15" if state == "warm" else "k",
                    label=f"{score} ({state}; held-out half B)")


def _fig_frontier(detail: dict, tags: dict[str, dict[str, float]], path: Path) -> None:
    """Spearman at every logged proxy budget of the standard and tiny LRs (what a cheaper run would
    have ranked), and the zero-training alignment scores at their own cost, per family."""
    import matplotlib.pyplot as plt

    front, aligned = pd.DataFrame(detail.get("frontier", [])), pd.DataFrame(detail.get("alignment", []))
    if not len(front):
        return
    front = front[front.tokens > 0]  # step 0 ranks nothing (every recipe starts from the same model)
    fams = [f for f in _families(front.family) if f in tags]
    fig, axes = plt.subplots(1, len(fams), figsize=(4.0 * len(fams), 4.0), sharey=True, squeeze=False)
    target = float(detail["frontier_target"])
    for ax, fam in zip(axes[0], fams):
        for tag, lr in _ratio_tags(tags[fam]).items():
            d = family_at_lr(front, fam, lr).sort_values("tokens")
            c = _tag_colour(tag, tags[fam])
            ax.plot(d.tokens, d.spearman.astype(float), "o-", ms=4, color=c, label=f"proxy, {_tag_label(tag)} LR")
            ax.fill_between(d.tokens, d.spearman_lo.astype(float), d.spearman_hi.astype(float), color=c,
                            alpha=0.07, lw=0)
        _alignment_points(ax, aligned[aligned.family == fam] if len(aligned) else aligned)
        _hline(ax, target, f"target {target:g}", right=False)
        ax.set(xscale="log", xlabel="tokens per recipe", ylim=(-1.05, 1.05))
        named = ", ".join(f"{_tag_label(t)} {_lr_text(lr)}" for t, lr in _ratio_tags(tags[fam]).items())
        ax.set_title(f"{fam}: {named}", fontsize=9)
    axes[0, 0].set_ylabel("Spearman vs tuned reference (95% CI)")
    handles = {}
    for ax in axes[0]:
        handles.update({lab: h for h, lab in zip(*ax.get_legend_handles_labels())})
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(5, len(handles)), fontsize=8,
               frameon=False)
    fig.suptitle("Compute-reliability frontier: proxies at each logged budget, zero-training scores at their cost",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.06 * math.ceil(len(handles) / 5), 1, 1))
    save_png(fig, path)


def _fig_reference_lr(runs: pd.DataFrame, path: Path) -> None:
    """Is the reference tuned? Per recipe, its seed-mean loss above its own best against the LR: an
    interior minimum locates the optimum, a best LR at the grid's edge does not."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    ref = runs[runs.role == "reference"]
    if not len(ref):
        return
    means = ref.groupby(["recipe", "lr"]).loss_mean.mean().unstack("lr")
    means = means.loc[means.notna().any(axis=1)]
    best_lr, best = means.idxmin(axis=1), means.min(axis=1)
    groups = ref.groupby("recipe").group.first()
    colours = _group_colours(groups)
    fig, ax = plt.subplots(figsize=(7.4, 4.8))
    for recipe, row in means.iterrows():
        c = colours[groups[recipe]]
        ax.plot(row.index, row - best[recipe], "-", color=c, lw=1, alpha=0.75)
        seeds = ref[ref.recipe == recipe]
        ax.scatter(seeds.lr, seeds.loss_mean - best[recipe], s=7, color=c, alpha=0.6, lw=0)
        ax.scatter([best_lr[recipe]], [0.0], marker="*", s=110, color=c, edgecolors="k", linewidths=0.4, zorder=4)
    lrs = list(means.columns)
    for lr, n in best_lr.value_counts().items():
        ax.annotate(f"best for {n}", (lr, 0.0), xytext=(0, -16), textcoords="offset points", ha="center", fontsize=7)
    edge = int(best_lr.isin([lrs[0], lrs[-1]]).sum()) if len(lrs) > 1 else len(best_lr)
    ax.set_xscale("log")
    ax.set_xticks(lrs, [_lr_text(lr) for lr in lrs])
    ax.minorticks_off()
    ax.set_ylim(bottom=-0.12 * max(0.05, float(np.nanmax((means.T - best).to_numpy()))))
    ax.set(xlabel="reference learning rate", ylabel="loss minus the recipe's best seed-mean loss (nats)",
           title=f"Reference LR sweep per recipe: {_count(best_lr.nunique(), 'distinct best LR')} over "
                 f"{len(means)} recipes,\n{edge} at the grid's edge (no interior minimum)")
    handles = [Line2D([], [], color=c, label=f"{g} recipes") for g, c in colours.items()]
    handles += [Line2D([], [], marker=".", ls="none", color="0.4", label="one seed"),
                Line2D([], [], marker="*", ms=10, ls="none", color="0.4", mec="k", label="recipe's best LR")]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    save_png(fig, path)


def _fig_theory(table: pd.DataFrame, n_recipes: int, path: Path) -> None:
    """Agreement vs LR per width: mean Spearman over seeds and worlds with a min/max band, the
    drift's (the proof's deterministic part) at the largest width, and how many runs diverged."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    for width, g in table.groupby("width"):
        stats = g.groupby("lr_frac")["spearman"].agg(["mean", "min", "max"])
        line, = ax.plot(stats.index, stats["mean"], marker="o", label=f"width {width}")
        ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(), alpha=0.08, lw=0)
    handles, _ = ax.get_legend_handles_labels()
    cells = len(table) // max(1, table.groupby(["width", "lr_frac"]).ngroups)
    handles.append(Patch(color="0.5", alpha=0.25, label=f"band (per width): min to max\nover {cells} seeds x worlds"))
    if "drift_spearman" in table:
        top = table[table["width"] == table["width"].max()].groupby("lr_frac")["drift_spearman"].mean()
        handles += ax.plot(top.index, top, color="black", ls=":", marker=".",
                           label=f"drift (full-batch GD), width {table['width'].max()}")
    for lr, g in table.groupby("lr_frac"):
        n = int(g["diverged"].sum()) if "diverged" in g else 0
        if n:
            ax.text(lr, 1.01, f"{n}/{len(g) * n_recipes}\ndiverged", transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom", fontsize=7, color="#b30000")
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.annotate(r"$\eta = 1/\lambda_{max}(H_{val})$", (1.0, 0.02), xycoords=("data", "axes fraction"),
                rotation=90, ha="right", va="bottom", fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel(r"learning rate $\eta \cdot \lambda_{max}(H_{val})$")
    ax.set_ylabel("Spearman vs optimal (kernel) order\n(line: mean over seeds and worlds)")
    ax.set_title("Random-feature model: ranking agreement vs LR\n"
                 "(red: recipe runs that diverged at that LR, of all runs)", pad=26, fontsize=10)
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    save_png(fig, path)


LADDER_AXES = (
    ("reference_tokens_per_param", "reference tokens per parameter", 20.0, ("proxy_preset", "proxy_steps")),
    ("proxy_steps", "proxy optimizer steps", 4768.0, ("proxy_width", "reference_preset", "reference_tokens")),
    ("proxy_width", "proxy width (hidden size)", 768.0, ("proxy_steps", "reference_preset", "reference_tokens")),
)
"""Issue 15's axes: (ladder.csv column, label, the paper's level, the columns a rung must share with the
`default` rung to sit on the axis). The paper's levels are its profile's (profiles/paper.yaml, as
`python -m proxyrank plan` prints them): references at 20 tokens per parameter, proxies of 4,768
steps, GPT-2 125M's width 768."""


def axis_rows(ladder: pd.DataFrame, column: str, keep: tuple[str, ...]) -> pd.DataFrame:
    """The rows on one axis: each family's rungs that share `keep` with that family's `default` row
    (none without a default row)."""
    if column not in ladder or not (ladder.rung == "default").any():
        return ladder.iloc[0:0]
    keep = [k for k in keep if k in ladder]
    base = ladder[ladder.rung == "default"].set_index("family")[keep].astype(str)
    same = np.logical_and.reduce([ladder[k].astype(str).to_numpy() == ladder.family.map(base[k]).to_numpy()
                                  for k in keep])
    return ladder[same & ladder[column].notna().to_numpy()]


def _fig_ladder(ladder: pd.DataFrame, path: Path) -> None:
    """(a) Spearman at the standard and the tiny LR against the reference's training compute, per rung
    (rungs at the same compute, other proxies, side by side, hollow); (b-d) the tiny - standard contrast
    (V4, paired 95% CI) along each axis of LADDER_AXES, hollow where the rung cannot test the claim."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.2))
    _ladder_by_compute(axes[0, 0], ladder)
    for ax, (column, label, paper, keep) in zip(axes.ravel()[1:], LADDER_AXES):
        _ladder_axis(ax, axis_rows(ladder, column, keep), column, label, paper)
    fig.tight_layout()
    save_png(fig, path)


def _ladder_axis(ax, rows: pd.DataFrame, column: str, label: str, paper: float) -> None:
    """V4's delta with its CI per family against one axis; the paper's level dotted."""
    rows = rows[rows.v4_delta.notna()] if "v4_delta" in rows else rows.iloc[0:0]  # rows older than V1-V4: none
    for i, (fam, df) in enumerate(rows.groupby("family", sort=False)):
        df = df.sort_values(column)
        x = df[column].astype(float) * (1 + 0.05 * (i - 1))
        y = df.v4_delta.astype(float)
        err = np.array([y - df.v4_lo.astype(float), df.v4_hi.astype(float) - y])
        can = df.can_test.astype(str).str.lower().eq("true").to_numpy()
        for ok in (True, False):
            if (can == ok).any():
                ax.errorbar(x[can == ok], y[can == ok], yerr=err[:, can == ok], fmt="o", color=FAMILY_COLOURS.get(fam),
                            mfc=None if ok else "white", capsize=2, ms=5, ls="none",
                            label=fam + ("" if ok else " (cannot test)"))
        ax.plot(x, y, "-", color=FAMILY_COLOURS.get(fam), lw=0.8, alpha=0.6)
    # Delta rho lies in [-2, 2]; the axis shows at least [-1.3, 1.3] and every CI in full
    his, los = (rows.v4_hi.astype(float), rows.v4_lo.astype(float)) if len(rows) else ([], [])
    top = float(np.clip(max([1.3, *(h + 0.1 for h in his)]), 1.3, 2.05))
    bottom = float(np.clip(min([-1.3, *(lo - 0.1 for lo in los)]), -2.05, -1.3))
    for rung, xr in (rows.groupby("rung")[column].first().items() if len(rows) else []):  # each named once, on top
        ax.annotate(rung, (float(xr), top - 0.05), fontsize=7, rotation=90, ha="center", va="top")
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(paper, color="k", ls=":", lw=1)
    ax.annotate(f"the paper: {paper:g}", (paper, bottom + 0.05), fontsize=7, rotation=90, ha="right", va="bottom")
    ax.set(xscale="log", ylim=(bottom, top), xlabel=label, ylabel="tiny - standard Spearman (V4, 95% CI)",
           title=f"along {label}" + ("" if len(rows) else ": no rung measured yet"))
    ax.xaxis.set_minor_formatter(_null_formatter())
    if len(rows):  # below the panel: inside, it hid the name of a rung at the axis' right edge
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)


def _spaced_labels(ticks: list[float], xlim: tuple[float, float], gap: float = 0.12) -> list[str]:
    """A label for each log-axis tick at least `gap` of the axis' width from the last one labelled
    (two rungs 15% apart in FLOPs printed their labels on top of each other); the others tick unlabelled."""
    span, last, labels = np.log10(xlim[1] / xlim[0]), None, []
    for t in ticks:
        keep = last is None or np.log10(t / last) >= gap * span
        labels.append(f"{t:.2g}" if keep else "")
        last = t if keep else last
    return labels


def _null_formatter():
    """No labels on minor log ticks (they collide on a short axis)."""
    from matplotlib.ticker import NullFormatter

    return NullFormatter()


def _ladder_by_compute(ax, ladder: pd.DataFrame) -> None:
    """Spearman at the standard and the tiny LR against the reference's training FLOPs per run."""
    order = ladder.groupby("rung").agg(flops=("reference_flops", "first"), size=("proxy_params", "max"))
    order["slot"] = order.sort_values("size", ascending=False).groupby("flops").cumcount()
    for i, (fam, df) in enumerate(ladder.groupby("family", sort=False)):
        slot = df.rung.map(order["slot"])
        x = df.reference_flops * (1 + 0.04 * (i - 1) + 0.15 * slot)  # families and rungs side by side
        for tag, marker, ls in (("standard", "o", "-"), ("tiny", "s", "--")):
            y = df[f"spearman_{tag}"].astype(float)
            err = np.array([y - df[f"spearman_{tag}_lo"].astype(float), df[f"spearman_{tag}_hi"].astype(float) - y])
            for hollow in (False, True):
                keep = ((slot > 0) == hollow).to_numpy()
                ax.errorbar(x[keep], y[keep], yerr=err[:, keep], fmt=marker, ls="none", color=FAMILY_COLOURS.get(fam),
                            mfc="white" if hollow else None, capsize=2, ms=4, alpha=0.9,
                            label=None if hollow else f"{fam} @ {tag} LR")
            for _, d in df.assign(x=x).groupby("proxy_preset"):  # connect rungs that share the proxies
                d = d.sort_values("x")
                ax.plot(d.x, d[f"spearman_{tag}"], ls, color=FAMILY_COLOURS.get(fam), lw=0.8, alpha=0.6)
    for flops, rungs in order.sort_values("slot").groupby("flops").groups.items():
        ax.annotate(" / ".join(rungs), (flops, -1.0), fontsize=6, rotation=90, ha="center", va="bottom")
    ax.set(xscale="log", ylim=(-1.05, 1.05), xlabel="reference training FLOPs per run (rung names at the bottom)",
           ylabel="Spearman vs tuned reference (95% CI)",
           title="Scale ladder: standard (circles, solid) vs tiny (squares, dashed) LR\n"
                 "hollow: the same reference with other proxies")
    ticks = sorted(order.flops.unique())  # the rungs' own FLOPs: a narrow range has no decade tick inside it
    ax.set_xticks(ticks, _spaced_labels(ticks, ax.get_xlim()))
    ax.xaxis.set_minor_formatter(_null_formatter())
    ax.legend(fontsize=6, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
