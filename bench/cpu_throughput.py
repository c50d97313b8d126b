"""What a training run achieves on this CPU, per model preset, from a finished study's own runs.

    .venv/bin/python bench/cpu_throughput.py [--timings data/timings] [--params params.yaml] \
        [--since 2026-11-29T07:00] > bench/results/cpu_throughput.json

Every training run appends its wall time to data/timings/ (proxyrank/timings.py). Here each run's
FLOPs, training plus evaluation, as `python -m proxyrank plan` counts them (tools/plan.run_costs),
are divided by its wall time, and the median per preset is kept: the FLOP/s one 1-thread worker
sustained while another ran beside it, as every CPU training stage runs (train.workers = 2).
`plan` reads the result to print CPU hours next to GPU hours; presets measured nowhere take the
rate of the measured preset nearest in size, and `plan` says so.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxyrank import timings  # noqa: E402
from proxyrank.config import load_params  # noqa: E402
from proxyrank.tools import plan  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timings", default=str(ROOT / "data" / "timings"))
    ap.add_argument("--params", default=str(ROOT / "params.yaml"), help="the params the timed runs were trained with")
    ap.add_argument("--since", default="", help="only run lines at or after this ISO time")
    args = ap.parse_args()
    p = load_params(args.params)
    costs = {(c.spec.recipe, c.spec.run_id): c for c in plan.run_costs(p)}
    rates, sizes = defaultdict(list), {}
    for r in timings.read(Path(args.timings)):
        c = costs.get((r.get("recipe"), r.get("run_id")))
        if r.get("kind") != "run" or r.get("device") != "cpu" or r["at"] < args.since or c is None \
                or r.get("resumed_from_step") or c.tokens != r["tokens_trained"]:
            continue  # another params file's run, a resumed one (its wall time is partial), or a GPU run
        rates[c.spec.preset].append(c.flops / r["wall_s"])
        sizes[c.spec.preset] = c.n_params
    out = {"measured": "median FLOP/s (train + eval, plan's count) of one 1-thread CPU worker with a second "
                       "beside it, over a study's runs",
           "params": Path(args.params).name, "since": args.since, "machine": "2 cores, 24 GB, torch 2.13.0 CPU",
           "presets": {k: {"flops_per_s": round(statistics.median(v)), "runs": len(v), "n_params": sizes[k]}
                       for k, v in sorted(rates.items())}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
