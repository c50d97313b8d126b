"""figures: every figure of the report (figures/*.png) and the plot tables dvc plots reads."""
from proxyrank import stage
from proxyrank.paths import REPORTS
from proxyrank.reporting.figures import figures


def main(p):
    figures(p, REPORTS)


if __name__ == "__main__":
    stage.main("figures", main)
