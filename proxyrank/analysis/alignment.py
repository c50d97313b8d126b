"""Gradient alignment: a zero-training proxy that ranks recipes by the paper's first-order term.

One optimizer step with LR eta on recipe D changes the validation loss by
-eta <grad L_val, grad L_D> + O(eta^2) (PAPER.md, "Why it works"). Tiny-LR proxies live where
that term dominates, so <g_val, g_D> should rank recipes as they do, for a few forward/backward
passes per recipe instead of a proxy run. Each proxy model (family, preset, seed) is measured at
its initialisation, which a tiny-LR run barely leaves, and after a short warm start on a neutral
mixture of all recipes, which is where a model is early in a standard-LR run.

The proxies train with AdamW, whose step is -eta m/sqrt(v), not -eta g. `adam_alignment` is the
first-order term along that direction (m and v estimated from the same batches): the term a
tiny-LR AdamW proxy actually follows, and one that gradient clipping does not rescale.

g_val comes from held-out half A of the validation text only (training/batches.halves); the scores
are judged against the rankings on half B (metrics.alignment_rows), so a score is never computed on
the text it is judged on.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from proxyrank import timings
from proxyrank.analysis.params import AlignmentParams
from proxyrank.data.tokens import load_array
from proxyrank.errors import ParamsError
from proxyrank.training import models
from proxyrank.training.batches import batch_rows, run_order, run_sequences, valid_windows
from proxyrank.training.devices import autocast_for, pick_device
from proxyrank.training.optim import adamw, clipped_step
from proxyrank.training.params import ModelSpec, TrainParams
from proxyrank.training.pool import cpu_workers, forked

if TYPE_CHECKING:  # pandas is imported where a table is built
    import pandas as pd

__all__ = ["AlignmentParams", "flat_grad", "model_scores", "proxy_batches", "scores", "state_scores",
           "valid_windows", "warm_start"]

ADAM_EPS = 1e-8  # torch.optim.AdamW's default, which the proxies use


def proxy_batches(tokens: np.ndarray, t: TrainParams, seed: int, count: int) -> np.ndarray:
    """The first `count` batches, (count, batch_size, seq_len) int64, that a proxy run with this
    seed trains on, in its order (training/batches.py, as train_run takes them)."""
    n_seq = t.proxy_tokens // t.seq_len
    if len(tokens) < n_seq * t.seq_len or count * t.batch_size > n_seq:
        raise ParamsError(f"alignment: {count} batches of {t.batch_size} x {t.seq_len} tokens do not fit "
                          f"train.proxy_tokens={t.proxy_tokens} of a recipe with {len(tokens)} tokens; "
                          f"lower alignment.batches or alignment.warm_steps")
    data = run_sequences(tokens, t.proxy_tokens, t.seq_len)
    rows = batch_rows(data, run_order(n_seq, seed), 0, count, t.batch_size)
    return rows.reshape(count, t.batch_size, t.seq_len)


def _backward(model, x, chunk: int, autocast) -> float:
    """Accumulate into .grad the gradient of the mean loss over the rows of x, `chunk` rows at a
    time (the proxies' micro-batch, so memory is theirs); returns that loss."""
    total = 0.0
    for i in range(0, len(x), chunk):
        rows = x[i:i + chunk]
        with autocast():
            loss = model(input_ids=rows, labels=rows).loss * (len(rows) / len(x))
        loss.backward()
        total += loss.item()
    return total


def flat_grad(model, x, chunk: int, autocast):
    """(gradient of the mean loss over the rows of x as one flat vector, that loss)."""
    import torch

    model.zero_grad(set_to_none=True)
    loss = _backward(model, x, chunk, autocast)
    grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    return grad, loss


def state_scores(model, valid: dict, batches: dict, chunk: int, autocast) -> list[dict]:
    """One row per recipe: its alignment with the validation gradient at the model's weights.

    `valid` maps domain -> windows and `batches` recipe -> (n, batch, seq_len) tensors. g_val is the
    mean over domains of each domain's mean-loss gradient, as the reference ranks by the mean
    over domains of per-domain loss. Each row carries the tokens passed forward and backward for
    it, the validation gradient's shared equally.
    """
    import torch

    per_domain = [flat_grad(model, x, chunk, autocast) for x in valid.values()]
    G = torch.stack([g for g, _ in per_domain])
    g_val = G.mean(0)
    val_loss = float(np.mean([loss for _, loss in per_domain]))
    shared_tokens = sum(x.numel() for x in valid.values()) / len(batches)
    rows = []
    for recipe, xb in batches.items():
        s = s2 = 0
        for x in xb:
            g, _ = flat_grad(model, x, chunk, autocast)
            s, s2 = s + g, s2 + g * g
        g = s / len(xb)
        adam = g / ((s2 / len(xb)).sqrt() + ADAM_EPS)
        rows.append({"recipe": recipe, "alignment": float(g_val @ g), "adam_alignment": float(g_val @ adam),
                     "cosine": float(torch.nn.functional.cosine_similarity(g_val, g, dim=0)),
                     "grad_norm": float(g.norm()), "val_loss": val_loss,
                     **{f"alignment_{d}": float(gd @ g) for d, gd in zip(valid, G)},
                     "tokens": shared_tokens + xb.numel()})
    return rows


def warm_start(model, batches, t: TrainParams, lr: float, autocast) -> None:
    """One AdamW step per batch at constant `lr`, with the proxies' betas, weight decay (matrices
    only), gradient clipping and micro-batching (training/optim.py, as train_run steps)."""
    opt = adamw(model, t, lr, next(model.parameters()).device)
    for x in batches:
        _backward(model, x, t.batch_size // t.grad_accum, autocast)
        clipped_step(model, opt, t.grad_clip)


def scores(t: TrainParams, proxies: list[ModelSpec], a: AlignmentParams, recipe_paths: dict[str, Path],
           valid_paths: dict[str, Path], vocab_size: int, timing_path: Path | None = None) -> pd.DataFrame:
    """Alignment scores of every recipe for every proxy model in `proxies` (each family, preset and
    seed; params.yaml's `proxies:`, trained with `train:` = t), at initialisation and
    (warm_steps > 0) after the warm start.

    Columns: family, preset, seed, state (init | warm), recipe, alignment (<g_val, g_D>, the
    first-order loss decrease per unit SGD LR), adam_alignment (the same along AdamW's direction),
    cosine, grad_norm (|g_D|), val_loss (mean over domains, at that state), alignment_<domain>,
    tokens (passed forward and backward) and flops (models.train_flops of those tokens, as for a
    proxy run). A row's cost includes its share of the validation gradient and, for warm rows, of
    the warm start, so a model's rows sum to what it cost. Every column is deterministic: the wall
    seconds of each model and state go to `timing_path` (timings.py) if given, never into the table,
    which is a DVC output. Models are measured side by side on t.workers forked CPU workers, one at
    a time on CUDA, as train.run_all trains (training/pool.py).
    """
    import pandas as pd

    jobs = [(t, a, spec.family, spec.preset, seed, recipe_paths, valid_paths, vocab_size)
            for spec in proxies for seed in spec.seeds]
    parts = list(forked(model_scores, jobs, cpu_workers(t, len(jobs))))
    if timing_path is not None:
        for _, spent in parts:
            for record in spent:
                timings.append(timing_path, record)
    return pd.DataFrame([row for part, _ in parts for row in part])


def model_scores(t: TrainParams, a: AlignmentParams, family: str, preset: str, seed: int,
                 recipe_paths: dict[str, Path], valid_paths: dict[str, Path],
                 vocab_size: int) -> tuple[list[dict], list[dict]]:
    """The rows of `scores` for one proxy model: built as train_run builds it, measured on the
    first a.batches batches it would train on; the warm start trains on the batches after those.
    Also one timing record per state (its wall seconds, warm start included), kept apart."""
    import torch

    device = pick_device(t)
    autocast = autocast_for(t, device)
    names = sorted(recipe_paths)
    valid = {d: torch.from_numpy(x).to(device) for d, x in valid_windows(
        {d: load_array(Path(path)) for d, path in valid_paths.items()}, t.seq_len,
        a.valid_windows_per_domain, half="a").items()}  # judged on half B (metrics.alignment_rows)
    warm_rounds = -(-a.warm_steps // len(names))
    batches = {r: torch.from_numpy(proxy_batches(load_array(Path(recipe_paths[r])), t, seed,
                                                 a.batches + warm_rounds)).to(device) for r in names}
    measured = {r: xb[: a.batches] for r, xb in batches.items()}
    torch.manual_seed(seed)
    model = models.build_model(preset, vocab_size, t.seq_len).to(device)
    model.train()
    n_params = models.count_params(model)
    rows, spent = [], []
    for state in ("init", "warm")[: 1 + bool(a.warm_steps)]:
        shared_tokens, start = 0, time.perf_counter()
        if state == "warm":
            mixture = [batches[names[s % len(names)]][a.batches + s // len(names)]
                       for s in range(a.warm_steps)]  # round-robin: no recipe favoured
            warm_start(model, mixture, t, a.warm_lr, autocast)
            shared_tokens = a.warm_steps * t.batch_size * t.seq_len / len(names)
        state_rows = state_scores(model, valid, measured, t.batch_size // t.grad_accum, autocast)
        wall = time.perf_counter() - start
        for row in state_rows:
            row["tokens"] += shared_tokens
            rows.append({"family": family, "preset": preset, "seed": seed, "state": state, **row,
                         "flops": models.train_flops(n_params, preset, t.seq_len, row["tokens"])})
        tokens = sum(row["tokens"] for row in state_rows)
        spent.append({"kind": "alignment", "family": family, "preset": preset, "seed": seed, "state": state,
                      "recipes": len(state_rows), "tokens": tokens, "wall_s": round(wall, 3),
                      "tokens_per_s": round(tokens / wall, 1) if wall > 0 else None})
    return rows, spent
