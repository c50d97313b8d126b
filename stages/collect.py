"""collect: every run's result and curve into reports/runs.csv and reports/curves.csv."""
from proxyrank import stage
from proxyrank.analysis.collect import collect
from proxyrank.paths import REPORTS, RUNS


def main(p):
    collect(p, RUNS, REPORTS / "runs.csv", REPORTS / "curves.csv")


if __name__ == "__main__":
    stage.main("collect", main)
