"""`proxyrank score`: a two-scale results table scored with the study's statistics (proxyrank/tools/score.py).

The reference numbers are DCLM's public Core scores (tests/data/dclm_core.csv, MIT licence, see
tests/data/dclm_core.NOTICE.md), whose exact rank statistics are worked out by hand in the issue.
"""
from __future__ import annotations

import json
import math
from itertools import combinations, permutations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from proxyrank.analysis import metrics
from proxyrank.cli import main
from proxyrank.tools.score import load, random_regret, regret_curve, score

DCLM = Path(__file__).parent / "data" / "dclm_core.csv"
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "reports" / "score" / "dclm-core"


def _stats(path, small, large="7B-1x", higher=True, **kw) -> dict:
    return score(load(path, small, large, higher_is_better=higher, **kw), n_boot=200, seed=0)


# --------------------------------------------------------------------------- DCLM, exact


@pytest.mark.parametrize("small, spearman, kendall, agree, regret1", [
    ("400M-1x", 47, 37, 46, 0.0067217619),  # the 400M top pick is 7B's second best
    ("1B-1x", 53, 47, 51, 0.0),
])
def test_dclm_exact_values(small, spearman, kendall, agree, regret1):
    out = _stats(DCLM, small)
    st = out["statistics"]
    assert out["n_recipes"] == 11 and out["n_pairs"] == 55
    assert st["spearman"]["value"] == pytest.approx(spearman / 55, abs=1e-12)
    assert st["kendall_tau_b"]["value"] == pytest.approx(kendall / 55, abs=1e-12)
    assert st["pairwise_accuracy"]["value"] == pytest.approx(agree / 55, abs=1e-12)
    assert (st["pairwise_accuracy"]["agree"], st["pairwise_accuracy"]["of"]) == (agree, 55)
    assert st["top1_regret"]["value"] == pytest.approx(regret1, abs=1e-10)
    assert out["top_pick"]["large"] == "cc_v4_bff1shards_OH_eli5_0.1"
    assert sum(p["verdict"] == "disagree" for p in out["pairs"]) == 55 - agree
    for stat in st.values():  # a real interval around the point value
        assert stat["lo"] <= stat["value"] <= stat["hi"] and stat["lo"] < stat["hi"]


def test_negated_table_lower_is_better_gives_identical_statistics(tmp_path):
    table = pd.read_csv(DCLM)
    cols = ["400M-1x", "1B-1x", "7B-1x"]
    table[cols] = -table[cols]
    table.to_csv(tmp_path / "negated.csv", index=False)
    for small in ("400M-1x", "1B-1x"):
        higher, lower = _stats(DCLM, small), _stats(tmp_path / "negated.csv", small, higher=False)
        for key in ("statistics", "regret", "pairs", "top_pick"):
            assert higher[key] == lower[key], key
        # the recipe table stays in each file's own units
        assert [r["large"] for r in lower["recipes"]] == [-r["large"] for r in higher["recipes"]]


def test_without_the_flag_a_score_is_read_as_a_loss():
    wrong = _stats(DCLM, "400M-1x", higher=False)
    assert wrong["top_pick"]["large"] == "c4_original"  # the worst Core score
    assert wrong["statistics"]["spearman"]["value"] == pytest.approx(47 / 55)  # ranks flip together
    assert wrong["statistics"]["top1_regret"]["value"] != pytest.approx(0.0067217619)


# --------------------------------------------------------------------------- regret and ties


def test_random_baseline_equals_brute_force():
    large = np.array([3.0, 1.0, 2.5, 1.0, 4.0, 2.0])  # a tie included
    best = large.min()
    brute = [np.mean([large[list(c)].min() - best for c in combinations(range(6), k)]) for k in range(1, 7)]
    assert random_regret(large) == pytest.approx(brute, abs=1e-12)
    assert random_regret(large)[-1] == 0


def test_regret_without_ties_is_the_metrics_curve():
    rng = np.random.default_rng(3)
    small, large = rng.normal(size=9), rng.normal(size=9)
    assert regret_curve(small, large) == pytest.approx(metrics.regret_curve(small, large), abs=1e-12)


def test_regret_with_ties_is_the_mean_over_tie_breaks():
    """Recipes tied at the small scale: every order of the rows gives one tie-break (stable sort), and
    the curve is their mean, so it cannot depend on the table's row order."""
    small = np.array([1.0, 1.0, 1.0, 2.0, 2.0])
    large = np.array([3.0, 1.0, 2.0, 0.5, 4.0])
    curves = [metrics.regret_curve(small[list(p)], large[list(p)]) for p in permutations(range(5))]
    assert regret_curve(small, large) == pytest.approx(np.mean(curves, axis=0), abs=1e-12)
    assert regret_curve(small[::-1], large[::-1]) == pytest.approx(regret_curve(small, large), abs=1e-12)


def _write(path: Path, rows: list[tuple], columns=("recipe", "small", "large")) -> Path:
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def test_ties_in_pairs_and_statistics(tmp_path):
    rows = [("a", 1.0, 2.0), ("b", 1.0, 1.0), ("c", 2.0, 3.0), ("d", 3.0, 3.0), ("e", 4.0, 5.0)]
    out = score(load(_write(tmp_path / "t.csv", rows), "small", "large"), n_boot=50)
    verdicts = {(p["better_at_large"], p["worse_at_large"]): p["verdict"] for p in out["pairs"]}
    assert verdicts[("b", "a")] == "tie at small"
    assert verdicts[("c", "d")] == "tie at large"
    pw = out["statistics"]["pairwise_accuracy"]
    assert (pw["agree"], pw["of"]) == (8.5, 9)  # the small tie counts 1/2, the large tie is left out
    small, large = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    assert pw["value"] == pytest.approx(metrics.pairwise_accuracy(small, large))
    assert out["statistics"]["kendall_tau_b"]["value"] == pytest.approx(metrics.kendall(small, large))
    assert out["statistics"]["top1_regret"]["value"] == pytest.approx(0.5)  # a or b, at random: (1 + 0) / 2


# --------------------------------------------------------------------------- seeds


OFFSET = np.array([0.3, -0.2, 0.1, -0.25])  # what each seed does to every recipe alike
NOISE = np.array([0.004, -0.003, 0.002, -0.004])


def _planted(path: Path) -> Path:
    """Losses of 4 recipes x 4 seeds. Each seed shifts every recipe alike (by up to 0.55, more than
    any gap), so only a paired difference separates A, B and D; B and C differ by seed noise alone,
    and the small scale orders them the other way."""
    large = {"A": 1.0 + OFFSET + NOISE, "B": 1.2 + OFFSET + np.array([0.02, -0.03, 0.01, -0.015]),
             "C": 1.2 + OFFSET, "D": 1.5 + OFFSET - NOISE}
    small = {"A": 2.0, "B": 2.3, "C": 2.2, "D": 2.5}
    rows = [(r, s, small[r] + OFFSET[s] / 2 + NOISE[s], large[r][s]) for r in large for s in range(4)]
    return _write(path, rows, ("recipe", "seed", "small", "large"))


def test_seeds_flag_a_pair_within_noise_as_not_separated(tmp_path):
    out = score(load(_planted(tmp_path / "seeds.csv"), "small", "large", seeds="seed"), n_boot=500)
    sep = {frozenset((p["better_at_large"], p["worse_at_large"])): p for p in out["pairs"]}
    assert not sep[frozenset("BC")]["separated"]
    assert sep[frozenset("BC")]["large_gap_lo"] < 0 < sep[frozenset("BC")]["large_gap_hi"]
    assert all(p["separated"] for k, p in sep.items() if k != frozenset("BC"))
    assert out["statistics"]["pairwise_accuracy"]["value"] == pytest.approx(5 / 6)  # B, C in the wrong order
    assert out["separated"] == {"pairs": 5, "of": 6, "pairwise_accuracy": 1.0, "agree": 5.0}
    means = {r["recipe"]: r["small"] for r in out["recipes"]}
    assert means["A"] == pytest.approx(2.0 + OFFSET.mean() / 2 + NOISE.mean())  # averaged over seeds


def test_seed_bootstrap_reduces_to_the_recipe_bootstrap(tmp_path):
    """With every seed row of a recipe identical, resampling seeds changes nothing: the intervals are
    metrics.bootstrap_ci's over recipes."""
    base = pd.read_csv(DCLM)
    rows = [(r, s, small, large) for r, small, large in zip(base["recipe"], base["400M-1x"], base["7B-1x"])
            for s in (0, 1)]
    path = _write(tmp_path / "twice.csv", rows, ("recipe", "seed", "400M-1x", "7B-1x"))
    with_seeds = score(load(path, "400M-1x", "7B-1x", seeds="seed", higher_is_better=True), n_boot=300)
    plain = score(load(DCLM, "400M-1x", "7B-1x", higher_is_better=True), n_boot=300)
    for key in ("spearman", "kendall_tau_b", "pairwise_accuracy", "top1_regret"):
        a, b = with_seeds["statistics"][key], plain["statistics"][key]
        assert (a["lo"], a["hi"]) == pytest.approx((b["lo"], b["hi"]), abs=1e-12), key
    lo, hi = metrics.bootstrap_ci(metrics.spearman, -base["400M-1x"], -base["7B-1x"], 300, 0)
    assert (plain["statistics"]["spearman"]["lo"], plain["statistics"]["spearman"]["hi"]) == (lo, hi)


# --------------------------------------------------------------------------- refusals


def _cli(capsys, path, *extra) -> tuple[int, str]:
    code = main(["score", str(path), "--small", "small", "--large", "large", "--n-boot", "20", *extra])
    return code, capsys.readouterr().err


GOOD = [("a", 1.0, 2.0), ("b", 2.0, 3.0), ("c", 3.0, 1.0)]


@pytest.mark.parametrize("rows, extra, expected", [
    (GOOD, ["--large", "big"], ["no column 'big' (--large)", "recipe, small, large"]),
    (GOOD, ["--recipe", "name"], ["no column 'name' (--recipe)"]),
    ([("a", 1.0, 2.0), ("b", "fast", 3.0), ("c", 3.0, 1.0)], [], ["recipe 'b'", "column 'small'", "'fast'"]),
    ([("a", 1.0, 2.0), ("b", 2.0, None), ("c", 3.0, 1.0)], [], ["recipe 'b'", "column 'large'", "empty"]),
    ([("a", 1.0, 2.0), ("b", 2.0, "nan"), ("c", 3.0, 1.0)], [], ["recipe 'b'", "column 'large'", "empty"]),
    ([("a", 1.0, 2.0), ("b", "inf", 3.0), ("c", 3.0, 1.0)], [], ["recipe 'b'", "not a finite number"]),
    (GOOD + [("a", 4.0, 4.0)], [], ["recipe 'a' has 2 rows", "--seeds"]),
    (GOOD[:2], [], ["2 recipe(s)", "at least 3"]),
    (GOOD, ["--large", "small"], ["--small and --large both name 'small'"]),
])
def test_refusals_are_one_line_naming_the_problem(tmp_path, capsys, rows, extra, expected):
    code, err = _cli(capsys, _write(tmp_path / "t.csv", rows), *extra)
    assert code == (2 if extra else 1)  # an option given wrong is a usage error, a table that cannot be used a runtime one
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, (text, err)


@pytest.mark.parametrize("rows, expected", [
    ([(r, s, 1.0 + i, 2.0 + i) for i, r in enumerate("abc") for s in (0, 1)] + [("b", 1, 5.0, 5.0)],
     ["recipe 'b'", "seed '1'", "one row per recipe and seed"]),
    ([(r, s, 1.0 + i, 2.0 + i) for i, r in enumerate("abc") for s in (0, 1)] + [("c", 2, 5.0, 5.0)],
     ["has seeds ['0', '1']", "recipe 'c' has ['0', '1', '2']", "same seeds"]),
    ([(r, 0, 1.0 + i, 2.0 + i) for i, r in enumerate("abc")], ["one seed per recipe", "drop --seeds"]),
])
def test_seed_refusals(tmp_path, capsys, rows, expected):
    path = _write(tmp_path / "s.csv", rows, ("recipe", "seed", "small", "large"))
    code, err = _cli(capsys, path, "--seeds", "seed")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    for text in expected:
        assert text in err, (text, err)


def test_unknown_suffix_and_missing_file_are_refused(tmp_path, capsys):
    (tmp_path / "t.xlsx").write_text("x")
    assert _cli(capsys, tmp_path / "t.xlsx")[1].count("give a .csv or .parquet table") == 1
    code, err = _cli(capsys, tmp_path / "absent.csv")
    assert code == 1 and "absent.csv: no such file" in err


# --------------------------------------------------------------------------- inputs and outputs


def test_parquet_input_matches_csv(tmp_path):
    pd.read_csv(DCLM).to_parquet(tmp_path / "dclm.parquet", index=False)
    from_parquet = _stats(tmp_path / "dclm.parquet", "400M-1x")
    assert from_parquet["statistics"] == _stats(DCLM, "400M-1x")["statistics"]


def test_parquet_with_text_in_a_number_column_is_refused(tmp_path, capsys):
    pd.DataFrame({"recipe": list("abc"), "small": ["1", "x", "3"], "large": [1.0, 2.0, 3.0]}).to_parquet(
        tmp_path / "t.parquet")
    code, err = _cli(capsys, tmp_path / "t.parquet")
    assert code == 1 and "recipe 'b', column 'small': 'x' is not a finite number" in err


def test_cli_writes_the_four_outputs_and_a_real_picture(tmp_path, capsys, monkeypatch):
    import matplotlib.image as mpimg
    from matplotlib.figure import Figure

    axes = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (axes.append(len(fig.axes)), original(fig, *a, **k)))
    monkeypatch.chdir(tmp_path)
    table = _planted(tmp_path / "planted.csv")
    assert main(["score", str(table), "--small", "small", "--large", "large", "--seeds", "seed",
                 "--n-boot", "100"]) == 0
    out = tmp_path / "reports" / "score" / "planted"  # the default folder
    assert sorted(p.name for p in out.iterdir()) == ["pairs.csv", "regret.csv", "score.json", "score.md",
                                                     "score.png"]
    summary = json.loads((out / "score.json").read_text())
    assert summary["run"]["seeds"] == "seed" and summary["run"]["n_seeds"] == 4
    assert len(pd.read_csv(out / "pairs.csv")) == 6 and len(pd.read_csv(out / "regret.csv")) == 4
    md = (out / "score.md").read_text()
    assert "Pairs the large scale cannot separate (1)" in md and "![" in md and "score.png" in md
    assert axes == [2]
    pixels = mpimg.imread(out / "score.png")[..., :3]
    height, width = pixels.shape[:2]
    assert width >= 1000 and height >= 400, (width, height)
    ink = (pixels < 0.9).any(axis=-1).mean()
    assert ink > 0.03, ink
    assert "pairwise accuracy" in capsys.readouterr().out


def test_same_seed_same_outputs(tmp_path):
    for name in ("a", "b"):
        assert main(["score", str(DCLM), "--small", "400M-1x", "--large", "7B-1x", "--higher-is-better",
                     "--n-boot", "100", "--seed", "5", "--out", str(tmp_path / name)]) == 0
    assert (tmp_path / "a" / "score.json").read_text() == (tmp_path / "b" / "score.json").read_text()


def test_committed_worked_example_is_current():
    """reports/score/dclm-core/ was made by the command on tests/data/dclm_core.csv; its numbers
    must be what the code gives now."""
    committed = json.loads((EXAMPLE / "score.json").read_text())
    run = committed["run"]
    assert (run["small"], run["large"], run["higher_is_better"]) == ("400M-1x", "7B-1x", True)
    fresh = score(load(ROOT / run["table"], run["small"], run["large"], higher_is_better=True),
                  n_boot=run["n_boot"], seed=run["seed"])
    for key, stat in committed["statistics"].items():
        assert fresh["statistics"][key] == pytest.approx(stat, abs=1e-9), key
    assert [r["regret"] for r in fresh["regret"]] == pytest.approx([r["regret"] for r in committed["regret"]])
    assert math.isclose(committed["statistics"]["top1_regret"]["value"], 0.0067217619, abs_tol=1e-10)
