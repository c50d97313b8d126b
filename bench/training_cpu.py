"""Training throughput on this CPU: our loop against a plain PyTorch loop, and what batching buys.

    .venv/bin/python bench/training_cpu.py [--tokens 100000] > bench/results/training_cpu.md

1. loop overhead: `loop.train_run` (schedule, clipping, evaluation) against the plainest loop on
   the same model, batch and optimizer, in the same process, interleaved; ratio of tokens/s.
2. batching: tokens/s of one tiny model at batch 4..64, 1 thread. If a bigger batch does not
   raise tokens/s, then training several runs as one stacked model (torch.func.vmap or grouped
   matmuls, the same arithmetic as a bigger batch) cannot raise it either.
3. parallelism: two runs on two forked 1-thread workers against the same two runs one after the
   other in one 2-thread process.
Validation is left out of 1 (eval_points=1 with a tiny validation set), so 1 measures the loop.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import numpy as np
import torch

from proxyrank.training.loop import train_run
from proxyrank.training.models import build_model
from proxyrank.training.params import RunSpec, TrainParams
from proxyrank.training.pool import forked

VOCAB, SEQ, BATCH = 1024, 128, 8


def plain_loop(preset: str, data: np.ndarray, lr: float, seed: int) -> float:
    """The plainest loop over the same batches: forward, backward, AdamW step."""
    torch.manual_seed(seed)
    model = build_model(preset, VOCAB, SEQ)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    x_all = torch.from_numpy(data.astype(np.int64)).view(-1, SEQ)
    start = time.perf_counter()
    for i in range(0, len(x_all) - BATCH + 1, BATCH):
        x = x_all[i:i + BATCH]
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def ours(preset: str, data: np.ndarray, lr: float, seed: int) -> float:
    t = TrainParams(seq_len=SEQ, batch_size=BATCH, valid_tokens=SEQ + 1, eval_points=1)
    spec = RunSpec("bench", "proxy", preset.split("-")[0], preset, lr, seed, len(data))
    return train_run(spec, t, data, {"v": data[: SEQ + 1]}, VOCAB)["wall_s"]  # the loop, not the build


def batch_throughput(preset: str, batch: int, steps: int = 12) -> float:
    torch.manual_seed(0)
    model = build_model(preset, VOCAB, SEQ)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, VOCAB, (batch, SEQ))
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return steps * batch * SEQ / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    data = np.random.default_rng(0).integers(0, VOCAB, a.tokens + SEQ, dtype=np.int64).astype(np.uint16)
    data = data[: (a.tokens // (SEQ * BATCH)) * SEQ * BATCH]
    torch.set_num_threads(1)
    print("# Training throughput on this CPU\n")
    print(f"Command: `.venv/bin/python bench/training_cpu.py --tokens {a.tokens} --repeats {a.repeats}`; torch "
          f"{torch.__version__}, {mp.cpu_count()} cores, 1 thread unless said; seq {SEQ}, batch {BATCH}, "
          f"vocab {VOCAB}; best of {a.repeats} interleaved rounds.\n")
    print("## 1. Our loop against a plain PyTorch loop (same model, batches, optimizer)\n")
    print("| model | plain tok/s | ours tok/s | ours / plain |\n|---|---:|---:|---:|")
    for preset in ("gpt2-tiny", "pythia-tiny", "opt-tiny", "pythia-mini"):
        plain, mine = [], []
        for _ in range(a.repeats):
            plain.append(plain_loop(preset, data, 1e-3, 0))
            mine.append(ours(preset, data, 1e-3, 0))
        p, o = len(data) / min(plain), len(data) / min(mine)
        print(f"| {preset} | {p:,.0f} | {o:,.0f} | {o / p:.3f} |")
    print("\n## 2. Tokens/s against batch size (1 thread)\n")
    batches = (4, 8, 16, 32, 64)
    print("| model | " + " | ".join(f"batch {b}" for b in batches) + " |\n|---|" + "---:|" * len(batches))
    for preset in ("gpt2-tiny", "pythia-mini"):
        best = {b: max(batch_throughput(preset, b) for _ in range(a.repeats)) for b in batches}
        print(f"| {preset} | " + " | ".join(f"{best[b]:,.0f}" for b in batches) + " |")
    print("\n## 3. Two runs: two forked 1-thread workers vs one 2-thread process\n")
    jobs = [("gpt2-tiny", data, 1e-3, 0), ("gpt2-tiny", data, 1e-4, 0)]
    start = time.perf_counter()
    list(forked(ours, jobs, 2, threads=1))  # the study's runner (training/pool.py)
    two_workers = time.perf_counter() - start
    torch.set_num_threads(2)
    start = time.perf_counter()
    for job in jobs:
        ours(*job)
    threaded = time.perf_counter() - start
    print(f"two 1-thread workers: {two_workers:.1f} s; one 2-thread process: {threaded:.1f} s; "
          f"ratio {threaded / two_workers:.2f}")


if __name__ == "__main__":
    main()
