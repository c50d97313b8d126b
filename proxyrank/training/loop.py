"""The training loop: one randomly initialised model, one epoch over exactly a run's tokens.

Read `train_run` top to bottom, as nanoGPT's train.py: set up (process group, device, model,
batches, optimizer, a checkpoint to resume from), the step-0 loss, then per step the LR, one
global batch in micro-batches, clipping and the AdamW step, with validation at `eval_points`.
What it touches lives beside it: params.py (the run), batches.py (its tokens), optim.py (its
update), devices.py (where it computes), checkpoint.py (a killed run's resume).
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import numpy as np

from proxyrank.errors import DataError, ParamsError
from proxyrank.files import kill_point
from proxyrank.training import models
from proxyrank.training.batches import (HALVES, batch_rows, halves, loss_keys, run_order, run_sequences,
                                        windows)
from proxyrank.training.checkpoint import load_checkpoint, save_checkpoint
from proxyrank.training.devices import autocast_for, distributed, peak_flops, pick_device
from proxyrank.training.optim import adamw, clipped_step, lr_at, set_lr
from proxyrank.training.params import RunSpec, TrainParams, steps_from_tokens, tokens_trained
from proxyrank.training.progress import Heartbeat


def eval_points(steps: int, n: int) -> list[int]:
    """Steps after which validation runs: n points, evenly spaced, the last at the end."""
    return sorted({max(1, round(steps * (i + 1) / n)) for i in range(n)})


def evaluate(model, valid: dict[str, np.ndarray], seq_len: int, batch_size: int, device,
             autocast) -> dict[str, dict[str, float]]:
    """Mean next-token loss per validation domain over non-overlapping windows: {domain: {"all": ..,
    "a": .., "b": ..}}, the whole text and its two held-out halves (batches.halves). One pass: each
    window's mean loss, then the means over the windows of each part (the windows are of equal length,
    so the mean over windows is the mean over tokens)."""
    import torch

    model.eval()
    out = {}
    with torch.no_grad(), autocast():
        for d, arr in valid.items():
            x = torch.from_numpy(windows(arr, seq_len)).to(device)
            if len(x) < 2:
                raise DataError(f"validation domain {d!r} holds {len(arr)} tokens, fewer than the two "
                                f"windows of {seq_len} that its held-out halves need; raise split.valid_chars")
            per_window = torch.cat([_window_losses(model, x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
            parts = halves(per_window.double().cpu().numpy())
            out[d] = {"all": float(np.concatenate(parts).mean()), **{h: float(v.mean()) for h, v in zip(HALVES, parts)}}
    model.train()
    return out


def _window_losses(model, x):
    """Each row's mean next-token cross-entropy (as the HF models' own loss, computed in fp32)."""
    import torch.nn.functional as F

    logits = model(input_ids=x).logits[:, :-1].float()
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
    return loss.view(len(x), -1).mean(dim=1)


def split_batch(t: TrainParams, world: int) -> tuple[int, int]:
    """(rows per process, rows per micro-batch) of one global batch of t.batch_size rows."""
    local, micro = t.batch_size // world, t.batch_size // (world * t.grad_accum)
    if local * world != t.batch_size or micro * t.grad_accum != local:
        raise ParamsError(f"train.batch_size {t.batch_size} does not split over {world} process(es) "
                          f"x grad_accum {t.grad_accum}")
    return local, micro


def train_run(spec: RunSpec, t: TrainParams, train_tokens: np.ndarray, valid: dict[str, np.ndarray],
              vocab_size: int, checkpoint: Path | None = None, save_to: Path | None = None) -> dict:
    """Train one randomly initialised model for one epoch over exactly spec.tokens tokens.

    Under torchrun each rank takes its slice of every global batch (DDP averages the gradients,
    so the update equals one process's at the same global batch). With `checkpoint`, the state
    after each evaluation point is kept there, and a killed run continues from it; with `save_to`,
    a run that finishes is saved there by save_pretrained (training/export.py). The result also
    carries how long the run took and how fast (TIMING_KEYS); run_all takes those out before
    anything is written (records.split_timing).
    """
    import torch

    rank, world = distributed()
    device = pick_device(t)
    local, micro = split_batch(t, world)
    torch.manual_seed(spec.seed)
    model = models.build_model(spec.preset, vocab_size, t.seq_len)
    n_params = models.count_params(model)
    if t.activation_checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
    model.to(device)
    steps = steps_from_tokens(spec.tokens, t)
    data = run_sequences(train_tokens, spec.tokens, t.seq_len)
    order = run_order(len(data), spec.seed)
    opt = adamw(model, t, spec.lr, device)
    state = load_checkpoint(checkpoint, model, opt) or {"step": 0, "curve": [], "wall_s": 0.0}
    net = _parallel(model, t, world, device)
    autocast = autocast_for(t, device)
    checkpoints = eval_points(steps, t.eval_points)
    curve, diverged = state["curve"], False
    start = time.perf_counter()
    if not curve:  # step 0: the loss at initialisation, from which every run's movement is measured
        curve.append(_point(model, valid, t, device, autocast, 0, None))
    model.train()
    beat = Heartbeat(spec.run_id, state["step"], steps, t.batch_size * t.seq_len)
    for step in range(state["step"], steps):
        set_lr(opt, lr_at(step, steps, spec.lr, t))
        rows = batch_rows(data, order, step, 1, t.batch_size)[rank * local:(rank + 1) * local]
        total = _batch_loss(net, rows, t, micro, world, device, autocast)
        if not torch.isfinite(total):
            diverged = True
            break
        clipped_step(model, opt, t.grad_clip)
        if rank == 0:
            beat.tick(step + 1)
        if step + 1 in checkpoints:
            curve.append(_point(model, valid, t, device, autocast, step + 1, total))
            if checkpoint is not None and step + 1 < steps:
                _keep(checkpoint, model, opt, {"step": step + 1, "curve": curve},
                      lambda: state["wall_s"] + time.perf_counter() - start, rank, world)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    run_wall = time.perf_counter() - start
    final = curve[-1] if curve and curve[-1]["step"] == steps and not diverged else None
    if save_to is not None and final is not None and rank == 0:
        model.save_pretrained(save_to, safe_serialization=True)
    record = _record(spec, t, n_params, steps, device, world, final is None, curve)
    return {**record, **_timing(record, state["step"], state["wall_s"] + run_wall, run_wall, device),
            **{key: final[key] if final else float("nan") for key in loss_keys(valid)}}


def _parallel(model, t: TrainParams, world: int, device):
    """The module the steps call: DDP under torchrun, then torch.compile if asked."""
    import torch

    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if t.compile:
        net = torch.compile(net)
    return net


def _batch_loss(net, rows: np.ndarray, t: TrainParams, micro: int, world: int, device, autocast):
    """Forward and backward over this process's rows of one global batch, t.grad_accum
    micro-batches of `micro` rows (DDP syncs gradients on the last only); the batch's mean loss,
    averaged over processes."""
    import torch

    total = torch.zeros((), device=device)
    for m in range(t.grad_accum):
        x = torch.from_numpy(rows[m * micro:(m + 1) * micro]).to(device, non_blocking=True)
        last = m == t.grad_accum - 1
        with (contextlib.nullcontext() if last or world == 1 else net.no_sync()), autocast():
            loss = net(input_ids=x, labels=x).loss / t.grad_accum
        loss.backward()
        total += loss.detach().float()
    if world > 1:
        torch.distributed.all_reduce(total)
        total /= world
    return total


def _point(model, valid, t: TrainParams, device, autocast, step: int, total) -> dict:
    """One point of the loss curve: validation losses after `step` steps (and the training loss
    of the last batch, None at step 0): the mean over domains, each domain's, and the mean over
    domains on each held-out half (half_a_loss, half_b_loss)."""
    losses = evaluate(model, valid, t.seq_len, t.batch_size * 4, device, autocast)
    return {"step": step, "tokens": step * t.batch_size * t.seq_len,
            "train_loss": None if total is None else float(total.item()),
            "loss_mean": float(np.mean([v["all"] for v in losses.values()])),
            **{f"loss_{d}": v["all"] for d, v in losses.items()},
            **{f"half_{h}_loss": float(np.mean([v[h] for v in losses.values()])) for h in HALVES}}


def _keep(folder: Path, model, opt, state: dict, wall, rank: int, world: int) -> None:
    """Checkpoint after an evaluation point: rank 0 writes `state` with the wall seconds so far
    (`wall()`), every rank waits for it."""
    import torch

    if rank == 0:
        save_checkpoint(folder, model, opt, {**state, "wall_s": wall()})
        kill_point("train.checkpoint")
    if world > 1:
        torch.distributed.barrier()


def _record(spec: RunSpec, t: TrainParams, n_params: int, steps: int, device, world: int, diverged: bool,
            curve: list) -> dict:
    """What the inputs determine of a run: its spec, size, compute and loss curve."""
    trained = tokens_trained(spec.tokens, t)
    return {**dataclasses.asdict(spec), "run_id": spec.run_id, "n_params": n_params, "steps": steps,
            "tokens_trained": trained, "device": str(device.type), "world_size": world,
            "train_flops": models.train_flops(n_params, spec.preset, t.seq_len, trained), "diverged": diverged,
            "curve": curve}


def _timing(record: dict, resumed_from: int, wall: float, run_wall: float, device) -> dict:
    """What is measured of a run (records.TIMING_KEYS): its wall time and throughput."""
    steps, world = record["steps"], record["world_size"]
    done = (steps - resumed_from) / max(1, steps)  # the share trained in this process
    achieved = record["train_flops"] * done / run_wall / world if run_wall > 0 else None
    peak = peak_flops(device)
    return {"wall_s": round(wall, 3), "resumed_from_step": resumed_from,
            "tokens_per_s": round(record["tokens_trained"] * done / run_wall, 1) if run_wall > 0 else None,
            "tflops_per_s": round(achieved / 1e12, 4) if achieved else None,
            "mfu": round(achieved / peak, 4) if achieved and peak else None}
