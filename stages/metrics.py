"""metrics: rank agreement, regret and the validity checks V1-V4 (metrics.json, validity.json), and
the headline DVC shows (`dvc metrics show`: reports/headline/<family>.json, a row per family)."""
import pandas as pd

from proxyrank import stage
from proxyrank.analysis.metrics import analyze
from proxyrank.analysis.validity import headline, validity
from proxyrank.files import atomic_dir, write_json
from proxyrank.paths import REPORTS


def main(p):
    runs, curves = pd.read_csv(REPORTS / "runs.csv"), pd.read_csv(REPORTS / "curves.csv")
    a = p.analysis
    metrics, detail = analyze(runs, standard_lr=a.standard_lr, tiny_ratios=a.tiny_ratios, tiny_lr=a.tiny_lr,
                              n_boot=a.n_boot, seed=p.seed, curves=curves, frontier_target=a.frontier_target,
                              alignment=pd.read_csv(REPORTS / "alignment.csv"))
    checks = validity(runs, curves, {fam: v["lrs"] for fam, v in detail["picked"].items()},
                      thresholds=a.validity, n_boot=a.n_boot, seed=p.seed)
    write_json(REPORTS / "analysis.json", detail)
    write_json(REPORTS / "metrics.json", metrics)
    write_json(REPORTS / "validity.json", checks)
    with atomic_dir(REPORTS / "headline") as out:
        for fam, row in headline(checks).items():
            write_json(out / f"{fam}.json", row)
    for v in checks["verdict"].values():
        print(f"metrics: {v['text']}")


if __name__ == "__main__":
    stage.main("metrics", main)
