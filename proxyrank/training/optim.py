"""The optimizer of every run: AdamW on decayed matrices, the LR schedule, a clipped step.

train_run and alignment's warm start both step through here, so a proxy's update and the warm
start's are one and the same arithmetic (AdamW as GPT-2 / nanoGPT set it up).
"""
from __future__ import annotations

import math

from proxyrank.training.params import TrainParams


def param_groups(model, weight_decay: float):
    """Decay matrices only, not biases and norms (as GPT-2 / nanoGPT do)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]


def adamw(model, t: TrainParams, lr: float, device):
    """torch's AdamW with t's betas and weight decay (matrices only); fused on CUDA."""
    import torch

    return torch.optim.AdamW(param_groups(model, t.weight_decay), lr=lr, betas=(t.beta1, t.beta2),
                             fused=device.type == "cuda")


def lr_at(step: int, steps: int, lr: float, t: TrainParams) -> float:
    """Linear warmup, then cosine decay to min_lr_frac * lr (nanoGPT's get_lr)."""
    warmup = int(t.warmup_frac * steps)
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (t.min_lr_frac + (1 - t.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


def set_lr(opt, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


def clipped_step(model, opt, grad_clip: float) -> None:
    """Clip the global gradient norm to grad_clip, step, and drop the gradients."""
    import torch

    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
