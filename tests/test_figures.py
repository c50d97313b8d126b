"""Every figure of the study (proxyrank.reporting.figures) from a small synthetic reports folder with planted
effects: each family's own best-loss LR (not the one in params.yaml), reference optima that differ
between recipe groups, step-0 curve points, and theory runs that diverge at a large LR."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba

from proxyrank.reporting import figures as fg
from proxyrank.config import parse_params, read_params
from proxyrank.files import write_json
from proxyrank.analysis.metrics import analyze
from proxyrank.analysis.theory import TheoryParams, study
from pictures import assert_picture, record_figures

GRID = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5]  # holds standard/30 and /300 for both planted optima
BEST = {"gpt2": 3e-3, "opt": 1e-2}  # each family's best-loss LR; the smoke profile says 3e-3 for both
PICKED = {"gpt2": {"standard": 3e-3, "tiny30": 1e-4, "tiny300": 1e-5},
          "opt": {"standard": 1e-2, "tiny30": 3e-4, "tiny300": 3e-5}}
REF_LRS, REF_BEST = [1.4e-2, 7e-3, 3.5e-3], {"mixing": 7e-3, "quality": 3.5e-3}
INIT = 6.93  # every run's step-0 loss (the same untrained model for every recipe)
RECIPES = {f"r{i}": ("mixing" if i < 4 else "quality", i / 8) for i in range(8)}  # name: (group, quality)
THEORY = TheoryParams(n_recipes=4, widths=[8], lr_fracs=[0.1, 3.0], steps=50, seeds=[0], n_kernel=200,
                      n_valid=300, worlds=[0, 1])  # diverges at 3.0 (measured: 8 of 8 runs)
EXPECTED = ["flip.png", "frontier.png", "ladder.png", "loss_scatter.png", "per_domain_spearman.png",
            "reference_lr.png", "spearman_vs_lr.png", "theory.png", "topk_regret.png", "training_curves.png"]


def _proxy_loss(fam: str, lr: float, quality: float, rank: int, rng) -> tuple[float, float]:
    """(final loss, drop below INIT): the drop peaks at the family's best LR; below about best/10
    recipes are ordered by quality, above by a scrambled order (the paper's claim, planted)."""
    drop = 1.5 * np.exp(-2 * np.log10(lr / BEST[fam]) ** 2)
    effect = quality if lr < BEST[fam] / 10 else ((rank * 5) % 8) / 8
    return INIT - drop + 0.9 * drop * effect + rng.normal(0, 0.002 * drop), drop


def _runs_and_curves(domains: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    rows, curves = [], []
    specs = [("proxy", fam, lr, seed) for fam in BEST for lr in GRID for seed in (0, 1)]
    specs += [("reference", "pythia", lr, seed) for lr in REF_LRS for seed in (0, 1)]
    for rank, (recipe, (group, q)) in enumerate(RECIPES.items()):
        for role, fam, lr, seed in specs:
            if role == "proxy":
                loss, _ = _proxy_loss(fam, lr, q, rank, rng)
            else:  # a parabola in log2(LR) around the group's optimum
                loss = 5 + 0.1 * q + 0.05 * np.log2(lr / REF_BEST[group]) ** 2 + rng.normal(0, 0.002)
            rows.append({"recipe": recipe, "group": group, "role": role, "family": fam, "model": "m", "n_params": 1000,
                         "lr": lr, "seed": seed, "tokens": 100, "steps": 2, "diverged": False, "loss_mean": loss,
                         **{f"loss_{d}": loss + rng.normal(0, 0.01) for d in domains},
                         "half_b_loss": loss + rng.normal(0, 0.002)})
            for step, value in ((0, INIT), (1, (INIT + loss) / 2), (2, loss)):
                curves.append({"role": role, "recipe": recipe, "run_id": f"{fam}-{lr:g}-{seed}", "family": fam,
                               "lr": lr, "seed": seed, "step": step, "tokens": 50 * step,
                               "train_loss": np.nan if step == 0 else value + 0.1, "loss_mean": value})
    return pd.DataFrame(rows), pd.DataFrame(curves)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The reports folder the figures stage reads, in the format of the metrics stage."""
    folder = tmp_path_factory.mktemp("reports")
    runs, curves = _runs_and_curves(["code", "wiki"])
    alignment = pd.DataFrame([{"family": fam, "seed": 0, "state": state, "recipe": r, "alignment": q + k,
                               "adam_alignment": q, "cosine": -q, "tokens": 30.0}
                              for fam in BEST for k, state in enumerate(("init", "warm"))
                              for r, (_, q) in RECIPES.items()])
    headline, detail = analyze(runs, standard_lr="tuned", tiny_ratios=[30, 300], tiny_lr=1e-5, n_boot=20, seed=0,
                               curves=curves, alignment=alignment)
    runs.to_csv(folder / "runs.csv", index=False)
    curves.to_csv(folder / "curves.csv", index=False)
    write_json(folder / "analysis.json", detail)
    write_json(folder / "metrics.json", headline)
    table, _ = study(THEORY)
    table.to_csv(folder / "theory.csv", index=False)
    ladder_rows(folder / "ladder.csv")
    return folder


LADDER_V4 = {"default": (97, 0.87, -0.2, -0.5, 0.1, False), "long": (5000, 0.87, 0.4, 0.1, 0.7, True),
             "tpp5": (97, 5.0, 0.1, -0.2, 0.4, True)}
"""rung -> (proxy steps, reference tokens per parameter, V4 delta, lo, hi, can test): `long` is on the
steps axis, `tpp5` on the tokens-per-parameter axis, both beside `default`; `small` has no V columns."""


def ladder_rows(path: Path) -> None:
    """A ladder.csv: a rung measured before the validity checks, and three with them."""
    rows = [{"rung": "small", "family": fam, "proxy_preset": f"{fam}-nano", "proxy_params": 1000,
             "proxy_tokens": 4096, "reference_preset": "pythia-nano", "reference_params": 5000,
             "reference_tokens": 8192, "reference_flops": 3e10, "standard_lr": 3e-3, "tiny_lr": 1e-5,
             "spearman_standard": 0.5, "spearman_standard_lo": 0.1, "spearman_standard_hi": 0.8,
             "spearman_tiny": -0.25, "spearman_tiny_lo": -0.6, "spearman_tiny_hi": 0.2,
             "best_spearman_lr": 1e-4, "best_spearman": 0.75} for fam in BEST]
    for rung, (steps, tpp, delta, lo, hi, can) in LADDER_V4.items():
        rows += [rows[k] | {"rung": rung, "proxy_steps": steps, "proxy_width": 32, "reference_tokens_per_param": tpp,
                            "reference_tokens": int(tpp * 5000), "reference_flops": 3e10 * tpp,
                            "v1_pass": can, "v2_standard_pass": True, "v2_tiny_pass": can, "v3_ceiling": 0.9,
                            "v4_delta": delta, "v4_lo": lo, "v4_hi": hi, "can_test": can} for k in range(len(BEST))]
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.fixture
def folder(synthetic, tmp_path):
    return shutil.copytree(synthetic, tmp_path / "reports")


@pytest.fixture(scope="module")
def params():
    """The smoke profile (its analysis.standard_lr is a fixed 3e-3 the figures must not use)."""
    data = read_params(Path(__file__).resolve().parents[1] / "profiles" / "smoke.yaml")
    return parse_params({**data, "theory": dataclasses.asdict(THEORY)})


def keep_figures(monkeypatch) -> dict:
    """{file name: the matplotlib Figure} of every figure saved during the test (after
    record_figures, so both see each save)."""
    from matplotlib.figure import Figure

    kept, original = {}, Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        kept[str(fname).rsplit("/", 1)[-1]] = self
        return original(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return kept


@pytest.fixture(scope="module")
def drawn(params, synthetic, tmp_path_factory):
    """Every figure rendered once for the module: (what each drew, the figures, the reports folder)."""
    folder = shutil.copytree(synthetic, tmp_path_factory.mktemp("drawn") / "reports")
    with pytest.MonkeyPatch.context() as monkeypatch:
        summary = record_figures(monkeypatch)
        kept = keep_figures(monkeypatch)
        fg.figures(params, folder)
    return summary, kept, folder


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]


def test_the_planted_data_picks_each_familys_own_lrs(synthetic):
    """The fixture's premise: the analysis picks the planted optima, and they differ from params."""
    detail = json.loads((synthetic / "analysis.json").read_text())
    picked = {(f, t): v["lrs"][t] for f, v in detail["picked"].items() for t in ("standard", "tiny30", "tiny300")}
    assert picked == pytest.approx({(f, t): lr for f, lrs in PICKED.items() for t, lr in lrs.items()})
    assert {round(v["best_lr"], 6) for v in detail["reference"].values()} == set(REF_BEST.values())


def test_every_figure_is_a_picture(drawn):
    summary, _, folder = drawn
    names = sorted(f.name for f in (folder / "figures").iterdir())
    assert names == EXPECTED == sorted(summary)
    for name in names:
        assert_picture(folder / "figures" / name)
    assert summary["flip.png"].lines == [2] and summary["ladder.png"].points[0] >= 2 * len(BEST)


def test_plot_tables_hold_the_picked_lrs_at_full_precision(drawn):
    _, _, folder = drawn
    detail = json.loads((folder / "analysis.json").read_text())
    wide = pd.read_csv(folder / "plots" / "spearman_vs_lr.csv")
    assert list(wide.columns) == ["lr", "log10_lr", "gpt2", "pythia", "opt"] and wide.pythia.isna().all()
    assert wide.log10_lr.tolist() == pytest.approx(np.log10(wide.lr).tolist())  # dvc plots' x: a log LR axis
    for row in detail["cross_scale"]:
        if row["seed"] == "mean" and row["domain"] == "mean":  # exact: no rounding on the way
            assert wide.loc[np.isclose(wide.lr, row["lr"]), row["family"]].item() == row["spearman"]
    table = pd.read_csv(folder / "plots" / "curves.csv")
    tags = ["standard", "tiny30", "tiny300", "tiny"]
    assert list(table.columns) == ["tokens"] + [f"{f}_{t}" for f in ("gpt2", "pythia", "opt") for t in tags]
    assert table.tokens.tolist() == [0, 50, 100] and table.opt_standard.iloc[0] == pytest.approx(INIT)
    raw = pd.read_csv(folder / "curves.csv")
    opt = raw[(raw.family == "opt") & np.isclose(raw.lr, BEST["opt"])]  # params.yaml would say 3e-3
    assert table.opt_standard.tolist() == opt.groupby("tokens").loss_mean.mean().tolist()  # exact


def test_spearman_figure_circles_each_familys_standard_lr(drawn):
    summary, kept, _ = drawn
    assert summary["spearman_vs_lr.png"].panels == 1 and summary["spearman_vs_lr.png"].lines == [len(BEST)]
    ax = kept["spearman_vs_lr.png"].axes[0]
    hollow = {}
    for c in ax.collections:  # the hollow markers: no face, edge in the family's colour
        if isinstance(c, PathCollection) and not len(c.get_facecolor()):
            fam = next(f for f, col in fg.FAMILY_COLOURS.items() if np.allclose(c.get_edgecolor()[0], to_rgba(col)))
            hollow.setdefault(fam, []).append((float(c.get_sizes()[0]), float(c.get_offsets()[0][0])))
    assert sorted(hollow) == sorted(PICKED)
    for fam, lrs in PICKED.items():
        assert max(hollow[fam])[1] == pytest.approx(lrs["standard"])  # the biggest circle: the standard LR
        assert sorted(x for _, x in hollow[fam]) == pytest.approx(sorted(lrs.values()))
    texts = _texts(kept["spearman_vs_lr.png"])
    assert texts.count("standard") == len(BEST) and texts.count("/30") == len(BEST)
    assert "paper, tiny LR: > 0.92" in texts and "paper, standard LR: < 0.75" in texts
    assert "mean over seeds" in ax.get_ylabel()


def test_loss_scatter_has_seed_bars_and_the_step0_loss(drawn):
    summary, kept, folder = drawn
    assert summary["loss_scatter.png"].panels == 2 * len(BEST)
    assert min(summary["loss_scatter.png"].points) == 2  # error bars and points in every panel
    fig = kept["loss_scatter.png"]
    for ax in fig.axes:  # every panel states the step-0 loss: a line near the points or an arrow to it
        assert any(f"{INIT:.3f}" in t.get_text() for t in ax.texts), ax.get_title()
        bars = next(c for c in ax.containers if type(c).__name__ == "ErrorbarContainer")
        x_bars, y_bars = bars.lines[2]
        assert np.ptp(x_bars.get_segments()[0][:, 0]) > 0 and np.ptp(y_bars.get_segments()[0][:, 1]) > 0
    # at the tiny LR the proxies hardly left the initial loss: there it is a line on the panel
    tiny = [ax for ax in fig.axes if "/30 LR" in ax.get_title()]
    assert tiny and all(any(t.get_text().startswith(" step 0:") for t in ax.texts) for ax in tiny)
    assert "own x-range" in fig._suptitle.get_text()
    assert [ax.get_title().split(" (")[0] for ax in fig.axes[:: len(BEST)]] == [
        "gpt2 @ 3e-3", "gpt2 @ 1e-4"]


def test_regret_figure_has_the_random_baseline_and_the_paper_line(drawn):
    summary, kept, folder = drawn
    detail = json.loads((folder / "analysis.json").read_text())
    assert summary["topk_regret.png"].lines == [3] * len(BEST)  # random, standard, tiny30 per family
    fig = kept["topk_regret.png"]
    for ax in fig.axes:
        random = next(line for line in ax.get_lines() if line.get_label().startswith("random pick"))
        assert random.get_ydata().tolist() == detail["random_regret"]
        assert "paper: ~0.25 (standard LR)" in [t.get_text() for t in ax.texts]
    assert "nats" in fig.axes[0].get_ylabel()


def test_domain_heatmap_writes_every_cell_and_labels_its_colour_bar(drawn):
    summary, kept, folder = drawn
    assert summary["per_domain_spearman.png"].panels == 2 and summary["per_domain_spearman.png"].images[0] == 1
    heat, bar = kept["per_domain_spearman.png"].axes
    values = heat.get_images()[0].get_array()
    cells = [t.get_text() for t in heat.texts if t.get_text() not in ("gpt2 proxy", "opt proxy")]
    assert len(cells) == values.size == 3 * len(BEST) * len(GRID)  # code, wiki and the mean row
    assert all(c == f"{float(c):.2f}" for c in cells)
    assert bar.get_ylabel() == "Spearman vs tuned reference"
    assert heat.get_yticklabels()[-1].get_text().startswith("mean")
    ticks = [t.get_text() for t in heat.get_xticklabels()]
    assert ticks.count("3e-3\n(std)") == 1 and ticks.count("1e-2\n(std)") == 1 and ticks.count("1e-4\n(/30)") == 1


def test_training_curves_start_at_step0_with_the_standard_lr_thick(drawn):
    summary, kept, _ = drawn
    assert summary["training_curves.png"].panels == len(BEST) + 1
    assert summary["training_curves.png"].lines == [len(GRID)] * len(BEST) + [len(REF_LRS) + 1]  # + tuned
    for ax, fam in zip(kept["training_curves.png"].axes, BEST):
        lines = ax.get_lines()
        assert all(line.get_xdata()[0] == 0 and line.get_ydata()[0] == pytest.approx(INIT) for line in lines)
        thick = max(lines, key=lambda line: line.get_linewidth())
        assert thick.get_label() == {"gpt2": "3e-3 (std)", "opt": "1e-2 (std)"}[fam]


def test_frontier_shows_the_tagged_lrs_and_the_labelled_target(drawn):
    summary, kept, _ = drawn
    assert summary["frontier.png"].lines == [3] * len(BEST)  # standard, /30, /300: not the whole grid
    assert min(summary["frontier.png"].points) >= 6  # three scores x two states
    fig = kept["frontier.png"]
    assert all("target 0.9" in [t.get_text() for t in ax.texts] for ax in fig.axes)
    assert fig.legends and not any(ax.get_legend() for ax in fig.axes)  # the legend outside the panels


def test_reference_lr_figure_counts_the_distinct_optima(drawn):
    summary, kept, folder = drawn
    assert summary["reference_lr.png"].lines == [len(RECIPES)]
    ax = kept["reference_lr.png"].axes[0]
    assert "2 distinct best LRs over 8 recipes" in ax.get_title()
    stars = [c for c in ax.collections if len(c.get_offsets()) == 1]
    assert sorted(round(float(c.get_offsets()[0][0]), 6) for c in stars) == sorted(
        REF_BEST[g] for g, _ in RECIPES.values())
    assert sorted(t.get_text() for t in ax.texts) == ["best for 4", "best for 4"]


def test_theory_figure_counts_diverged_runs(drawn):
    _, kept, folder = drawn
    table = pd.read_csv(folder / "theory.csv")
    ax = kept["theory.png"].axes[0]
    counts = table.groupby("lr_frac").diverged.sum()
    expected = [f"{n}/{len(table[table.lr_frac == lr]) * THEORY.n_recipes}\ndiverged" for lr, n in counts.items() if n]
    assert counts[3.0] > 0 and sorted(t.get_text() for t in ax.texts if "diverged" in t.get_text()) == sorted(expected)
    assert any(t.get_text().startswith("band (per width): min to max") for t in ax.get_legend().get_texts())


def test_old_curves_without_step0_still_render(params, folder, monkeypatch):
    """The previous study's curves start at the first validation point: no step-0 marks, no failure."""
    curves = pd.read_csv(folder / "curves.csv")
    curves[curves.step > 0].to_csv(folder / "curves.csv", index=False)
    kept = keep_figures(monkeypatch)
    fg.figures(params, folder)
    assert not any(mark in t for t in _texts(kept["loss_scatter.png"]) for mark in ("step 0", "step-0"))
    assert all(line.get_xdata()[0] == 50 for line in kept["training_curves.png"].axes[0].get_lines())


def test_analysis_without_picked_lrs_names_the_key(params, folder):
    detail = json.loads((folder / "analysis.json").read_text())
    del detail["picked"]
    write_json(folder / "analysis.json", detail)
    with pytest.raises(ValueError, match="analysis.json: no 'picked'.*metrics"):
        fg.figures(params, folder)


def test_ladder_draws_each_axis_with_the_rungs_on_it(drawn):
    """Panel a: every rung by compute; b (tokens per parameter): default and tpp5; c (steps): default and
    long; d (width): the default alone. Two error-bar sets (can test / cannot) per family where both occur."""
    summary, _, _ = drawn
    ladder = summary["ladder.png"]
    assert ladder.panels == 4
    assert ladder.lines[1] == ladder.lines[2] == len(BEST)  # one line per family through its two rungs
    assert ladder.points[1] == ladder.points[2] == 2 * len(BEST) and ladder.points[3] == len(BEST)
    from proxyrank.reporting.figures import LADDER_AXES, axis_rows

    table = pd.read_csv(drawn[2] / "ladder.csv")
    on = {col: sorted(set(axis_rows(table, col, keep).rung)) for col, _, _, keep in LADDER_AXES}
    assert on == {"reference_tokens_per_param": ["default", "tpp5"], "proxy_steps": ["default", "long"],
                  "proxy_width": ["default"]}


def test_a_ladder_measured_before_the_axes_still_renders(tmp_path, monkeypatch):
    """A ladder.csv without the axis and validity columns (rows of an older version): panel a as before,
    the three axes empty and titled so."""
    from proxyrank.reporting.figures import _fig_ladder

    seen = record_figures(monkeypatch)
    ladder_rows(tmp_path / "ladder.csv")
    old = pd.read_csv(tmp_path / "ladder.csv")
    old = old[old.rung.isin(["small", "default"])].drop(columns=[c for c in old if c.startswith("v") or c in (
        "proxy_steps", "proxy_width", "reference_tokens_per_param", "can_test")])
    _fig_ladder(old, tmp_path / "ladder.png")
    assert seen["ladder.png"].points[1:] == [0, 0, 0] and seen["ladder.png"].points[0] > 0
    assert_picture(tmp_path / "ladder.png")


def test_ladder_tick_labels_skip_a_rung_too_close_to_the_last_one():
    """Rungs at 3.2e11 and 3.7e11 FLOPs on an axis to 1.8e12 printed two labels on top of each other."""
    from proxyrank.reporting.figures import _spaced_labels

    assert _spaced_labels([3.2e11, 3.7e11, 1.8e12], (3e11, 2e12)) == ["3.2e+11", "", "1.8e+12"]
    assert _spaced_labels([1e11, 1e12], (9e10, 1.1e12)) == ["1e+11", "1e+12"]
