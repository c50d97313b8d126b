"""The report renders from a small synthetic runs table, numbers taken from metrics and validity
(figures: tests/test_figures.py)."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from proxyrank.config import parse_params
from proxyrank.files import write_json
from proxyrank.analysis.collect import collect
from proxyrank.analysis.metrics import analyze
from proxyrank.reporting.figures import figures
from proxyrank.reporting.report import write_report
from proxyrank.analysis.theory import study
from proxyrank.analysis.validity import Thresholds, validity


@pytest.fixture
def reports(tmp_path, params_dict):
    first = params_dict["proxies"][0]  # a second seed at the standard and the tiny LR only
    first.update(seeds=[0, 1], seed_lrs=[params_dict["analysis"]["standard_lr"][first["family"]],
                                         params_dict["analysis"]["tiny_lr"]])
    params_dict["ladder"] = {"rungs": {"small": {"set": {"train.proxy_tokens": 4096}}, "big": {"gpu": True}}}
    p = parse_params(params_dict)
    rng = np.random.default_rng(0)
    quality = {name: i * 0.1 for i, name in enumerate(p.recipes)}
    rows, curves = [], []
    specs = [("proxy", s.family, lr, seed) for s in p.proxies for lr, seed in s.runs()]
    specs += [("reference", p.reference.family, lr, seed) for lr in p.reference.lrs for seed in p.reference.seeds]
    for recipe, q in quality.items():
        for role, fam, lr, seed in specs:
            loss = 5 + q + abs(np.log10(lr) + 3) * 0.2 + rng.normal(0, 0.01)
            domains = {f"loss_{d}": loss + rng.normal(0, 0.05) for d in p.split.valid_domains}
            rows.append({"recipe": recipe, "group": p.recipes[recipe].group, "role": role, "family": fam,
                         "model": "m", "n_params": 1000, "lr": lr, "seed": seed, "tokens": 100, "steps": 2,
                         "diverged": False, "loss_mean": loss, **domains,
                         "half_a_loss": loss + rng.normal(0, 0.01), "half_b_loss": loss + rng.normal(0, 0.01)})
            for step in (0, 1, 2):
                curves.append({"role": role, "recipe": recipe, "run_id": "r", "family": fam, "lr": lr,
                               "seed": seed, "step": step, "tokens": step * 50, "loss_mean": loss + 1 / max(step, 0.5)})
        write_json(tmp_path / "recipes" / f"{recipe}.json",
                   {"recipe": recipe, "group": p.recipes[recipe].group, "source": p.recipes[recipe].source,
                    "docs": 3, "tokens": 100, "filters": ["c4"], "dedup": "exact", "duplicate_rate": 0.25,
                    "shares": {"code": 1.0}, "domain_shares": {"code": 1.0},
                    "removed": {"c4_min_sentences": {"docs": 7, "chars": 700}}})
    runs = pd.DataFrame(rows)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    pd.DataFrame(curves).to_csv(tmp_path / "curves.csv", index=False)
    headline, detail = analyze(runs, standard_lr=p.analysis.standard_lr, tiny_ratios=p.analysis.tiny_ratios,
                               tiny_lr=p.analysis.tiny_lr, n_boot=20, seed=0, curves=pd.DataFrame(curves),
                               alignment=pd.DataFrame(
                                   [{"family": s.family, "seed": 0, "state": state, "recipe": r, "alignment": q + k,
                                     "adam_alignment": q, "cosine": -q, "tokens": 30.0}
                                    for s in p.proxies for k, state in enumerate(("init", "warm"))
                                    for r, q in quality.items()]))
    pd.DataFrame([{"rung": "small", "family": s.family, "proxy_preset": s.preset, "proxy_params": 1000,
                   "proxy_tokens": 4096, "reference_preset": p.reference.preset, "reference_params": 5000,
                   "reference_tokens": 8192, "reference_flops": 3e10, "standard_lr": 3e-3, "tiny_lr": 1e-5,
                   "spearman_standard": 0.5, "spearman_standard_lo": 0.1, "spearman_standard_hi": 0.8,
                   "spearman_tiny": -0.25, "spearman_tiny_lo": -0.6, "spearman_tiny_hi": 0.2,
                   "best_spearman_lr": 1e-4, "best_spearman": 0.75} for s in p.proxies]).to_csv(
        tmp_path / "ladder.csv", index=False)
    table, worlds = study(p.theory)  # the smoke profile's small simulation
    table.to_csv(tmp_path / "theory.csv", index=False)
    write_json(tmp_path / "theory.json", worlds)
    write_json(tmp_path / "metrics.json", headline)
    write_json(tmp_path / "analysis.json", detail)
    write_json(tmp_path / "validity.json", validity(runs, pd.DataFrame(curves), {f: v["lrs"] for f, v in
                                                                                  detail["picked"].items()},
                                                     thresholds=Thresholds(), n_boot=20, seed=0))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_dict, sort_keys=False))  # the rungs' base
    return p, tmp_path


def test_report_numbers_come_from_metrics(reports):
    p, folder = reports
    figures(p, folder)
    write_report(p, folder, folder / "params.yaml")
    text = (folder / "report.md").read_text()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert f"over {metrics['n_recipes']} recipes ({metrics['n_pairs']} pairs)" in text
    runs = pd.read_csv(folder / "runs.csv")  # no wall time: it would make the report differ run to run
    assert f"- Compute: {len(runs)} runs, {runs.tokens.sum():,} training tokens in all." in text
    assert "min of training" not in text and "bench/results/default_study_cpu.md" in text
    checks = json.loads((folder / "validity.json").read_text())
    assert text.index("## Can this run test the claim?") < text.index("## Setup") < text.index("## Headline")
    for fam, verdict in checks["verdict"].items():  # the verdict opens the report, per family
        assert f"- **{fam}**: {verdict['text']}." in text
    assert f"neighbours {checks['V1']['grid_max_ratio']:.2f}x apart (`V1.grid_max_ratio`)" in text
    for row in checks["V4"]:
        assert f"| {row['family']} | {row['tag']} | " in text and f"{row['delta']:.3f} [{row['lo']:.2f}, " in text
    for fam in p.analysis.standard_lr:
        lr = metrics[fam]["standard_lr"]
        assert f"| {fam} | standard | {lr:.3g} | {metrics[fam]['spearman_standard']:.3f} [" in text
        assert f"| {fam} | tiny30 | {metrics[fam]['tiny30_lr']:.3g} | {metrics[fam]['spearman_tiny30']:.3f} [" in text
    assert f"random pick, {metrics['random_regret1']:.3f} (`random_regret1`)" in text
    assert "**Does the finding reproduce at this scale?** This run cannot answer it" in text
    assert "## Compute-reliability frontier" in text and "| 0 tok | 50 tok | 100 tok |" in text
    assert "**Cheapest proxy budget reaching Spearman 0.9**" in text and "figures/frontier.png" in text
    fam = p.proxies[0].family
    assert "## Scale ladder" in text and "figures/ladder.png" in text
    assert "## The theorem, simulated" in text and "figures/theory.png" in text
    assert "| 256 | " in text and "| drift, 256 | " in text and "in 2 worlds" not in text
    assert "of 2 worlds" in text and "world 0: " in text and "world 1: " in text
    assert "## Zero-training proxy: gradient alignment" in text
    assert f"| {fam} | init | alignment | -1.000 [" in text and "| 0.300 |" in text
    assert (f"| small | {fam} | {p.proxies[0].preset} (0.00M, 4,096) | {p.reference.preset} (0.01M, 8,192) | 3e+10 | "
            f"0.500 [0.10, 0.80] | -0.250 [-0.60, 0.20] | 0.0001 (0.75) | standard (CIs overlap) |") in text
    # the GPU rung `big` is the params file itself: its runs counted here, its command named
    big = len(p.recipes) * (sum(len(list(s.runs())) for s in p.proxies) + len(p.reference.lrs) * len(p.reference.seeds))
    assert "**Only a GPU can settle**" in text and f"- `big`: {big:,} runs, " in text
    assert "GPU-hours; run it on a machine with CUDA: `python -m proxyrank ladder big`." in text
    assert "Declared but not measured yet" not in text  # `small` is measured, `big` is a GPU rung
    fam = p.proxies[0].family
    assert "## Seed spread" in text and f"seeds [0, 1] at {p.analysis.standard_lr[fam]:g}" in text
    assert f"| {fam} | {p.analysis.standard_lr[fam]:g} | 2 | " in text
    assert f"| {fam} | {p.proxies[0].lrs[1]:g} | 2 | " not in text or p.proxies[0].lrs[1] == p.analysis.tiny_lr
    assert all(f"| {r} | {p.recipes[r].group} | {p.recipes[r].source} | c4, dedup exact | 3 | 100 | 0.250 | "
               f"c4_min_sentences 7 | code 1.00 |" in text for r in p.recipes)


def test_collect_keeps_timings_out_of_the_tables(tmp_path, params_dict, capsys):
    """runs.csv and curves.csv hold what the runs' inputs determine: a run JSON with wall time and
    throughput in it (an older version's) gives the same bytes as one without."""
    p = parse_params(params_dict)
    recipe = next(iter(p.recipes))
    run = {"recipe": recipe, "role": "proxy", "family": "gpt2", "preset": "gpt2-nano", "lr": 1e-3, "seed": 0,
           "tokens": 4096, "run_id": "gpt2-nano-lr1e-03-s0", "n_params": 1000, "steps": 2, "tokens_trained": 4096,
           "device": "cpu", "world_size": 1, "train_flops": 10, "diverged": False, "loss_mean": 4.0,
           "half_a_loss": 4.1, "half_b_loss": 3.9,
           "curve": [{"step": 2, "tokens": 4096, "train_loss": 4.1, "loss_mean": 4.0}],
           **{f"loss_{d}": 4.0 for d in p.split.valid_domains}}
    timed = {**run, "wall_s": 3.25, "resumed_from_step": 1, "tokens_per_s": 99.0, "tflops_per_s": None, "mfu": None}
    tables = []
    for name, record in (("plain", run), ("timed", timed)):
        write_json(tmp_path / name / "runs" / "proxies" / recipe / "x.json", record)
        collect(p, tmp_path / name / "runs", tmp_path / name / "runs.csv", tmp_path / name / "curves.csv")
        tables.append([(tmp_path / name / f).read_bytes() for f in ("runs.csv", "curves.csv")])
    assert tables[0] == tables[1]
    columns = set(pd.read_csv(tmp_path / "plain" / "runs.csv").columns)
    assert not {"wall_s", "resumed_from_step", "tokens_per_s", "mfu"} & columns and "loss_mean" in columns
    assert "4,096 training tokens" in capsys.readouterr().out


def test_report_shows_what_each_rule_removed_by_damage(reports):
    """The curation-precision table comes from curate.json's `removed_by_damage`: every rule that
    removed a page, clean pages with their share, and a flag past 5% of the clean pages."""
    from proxyrank.curation.filters import removals_by_damage

    p, folder = reports
    clean = np.array([True] * 40 + [False] * 10)
    c4 = ["c4_min_sentences" if i in (0, 1, 45) else None for i in range(50)]
    gq = ["gopher_alpha_words" if i in (2, 3, 4) else None for i in range(50)]
    write_json(folder / "curate.json", {"pages": 50, "removed_by_damage": removals_by_damage(
        {"c4": c4, "gopher_quality": gq}, {"clean": clean, "spam": ~clean})})
    write_report(p, folder, folder / "params.yaml")
    text = (folder / "report.md").read_text()
    assert "### What each rule removed, by the crawl's record of damage" in text
    assert "| rule | clean | spam |" in text and "| *pages in the crawl* | 40 | 10 |" in text
    assert "| c4_min_sentences | 2 (5.0%) | 1 |" in text  # 5% is not more than 5%: not flagged
    assert "| **gopher_alpha_words (flagged)** | 3 (7.5%) | 0 |" in text
    assert "| c4_empty |" not in text  # rules that removed nothing stay in the JSON only
    assert "| *gopher_quality, any rule* | 3 (7.5%) | 0 |" in text
    assert "Flagged (more than 5% of clean pages removed): gopher_alpha_words." in text


def test_the_ladder_answers_along_each_axis(tmp_path):
    """Where the tiny LR wins with a CI above 0 on a rung that can test the claim, and where a check fails."""
    import test_figures
    from proxyrank.reporting.report import _ladder_axes, _ladder_validity

    test_figures.ladder_rows(tmp_path / "ladder.csv")
    ladder = pd.read_csv(tmp_path / "ladder.csv")
    text = "\n".join(_ladder_axes(ladder))
    steps = next(line for line in text.splitlines() if line.startswith("- *proxy optimizer steps*"))
    assert "measured at default (97), long (5000)" in steps
    assert "beats the standard one with a CI above 0 at long/gpt2 +0.40 [+0.10, +0.70]" in steps
    assert "fails, so the rung cannot answer, at default/gpt2" in steps
    tpp = next(line for line in text.splitlines() if line.startswith("- *reference tokens per parameter*"))
    assert "CI above 0 at no valid rung" in tpp  # tpp5 can test, but its CI covers 0
    table = "\n".join(_ladder_validity(ladder, ["small"]))
    assert "| small | gpt2 | n/a | n/a | measured before the validity checks: rerun `python -m proxyrank ladder small`" in table
    assert "a rung no longer declared" in "\n".join(_ladder_validity(ladder, []))
    assert "| long | gpt2 | 5,000 | 0.87 | pass | pass | pass | 0.90 | +0.40 [+0.10, +0.70] | yes |" in table
