import json
import math

import numpy as np
import pandas as pd
import pytest

from proxyrank.analysis.metrics import (
    analyze,
    bootstrap_ci,
    cheapest,
    kendall,
    pairwise_accuracy,
    random_regret,
    regret_curve,
    round_lrs,
    same_lr,
    spearman,
    topk_regret,
)

REF = np.array([1.0, 2.0, 3.0, 4.0])


# --------------------------------------------------------------------------- primitives


def test_correlations_on_known_permutations():
    assert spearman(REF, REF) == pytest.approx(1.0)
    assert spearman(REF[::-1], REF) == pytest.approx(-1.0)
    swapped = np.array([2.0, 1.0, 3.0, 4.0])  # one adjacent swap: 1 - 6*2/(4*15)
    assert spearman(swapped, REF) == pytest.approx(0.8)
    assert kendall(swapped, REF) == pytest.approx(4 / 6)
    assert kendall(REF[::-1], REF) == pytest.approx(-1.0)


def test_correlations_undefined_are_nan():
    const = np.ones(4)
    assert math.isnan(spearman(const, REF))
    assert math.isnan(kendall(REF, const))
    assert math.isnan(spearman([1.0], [2.0]))


def test_spearman_with_ties_matches_average_ranks():
    # ranks (1.5, 1.5, 3, 4) vs (1, 2, 3, 4)
    ranks = np.array([1.5, 1.5, 3, 4])
    expected = np.corrcoef(ranks, np.arange(1, 5))[0, 1]
    assert spearman([1.0, 1.0, 3.0, 4.0], REF) == pytest.approx(expected)


def test_pairwise_accuracy():
    assert pairwise_accuracy(REF, REF) == 1.0
    assert pairwise_accuracy(REF[::-1], REF) == 0.0
    assert pairwise_accuracy([2.0, 1.0, 3.0, 4.0], REF) == pytest.approx(5 / 6)
    # proxy tie on (0, 1) counts half
    assert pairwise_accuracy([1.0, 1.0, 3.0, 4.0], REF) == pytest.approx(5.5 / 6)
    # reference tie on (0, 1) is excluded: 5 pairs left, all right despite the proxy swap
    assert pairwise_accuracy([2.0, 1.0, 3.0, 4.0], [1.0, 1.0, 3.0, 4.0]) == 1.0
    assert math.isnan(pairwise_accuracy([1.0, 2.0], [5.0, 5.0]))


def test_regret():
    ref = np.array([1.0, 1.5, 1.2, 2.0])
    proxy = np.array([3.0, 1.0, 2.0, 4.0])  # proxy order: 1, 2, 0, 3
    assert topk_regret(proxy, ref, 1) == pytest.approx(0.5)
    assert regret_curve(proxy, ref) == pytest.approx([0.5, 0.2, 0.0, 0.0])
    curve = regret_curve(np.random.default_rng(0).random(8), np.arange(8.0))
    assert all(a >= b for a, b in zip(curve, curve[1:])) and curve[-1] == 0.0
    # a tie in the proxy is a coin flip: the exact expectation, whatever the row order
    assert topk_regret([1.0, 1.0], [2.0, 1.0], 1) == pytest.approx(0.5)
    assert topk_regret([1.0, 1.0], [1.0, 2.0], 1) == pytest.approx(0.5)
    assert random_regret([1.0, 2.0, 4.0]) == pytest.approx([(0 + 1 + 3) / 3, (0 + 0 + 1) / 3, 0.0])
    with pytest.raises(ValueError):
        topk_regret(proxy, ref, 5)


def test_bootstrap_ci_deterministic_and_covers_estimate():
    ref = np.arange(12.0)
    proxy = ref.copy()
    proxy[[3, 4]] = proxy[[4, 3]]
    first = bootstrap_ci(spearman, proxy, ref, n_boot=200, seed=7)
    assert first == bootstrap_ci(spearman, proxy, ref, n_boot=200, seed=7)
    lo, hi = first
    assert lo <= spearman(proxy, ref) <= hi <= 1.0
    lo, hi = bootstrap_ci(pairwise_accuracy, proxy, ref, n_boot=200, seed=7, level=0.9)
    assert lo <= pairwise_accuracy(proxy, ref) <= hi


# --------------------------------------------------------------------------- analyze

RECIPES = ["r0", "r1", "r2", "r3", "r4"]
QUALITY = np.array([1.0, 1.1, 1.2, 1.3, 1.4])
REF_LRS = [1e-4, 3e-4, 1e-3]
TINY, STANDARD, HIGH = 1e-5, 1e-3, 1e-2


def _run(recipe, role, lr, seed, mean, books, code, family="gpt2"):
    return {
        "recipe": recipe, "group": "A" if recipe in ("r0", "r1") else "B", "role": role,
        "family": family, "model": family + "-s", "n_params": 1000, "lr": lr, "seed": seed,
        "tokens": 100, "steps": 10, "wall_s": 1.0,
        "loss_mean": mean, "loss_books": books, "loss_code": code, "half_b_loss": mean,
    }


def make_runs() -> pd.DataFrame:
    rows = []
    # Reference: best at 3e-4, except r4 which wins at the grid edge 1e-3 (loss 1.35).
    # r4's code loss at 1e-4 is tempting (0.5) but that model is not the tuned one.
    for k, rec in enumerate(RECIPES):
        penalty = {1e-4: 0.2, 3e-4: 0.0, 1e-3: -0.05 if rec == "r4" else 0.1}
        for lr in REF_LRS:
            mean = QUALITY[k] + penalty[lr]
            code = 0.5 if (rec == "r4" and lr == 1e-4) else mean
            rows.append(_run(rec, "reference", lr, 0, mean, mean + 0.5, code, family="ref"))
    # Proxy: perfect at the tiny LR, one swap (r0, r1) at the standard LR, reversed at the high LR.
    orders = {TINY: QUALITY, STANDARD: QUALITY[[1, 0, 2, 3, 4]], HIGH: QUALITY[::-1]}
    for lr, q in orders.items():
        for seed in (0, 1):
            for k, rec in enumerate(RECIPES):
                mean = q[k] + 2 + 0.01 * seed
                rows.append(_run(rec, "proxy", lr, seed, mean, 10 - mean, mean))
    return pd.DataFrame(rows)


def run_analyze(runs=None, **kw):
    args = {"standard_lr": {"gpt2": STANDARD}, "tiny_ratios": [STANDARD / TINY], "tiny_lr": TINY, "n_boot": 50,
            "seed": 0, **kw}
    return analyze(make_runs() if runs is None else runs, **args)


def test_analyze_headline():
    headline, _ = run_analyze()
    assert headline["n_recipes"] == 5 and headline["n_pairs"] == 10
    g = headline["gpt2"]
    assert g["spearman_tiny100"] == pytest.approx(1.0)
    assert g["spearman_standard"] == pytest.approx(0.9)  # 1 - 6*2/(5*24)
    assert g["pairwise_tiny100"] == pytest.approx(1.0)
    assert g["pairwise_standard"] == pytest.approx(0.9)
    assert g["regret1_tiny100"] == pytest.approx(0.0)
    assert g["regret1_standard"] == pytest.approx(0.1)  # picks r1 instead of r0
    assert g["tiny100_lr"] == TINY and "tiny_lr" not in g  # the absolute tiny LR is tiny100 here: one tag
    assert g["best_spearman_lr"] == pytest.approx(TINY)
    assert g["seed_spearman_standard"] == pytest.approx(1.0) and g["seed_spearman_tiny100"] == pytest.approx(1.0)


def test_analyze_detail():
    _, detail = run_analyze()
    json.dumps(detail, allow_nan=False)
    assert detail["domains"] == ["books", "code"]
    ref = detail["reference"]
    assert ref["r4"] == {"best_lr": pytest.approx(1e-3), "loss": pytest.approx(1.35), "edge": True}
    assert ref["r0"]["best_lr"] == pytest.approx(3e-4) and ref["r0"]["edge"] is False

    cross = detail["cross_scale"]
    assert len(cross) == 3 * 3 * 3  # LRs x (2 seeds + mean) x (mean + 2 domains)

    def row(lr, seed="mean", domain="mean"):
        (hit,) = [r for r in cross if r["lr"] == pytest.approx(lr) and r["seed"] == seed and r["domain"] == domain]
        return hit

    high = row(HIGH)
    assert high["spearman"] == pytest.approx(-1.0) and high["pairwise_acc"] == 0.0
    assert high["regret"] == pytest.approx([0.35, 0.3, 0.2, 0.1, 0.0])
    assert high["spearman_lo"] <= high["spearman"] <= high["spearman_hi"]
    assert row(TINY, domain="books")["spearman"] == pytest.approx(-1.0)
    # code is read at the LR tuned on mean loss, so r4's 0.5 never enters
    assert row(TINY, domain="code")["spearman"] == pytest.approx(1.0)
    per_seed = row(STANDARD, seed=1)
    assert per_seed["spearman"] == pytest.approx(0.9) and per_seed["spearman_lo"] is None

    assert len(detail["within_scale"]) == 3 * 3
    assert len(detail["seed_spread"]) == 3
    assert all(r["n_seeds"] == 2 and r["spearman_min"] == pytest.approx(1.0) for r in detail["seed_spread"])

    first, second = detail["flips"]
    assert (first["n_flips"], first["n_pairs"], first["flip_share"]) == (1, 10, pytest.approx(0.1))
    assert first["largest_flip"]["recipes"] == ["r0", "r1"]
    assert first["group_flips"] == {"A|A": 1, "A|B": 0, "B|B": 0}
    assert second["n_flips"] == 9 and second["group_flips"]["A|A"] == 0


def test_analyze_two_recipes_does_not_crash():
    runs = make_runs()
    headline, detail = run_analyze(runs[runs.recipe.isin(["r0", "r1"])])
    assert headline["n_recipes"] == 2 and headline["n_pairs"] == 1
    json.dumps(detail, allow_nan=False)


def test_analyze_validation_errors():
    with pytest.raises(ValueError, match="loss_mean"):
        run_analyze(make_runs().drop(columns="loss_mean"))
    runs = make_runs()
    with pytest.raises(ValueError, match="no reference runs"):
        run_analyze(runs[runs.role == "proxy"])
    with pytest.raises(ValueError, match=r"gpt2.*0\.003"):
        run_analyze(standard_lr={"gpt2": 3e-3})
    assert "tiny" not in run_analyze(tiny_lr=1e-6)[1]["picked"]["gpt2"]["lrs"]  # the absolute one: where run
    run_analyze(standard_lr={"gpt2": STANDARD * (1 + 1e-12)})  # float noise is tolerated


def test_tuned_standard_is_the_best_mean_loss_and_tiny_the_nearest_ratio():
    runs = make_runs()
    runs.loc[(runs.role == "proxy") & (runs.lr == HIGH), "loss_mean"] -= 0.5  # HIGH has the lowest mean loss
    _, detail = run_analyze(runs, standard_lr="tuned", tiny_ratios=[30, HIGH / TINY])
    picked = detail["picked"]["gpt2"]
    assert picked["lrs"]["standard"] == pytest.approx(HIGH) and picked["edge"] is True  # the sweep's top end
    assert picked["lrs"]["tiny30"] == pytest.approx(STANDARD)  # nearest to HIGH / 30 in log space
    assert picked["ratios"]["tiny30"] == pytest.approx(HIGH / STANDARD)
    assert picked["lrs"][f"tiny{HIGH / TINY:g}"] == pytest.approx(TINY)
    fixed = run_analyze(runs, standard_lr={"gpt2": HIGH}, tiny_ratios=[30])[1]["picked"]["gpt2"]
    assert fixed["lrs"]["standard"] == pytest.approx(HIGH) and fixed["edge"] is False  # placed there, not tuned
    runs.loc[(runs.role == "proxy") & (runs.lr == HIGH) & (runs.recipe == "r2"), "loss_mean"] = np.nan  # diverged
    _, detail = run_analyze(runs, standard_lr="tuned", tiny_ratios=[30])
    assert detail["picked"]["gpt2"]["lrs"]["standard"] != pytest.approx(HIGH)  # a diverged LR is never the standard


def make_curves() -> pd.DataFrame:
    """Two logged points per proxy run: at the standard LR the ranking is right halfway and then
    one pair swaps; at the tiny LR it starts reversed and ends right."""
    rows = []
    for r in make_runs().itertuples():
        if r.role != "proxy":
            continue
        k = RECIPES.index(r.recipe)
        early = {STANDARD: QUALITY[k], TINY: -QUALITY[k], HIGH: -QUALITY[k]}[r.lr]
        for step, loss in ((1, early + 3), (2, r.loss_mean)):
            rows.append({"role": "proxy", "recipe": r.recipe, "run_id": "x", "family": r.family, "lr": r.lr,
                         "seed": r.seed, "step": step, "tokens": 50 * step, "loss_mean": loss})
    return pd.DataFrame(rows)


def test_frontier_reads_spearman_off_every_logged_point():
    headline, detail = run_analyze(curves=make_curves(), frontier_target=0.95)
    front = {(r["lr"], r["tokens"]): r for r in detail["frontier"]}
    assert len(front) == 3 * 2 and detail["frontier_target"] == 0.95
    assert front[(STANDARD, 50)]["spearman"] == pytest.approx(1.0)
    assert front[(STANDARD, 100)]["spearman"] == pytest.approx(0.9)
    assert front[(TINY, 50)]["spearman"] == pytest.approx(-1.0)
    assert front[(TINY, 100)]["spearman"] == pytest.approx(1.0)
    assert all(r["n_seeds"] == 2 and r["spearman_lo"] <= r["spearman"] <= r["spearman_hi"]
               for r in front.values())
    # the final point equals the run-level analysis
    assert front[(STANDARD, 100)]["spearman"] == pytest.approx(headline["gpt2"]["spearman_standard"])
    # the cheapest budget: the standard LR after one step; a target nothing reaches gives None
    assert (headline["gpt2"]["frontier_tokens"], headline["gpt2"]["frontier_lr"]) == (50, pytest.approx(STANDARD))
    none, _ = run_analyze(curves=make_curves()[lambda d: d.lr != STANDARD], frontier_target=0.95)
    assert (none["gpt2"]["frontier_tokens"], none["gpt2"]["frontier_lr"]) == (100, pytest.approx(TINY))
    with pytest.raises(ValueError, match="curves table lacks"):
        run_analyze(curves=make_curves().drop(columns="step"))
    assert "frontier_tokens" not in run_analyze()[0]["gpt2"]  # no curves, no frontier


def test_cheapest_prefers_fewer_tokens_then_higher_spearman():
    rows = [{"family": "f", "lr": 1.0, "tokens": 10, "spearman": 0.91},
            {"family": "f", "lr": 2.0, "tokens": 10, "spearman": 0.95},
            {"family": "f", "lr": 3.0, "tokens": 5, "spearman": 0.5},
            {"family": "f", "lr": 3.0, "tokens": 20, "spearman": None},
            {"family": "g", "lr": 1.0, "tokens": 1, "spearman": 1.0}]
    assert cheapest(rows, "f", 0.9)["lr"] == 2.0
    assert cheapest(rows, "f", 0.99) is None


def make_alignment() -> pd.DataFrame:
    """Alignment that predicts the reference order at init and its reverse when warm; cosine is noise."""
    rows = []
    for seed in (0, 1):
        for state, sign in (("init", 1), ("warm", -1)):
            for k, rec in enumerate(RECIPES):
                a = sign * (5 - k) + 0.1 * seed
                rows.append({"family": "gpt2", "seed": seed, "state": state, "recipe": rec, "alignment": a,
                             "adam_alignment": 2 * a, "cosine": [0.3, 0.1, 0.5, 0.2, 0.4][k], "tokens": 20.0})
    return pd.DataFrame(rows)


def test_alignment_is_scored_against_the_reference_and_the_tiny_proxy():
    headline, detail = run_analyze(alignment=make_alignment())
    rows = {(r["state"], r["score"]): r for r in detail["alignment"]}
    assert len(rows) == 2 * 3
    init, warm = rows[("init", "alignment")], rows[("warm", "alignment")]
    assert init["spearman"] == pytest.approx(1.0) and warm["spearman"] == pytest.approx(-1.0)
    assert init["spearman_vs_tiny"] == pytest.approx(1.0)  # the tiny-LR proxy ranks like the reference
    assert rows[("init", "adam_alignment")]["spearman"] == pytest.approx(1.0)
    assert rows[("init", "cosine")]["spearman"] == pytest.approx(-0.3)  # 1 - 6 * 26 / 120
    assert init["n_seeds"] == 2 and init["tokens_per_recipe"] == 20.0
    assert init["cost_vs_proxy_run"] == pytest.approx(0.2)  # proxy runs train 100 tokens
    assert headline["gpt2"]["alignment_spearman_init"] == pytest.approx(1.0)
    assert headline["gpt2"]["alignment_spearman_warm"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="alignment table lacks"):
        run_analyze(alignment=make_alignment().drop(columns="cosine"))


def test_alignment_is_judged_on_held_out_half_b():
    """The alignment scores take g_val from half A, so they are judged on half B only: here the
    reference's half-B losses reverse its order, and an init score that predicts the whole-text order
    scores -1, as does the tiny-LR proxy (which ranks like the whole text) on the same half."""
    runs = make_runs()
    ref = runs.role == "reference"
    runs.loc[ref, "half_b_loss"] = 10 - runs.loc[ref, "loss_mean"]
    headline, detail = run_analyze(runs, alignment=make_alignment())
    init = next(r for r in detail["alignment"] if (r["state"], r["score"]) == ("init", "alignment"))
    assert init["heldout"] == "half_b" and init["spearman"] == pytest.approx(-1.0)
    assert init["tiny_spearman"] == pytest.approx(-1.0) and init["spearman_vs_tiny"] == pytest.approx(1.0)
    assert headline["gpt2"]["alignment_spearman_init"] == pytest.approx(-1.0)
    assert headline["gpt2"]["spearman_tiny100"] == pytest.approx(1.0)  # the rest is scored on the whole text
    with pytest.raises(ValueError, match="half_b_loss"):
        run_analyze(make_runs().drop(columns="half_b_loss"), alignment=make_alignment())


def test_same_lr_is_relative_only():
    """Tiny LRs stay apart (np.isclose's default atol=1e-8 would call 1e-9 and 5e-9 equal), and an LR
    read back from text is the LR written."""
    assert not same_lr(1e-9, 5e-9) and not same_lr(1e-5, 2e-5) and same_lr(3e-4, float(repr(3e-4 * (1 + 1e-12))))
    assert same_lr(1e-12, 1e-12) and not same_lr(math.nan, math.nan)
    assert same_lr(pd.Series([1e-3, 2e-3, 1e-3 * (1 + 1e-11)]), 1e-3).tolist() == [True, False, True]
    assert round_lrs(pd.Series(["0.0003", 3e-4 * (1 + 1e-14)])) == [3e-4, 3e-4]
