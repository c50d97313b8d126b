"""One training loop for proxies and references, and a runner for many runs per process.

A process that imports transformers costs ~6 s here, so a stage trains all runs of one recipe
and role in one process, spread over forked 1-thread workers (two 1-thread workers beat one
2-thread process on tiny models). Finished runs are kept under data/.resume/ by a fingerprint of
everything that determines them, so a killed stage resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing as mp
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proxyrank.config import Params, TrainParams
from proxyrank.files import sha256, write_json
from proxyrank.tokens import load_array


@dataclass(frozen=True)
class RunSpec:
    recipe: str
    role: str  # proxy | reference
    family: str
    preset: str
    lr: float
    seed: int
    tokens: int

    @property
    def run_id(self) -> str:
        return f"{self.family}-{self.preset}-lr{self.lr:.0e}-s{self.seed}"


def run_specs(p: Params, recipe: str, role: str) -> list[RunSpec]:
    specs = p.proxies if role == "proxy" else [p.reference]
    tokens = p.train.proxy_tokens if role == "proxy" else p.train.reference_tokens
    return [RunSpec(recipe, role, s.family, s.preset, lr, seed, tokens)
            for s in specs for lr in s.lrs for seed in s.seeds]


def lr_at(step: int, steps: int, lr: float, t: TrainParams) -> float:
    """Linear warmup, then cosine decay to min_lr_frac * lr (nanoGPT's get_lr)."""
    warmup = int(t.warmup_frac * steps)
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (t.min_lr_frac + (1 - t.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


def eval_points(steps: int, n: int) -> list[int]:
    """Steps after which validation runs: n points, evenly spaced, the last at the end."""
    return sorted({max(1, round(steps * (i + 1) / n)) for i in range(n)})


def _param_groups(model, weight_decay: float):
    """Decay matrices only, not biases and norms (as GPT-2 / nanoGPT do)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]


def evaluate(model, valid: dict[str, np.ndarray], seq_len: int, batch_size: int) -> dict[str, float]:
    """Mean next-token loss per validation domain over non-overlapping windows."""
    import torch

    model.eval()
    out = {}
    with torch.no_grad():
        for d, arr in valid.items():
            n = (len(arr) - 1) // seq_len
            x = torch.from_numpy(np.asarray(arr[: n * seq_len], dtype=np.int64)).view(n, seq_len)
            losses = [model(input_ids=x[i:i + batch_size], labels=x[i:i + batch_size]).loss.item()
                      for i in range(0, n, batch_size)]
            sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
            out[d] = float(np.average(losses, weights=sizes))
    model.train()
    return out


def train_run(spec: RunSpec, t: TrainParams, train_tokens: np.ndarray, valid: dict[str, np.ndarray],
              vocab_size: int) -> dict:
    """Train one randomly initialised model for one epoch over exactly spec.tokens tokens."""
    import torch

    from proxyrank.models import build_model, count_params

    torch.manual_seed(spec.seed)
    model = build_model(spec.preset, vocab_size, t.seq_len)
    n_params = count_params(model)
    n_seq = spec.tokens // t.seq_len
    steps = n_seq // t.batch_size
    data = np.asarray(train_tokens[: n_seq * t.seq_len], dtype=np.int64).reshape(n_seq, t.seq_len)
    order = np.random.default_rng(spec.seed).permutation(n_seq)
    opt = torch.optim.AdamW(_param_groups(model, t.weight_decay), lr=spec.lr, betas=(t.beta1, t.beta2))
    checkpoints = eval_points(steps, t.eval_points)
    curve = []
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, spec.lr, t)
        x = torch.from_numpy(data[order[step * t.batch_size:(step + 1) * t.batch_size]])
        loss = model(input_ids=x, labels=x).loss
        if not torch.isfinite(loss):
            break
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step + 1 in checkpoints:
            losses = evaluate(model, valid, t.seq_len, t.batch_size * 4)
            curve.append({"step": step + 1, "tokens": (step + 1) * t.batch_size * t.seq_len,
                          "train_loss": float(loss.item()), "loss_mean": float(np.mean(list(losses.values()))),
                          **{f"loss_{d}": v for d, v in losses.items()}})
    wall = time.perf_counter() - start
    final = curve[-1] if curve and curve[-1]["step"] == steps else None
    result = {**dataclasses.asdict(spec), "run_id": spec.run_id, "n_params": n_params, "steps": steps,
              "tokens_trained": steps * t.batch_size * t.seq_len, "wall_s": round(wall, 3),
              "diverged": final is None, "curve": curve}
    for key in ["loss_mean"] + [f"loss_{d}" for d in valid]:
        result[key] = final[key] if final else float("nan")
    return result


def fingerprint(spec: RunSpec, t: TrainParams, digests: dict[str, str]) -> str:
    blob = json.dumps([dataclasses.asdict(spec), dataclasses.asdict(t), digests], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _cost(spec: RunSpec, vocab_size: int) -> int:
    """Rough FLOPs of a run (blocks plus embeddings; Pythia's are untied), to schedule big runs first."""
    from proxyrank.models import PRESETS

    p = PRESETS[spec.preset]
    embeddings = (2 if p.family == "pythia" else 1) * vocab_size * p.hidden
    return spec.tokens * (12 * p.hidden * p.hidden * p.layers + embeddings)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _work(job):
    spec, t, train_path, valid_paths, vocab_size, resume_path = job
    valid = {d: load_array(Path(p)) for d, p in valid_paths.items()}
    result = train_run(spec, t, load_array(Path(train_path)), valid, vocab_size)
    write_json(resume_path, result)
    return result


def run_all(specs: list[RunSpec], t: TrainParams, train_path: Path, valid_paths: dict[str, Path],
            vocab_size: int, resume_dir: Path, out_dir: Path) -> list[dict]:
    """Train every spec (resuming finished ones), write one JSON per run into out_dir."""
    digests = {"train": sha256(train_path), **{d: sha256(p) for d, p in sorted(valid_paths.items())}}
    jobs, results = [], []
    for spec in specs:
        resume_path = resume_dir / f"{fingerprint(spec, t, digests)}.json"
        if resume_path.exists():
            results.append(json.loads(resume_path.read_text()))
        else:
            jobs.append((spec, t, str(train_path), {d: str(p) for d, p in valid_paths.items()},
                         vocab_size, resume_path))
    jobs.sort(key=lambda job: _cost(job[0], vocab_size), reverse=True)  # longest first: no idle tail
    print(f"train: {len(specs)} runs, {len(results)} resumed, {len(jobs)} to train "
          f"on {min(t.workers, max(1, len(jobs)))} worker(s)", flush=True)
    start = time.perf_counter()
    workers = min(t.workers, len(jobs))
    if workers > 1:
        threads = max(1, (mp.cpu_count() or 1) // workers)
        with mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(threads,)) as pool:
            for r in pool.imap_unordered(_work, jobs):
                results.append(r)
                _progress(r, len(results), len(specs))
    else:
        for job in jobs:
            results.append(_work(job))
            _progress(results[-1], len(results), len(specs))
    out_dir.mkdir(parents=True, exist_ok=True)
    for r in results:
        write_json(out_dir / f"{r['run_id']}.json", r)
    print(f"train: done {len(jobs)} runs in {time.perf_counter() - start:.0f} s", flush=True)
    return results


def _progress(r: dict, done: int, total: int) -> None:
    print(f"  [{done}/{total}] {r['recipe']} {r['run_id']}: loss {r['loss_mean']:.4f} "
          f"({r['wall_s']:.0f} s)", file=sys.stderr, flush=True)
