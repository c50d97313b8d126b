"""The default study's wall time stage by stage, and what the stage granularity buys.

    .venv/bin/python bench/study_wall.py [--timings data/timings] [--since 2026-11-27T10:00] \
        [--recipe mix-natural] > bench/results/default_study_cpu.md

1. stage table: from the timing files every stage appends to (data/timings/<stage>.jsonl, kept
   out of the DVC outputs so that their hashes do not depend on the machine: proxyrank/timings.py),
   each stage's latest line (at or after --since: run `dvc repro -f` first for a whole study);
   then the training runs' own seconds and throughput per role, from the same files.
2. one recipe's proxy runs, trained as the pipeline trains them (one process, two forked
   1-thread workers, longest first) against one at a time, one process per run (what a DVC stage
   per run would do: every run pays the ~6 s import of transformers), in the same command.
   Both start from empty resume folders; the recipe's data come from the finished study.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxyrank import timings# noqa: E402

RUN = """
import sys
from pathlib import Path
from proxyrank.data import tokens
from proxyrank.paths import RECIPES, TOKENIZER, TOKENS
from proxyrank.config import load_params
from proxyrank.training.train import run_all, run_specs
recipe, index, workers, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
p = load_params()
specs = run_specs(p, recipe, "proxy")
specs = specs if index < 0 else specs[index:index + 1]
t = p.train.__class__(**{**p.train.__dict__, "workers": workers})
valid = {d: TOKENS / "valid" / f"{d}.npy" for d in p.split.valid_domains}
run_all(specs, t, RECIPES / recipe / "train.npy", valid, tokens.load(TOKENIZER).get_vocab_size(),
        tmp / "resume", tmp / "out")
"""


def _since(records: list[dict], since: str | None) -> list[dict]:
    """The records stamped at or after `since` (ISO 8601, UTC; a prefix such as a date will do)."""
    return [r for r in records if since is None or str(r.get("at", "")) >= since]


def stage_table(records: list[dict], dvc_yaml: Path = ROOT / "dvc.yaml") -> list[str]:
    """Seconds per stage kind (recipe@R for every R is one row), each stage's latest measurement,
    in dvc.yaml's order."""
    totals, counts = defaultdict(float), defaultdict(int)
    for stage, r in timings.latest(records, "stage", "stage").items():
        kind = stage.split("@", 1)[0]
        totals[kind] += float(r["wall_s"])
        counts[kind] += 1
    order = list(yaml.safe_load(dvc_yaml.read_text())["stages"]) if dvc_yaml.exists() else []
    kinds = sorted(totals, key=lambda k: (order.index(k) if k in order else len(order), k))
    rows = ["| stage | count | total s | mean s |", "|---|---:|---:|---:|"]
    rows += [f"| {s} | {counts[s]} | {totals[s]:.1f} | {totals[s] / counts[s]:.1f} |" for s in kinds]
    rows.append(f"| **all stages** | {sum(counts.values())} | {sum(totals.values()):.1f} | |")
    return rows


def run_table(records: list[dict]) -> list[str]:
    """The training runs' own seconds (summed over the forked workers, so above the stages' wall
    time) and throughput, per role; each run's latest measurement."""
    runs = list(timings.latest(records, "run", "fingerprint").values())
    rows = ["| role | runs | run s (sum) | mean s | tokens/s (mean) |", "|---|---:|---:|---:|---:|"]
    for role in sorted({r.get("role") for r in runs}, key=str):
        rs = [r for r in runs if r.get("role") == role]
        wall = sum(float(r["wall_s"]) for r in rs)
        speeds = [r["tokens_per_s"] for r in rs if isinstance(r.get("tokens_per_s"), (int, float))]
        speed = f"{sum(speeds) / len(speeds):,.0f}" if speeds else "n/a"
        rows.append(f"| {role} | {len(rs)} | {wall:.1f} | {wall / len(rs):.1f} | {speed} |")
    return rows


def _timed(args: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", RUN, *args, tmp], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def granularity(recipe: str) -> list[str]:
    from proxyrank.config import load_params
    from proxyrank.training.train import run_specs

    n = len(run_specs(load_params(ROOT / "params.yaml"), recipe, "proxy"))
    stage = _timed([recipe, "-1", "2"])
    alone = sum(_timed([recipe, str(i), "1"]) for i in range(n))
    return [f"Proxy runs of `{recipe}` ({n} runs), wall time including process starts:", "",
            "| how | wall s |", "|---|---:|",
            f"| one process, two forked 1-thread workers (the pipeline) | {stage:.1f} |",
            f"| one process per run, one after another | {alone:.1f} |",
            f"| ratio | {alone / stage:.2f}x |"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timings", type=Path, default=ROOT / timings.TIMINGS, help="default data/timings")
    ap.add_argument("--since", help="only measurements stamped at or after this UTC time (ISO 8601)")
    ap.add_argument("--recipe", default="mix-natural")
    ap.add_argument("--no-granularity", action="store_true", help="the tables only; train nothing")
    a = ap.parse_args()
    records = _since(timings.read(a.timings), a.since)
    if not records:
        raise SystemExit(f"no timing records in {a.timings}" + (f" since {a.since}" if a.since else "")
                         + ": run the study (`dvc repro -f`) first")
    print("\n".join(stage_table(records)))
    print()
    print("\n".join(run_table(records)))
    if not a.no_granularity:
        print()
        print("\n".join(granularity(a.recipe)))


if __name__ == "__main__":
    main()
