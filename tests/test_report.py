"""Figures and the report render from a small synthetic runs table, numbers taken from metrics."""
import json

import numpy as np
import pandas as pd
import pytest

from proxyrank.config import parse_params
from proxyrank.files import write_json
from proxyrank.metrics import analyze
from proxyrank.report import figures, write_report
from proxyrank.theory import study


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
                         "wall_s": 1.0, "diverged": False, "loss_mean": loss, **domains})
            for step in (1, 2):
                curves.append({"role": role, "recipe": recipe, "run_id": "r", "family": fam, "lr": lr,
                               "seed": seed, "step": step, "tokens": step * 50, "loss_mean": loss + 1 / step})
        write_json(tmp_path / "recipes" / f"{recipe}.json",
                   {"recipe": recipe, "group": p.recipes[recipe].group, "source": p.recipes[recipe].source,
                    "docs": 3, "tokens": 100, "filters": ["c4"], "dedup": "exact", "duplicate_rate": 0.25,
                    "shares": {"code": 1.0}, "domain_shares": {"code": 1.0},
                    "removed": {"c4_min_sentences": {"docs": 7, "chars": 700}}})
    runs = pd.DataFrame(rows)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    pd.DataFrame(curves).to_csv(tmp_path / "curves.csv", index=False)
    headline, detail = analyze(runs, standard_lr=p.analysis.standard_lr, tiny_lr=p.analysis.tiny_lr,
                               n_boot=20, seed=0, curves=pd.DataFrame(curves), alignment=pd.DataFrame(
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
    return p, tmp_path


def test_figures_render_as_png(reports):
    p, folder = reports
    figures(p, folder)
    names = sorted(f.name for f in (folder / "figures").iterdir())
    flips = any(f["largest_flip"] for f in json.loads((folder / "analysis.json").read_text())["flips"])
    expected = ["loss_scatter.png", "per_domain_spearman.png", "spearman_vs_lr.png", "topk_regret.png",
                "training_curves.png", "frontier.png", "ladder.png", "theory.png"] + (["flip.png"] if flips else [])
    assert names == sorted(expected)
    assert all((folder / "figures" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)
    plot = pd.read_csv(folder / "plots" / "spearman_vs_lr.csv")
    assert list(plot.columns) == ["lr", "gpt2", "pythia", "opt"]
    curves = pd.read_csv(folder / "plots" / "curves.csv")
    assert list(curves.columns) == ["tokens"] + [f"{f}_{t}" for f in ("gpt2", "pythia", "opt")
                                                 for t in ("standard", "tiny")]
    raw = pd.read_csv(folder / "curves.csv")
    fam = p.proxies[0].family
    tiny = raw[(raw.role == "proxy") & (raw.family == fam) & np.isclose(raw.lr, p.analysis.tiny_lr)]
    assert curves[f"{fam}_tiny"].tolist() == pytest.approx(tiny.groupby("tokens").loss_mean.mean().tolist())


def test_report_numbers_come_from_metrics(reports):
    p, folder = reports
    figures(p, folder)
    write_report(p, folder)
    text = (folder / "report.md").read_text()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert f"over {metrics['n_recipes']} recipes ({metrics['n_pairs']} pairs)" in text
    for fam in p.analysis.standard_lr:
        assert f"| {fam} | {metrics[fam]['spearman_standard']:.3f} [" in text
    assert "**Does the finding reproduce at this scale?**" in text
    assert "## Compute-reliability frontier" in text and "| 50 tok | 100 tok |" in text
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
    assert "Declared but not measured yet: big (GPU rungs: big)." in text
    fam = p.proxies[0].family
    assert "## Seed spread" in text and f"seeds [0, 1] at {p.analysis.standard_lr[fam]:g}" in text
    assert f"| {fam} | {p.analysis.standard_lr[fam]:g} | 2 | " in text
    assert f"| {fam} | {p.proxies[0].lrs[1]:g} | 2 | " not in text or p.proxies[0].lrs[1] == p.analysis.tiny_lr
    assert all(f"| {r} | {p.recipes[r].group} | {p.recipes[r].source} | c4, dedup exact | 3 | 100 | 0.250 | "
               f"c4_min_sentences 7 | code 1.00 |" in text for r in p.recipes)
