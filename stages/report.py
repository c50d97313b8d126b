"""report: reports/report.md, opening with whether this run can test the claim."""
from proxyrank import stage
from proxyrank.paths import REPORTS
from proxyrank.reporting.report import write_report


def main(p):
    write_report(p, REPORTS)


if __name__ == "__main__":
    stage.main("report", main)
