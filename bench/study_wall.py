"""The default study's wall time stage by stage, and what the stage granularity buys.

    .venv/bin/python bench/study_wall.py LOG [--recipe mix-natural] > bench/results/default_study_cpu.md

1. stage table: parsed from the log of a `dvc repro` of the whole study (`dvc repro -f > LOG`):
   each stage prints `proxyrank STAGE: done in S s`.
2. one recipe's proxy runs, trained as the pipeline trains them (one process, two forked
   1-thread workers, longest first) against one at a time, one process per run (what a DVC stage
   per run would do: every run pays the ~6 s import of transformers), in the same command.
   Both start from empty resume folders; the recipe's data come from the finished study.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUN = """
import sys
from pathlib import Path
from proxyrank import tokens
from proxyrank.cli import RECIPES, TOKENIZER, TOKENS
from proxyrank.config import load_params
from proxyrank.train import run_all, run_specs
recipe, index, workers, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
p = load_params()
specs = run_specs(p, recipe, "proxy")
specs = specs if index < 0 else specs[index:index + 1]
t = p.train.__class__(**{**p.train.__dict__, "workers": workers})
valid = {d: TOKENS / "valid" / f"{d}.npy" for d in p.split.valid_domains}
run_all(specs, t, RECIPES / recipe / "train.npy", valid, tokens.load(TOKENIZER).get_vocab_size(),
        tmp / "resume", tmp / "out")
"""


def stage_table(log: Path) -> list[str]:
    totals, counts = defaultdict(float), defaultdict(int)
    for stage, seconds in re.findall(r"^proxyrank (\w+)(?: [\w-]+)?: done in ([\d.]+) s", log.read_text(), re.M):
        totals[stage] += float(seconds)
        counts[stage] += 1
    rows = ["| stage | count | total s | mean s |", "|---|---:|---:|---:|"]
    rows += [f"| {s} | {counts[s]} | {totals[s]:.1f} | {totals[s] / counts[s]:.1f} |" for s in totals]
    rows.append(f"| **all stages** | {sum(counts.values())} | {sum(totals.values()):.1f} | |")
    return rows


def _timed(args: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", RUN, *args, tmp], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def granularity(recipe: str) -> list[str]:
    from proxyrank.config import load_params
    from proxyrank.train import run_specs

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
    ap.add_argument("log", type=Path)
    ap.add_argument("--recipe", default="mix-natural")
    a = ap.parse_args()
    print("\n".join(stage_table(a.log)))
    print()
    print("\n".join(granularity(a.recipe)))


if __name__ == "__main__":
    main()
