"""What a stage process spends leaving, after its work is done: the interpreter's teardown against
`os._exit` (proxyrank/stage.main), with the modules a training stage holds (torch, transformers
and an HF model class).

    .venv/bin/python bench/stage_exit.py > bench/results/stage_exit.md

Each child imports what a stage imports, prints a line and exits; the time from that line to the
child's end is its exit. Both ways run alternately in the same run (the baseline is the normal
exit), five times each, and the medians and their ratio are reported. A DVC stage pays this once
per process: 35 stage processes in the smoke study, about 80 in the default study.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

SETUPS = {"torch": "import torch",
          "torch + transformers + GPT2LMHeadModel": "import torch, transformers; transformers.GPT2LMHeadModel"}
EXITS = {"sys.exit (interpreter teardown)": "sys.exit(0)", "os._exit (stage.main)": "os._exit(0)"}


def exit_seconds(setup: str, leave: str) -> float:
    code = f"import os, sys; {setup}; print('done', flush=True); {leave}"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child.stdout.readline()
    start = time.perf_counter()
    child.wait()
    return time.perf_counter() - start


def main(repeats: int = 5) -> None:
    print("# Stage process exit: interpreter teardown vs os._exit\n")
    print(f"`python bench/stage_exit.py`, {repeats} alternating runs each, medians (seconds).\n")
    print("| modules held | " + " | ".join(EXITS) + " | ratio |")
    print("|---|" + "---:|" * (len(EXITS) + 1))
    for name, setup in SETUPS.items():
        times = {k: [] for k in EXITS}
        for _ in range(repeats):
            for k, leave in EXITS.items():
                times[k].append(exit_seconds(setup, leave))
        med = [statistics.median(times[k]) for k in EXITS]
        print(f"| {name} | " + " | ".join(f"{m:.3f}" for m in med) + f" | {med[0] / max(med[1], 1e-4):.0f}x |")


if __name__ == "__main__":
    main()
