"""Figures and the report render from a small synthetic runs table, numbers taken from metrics."""
import json

import numpy as np
import pandas as pd
import pytest

from proxyrank.config import parse_params
from proxyrank.files import write_json
from proxyrank.metrics import analyze
from proxyrank.report import figures, write_report


@pytest.fixture
def reports(tmp_path, params_dict):
    p = parse_params(params_dict)
    rng = np.random.default_rng(0)
    quality = {name: i * 0.1 for i, name in enumerate(p.recipes)}
    rows, curves = [], []
    specs = [("proxy", s.family, lr, seed) for s in p.proxies for lr in s.lrs for seed in s.seeds]
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
                               n_boot=20, seed=0)
    write_json(tmp_path / "metrics.json", headline)
    write_json(tmp_path / "analysis.json", detail)
    return p, tmp_path


def test_figures_render_as_png(reports):
    p, folder = reports
    figures(p, folder)
    names = sorted(f.name for f in (folder / "figures").iterdir())
    flips = any(f["largest_flip"] for f in json.loads((folder / "analysis.json").read_text())["flips"])
    expected = ["loss_scatter.png", "per_domain_spearman.png", "spearman_vs_lr.png", "topk_regret.png",
                "training_curves.png"] + (["flip.png"] if flips else [])
    assert names == sorted(expected)
    assert all((folder / "figures" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)
    plot = pd.read_csv(folder / "plots" / "spearman_vs_lr.csv")
    assert list(plot.columns) == ["lr", "gpt2", "pythia", "opt"]


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
    assert all(f"| {r} | {p.recipes[r].group} | {p.recipes[r].source} | c4, dedup exact | 3 | 100 | 0.250 | "
               f"c4_min_sentences 7 | code 1.00 |" in text for r in p.recipes)
