"""theory: the random-feature theorem simulated: agreement with the optimal order vs LR and width."""
from proxyrank import stage
from proxyrank.analysis.theory import study
from proxyrank.files import atomic_path, write_json
from proxyrank.paths import REPORTS


def main(p):
    table, summaries = study(p.theory, p.train.workers)
    with atomic_path(REPORTS / "theory.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    write_json(REPORTS / "theory.json", summaries)
    for s in summaries:  # a statistic undefined in a world (every run diverged) is None
        small, large = (f"{x:.2f}" if x is not None else "n/a" for x in (s["spearman_smallest_lr"],
                                                                         s["spearman_largest_lr"]))
        print(f"theory world {s['seed']}: Spearman {small} at the smallest LR, {large} at the largest "
              f"(width {s['largest_width']})")


if __name__ == "__main__":
    stage.main("theory", main)
