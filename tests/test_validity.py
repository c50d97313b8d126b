"""Validity checks on synthetic studies whose answers are planted.

The reference loss is base[r] + CURV * (log10 lr - log10 opt[r])^2 plus antithetic seed noise
(+e, -e per recipe and LR), so every seed mean is exactly the planted function and the tests know
each recipe's optimum, tuned loss and seed variance without sampling error.
"""
import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from proxyrank.analysis.metrics import rowwise_spearman, spearman
from proxyrank.analysis.validity import Thresholds, headline, validity

GRID = [float(1e-3 * 2.0**k) for k in range(-4, 5)]  # 6.25e-5 .. 1.6e-2, neighbours 2x apart
CURV = 1.0  # nats per decade^2 away from a recipe's optimum
INIT = 6.93  # ln(1024): the uniform guess over the vocabulary, a proxy's step-0 loss
STEPS = 100
TH = Thresholds()


def names(n: int) -> list[str]:
    return [f"r{i:02d}" for i in range(n)]


def planted_optima(n: int, spread: float, rng) -> np.ndarray:
    """Optima spread `spread`x around 1e-3 in log space, in an order unrelated to the base loss."""
    return 1e-3 * spread ** (rng.permutation(np.linspace(-0.5, 0.5, n)))


def ref_rows(base, opt, grid=GRID, sigma=1e-3, seeds=(0, 1), noise=None, rng=None) -> list[dict]:
    rng = rng or np.random.default_rng(0)
    rows = []
    for r, name in enumerate(names(len(base))):
        for lr in grid:
            e = sigma * (noise[r] if noise is not None else rng.normal())
            signs = [1.0, -1.0] if len(seeds) == 2 else [0.0] * len(seeds)
            for s, sign in zip(seeds, signs):
                loss = base[r] + CURV * (math.log10(lr) - math.log10(opt[r])) ** 2 + sign * e
                rows.append({"recipe": name, "group": "g", "role": "reference", "family": "pythia", "lr": lr,
                             "seed": s, "steps": 400, "tokens": 10**6, "diverged": False, "loss_mean": loss})
    return rows


def tuned(base, opt, grid=GRID) -> np.ndarray:
    """The planted tuned reference loss: each recipe's lowest seed mean over the grid."""
    return np.array([min(base[r] + CURV * (math.log10(lr) - math.log10(opt[r])) ** 2 for lr in grid)
                     for r in range(len(base))])


def proxy_rows(family: str, lr: float, loss: np.ndarray, sigma: float, rng, seeds=(0, 1)) -> tuple[list, list]:
    """A proxy LR trained on every recipe: loss[r] + N(0, sigma) per seed; a step-0 curve row at INIT."""
    runs, curves = [], []
    for r, name in enumerate(names(len(loss))):
        for s in seeds:
            final = float(loss[r] + sigma * rng.normal())
            runs.append({"recipe": name, "group": "g", "role": "proxy", "family": family, "lr": lr, "seed": s,
                         "steps": STEPS, "tokens": 10**5, "diverged": False, "loss_mean": final})
            for step, value in ((0, INIT + 1e-4 * rng.normal()), (STEPS, final)):
                curves.append({"role": "proxy", "recipe": name, "family": family, "lr": lr, "seed": s,
                               "step": step, "tokens": step * 1000, "loss_mean": value})
    return runs, curves


def study(base, opt, proxies: dict[float, tuple[np.ndarray, float]], family="gpt2", **ref_kw):
    """runs and curves tables: the reference sweep and one family's proxies {lr: (loss, seed sd)}."""
    rng = np.random.default_rng(1)
    runs, curves = ref_rows(base, opt, **ref_kw), []
    for lr, (loss, sigma) in proxies.items():
        r, c = proxy_rows(family, lr, loss, sigma, rng)
        runs, curves = runs + r, curves + c
    # reference curves exist in the real table; V2 must ignore them
    curves += [{"role": "reference", "recipe": "r00", "family": "pythia", "lr": GRID[0], "seed": 0, "step": 0,
                "tokens": 0, "loss_mean": 0.0}]
    return pd.DataFrame(runs), pd.DataFrame(curves)


def run(runs, curves, lrs=None, n_boot=200, th=TH):
    lrs = lrs or {"gpt2": {"standard": 1e-2, "tiny30": 3e-4}}
    return validity(runs, curves, lrs, thresholds=th, n_boot=n_boot, seed=0)


def good_proxies(ref_tuned: np.ndarray) -> dict:
    """Both proxies trained (about 3 nats below init) and rank like the reference, seed sd small."""
    return {1e-2: (1.0 + ref_tuned, 1e-3), 3e-4: (1.5 + ref_tuned, 1e-3)}


def interaction(n=12):
    """Each recipe its own optimum, 8x apart, in an order unrelated to its base loss."""
    rng = np.random.default_rng(3)
    base, opt = 3.0 + 0.01 * np.arange(n), planted_optima(n, 8.0, rng)
    return base, opt


def null(n=12):
    """Every recipe the same optimum (1e-3, on the grid) and an additive recipe effect."""
    return 3.0 + 0.01 * np.arange(n), np.full(n, 1e-3)


# --------------------------------------------------------------------------- V1


def test_v1_detects_a_planted_recipe_by_lr_interaction():
    base, opt = interaction()
    out = run(*study(base, opt, good_proxies(tuned(base, opt))))["V1"]
    fitted = np.array([r["fitted_opt"] for r in out["recipes"]])
    # the loss is an exact parabola in log10(lr) and seed means are exact: the fit recovers each optimum
    np.testing.assert_allclose(fitted, opt, rtol=1e-6)
    assert out["optima_spread"] == pytest.approx(8.0, rel=1e-6)
    assert all(r["interior"] and r["resolved"] for r in out["recipes"])
    assert len(out["optimum_counts"]) > 1
    assert out["grid_max_ratio"] == pytest.approx(2.0) and out["n_seeds"] == 2
    assert out["best_fixed_spearman"] < out["seed_ceiling"]
    assert out["mechanism_present"] is True
    assert out["pass"] is True and out["reasons"] == []


def test_v1_null_same_optimum_is_the_absent_mechanism():
    base, opt = null()
    out = run(*study(base, opt, good_proxies(tuned(base, opt))))["V1"]
    assert out["optimum_counts"] == [{"lr": 1e-3, "n_recipes": 12}]
    assert out["best_fixed_lr"] == 1e-3 and out["best_fixed_spearman"] == pytest.approx(1.0)
    assert out["mechanism_present"] is False and out["pass"] is False
    assert len(out["reasons"]) == 1  # the grid, seeds and resolution are fine: only the mechanism fails
    assert "all 12 recipes pick the same reference LR (0.001)" in out["reasons"][0]
    assert "absent" in out["reasons"][0]


def test_v1_fails_a_coarse_grid_a_single_seed_and_edge_optima():
    base, opt = interaction()
    coarse = [1e-4, 4e-4, 1.6e-3, 6.4e-3]
    out = run(*study(base, opt, good_proxies(tuned(base, opt, coarse)), grid=coarse))["V1"]
    assert out["grid_max_ratio"] == pytest.approx(4.0)
    assert any("max_grid_ratio 2" in r for r in out["reasons"]) and out["pass"] is False

    one = run(*study(base, opt, good_proxies(tuned(base, opt)), seeds=(0,)))
    assert any("min_ref_seeds 2" in r for r in one["V1"]["reasons"]) and one["V1"]["pass"] is False
    assert one["V3"]["ceiling"] is None and one["V3"]["reasons"] and one["V3"]["n_separated"] is None
    assert one["V1"]["mechanism_present"] is None  # a fixed-LR Spearman below 1 needs a ceiling to judge
    # ... but one that is exactly 1 is absent whatever the ceiling
    nb, no = null()
    one_null = run(*study(nb, no, good_proxies(tuned(nb, no)), seeds=(0,)))["V1"]
    assert one_null["mechanism_present"] is False and any("absent" in r for r in one_null["reasons"])

    # every optimum far above the grid: all pick its top LR and the parabola's vertex lies outside
    edge = np.full(12, 1.0)
    out = run(*study(base, edge, good_proxies(tuned(base, edge))))["V1"]
    assert out["resolved_share"] == 0.0
    assert any("min_resolved_share 80%" in r for r in out["reasons"])


def test_v1_exact_tie_picks_the_lower_lr_whatever_the_recipe_name():
    # optimum half-way (in log space) between 1e-3 and 2e-3: both grid LRs have the same loss
    base, opt = null(4)
    opt = np.full(4, math.sqrt(1e-3 * 2e-3))
    out = run(*study(base, opt, good_proxies(tuned(base, opt))))["V1"]
    assert {r["grid_opt"] for r in out["recipes"]} == {1e-3}


# --------------------------------------------------------------------------- V2


def test_v2_flags_proxies_that_did_not_move_and_passes_those_that_learned():
    base, opt = interaction()
    ref = tuned(base, opt)
    frozen = (INIT - 0.005 + 1e-4 * ref, 2e-3)  # 0.005 nats below init, recipe effect buried in noise
    noisy = (4.0 + 0 * ref, 1e-2)  # trained, but seeds rank recipes at random
    runs, curves = study(base, opt, {**good_proxies(ref), 1e-5: frozen, 1e-3: noisy})
    rows = {r["lr"]: r for r in run(runs, curves)["V2"]}
    assert sorted(rows) == [1e-5, 3e-4, 1e-3, 1e-2]  # every LR run, tagged or not
    assert rows[1e-2]["tag"] == "standard" and rows[3e-4]["tag"] == "tiny30" and rows[1e-3]["tag"] is None

    assert rows[1e-5]["loss_drop"] == pytest.approx(0.005, abs=2e-3)
    assert rows[1e-5]["passed"] is False
    assert any("min_loss_drop 0.1" in r for r in rows[1e-5]["reasons"])

    assert rows[1e-3]["loss_drop"] > 2 and rows[1e-3]["passed"] is False
    assert [r for r in rows[1e-3]["reasons"] if "min_reliability 0.7" in r] == rows[1e-3]["reasons"]

    for lr in (1e-2, 3e-4):
        r = rows[lr]
        assert r["passed"] is True and r["reasons"] == []
        assert r["reliability"] > 0.9 and r["loss_drop"] > 2
        assert r["init_loss"] == pytest.approx(INIT, abs=1e-3)
        assert r["lr_x_steps"] == pytest.approx(lr * STEPS)
        assert r["seed_sd"] == pytest.approx(1e-3, rel=0.5)
        assert r["n_pairs"] == 66 and r["n_separated"] > 60


def test_v2_a_diverged_run_fails_its_lr_and_leaves_the_rest():
    base, opt = interaction()
    runs, curves = study(base, opt, good_proxies(tuned(base, opt)))
    hit = runs.index[(runs.role == "proxy") & (runs.lr == 3e-4) & (runs.recipe == "r03") & (runs.seed == 1)]
    runs.loc[hit, ["loss_mean", "diverged"]] = [np.nan, True]
    out = run(runs, curves)
    rows = {r["lr"]: r for r in out["V2"]}
    assert rows[3e-4]["passed"] is False and rows[3e-4]["n_diverged"] == 1
    assert any("diverged" in r for r in rows[3e-4]["reasons"])
    assert rows[1e-2]["passed"] is True
    tiny = next(r for r in out["V3"]["proxies"] if r["tag"] == "tiny30")
    assert tiny["n_recipes"] == 11  # the diverged recipe is not ranked
    assert out["verdict"]["gpt2"]["can_test"] is False
    json.dumps(out, allow_nan=False)


# --------------------------------------------------------------------------- V3 and V4


def test_v4_reversed_standard_against_faithful_tiny_gives_delta_near_two():
    base, opt = interaction()
    ref = tuned(base, opt)
    # seed sd 2x the recipes' closest spacing (0.0025): a pair may swap, and the replicates vary
    runs, curves = study(base, opt, {1e-2: (7.0 - ref, 5e-3), 3e-4: (1.5 + ref, 5e-3)})
    out = run(runs, curves, n_boot=1000)
    row = out["V4"][0]
    assert (row["family"], row["tag"], row["n_boot"]) == ("gpt2", "tiny30", 1000)
    assert 1.8 < row["delta"] <= 2 and row["rho_tiny"] > 0.9 and row["rho_standard"] < -0.9
    assert row["lo"] <= row["delta"] <= row["hi"] and row["lo"] < row["hi"]
    assert row["lo"] > 0 and row["excludes_zero"] is True
    assert out["verdict"]["gpt2"]["can_test"] is True
    assert out["verdict"]["gpt2"]["text"].startswith("this run can test the claim for gpt2")
    # the headline `dvc metrics show` prints: the verdict and the first tiny tag's paired contrast
    assert headline(out) == {"gpt2": {"can_test": True, "rho_standard": row["rho_standard"], "rho_tiny": row["rho_tiny"],
                                      "delta_rho": row["delta"], "delta_lo": row["lo"], "delta_hi": row["hi"]}}


def test_v4_identical_proxies_give_an_interval_around_zero():
    base, opt = interaction()
    ref = tuned(base, opt)
    runs, curves = study(base, opt, {1e-2: (1.0 + ref, 0.02)})
    tiny = runs[runs.lr == 1e-2].assign(lr=3e-4)  # the very same runs, tagged tiny too
    runs = pd.concat([runs, tiny], ignore_index=True)
    curves = pd.concat([curves, curves[curves.lr == 1e-2].assign(lr=3e-4)], ignore_index=True)
    row = run(runs, curves, n_boot=1000)["V4"][0]
    assert row["delta"] == 0.0 and row["hi"] > row["lo"]
    assert row["lo"] <= 0 <= row["hi"] and row["excludes_zero"] is False


def test_v3_pair_verdicts_list_only_pairs_within_noise():
    base, opt = null(6)
    base = np.array([3.0, 3.001, 3.05, 3.10, 3.15, 3.20])  # r00 and r01 planted 0.001 apart
    sigma = 0.005
    # noise +-sigma per seed: each recipe's sample variance is 2 sigma^2, so se = sqrt(2 * 2 sigma^2 / 2)
    runs, curves = study(base, opt, good_proxies(tuned(base, opt)), sigma=sigma, noise=np.ones(6))
    v3 = run(runs, curves)["V3"]
    se = math.sqrt(2 * 2 * sigma**2 / 2)
    assert v3["se"] == pytest.approx(se)
    assert v3["n_pairs"] == 15 and v3["n_separated"] == 14
    assert len(v3["within_noise"]) == 1
    a, b, diff, pair_se = v3["within_noise"][0]
    assert (a, b) == ("r00", "r01") and diff == pytest.approx(-0.001) and pair_se == pytest.approx(se)
    # identical seed rankings: the ceiling is perfect, and a faithful proxy reaches it
    assert v3["ceiling"] == pytest.approx(1.0) and v3["ceiling_mean"] == pytest.approx(1.0)
    std = next(r for r in v3["proxies"] if r["tag"] == "standard")
    assert std["pairwise_acc_separated"] == 1.0


def test_v3_proxy_rows_against_the_ceiling():
    base, opt = interaction()
    ref = tuned(base, opt)
    runs, curves = study(base, opt, {1e-2: (7.0 - ref, 1e-3), 3e-4: (1.5 + ref, 1e-3)}, sigma=2e-3)
    v3 = run(runs, curves)["V3"]
    rows = {r["tag"]: r for r in v3["proxies"]}
    assert 0.5 < v3["ceiling"] < 1.0
    assert v3["ceiling_mean"] == pytest.approx(2 * v3["ceiling"] / (1 + v3["ceiling"]))
    assert rows["standard"]["above_ceiling"] is False and rows["standard"]["pairwise_acc"] < 0.1
    assert rows["tiny30"]["pairwise_acc_separated"] >= rows["tiny30"]["pairwise_acc"] > 0.9


def test_rowwise_spearman_matches_metrics_spearman():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, size=(50, 9)).astype(float)  # many ties
    b = rng.normal(size=(50, 9))
    a[rng.random(a.shape) < 0.15] = np.nan
    b[3] = 1.0  # a constant row: undefined
    got = rowwise_spearman(a, b)
    for k in range(50):
        keep = np.isfinite(a[k]) & np.isfinite(b[k])
        want = spearman(a[k][keep], b[k][keep])
        assert (math.isnan(got[k]) and math.isnan(want)) or got[k] == pytest.approx(want)


def test_bootstrap_is_fast_at_study_size():
    """23 recipes x 8 reference LRs x 2 seeds, 1000 replicates: the default study's shape."""
    base = 3.0 + 0.01 * np.arange(23)
    opt = planted_optima(23, 8.0, np.random.default_rng(2))
    grid = GRID[:8]
    runs, curves = study(base, opt, good_proxies(tuned(base, opt, grid)), grid=grid)
    start = time.perf_counter()
    out = run(runs, curves, n_boot=1000)
    assert time.perf_counter() - start < 10
    assert out["V4"][0]["n_boot"] == 1000


# --------------------------------------------------------------------------- inputs and output


@pytest.fixture(scope="module")
def small():
    base, opt = interaction(6)
    return study(base, opt, good_proxies(tuned(base, opt)))


@pytest.mark.parametrize("change, key", [
    (lambda r, c, l: (r.drop(columns="loss_mean"), c, l), "loss_mean"),
    (lambda r, c, l: (r, c.drop(columns="step"), l), "step"),
    (lambda r, c, l: (r[r.role != "reference"], c, l), "reference"),
    (lambda r, c, l: (r, c, {**l, "llama": {"standard": 1e-2}}), "llama"),
    (lambda r, c, l: (r, c, {"gpt2": {"standard": 1e-2, "tiny30": 5e-4}}), "0.0005"),
    (lambda r, c, l: (r, c, {"gpt2": {"tiny30": 3e-4}}), "standard"),
    (lambda r, c, l: (r, c, {"gpt2": {"standard": 1e-2, "huge": 3e-4}}), "huge"),
])
def test_bad_inputs_name_the_key(small, change, key):
    runs, curves, lrs = change(*small, {"gpt2": {"standard": 1e-2, "tiny30": 3e-4}})
    with pytest.raises(ValueError, match=key):
        validity(runs, curves, lrs, thresholds=TH, n_boot=10, seed=0)


def test_lrs_read_back_from_text_still_match(small):
    runs, curves = small
    runs = runs.assign(lr=runs.lr * (1 + 1e-13))
    out = run(runs, curves, lrs={"gpt2": {"standard": 0.01, "tiny30": 0.0003}}, n_boot=10)
    assert out["lrs"]["gpt2"] == {"standard": 1e-2, "tiny30": 3e-4}


def test_output_is_strict_json(small):
    runs, curves = small
    runs = runs.copy()
    runs.loc[runs.index[-1], "loss_mean"] = np.nan  # a NaN must come out as null, not NaN
    out = run(runs, curves, n_boot=20)
    text = json.dumps(out, allow_nan=False)
    verdict = json.loads(text)["verdict"]["gpt2"]
    assert verdict["can_test"] is False and verdict["text"].startswith("this run cannot test the claim for gpt2")
    assert "V2 (proxies learned) failed at tiny30 (lr 0.0003)" in verdict["text"]
