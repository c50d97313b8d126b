"""Runs table, figures and the report. Every number shown comes from the runs or metrics files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from proxyrank.config import Params
from proxyrank.files import atomic_dir, atomic_path, write_text

FAMILY_COLOURS = {"gpt2": "#1f77b4", "pythia": "#d62728", "opt": "#2ca02c"}
FAMILIES = tuple(FAMILY_COLOURS)
PAPER = {  # the paper's headline numbers (arXiv 2512.24503), shown beside ours
    "spearman_standard": "< 0.75",
    "spearman_tiny": "> 0.92 (> 0.95 GPT2-125M -> Pythia-1B at 1e-5)",
    "regret1_standard": "> 0.25 nats (top-k)",
    "regret1_tiny": "about 0",
}


def collect(p: Params, runs_dir: Path, runs_csv: Path, curves_csv: Path) -> pd.DataFrame:
    """One row per run (runs.csv) and one row per validation point (curves.csv).

    Only what the runs' inputs determine: no wall time, which differs between machines and would
    make these outputs (and dvc.lock) differ with it (timings.py keeps it apart)."""
    rows, curves = [], []
    # only the declared recipes: a removed recipe's outputs stay in the workspace (DVC keeps them)
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
        raise ValueError(f"collect: no run results under {runs_dir}")
    first = ["recipe", "group", "role", "family", "model", "n_params", "lr", "seed", "tokens",
             "steps", "diverged", "loss_mean"]
    df = pd.DataFrame(rows)
    df = df[first + sorted(c for c in df.columns if c.startswith("loss_") and c != "loss_mean")]
    df = df.sort_values(["role", "family", "recipe", "lr", "seed"]).reset_index(drop=True)
    for frame, path in ((df, runs_csv), (pd.DataFrame(curves), curves_csv)):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
    print(f"collect: {len(df)} runs ({(df.role == 'proxy').sum()} proxy, "
          f"{(df.role == 'reference').sum()} reference), {df.tokens.sum():,} training tokens")
    return df


def _load(reports: Path):
    detail = json.loads((reports / "analysis.json").read_text())
    metrics = json.loads((reports / "metrics.json").read_text())
    runs = pd.read_csv(reports / "runs.csv")
    return metrics, detail, runs


def _rows(detail: dict, key: str, **match) -> pd.DataFrame:
    df = pd.DataFrame(detail[key])
    for k, v in match.items():
        df = df[df[k].astype(str) == str(v)]
    return df


def _at(cross: pd.DataFrame, family: str, lr: float) -> pd.DataFrame:
    """The seed-mean rows of one family at one LR."""
    return cross[(cross.family == family) & np.isclose(cross.lr, lr)]


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def figures(p: Params, reports: Path) -> None:
    """All figures into a temporary folder that replaces reports/figures whole."""
    import matplotlib

    matplotlib.use("Agg")
    metrics, detail, runs = _load(reports)
    cross = _rows(detail, "cross_scale", seed="mean", domain="mean")
    proxies = runs[runs.role == "proxy"].groupby(["family", "lr", "recipe"]).loss_mean.mean()
    with atomic_dir(reports / "figures") as out:
        _fig_spearman(p, cross, metrics["n_recipes"], out / "spearman_vs_lr.png")
        _fig_scatter(p, proxies, detail, out / "loss_scatter.png")
        _fig_regret(p, cross, out / "topk_regret.png")
        _fig_domains(detail, out / "per_domain_spearman.png")
        _fig_flip(detail, proxies, out / "flip.png")
        _fig_curves(p, pd.read_csv(reports / "curves.csv"), out / "training_curves.png")
        _fig_frontier(p, detail, out / "frontier.png")
        if (reports / "theory.csv").exists():
            from proxyrank.theory import figure as theory_figure

            theory_figure(pd.read_csv(reports / "theory.csv"), out / "theory.png")
        if (reports / "ladder.csv").exists():
            _fig_ladder(pd.read_csv(reports / "ladder.csv"), out / "ladder.png")
    wide = cross.pivot_table(index="lr", columns="family", values="spearman").reindex(columns=list(FAMILIES))
    with atomic_path(reports / "plots" / "spearman_vs_lr.csv") as tmp:
        wide.reset_index().to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(reports / "plots" / "curves.csv") as tmp:
        _plot_curves(p, pd.read_csv(reports / "curves.csv")).to_csv(tmp, index=False, float_format="%.6g")


def _plot_curves(p: Params, curves: pd.DataFrame) -> pd.DataFrame:
    """Validation loss during training at the standard and the tiny LR, mean over recipes and seeds,
    one column per family and LR: fixed columns, so `dvc plots diff` lines up across revisions."""
    proxies = curves[curves.role == "proxy"]
    columns = {}
    for fam in FAMILIES:
        for tag, lr in (("standard", p.analysis.standard_lr.get(fam)), ("tiny", p.analysis.tiny_lr)):
            df = proxies[(proxies.family == fam) & np.isclose(proxies.lr, lr or -1)]
            columns[f"{fam}_{tag}"] = df.groupby("tokens").loss_mean.mean()
    return pd.DataFrame(columns).rename_axis("tokens").reset_index()


def _fig_spearman(p: Params, cross: pd.DataFrame, n_recipes: int, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for fam, df in cross.groupby("family"):
        df = df.sort_values("lr")
        c = FAMILY_COLOURS.get(fam)
        ax.plot(df.lr, df.spearman, "o-", color=c, label=fam)
        ax.fill_between(df.lr, df.spearman_lo.astype(float), df.spearman_hi.astype(float), color=c, alpha=0.12)
    ax.axhline(0.92, ls="--", color="grey", lw=1, label="paper, tiny LR: > 0.92")
    ax.axhline(0.75, ls=":", color="grey", lw=1, label="paper, standard LR: < 0.75")
    ax.axvline(p.analysis.tiny_lr, color="k", lw=0.6, alpha=0.4)
    ax.set(xscale="log", ylim=(-1.05, 1.05), xlabel="proxy learning rate (vertical line: tiny LR)",
           ylabel="Spearman vs tuned reference (95% CI)",
           title=f"Proxy ranking vs tuned reference ({n_recipes} recipes)")
    ax.legend(fontsize=8, loc="lower left")
    _save(fig, path)


def _fig_scatter(p: Params, proxies: pd.Series, detail: dict, path: Path) -> None:
    """One panel per family and LR: each family's losses live on their own scale."""
    import matplotlib.pyplot as plt

    ref = pd.Series({r: v["loss"] for r, v in detail["reference"].items()})
    fams = list(p.analysis.standard_lr)
    fig, axes = plt.subplots(2, len(fams), figsize=(3.6 * len(fams), 6.4), sharey=True, squeeze=False)
    for col, fam in enumerate(fams):
        for row, (label, lr) in enumerate((("standard", p.analysis.standard_lr[fam]),
                                          ("tiny", p.analysis.tiny_lr))):
            ax = axes[row, col]
            x = proxies.loc[(fam, lr)].reindex(ref.index)
            ax.scatter(x, ref, color=FAMILY_COLOURS.get(fam), s=20)
            for name in ref.index:
                ax.annotate(name, (x[name], ref[name]), fontsize=6, alpha=0.7)
            ax.set_title(f"{fam} @ {lr:g} ({label} LR)", fontsize=9)
            ax.tick_params(labelsize=7)
            if row == 1:
                ax.set_xlabel("proxy validation loss", fontsize=8)
        axes[0, 0].set_ylabel("tuned reference loss")
        axes[1, 0].set_ylabel("tuned reference loss")
    fig.tight_layout()
    _save(fig, path)


def _fig_regret(p: Params, cross: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, fam in enumerate(p.analysis.standard_lr):
        for lr, ls in ((p.analysis.standard_lr[fam], "-"), (p.analysis.tiny_lr, "--")):
            row = _at(cross, fam, lr)
            if len(row):
                reg = np.asarray(row.iloc[0].regret, dtype=float)
                k = np.arange(1, len(reg) + 1) + (i - 1) * 0.06  # a small offset keeps equal curves visible
                ax.plot(k, reg, ls, marker="os^"[i % 3], ms=4, color=FAMILY_COLOURS.get(fam),
                        label=f"{fam} @ {lr:g}")
    ax.set(xlabel="k (recipes kept by the proxy)", ylabel="top-k regret (nats)",
           title="Top-k decision regret: standard (solid) vs tiny (dashed) LR")
    ax.legend(fontsize=8)
    _save(fig, path)


def _fig_domains(detail: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    per_domain = _rows(detail, "cross_scale", seed="mean")
    per_domain = per_domain[per_domain.domain != "mean"]
    if not len(per_domain):
        return
    table = per_domain.pivot_table(index="domain", columns=["family", "lr"], values="spearman")
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * table.shape[1] + 2), 0.45 * table.shape[0] + 1.6))
    im = ax.imshow(table.to_numpy(dtype=float), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [f"{f}\n{lr:.0e}" for f, lr in table.columns], fontsize=7)
    ax.set_yticks(range(table.shape[0]), table.index)
    ax.set_title("Spearman vs tuned reference, per validation domain (columns: family, proxy LR)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    _save(fig, path)


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
    _save(fig, path)


def _fig_curves(p: Params, curves: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    panels = [("proxy", f) for f in sorted(curves[curves.role == "proxy"].family.unique())] + [("reference", None)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, (role, fam) in zip(np.atleast_1d(axes), panels):
        df = curves[(curves.role == role) & ((curves.family == fam) if fam else True)]
        lrs = sorted(df.lr.unique())
        for i, lr in enumerate(lrs):
            mean = df[np.isclose(df.lr, lr)].groupby("tokens").loss_mean.mean()
            ax.plot(mean.index / 1e6, mean.values, "o-", ms=3, color=cmap(i / max(1, len(lrs) - 1)),
                    label=f"{lr:g}")
        ax.set(xlabel="training tokens (M)", title=f"{fam} proxies" if fam else f"{p.reference.family} reference")
        if role == "reference" or fam == panels[0][1]:
            ax.legend(title="LR", fontsize=7, loc="lower left" if role == "proxy" else "upper right",
                      ncol=2 if role == "proxy" else 1)
    np.atleast_1d(axes)[0].set_ylabel("validation loss, mean over recipes")
    fig.tight_layout()
    _save(fig, path)


def _fig_frontier(p: Params, detail: dict, path: Path) -> None:
    """Spearman at every logged proxy budget (what a cheaper run would have ranked), and the
    zero-training alignment scores at their own cost, on one axis of tokens spent per recipe."""
    import matplotlib.pyplot as plt

    front, aligned = pd.DataFrame(detail.get("frontier", [])), pd.DataFrame(detail.get("alignment", []))
    if not len(front):
        return
    fams = [f for f in FAMILIES if f in set(front.family)]
    fig, axes = plt.subplots(1, len(fams), figsize=(3.8 * len(fams), 4.0), sharey=True, squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, fam in zip(axes[0], fams):
        df = front[front.family == fam]
        lrs = sorted(df.lr.unique())
        for i, lr in enumerate(lrs):
            d = df[df.lr == lr].sort_values("tokens")
            c = cmap(i / max(1, len(lrs) - 1))
            ax.plot(d.tokens, d.spearman, "o-", ms=3, color=c, label=f"proxy @ {lr:g}")
            ax.fill_between(d.tokens, d.spearman_lo.astype(float), d.spearman_hi.astype(float), color=c, alpha=0.08)
        for (state, score), d in (aligned[aligned.family == fam].groupby(["state", "score"]) if len(aligned) else []):
            r = d.iloc[0]
            ax.errorbar(r.tokens_per_recipe, r.spearman, yerr=[[r.spearman - r.spearman_lo], [r.spearman_hi - r.spearman]],
                        fmt={"alignment": "*", "adam_alignment": "P", "cosine": "X"}[score], ms=7, capsize=2,
                        color="#d62728" if state == "warm" else "k", label=f"{score}, {state}")
        ax.axhline(detail["frontier_target"], ls="--", color="grey", lw=1)
        ax.set(xscale="log", xlabel="tokens per recipe", title=f"{fam}",
               ylim=(-1.05, 1.05))
    axes[0, 0].set_ylabel("Spearman vs tuned reference (95% CI)")
    axes[0, -1].legend(fontsize=6, loc="lower right", ncol=2)
    fig.tight_layout()
    _save(fig, path)


def _fig_ladder(ladder: pd.DataFrame, path: Path) -> None:
    """Spearman at the standard and the tiny LR against the reference's training compute, per rung;
    rungs at the same compute (other proxies) sit side by side, hollow."""
    import matplotlib.pyplot as plt

    order = ladder.groupby("rung").agg(flops=("reference_flops", "first"), size=("proxy_params", "max"))
    order["slot"] = order.sort_values("size", ascending=False).groupby("flops").cumcount()
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
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
        ax.annotate(" / ".join(rungs), (flops, -1.0), fontsize=7, rotation=90, ha="center", va="bottom")
    ax.set(xscale="log", ylim=(-1.05, 1.05), xlabel="reference training FLOPs per run (rung names at the bottom)",
           ylabel="Spearman vs tuned reference (95% CI)",
           title="Scale ladder: standard (circles, solid) vs tiny (squares, dashed) LR\n"
                 "hollow: the same reference with other proxies")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    _save(fig, path)


def _fmt(x, digits=3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def _ci(row) -> str:
    return f"{_fmt(row['spearman'])} [{_fmt(row['spearman_lo'], 2)}, {_fmt(row['spearman_hi'], 2)}]"


def write_report(p: Params, reports: Path) -> None:
    metrics, detail, runs = _load(reports)
    cross = _rows(detail, "cross_scale", seed="mean", domain="mean")
    manifests = [json.loads((reports / "recipes" / f"{name}.json").read_text()) for name in p.recipes]
    proxies, refs = runs[runs.role == "proxy"], runs[runs.role == "reference"]
    L = []
    L += ["# Can small proxies rank data recipes? Our reproduction at CPU scale", "",
          "Generated by `dvc repro` from `params.yaml`; every number below is read from "
          "`reports/metrics.json`, `reports/analysis.json` and `reports/runs.csv`.", "",
          "The claim under test (Wang et al., arXiv 2512.24503): proxies trained at a *standard* "
          "learning rate rank data recipes poorly against a reference model tuned per recipe, and a "
          "*tiny* learning rate fixes it.", ""]
    L += ["## Setup", "",
          f"- Recipes: {len(manifests)} ({', '.join(sorted({m['group'] for m in manifests}))}), "
          f"{p.budget_tokens:,} tokens each (one epoch, no repetition).",
          "- Proxies: " + "; ".join(f"{s.family} `{s.preset}` "
                                     f"({int(proxies[proxies.family == s.family].n_params.iloc[0]):,} params) at "
                                     f"LRs {', '.join(f'{x:g}' for x in s.lrs)}, seeds {s.seeds}"
                                     + (f" at {', '.join(f'{x:g}' for x in s.seed_lrs)} (else seed {s.seeds[0]})"
                                        if s.seed_lrs is not None and len(s.seeds) > 1 else "")
                                     for s in p.proxies if (proxies.family == s.family).any()),
          f"- Proxy tokens per run: {p.train.proxy_tokens:,}; reference tokens per run: "
          f"{p.train.reference_tokens:,}.",
          f"- Reference: {p.reference.family} `{p.reference.preset}` "
          f"({int(refs.n_params.iloc[0]):,} params), tuned per recipe over LRs "
          f"{', '.join(f'{x:g}' for x in p.reference.lrs)}; ground truth = best mean validation loss.",
          f"- Standard LR: {', '.join(f'{f} {lr:g}' for f, lr in p.analysis.standard_lr.items())} "
          f"(our small models' usual LR, the analogue of the paper's 3e-4 for GPT2-125M); "
          f"tiny LR: {p.analysis.tiny_lr:g}.",
          f"- Tokenizer: {p.tokenizer.kind}, vocab {p.tokenizer.vocab_size}; context {p.train.seq_len}, "
          f"batch {p.train.batch_size}; AdamW ({p.train.beta1}, {p.train.beta2}), weight decay "
          f"{p.train.weight_decay}, warmup {p.train.warmup_frac:.0%} then cosine, clip {p.train.grad_clip}.",
          f"- Validation: {p.train.valid_tokens:,} held-out tokens per domain "
          f"({', '.join(p.split.valid_domains)}).",
          f"- Compute: {len(runs)} runs, {runs.tokens.sum():,} training tokens in all. Training time is "
          "measured, not computed, so it stays out of these results: see "
          "`bench/results/default_study_cpu.md` (made from `data/timings/` by `bench/study_wall.py`).",
          ""]
    L += ["## Headline", "",
          f"Spearman between each proxy's ranking and the tuned reference ranking over "
          f"{metrics['n_recipes']} recipes ({metrics['n_pairs']} pairs), 95% bootstrap CI over recipes.", "",
          "| family | Spearman @ standard | Spearman @ tiny | pairwise acc. std / tiny | top-1 regret std / tiny (nats) | best LR |",
          "|---|---|---|---|---|---|"]
    for fam, lr in p.analysis.standard_lr.items():
        std, tiny = _at(cross, fam, lr).iloc[0], _at(cross, fam, p.analysis.tiny_lr).iloc[0]
        h = metrics[fam]
        L.append(f"| {fam} | {_ci(std)} | {_ci(tiny)} | {_fmt(h['pairwise_standard'], 2)} / "
                 f"{_fmt(h['pairwise_tiny'], 2)} | {_fmt(h['regret1_standard'])} / {_fmt(h['regret1_tiny'])} "
                 f"| {h['best_spearman_lr']:g} |")
    L += [f"| paper | {PAPER['spearman_standard']} | {PAPER['spearman_tiny']} | ~0.8 (DataDecide) | "
          f"{PAPER['regret1_standard']} / {PAPER['regret1_tiny']} | 1e-5 to 1e-6 |", ""]
    curves = pd.read_csv(reports / "curves.csv")
    L += ["![Spearman vs LR](figures/spearman_vs_lr.png)", "", _conclusion(p, cross, metrics, curves), ""]
    L += ["## Tuned reference", "", "| recipe | best LR | loss | at grid edge |", "|---|---|---|---|"]
    for r, v in detail["reference"].items():
        L.append(f"| {r} | {v['best_lr']:g} | {_fmt(v['loss'])} | {'**yes**' if v['edge'] else 'no'} |")
    edges = [r for r, v in detail["reference"].items() if v["edge"]]
    if edges:
        L += ["", f"Warning: the best reference LR of {', '.join(edges)} sits at the edge of its grid; "
              f"the tuned ground truth may be better still outside it."]
    L += _recipe_section(p, reports, manifests)
    L += _curation_precision(reports / "curate.json")
    L += ["", "## More figures", ""]
    for name, caption in (("loss_scatter", "Proxy loss vs tuned reference loss"),
                          ("topk_regret", "Top-k decision regret"),
                          ("per_domain_spearman", "Per-domain Spearman"),
                          ("flip", "The flip between adjacent LRs"),
                          ("training_curves", "Training curves")):
        if (reports / "figures" / f"{name}.png").exists():
            L += [f"**{caption}**", "", f"![{caption}](figures/{name}.png)", ""]
    within = _rows(detail, "within_scale", seed="mean", domain="mean")
    if len(within):
        L += ["## Within scale: fixed LR vs the proxy family's own tuned ranking", "",
              "| family | " + " | ".join(f"{lr:g}" for lr in sorted(within.lr.unique())) + " |",
              "|---|" + "---|" * within.lr.nunique()]
        for fam, df in within.groupby("family"):
            by_lr = dict(zip(df.lr, df.spearman))
            L.append(f"| {fam} | " + " | ".join(_fmt(by_lr.get(lr)) for lr in sorted(within.lr.unique())) + " |")
        L.append("")
    L += _seed_section(detail)
    L += _frontier_section(p, detail, metrics)
    L += _alignment_section(p, detail)
    L += _theory_section(p, reports)
    L += _ladder_section(p, reports)
    flips = detail["flips"]
    if flips:
        L += ["## Ranking flips between adjacent proxy LRs", "",
              "| family | LRs | pairs flipped | most flips (group pair) | largest flip |", "|---|---|---|---|---|"]
        for f in flips:
            pair, n = max(f["group_flips"].items(), key=lambda kv: kv[1], default=("-", 0))
            most = f"{pair.replace('|', ' x ')} ({n})" if n else "-"
            largest = " vs ".join(f["largest_flip"]["recipes"]) if f["largest_flip"] else "-"
            L.append(f"| {f['family']} | {f['lr_from']:g} -> {f['lr_to']:g} | {f['n_flips']} / {f['n_pairs']} | "
                     f"{most} | {largest} |")
        L.append("")
    L += ["## Limits", "",
          "- CPU scale: models of 10^5-10^6 parameters on ~10^6 tokens, far below the paper's 70M-1B "
          "models; the paper's claim is about the latter. Tiny LRs move a small model little in few "
          "steps (\"tiny\" is LR x steps relative to curvature).",
          "- Single epoch only; the tiny LR is a stopgap, not joint data/hyperparameter optimisation.",
          "- Recipe definitions (mixture weights, dedup) are ours: the paper does not publish its own.",
          "- Later work found no benefit of tiny LRs for ranking fine-tuning data; we claim nothing "
          "beyond pretraining.", ""]
    write_text(reports / "report.md", "\n".join(L))


def _seed_section(detail: dict) -> list[str]:
    """Per-seed Spearman against the reference, and how far two seeds agree with each other."""
    if not detail["seed_spread"]:
        return []
    cross = _rows(detail, "cross_scale", domain="mean")
    L = ["## Seed spread", "",
         "Where a proxy ran at several seeds: Spearman of each seed's ranking against the tuned "
         "reference, of the seed-mean ranking, and between seeds (the noise floor: a proxy cannot "
         "agree with the reference more reliably than with itself). The headline uses seed means, "
         "so LRs with more seeds average away more noise.", "",
         "| family | LR | seeds | Spearman per seed | seed mean | seed vs seed (mean / min) |",
         "|---|---|---|---|---|---|"]
    for s in detail["seed_spread"]:
        rows = cross[(cross.family == s["family"]) & (cross.lr == s["lr"])]
        per = rows[rows.seed != "mean"].sort_values("seed", key=lambda c: c.astype(int))
        mean = rows[rows.seed == "mean"].iloc[0]
        L.append(f"| {s['family']} | {s['lr']:g} | {s['n_seeds']} | "
                 f"{', '.join(_fmt(x, 2) for x in per.spearman)} | {_ci(mean)} | "
                 f"{_fmt(s['spearman_mean'], 2)} / {_fmt(s['spearman_min'], 2)} |")
    return L + [""]


def _frontier_section(p: Params, detail: dict, metrics: dict) -> list[str]:
    """Spearman at every logged proxy budget, and the cheapest budget reaching the target."""
    front = pd.DataFrame(detail.get("frontier", []))
    if not len(front):
        return []
    target = detail["frontier_target"]
    tokens = sorted(front.tokens.unique())
    L = ["## Compute-reliability frontier", "",
         f"Every proxy run was evaluated at {len(tokens)} points (`train.eval_points`), so the runs already "
         f"trained also say what a proxy stopped earlier would have ranked. Spearman of the seed-mean ranking "
         f"at each logged budget against the tuned reference (the reference always fully trained):", "",
         "| family | LR | " + " | ".join(f"{t:,} tok" for t in tokens) + " |", "|---|---|" + "---|" * len(tokens)]
    for (fam, lr), df in front.groupby(["family", "lr"]):
        by = dict(zip(df.tokens, df.spearman))
        L.append(f"| {fam} | {lr:g} | " + " | ".join(_fmt(by.get(t), 2) for t in tokens) + " |")
    found = []
    for fam in sorted(front.family.unique()):
        tok, lr = metrics[fam].get("frontier_tokens"), metrics[fam].get("frontier_lr")
        if tok is None:
            found.append(f"{fam}: no logged budget up to {max(tokens):,} tokens reaches {target:g} at any LR")
        else:
            row = front[(front.family == fam) & (front.tokens == tok) & (front.lr == lr)].iloc[0]
            found.append(f"{fam}: {tok:,} tokens ({int(row.step)} steps) at LR {lr:g}, Spearman {_ci(row)}")
    L += ["", f"**Cheapest proxy budget reaching Spearman {target:g}** (point estimate; its 95% CI in brackets): "
          + "; ".join(found) + ". The paper reports the signal within a few hundred iterations at its scale; "
          "a budget between logged points is not resolved (raise `train.eval_points` for a finer frontier).",
          "", "![Frontier](figures/frontier.png)", "",
          "Lines: proxies at each LR, Spearman at each logged budget (95% CI shaded); stars and crosses: the "
          "zero-training alignment scores of the next section at their own cost; dashed: the target.", ""]
    return L


def _alignment_section(p: Params, detail: dict) -> list[str]:
    """The zero-training proxy beside the trained ones: agreement and cost."""
    aligned = pd.DataFrame(detail.get("alignment", []))
    if not len(aligned):
        return []
    cross = _rows(detail, "cross_scale", seed="mean", domain="mean")
    a = p.alignment
    L = ["## Zero-training proxy: gradient alignment", "",
         "The first-order term of the paper's expansion ranks recipes without training: a step of LR "
         "eta on recipe D lowers the validation loss by about eta <g_val, g_D>. Each proxy model is "
         f"scored at its initialisation and after a {a.warm_steps}-step warm start at LR {a.warm_lr:g} on a "
         f"round-robin mixture of all recipes; g_D averages the first {a.batches} batches the proxy would "
         "train on, g_val the validation domains equally (`alignment.py`). *alignment* is <g_val, g_D>, the "
         "term for an SGD step; *adam_alignment* the same along AdamW's update direction (what the proxies "
         "take); *cosine* ignores gradient size. Higher alignment predicts lower loss. Seed means; cost is the "
         "tokens passed forward and backward per recipe, shares of the validation gradient and warm start "
         "included, against one proxy run's training tokens.", "",
         "| family | state | score | Spearman vs reference | vs tiny-LR proxy | cost (x a proxy run) | "
         "tiny-LR proxy vs reference |", "|---|---|---|---|---|---|---|"]
    for _, r in aligned.iterrows():
        tiny = _at(cross, r.family, p.analysis.tiny_lr)
        L.append(f"| {r.family} | {r.state} | {r.score} | {_ci(r)} | {_fmt(r.spearman_vs_tiny, 2)} | "
                 f"{_fmt(r.cost_vs_proxy_run, 3)} | {_ci(tiny.iloc[0]) if len(tiny) else 'n/a'} |")
    best = aligned.loc[aligned.spearman.astype(float).idxmax()]
    adam = aligned[aligned.score == "adam_alignment"].groupby("state").spearman_vs_tiny
    span = {state: f"{_fmt(lo, 2)} to {_fmt(hi, 2)}" for state, (lo, hi) in adam.agg(["min", "max"]).iterrows()}
    L += ["", "The theory says the first-order term and the tiny-LR proxies should agree, since a tiny-LR run "
          "barely leaves its initialisation: along AdamW's direction at initialisation they agree at "
          f"{span.get('init', 'n/a')} (Spearman, per family)"
          + (f", and after the warm start at {span['warm']}" if "warm" in span else "")
          + f". Against the reference, the best zero-training score is {best.score} ({best.state}) of "
          f"{best.family}: {_ci(best)}, for {best.cost_vs_proxy_run:.2g}x the tokens of one proxy run.", "",
          "The frontier figure above puts these scores (stars, crosses) beside the proxies' logged budgets.", ""]
    return L


def _theory_section(p: Params, reports: Path) -> list[str]:
    """The random-feature theorem, simulated: agreement with the optimal order against LR and width."""
    if not (reports / "theory.csv").exists():
        return []
    table, worlds = pd.read_csv(reports / "theory.csv"), json.loads((reports / "theory.json").read_text())
    tp, top = p.theory, int(table.width.max())
    means = table.groupby(["width", "lr_frac"]).spearman.mean().unstack()
    drift = table[table.width == top].groupby("lr_frac").drift_spearman.mean() if "drift_spearman" in table else None
    L = ["## The theorem, simulated", "",
         f"The paper's theorem in its own model (`theory.py`): fixed random ReLU features of width m, a linear "
         f"readout trained by minibatch SGD ({tp.steps:,} steps of {tp.batch_size}) from zero on each of "
         f"{tp.n_recipes} recipes drawn at random (input shift, scale and anisotropy, label noise, corrupted "
         f"labels) from a random ReLU teacher. Ground truth: each recipe's infinite-width optimum, kernel ridge "
         f"regression with the arc-cosine kernel, scored on the validation distribution. The LR is in units "
         f"of 1/lambda_max of the validation Hessian (the theorem asks for eta << 1/lambda_max). Spearman "
         f"against the optimal order, mean over {len(worlds)} ground-truth worlds x {len(tp.seeds)} seeds:", "",
         "| width | " + " | ".join(f"{x:g}" for x in means.columns) + " |", "|---|" + "---|" * means.shape[1]]
    L += [f"| {w} | " + " | ".join(_fmt(v, 2) for v in row) + " |" for w, row in means.iterrows()]
    if drift is not None:
        L.append(f"| drift, {top} | " + " | ".join(_fmt(drift.get(x), 2) for x in means.columns) + " |")
    flips = [w for w in worlds if w["flip_lr_frac"] is not None]
    per_world = "; ".join(f"world {w['seed']}: {_fmt(w['spearman_smallest_lr'], 2)} at the smallest LR, "
                          f"{_fmt(w['spearman_largest_lr'], 2)} at the largest, best at {w['best_lr_frac']:g}"
                          for w in worlds)
    L += ["", f"At width {top}: {per_world}. Agreement falls more than 0.2 below its best at a larger LR (the "
          f"flip) in {len(flips)} of {len(worlds)} worlds"
          + (", first at " + ", ".join(f"{w['flip_lr_frac']:g}" for w in flips) + " x 1/lambda_max" if flips else "")
          + ". The drift row is full-batch GD at the same LR and steps, the proof's deterministic part: where "
          "it stays high while SGD falls, the SGD variance term is what reorders the recipes. Width helps the "
          "drift (the narrowest features cannot represent the optimum) but not the SGD variance, which the "
          "1/sqrt(m) scaling leaves at the kernel's level; and the smallest LR ranks well only when "
          "LR x steps is large enough for the drift to converge, the analogue of the study's under-trained "
          "tiny-LR proxies.", "", "![Theory](figures/theory.png)", ""]
    return L


def _ladder_section(p: Params, reports: Path) -> list[str]:
    """The study at each measured rung of the scale ladder; declared rungs without a row are named."""
    path = reports / "ladder.csv"
    ladder = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["rung"])
    missing = [r for r in p.ladder.rungs if r not in set(ladder.rung)]
    if not len(ladder) and not missing:
        return []
    L = ["## Scale ladder", "",
         "The same study at other proxy and reference scales (`ladder` in params.yaml, run by "
         "`python -m proxyrank ladder`, collected in `reports/ladder.csv`). Seed means as in the headline.", ""]
    if len(ladder):
        L += ["| rung | family | proxy (params, tokens) | reference (params, tokens) | reference FLOPs/run | "
              "Spearman @ standard | Spearman @ tiny | best LR (Spearman) | winner |", "|---|---|---|---|---|---|---|---|---|"]
        for _, r in ladder.iterrows():
            std = {"spearman": r.spearman_standard, "spearman_lo": r.spearman_standard_lo,
                   "spearman_hi": r.spearman_standard_hi}
            tiny = {"spearman": r.spearman_tiny, "spearman_lo": r.spearman_tiny_lo, "spearman_hi": r.spearman_tiny_hi}
            disjoint = r.spearman_tiny_lo > r.spearman_standard_hi or r.spearman_standard_lo > r.spearman_tiny_hi
            winner = ("tiny" if r.spearman_tiny > r.spearman_standard else "standard") + \
                ("" if disjoint else " (CIs overlap)")
            L.append(f"| {r.rung} | {r.family} | {r.proxy_preset} ({r.proxy_params / 1e6:.2f}M, {r.proxy_tokens:,}) | "
                     f"{r.reference_preset} ({r.reference_params / 1e6:.2f}M, {r.reference_tokens:,}) | "
                     f"{r.reference_flops:.2g} | {_ci(std)} | {_ci(tiny)} | {r.best_spearman_lr:g} "
                     f"({_fmt(r.best_spearman, 2)}) | {winner} |")
        L += ["", "![Scale ladder](figures/ladder.png)", ""]
    if missing:
        gpu = [r for r in missing if p.ladder.rungs[r].gpu]
        L += [f"Declared but not measured yet: {', '.join(missing)}"
              + (f" (GPU rungs: {', '.join(gpu)})" if gpu else "") + ".", ""]
    return L


def _curation(m: dict) -> str:
    """The steps in the order they ran: rule filters, dedup, the model-based filter."""
    rules = [f for f in m["filters"] if f != "dclm"]
    steps = rules + ([f"dedup {m['dedup']}"] if m["dedup"] != "none" else []) + \
        (["dclm"] if "dclm" in m["filters"] else [])
    return ", ".join(steps) or "-"


def _recipe_section(p: Params, reports: Path, manifests: list[dict]) -> list[str]:
    """Each recipe's definition, size, shares and what every curation step removed."""
    L = ["", "## Recipes", "",
         "Every recipe holds exactly the same token budget. Curation runs in the published order: "
         "rule filters, then dedup of what survived, then the model-based filter. *Removed* counts "
         "documents per rule (characters in the manifest, `reports/recipes/<recipe>.json`).", "",
         "| recipe | group | source | curation | docs | tokens | dup. rate | removed (docs) | domain shares |",
         "|---|---|---|---|---|---|---|---|---|"]
    for m in manifests:
        shares = ", ".join(f"{d} {s:.2f}" for d, s in m["domain_shares"].items())
        if set(m["shares"]) - set(m["domain_shares"]) - {"crawl"}:  # quality buckets
            shares += " (buckets: " + ", ".join(f"{b} {s:.2f}" for b, s in m["shares"].items()) + ")"
        removed = ", ".join(f"{k} {v['docs']:,}" for k, v in m["removed"].items() if v["docs"]) or "-"
        L.append(f"| {m['recipe']} | {m['group']} | {m['source']} | {_curation(m)} | {m['docs']:,} | "
                 f"{m['tokens']:,} | {_fmt(m['duplicate_rate'])} | {removed} | {shares} |")
    crawled = [m for m in manifests if "pages" in m]
    if crawled:
        kinds = list(crawled[0]["pages"])
        L += ["", "What reached each crawl recipe (pages by kind of damage, out of the pages it took):", "",
              "| recipe | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        L += [f"| {m['recipe']} | " + " | ".join(f"{m['pages'][k]:,}" for k in kinds) + " |" for m in crawled]
    crawl_file, curate_file = reports / "crawl.json", reports / "curate.json"
    if crawled and crawl_file.exists() and curate_file.exists():
        c, q = json.loads(crawl_file.read_text()), json.loads(curate_file.read_text())
        made = (f"{c['pages']:,} pages ({c['chars'] / 1e6:.1f}M characters) made from training-pool text by "
                f"`crawl` in params.yaml: {c['kinds']['spam']:,} real spam mails, {c['kinds']['templated']:,} "
                f"templated shop pages, {c['boilerplate']:,} with site boilerplate, {c['truncated']:,} "
                f"truncated, {c['shuffled']:,} word-shuffled, {c['exact_copies']:,} exact and "
                f"{c['near_copies']:,} near copies (up to {c['max_copies_of_one_page']} of one page)."
                if c.get("synthetic", True) else
                f"{c['pages']:,} real web pages ({c['chars'] / 1e6:.1f}M characters) taken as they are from "
                f"the pool's {', '.join(c['domains'])} documents (`crawl.synthetic: false`).")
        L += ["", "### The web-like crawl" if c.get("synthetic", True) else "### The crawl", "", made,
              f"CCNet-style perplexity: a {p.curation.perplexity.order}-gram model on "
              f"{q['reference_docs']:,} reference documents ({', '.join(p.curation.reference_domains)}); "
              f"bucket cuts at the {p.curation.perplexity.head_pct:g}th / {p.curation.perplexity.tail_pct:g}th "
              f"percentile. DCLM-style classifier: held-out accuracy {q['classifier_heldout_accuracy']:.3f}, "
              f"keeps the top {p.curation.dclm.keep_frac:.0%}. {q['contaminated']:,} pages near validation "
              f"text were removed from every recipe.", ""]
    return L


def _curation_precision(curate_file: Path) -> list[str]:
    """Per rule, the crawl pages it removed by the damage the crawl recorded (reports/curate.json,
    `removed_by_damage`): a rule's removals of clean pages are its false positives, so a published
    heuristic that takes more than its share of good text is shown, and flagged, beside the junk
    it catches. Rules that removed nothing are left out of the table (they are in the JSON)."""
    if not curate_file.exists():
        return []
    d = json.loads(curate_file.read_text()).get("removed_by_damage")
    if not d:
        return []
    kinds, limit = ["clean", *(k for k in d["pages"] if k != "clean")], d["max_clean_share"]
    n_clean = d["pages"]["clean"]

    def cells(counts: dict) -> str:
        share = f" ({counts['clean'] / n_clean:.1%})" if n_clean else ""
        return f"{counts['clean']:,}{share} | " + " | ".join(f"{counts[k]:,}" for k in kinds[1:])

    L = ["", "### What each rule removed, by the crawl's record of damage", "",
         f"Pages each rule removed (`reports/curate.json`, `removed_by_damage`), by the damage the crawl "
         f"recorded on them; *clean* pages carry none, so removing them is a false positive (share of "
         f"all clean pages in brackets). A page can carry several kinds. **Flagged**: a rule removing "
         f"more than {limit:.0%} of the clean pages.", "",
         "| rule | " + " | ".join(k.replace("_", " ") for k in kinds) + " |", "|---|" + "---|" * len(kinds),
         "| *pages in the crawl* | " + " | ".join(f"{d['pages'][k]:,}" for k in kinds) + " |"]
    for rule, counts in d["rules"].items():
        if any(counts.values()):
            name = f"**{rule} (flagged)**" if rule in d["flagged"] else rule
            L.append(f"| {name} | {cells(counts)} |")
    L += [f"| *{family}, any rule* | {cells(counts)} |" for family, counts in d["families"].items()]
    L += ["", f"Flagged (more than {limit:.0%} of clean pages removed): {', '.join(d['flagged'])}."
          if d["flagged"] else f"No rule removed more than {limit:.0%} of the clean pages.", ""]
    return L


def _conclusion(p: Params, cross: pd.DataFrame, metrics: dict, curves: pd.DataFrame) -> str:
    """The verdict per family, then what limits the measurement, all from the results."""
    parts, widths = [], []
    for fam, lr in p.analysis.standard_lr.items():
        std, tiny = _at(cross, fam, lr).iloc[0], _at(cross, fam, p.analysis.tiny_lr).iloc[0]
        values = [std.spearman, tiny.spearman, std.spearman_lo, std.spearman_hi, tiny.spearman_lo, tiny.spearman_hi]
        if any(v is None or not np.isfinite(v) for v in values):
            parts.append(f"{fam}: undefined (constant losses or too few recipes)")
            continue
        widths.append(tiny.spearman_hi - tiny.spearman_lo)
        disjoint = tiny.spearman_lo > std.spearman_hi or std.spearman_lo > tiny.spearman_hi
        verdict = "tiny LR ranks better" if tiny.spearman > std.spearman else "standard LR ranks better"
        same = " (the reference's own architecture)" if fam == p.reference.family else ""
        parts.append(f"{fam}{same}: {verdict} ({_fmt(std.spearman)} at the standard LR, "
                     f"{_fmt(tiny.spearman)} at the tiny LR), " + ("CIs disjoint" if disjoint else "but the CIs overlap"))
    reproduced = all("tiny LR ranks better" in s and "disjoint" in s for s in parts)
    text = ("**Does the finding reproduce at this scale?** "
            + ("Yes: " if reproduced else "Not clearly: ") + "; ".join(parts) + ".")
    tiny = curves[(curves.role == "proxy") & np.isclose(curves.lr, p.analysis.tiny_lr)]
    if len(tiny):
        first, last = tiny.step.min(), tiny.step.max()
        moved = (tiny[tiny.step == first].loss_mean.mean() - tiny[tiny.step == last].loss_mean.mean())
        text += (f"\n\nWhat limits it: at the tiny LR the proxies' mean validation loss moved by only "
                 f"{moved:.3f} nats between the first and the last validation point ({last} steps, "
                 f"{p.train.proxy_tokens:,} tokens); the paper trains at such LRs for thousands of steps, "
                 f"and \"tiny\" is LR x steps relative to the curvature.")
    if widths:
        text += (f" With {metrics['n_recipes']} recipes the 95% CI of a Spearman at the tiny LR spans "
                 f"{np.mean(widths):.2f} on average, so differences smaller than that are not resolved.")
    best = {fam: metrics[fam]["best_spearman_lr"] for fam in p.analysis.standard_lr}
    text += " Best-ranking proxy LR per family: " + ", ".join(f"{f} {lr:g}" for f, lr in best.items()) + "."
    return text
