"""Training curves in DVCLive's format while a stage trains, for `dvc plots show` and VS Code's DVC extension.

On under `dvc exp run` (which sets DVC_EXP_BASELINE_REV) or with PROXYRANK_LIVE=1; off in a plain `dvc
repro` or with PROXYRANK_LIVE=0, since importing DVCLive and opening a Live cost ~1.5 s per training stage
here (about a minute of the default's hour) and the stage's own progress lines say how far it is.

One DVCLive folder per training stage, data/live/<proxies|references>/<recipe>/ (training/recipe.py
names it; run_all writes it), with one series per run
(plots/metrics/<run_id>/<metric>.tsv, step = optimizer steps) and the last point of each in metrics.json.
A run is logged when it finishes (and, at a stage's start, every run it resumes), in the stage's own
process: the forked workers never write to it. The folder is no DVC output, like data/timings/: DVCLive's
files carry wall-clock times, and the cached outputs hold only what their inputs determine.
    dvc plots show data/live/references/mix-natural/plots/metrics
"""
from __future__ import annotations

import os
from pathlib import Path

from proxyrank.errors import ParamsError

METRICS = ("loss_mean", "train_loss")


def wanted() -> bool:
    """PROXYRANK_LIVE=1 or 0 decides; unset or empty, on inside `dvc exp run` only."""
    flag = os.environ.get("PROXYRANK_LIVE", "")
    if flag not in ("", "0", "1"):
        raise ParamsError(f"PROXYRANK_LIVE={flag!r}: give 1 (log training curves with DVCLive), 0 (do not), "
                          "or leave it unset (log them under `dvc exp run` only)")
    return flag == "1" if flag else bool(os.environ.get("DVC_EXP_BASELINE_REV"))


class StageLive:
    """One stage's DVCLive folder; `run(result)` logs a finished run's curve, `close()` ends it."""

    def __init__(self, folder: Path):
        from dvclive import Live

        self.live = Live(dir=str(folder), resume=False, report=None, save_dvc_exp=False, dvcyaml=None,
                         monitor_system=False)

    def run(self, result: dict) -> None:
        for point in result["curve"]:
            self.live.step = point["step"]
            for name in METRICS:
                if point.get(name) is not None:
                    self.live.log_metric(f"{result['run_id']}/{name}", point[name])
        self.live.make_summary()

    def close(self) -> None:
        self.live.end()


def open_live(folder: Path | None) -> StageLive | None:
    """A StageLive on `folder` if there is one and live logging is wanted, else None."""
    return StageLive(folder) if folder is not None and wanted() else None
