"""Many runs of one preset trained together in one process as stacked weights, against one by one.

    .venv/bin/python bench/stacked_training.py [--steps 40] [--families pythia,opt,gpt2]

`train_stacked(specs, t, train_tokens_per_run, valid, vocab_size)` trains N runs of one preset
(the LR grid, the seeds, the recipes) as one set of stacked weights: every parameter gets a
leading run dimension, the forward is `torch.func.vmap` over `functional_call` on one weightless
copy of the model, and one backward over the sum of the per-run losses gives each run the gradient
of its own loss (the runs share no weights). Each run keeps what `loop.train_run` gives it: its
seed's initialisation, its seed's data order over its own tokens, its LR and schedule, and its
own AdamW state; the optimizer is AdamW written out over the run dimension (per-run LR, bias
correction, decoupled weight decay on the >= 2-D parameters only, per-run global-norm gradient
clipping), the arithmetic of torch's single-tensor AdamW and `clip_grad_norm_`. Evaluation runs at
the same points, on the same windows, batched the same way. The records carry train_run's keys.

Three traps, all handled in `_Stack`:

* OPT's padding row (what made stacked OPT runs differ from the same runs alone). OPT's
  `embed_tokens` is `nn.Embedding(..., padding_idx=pad_token_id)`, and pad_token_id is 0 here, a
  token that occurs in the data; padding_idx means row 0 gets no gradient from the lookup. Under
  vmap, torch 2.13's rule for the embedding backward zeroes row 0 for the FIRST run of the stack
  only: every other run also took a gradient step on row 0, so run 0 matched its run alone bit for
  bit and runs 1.. drifted (1e-4 .. 1e-3 in loss within 24 steps at LR 3e-3 .. 1e-2). GPT-2's and
  Pythia's embeddings have no padding_idx. Fix: embeddings with a padding_idx get a forward that
  does a plain lookup and detaches the rows looked up at the padding token (same values, no
  gradient into that row from the lookup; the tied lm_head still gives it one, as alone).
* weight tying. OPT and GPT-2 tie `lm_head.weight` to the input embedding. `named_parameters()`
  (and so `stack_module_state`) lists a tied tensor once, under the embedding's name, and
  `functional_call` substitutes it for `lm_head.weight` too only if the base module still holds
  ONE Parameter under both names. `copy.deepcopy(model).to("meta")` breaks that (`Module._apply`
  makes a new Parameter per name), so `lm_head` keeps a meta weight that no run's weights replace,
  and a meta tensor fed to `F.linear` next to real ones does not raise on CPU: it reads garbage
  (alone) or zeros (under vmap: every loss exactly ln V). The base is built directly under
  `torch.device("meta")` (transformers ties after construction), and every name the base module
  holds, tied aliases included, is checked to resolve to a stacked tensor before training starts;
  buffers (Pythia's rotary inv_freq) are passed as real tensors, shared by all runs, after a check
  that every run's copy is equal.
* GPT-2 under vmap. The `.item()` that stops it is not in attention: `GPT2Model.forward` calls
  `PreTrainedModel.warn_if_padding_and_no_attention_mask`, a one-time-warning heuristic that runs
  `pad_token_id in input_ids[:, [-1, 0]]` (a data-dependent bool) when no attention_mask is given.
  Our inputs are never padded, so the stacked base module gets a no-op in its place (on that
  private instance only); with it, GPT-2 runs under vmap with SDPA and with eager attention.

Dropout is off in every preset and OPT's layerdrop is 0 (its torch.rand is never reached), so vmap
runs with randomness="error": any random op would raise rather than silently differ. Refused with
a StackingError: torchrun, torch.compile, activation checkpointing; there is no checkpoint/resume.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from proxyrank.training.batches import (HALVES, batch_rows, halves, loss_keys, run_order,  # noqa: E402
                                        run_sequences, windows)
from proxyrank.training.devices import autocast_for, distributed, peak_flops, pick_device  # noqa: E402
from proxyrank.training.loop import eval_points, train_run  # noqa: E402
from proxyrank.training.models import PRESETS, build_config, build_model, count_params, train_flops  # noqa: E402
from proxyrank.training.optim import lr_at  # noqa: E402
from proxyrank.training.params import RunSpec, TrainParams, steps_from_tokens, tokens_trained  # noqa: E402

FAMILIES = ("gpt2", "pythia", "opt")
ATTN = ("sdpa", "eager")
EPS = 1e-8  # torch AdamW's default, which train_run uses


class StackingError(RuntimeError):
    """A model or setting that the stacked trainer cannot train as the runs alone would be trained."""


def _no_padding_check(*_args, **_kwargs) -> None:
    """Stands in for PreTrainedModel.warn_if_padding_and_no_attention_mask (a data-dependent
    warning heuristic that calls .item(), impossible under vmap; nothing here is padded)."""


def _embedding_padding_no_grad(module, ids):
    """nn.Embedding(padding_idx=p).forward that stays right under vmap: a plain lookup, with the
    rows looked up at token p detached, so row p gets no gradient from the lookup (what padding_idx
    does). Under vmap torch 2.13 zeroes row p of the first run's gradient only (module docstring)."""
    import torch
    import torch.nn.functional as F

    out = F.embedding(ids, module.weight, None, module.max_norm, module.norm_type, module.scale_grad_by_freq,
                      module.sparse)
    return torch.where((ids == module.padding_idx).unsqueeze(-1), out.detach(), out)


class _Stack:
    """N models of one preset as stacked tensors plus a weightless base module to call them with."""

    def __init__(self, preset: str, seeds: Sequence[int], vocab_size: int, seq_len: int, device,
                 attn: str = "sdpa"):
        import torch
        from transformers import AutoModelForCausalLM

        if preset not in PRESETS:
            raise StackingError(f"unknown preset {preset!r}")
        family = PRESETS[preset].family
        if family not in FAMILIES:
            raise StackingError(f"family {family!r} of {preset!r} is not supported by the stacked trainer "
                                f"(supported: {', '.join(FAMILIES)})")
        if attn not in ATTN:
            raise StackingError(f"attn {attn!r}: one of {ATTN}")
        models = []
        for seed in seeds:  # exactly train_run's initialisation: seed, then build
            torch.manual_seed(seed)
            models.append(build_model(preset, vocab_size, seq_len))
        self.n_params = count_params(models[0])
        names = [n for n, _ in models[0].named_parameters()]  # tied tensors once, as train_run's optimizer
        self.params = {n: torch.stack([m.get_parameter(n).detach() for m in models]).to(device).requires_grad_()
                       for n in names}
        self.decay = {n: models[0].get_parameter(n).dim() >= 2 for n in names}
        self.buffers = {}
        for n, b in models[0].named_buffers():
            if not all(torch.equal(b, m.get_buffer(n)) for m in models[1:]):
                raise StackingError(f"{preset}: buffer {n} differs between runs; the stacked trainer shares buffers")
            self.buffers[n] = b.to(device)
        del models
        with torch.device("meta"):  # ties survive: transformers ties after constructing the modules
            base = AutoModelForCausalLM.from_config(build_config(preset, vocab_size, seq_len),
                                                    attn_implementation=attn)
        for m in base.modules():
            if hasattr(m, "warn_if_padding_and_no_attention_mask"):
                m.warn_if_padding_and_no_attention_mask = _no_padding_check
            if isinstance(m, torch.nn.Embedding) and m.padding_idx is not None:
                m.forward = functools.partial(_embedding_padding_no_grad, m)
        self._check_names(base, preset)
        self.base = base
        self.family = family

    def _check_names(self, base, preset: str) -> None:
        """Every tensor the base module holds must come from the stack: no meta tensor may be left."""
        params = dict(base.named_parameters(remove_duplicate=False))
        first = {}
        for name, p in params.items():
            first.setdefault(id(p), name)
        for name, p in params.items():
            owner = first[id(p)]
            if owner not in self.params:
                raise StackingError(f"{preset}: parameter {name} (tied to {owner}) is not in the stacked weights")
        missing = set(self.params) - set(params)
        if missing:
            raise StackingError(f"{preset}: stacked weights {sorted(missing)} are unknown to the base module")
        bufs = {n for n, _ in base.named_buffers(remove_duplicate=False)}
        if bufs != set(self.buffers):
            raise StackingError(f"{preset}: buffers {sorted(bufs ^ set(self.buffers))} do not match")

    def losses(self, x, shared_input: bool = False):
        """Per-run mean next-token loss, shape [N]: x is [N, B, S] (or [B, S] for every run)."""
        from torch.func import functional_call, vmap

        def one(p, b, ids):
            return functional_call(self.base, (p, b), (), {"input_ids": ids, "labels": ids, "use_cache": False}).loss

        with warnings.catch_warnings():  # SDPA has no CPU batching rule: vmap loops it, and says so each call
            warnings.filterwarnings("ignore", message=".*batching rule.*")
            batched = vmap(one, in_dims=(0, None, None if shared_input else 0), randomness="error")
            return batched(self.params, self.buffers, x)


def _stacked_adamw(stack: _Stack, state: dict, lrs, t: TrainParams, alive) -> None:
    """One AdamW step over the run dimension, the arithmetic of torch's single-tensor AdamW:

    p *= 1 - lr*wd (>= 2-D weights only); m = lerp(m, g, 1-b1); v = b2*v + (1-b2)*g*g;
    p -= lr/(1-b1^k) * m / (sqrt(v)/sqrt(1-b2^k) + eps), with lr, and k, per run.
    Runs that diverged (alive False) keep their weights and moments.
    """
    import torch

    state["step"] += alive.to(state["step"].dtype)
    k = state["step"]
    bc1 = 1 - t.beta1 ** k
    bc2_sqrt = (1 - t.beta2 ** k).sqrt()
    step_size = lrs / bc1
    every = bool(alive.all())
    with torch.no_grad():
        for name, p in stack.params.items():
            shape = (-1,) + (1,) * (p.dim() - 1)
            g = p.grad
            m, v = state["m"][name], state["v"][name]
            if every:
                if stack.decay[name]:
                    p.mul_((1 - lrs * t.weight_decay).to(p.dtype).view(shape))
                m.lerp_(g, 1 - t.beta1)
                v.mul_(t.beta2).addcmul_(g, g, value=1 - t.beta2)
                denom = (v.sqrt() / bc2_sqrt.to(p.dtype).view(shape)).add_(EPS)
                p.addcdiv_(m * (-step_size).to(p.dtype).view(shape), denom)
            else:
                keep = alive.view(shape)
                g = torch.where(keep, g, torch.zeros_like(g))
                new_p = p * (1 - lrs * t.weight_decay).to(p.dtype).view(shape) if stack.decay[name] else p.clone()
                new_m = m.lerp(g, 1 - t.beta1)
                new_v = v.mul(t.beta2).addcmul_(g, g, value=1 - t.beta2)
                denom = (new_v.sqrt() / bc2_sqrt.clamp_min(1e-30).to(p.dtype).view(shape)).add_(EPS)
                new_p.addcdiv_(new_m * (-step_size).to(p.dtype).view(shape), denom)
                p.copy_(torch.where(keep, new_p, p))
                m.copy_(torch.where(keep, new_m, m))
                v.copy_(torch.where(keep, new_v, v))


def _clip_per_run(stack: _Stack, max_norm: float) -> None:
    """clip_grad_norm_ per run: each run's global gradient norm over all its parameters."""
    import torch

    with torch.no_grad():
        grads = [p.grad for p in stack.params.values()]
        norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2, dim=1) for g in grads])  # [P, N]
        total = torch.linalg.vector_norm(norms, 2, dim=0)  # [N]
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))


def _evaluate(stack: _Stack, valid: dict[str, np.ndarray], seq_len: int, batch_size: int, device,
              autocast) -> list[dict[str, dict[str, float]]]:
    """loop.evaluate for every run at once: the same windows and held-out halves, one list entry per
    run ({domain: {"all", "a", "b"}}); each half in its own batches (a batch mean covers one half)."""
    import torch

    stack.base.eval()
    n_runs = next(iter(stack.params.values())).shape[0]
    out = [{} for _ in range(n_runs)]
    with torch.no_grad(), autocast():
        for d, arr in valid.items():
            means, counts = [], []
            for part in halves(windows(arr, seq_len)):
                x = torch.from_numpy(part).to(device)
                n = len(x)
                losses = torch.stack([stack.losses(x[i:i + batch_size], shared_input=True).float()
                                      for i in range(0, n, batch_size)]).cpu().numpy()  # [batches, N]
                sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
                means.append([float(np.average(losses[:, r], weights=sizes)) for r in range(n_runs)])
                counts.append(n)
            for r in range(n_runs):
                out[r][d] = {"all": float(np.average([m[r] for m in means], weights=counts)),
                             **{h: m[r] for h, m in zip(HALVES, means)}}
    stack.base.train()
    return out


def train_stacked(specs: Sequence[RunSpec], t: TrainParams, train_tokens_per_run, valid: dict[str, np.ndarray],
                  vocab_size: int, attn: str = "sdpa") -> list[dict]:
    """Train `specs` (one preset, one token budget) together; one record per spec, in order.

    train_tokens_per_run: one token array per spec (their recipes' streams), or one array for all.
    """
    import torch

    specs = list(specs)
    if not specs:
        return []
    streams = _streams(specs, t, train_tokens_per_run)
    n_runs = len(specs)
    device = pick_device(t)
    micro = t.batch_size // t.grad_accum
    if micro * t.grad_accum != t.batch_size:
        raise ValueError(f"train.batch_size {t.batch_size} does not split into grad_accum {t.grad_accum}")
    stack = _Stack(specs[0].preset, [s.seed for s in specs], vocab_size, t.seq_len, device, attn)
    steps = steps_from_tokens(specs[0].tokens, t)
    data, orders = _run_data(specs, streams, t)
    state = {"step": torch.zeros(n_runs, dtype=torch.float64, device=device),
             "m": {n: torch.zeros_like(p) for n, p in stack.params.items()},
             "v": {n: torch.zeros_like(p) for n, p in stack.params.items()}}
    autocast = autocast_for(t, device)
    checkpoints = eval_points(steps, t.eval_points)
    curves = [[] for _ in specs]
    alive = torch.ones(n_runs, dtype=torch.bool, device=device)
    start = time.perf_counter()
    _add_points(curves, stack, valid, t, device, autocast, 0, None, alive)  # as train_run: the initial loss
    stack.base.train()
    for step in range(steps):
        lrs = torch.tensor([lr_at(step, steps, s.lr, t) for s in specs], dtype=torch.float64, device=device)
        rows = np.stack([batch_rows(d, o, step, 1, t.batch_size) for d, o in zip(data, orders)])
        total = _stacked_loss(stack, rows, t, micro, device, autocast)
        alive &= torch.isfinite(total)
        if not bool(alive.any()):
            break
        _clip_per_run(stack, t.grad_clip)
        _stacked_adamw(stack, state, lrs, t, alive)
        for p in stack.params.values():
            p.grad = None
        if step + 1 in checkpoints:
            _add_points(curves, stack, valid, t, device, autocast, step + 1, total, alive)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    return _records(specs, t, stack, steps, curves, alive, wall, device, list(valid), attn)


def _streams(specs: list[RunSpec], t: TrainParams, train_tokens_per_run) -> list:
    """One token array per spec, after the checks that make the runs stackable."""
    presets = {s.preset for s in specs}
    if len(presets) != 1:
        raise StackingError(f"one preset per stack, got {sorted(presets)}")
    if len({s.tokens for s in specs}) != 1:
        raise StackingError("one token budget per stack (the runs step together)")
    if distributed()[1] > 1 or t.compile or t.activation_checkpointing:
        raise StackingError("the stacked trainer runs in one process, without torch.compile or activation "
                            "checkpointing")
    streams = list(train_tokens_per_run) if isinstance(train_tokens_per_run, (list, tuple)) \
        else [train_tokens_per_run] * len(specs)
    if len(streams) != len(specs):
        raise ValueError(f"{len(streams)} token arrays for {len(specs)} runs")
    return streams


def _run_data(specs: list[RunSpec], streams: list, t: TrainParams) -> tuple[list, list]:
    """Each run's sequences and order, as train_run cuts them (runs on one stream share one copy)."""
    arrays = {}
    data = []
    for s in streams:
        if id(s) not in arrays:
            arrays[id(s)] = run_sequences(s, specs[0].tokens, t.seq_len)
        data.append(arrays[id(s)])
    return data, [run_order(len(data[0]), s.seed) for s in specs]


def _stacked_loss(stack: _Stack, rows: np.ndarray, t: TrainParams, micro: int, device, autocast):
    """Forward and backward of every run's batch (rows: [runs, batch, seq]) in t.grad_accum
    micro-batches; each run's mean loss."""
    import torch

    total = torch.zeros(rows.shape[0], device=device)
    for m in range(t.grad_accum):
        x = torch.from_numpy(rows[:, m * micro:(m + 1) * micro]).to(device, non_blocking=True)
        with autocast():
            losses = stack.losses(x) / t.grad_accum
        losses.sum().backward()
        total += losses.detach().float()
    return total


def _add_points(curves: list[list], stack: _Stack, valid, t: TrainParams, device, autocast, step: int, total,
                alive) -> None:
    """A loss-curve point for every run still alive, as train_run's."""
    evals = _evaluate(stack, valid, t.seq_len, t.batch_size * 4, device, autocast)
    for r, losses_r in enumerate(evals):
        if bool(alive[r]):
            curves[r].append({"step": step, "tokens": step * t.batch_size * t.seq_len,
                              "train_loss": None if total is None else float(total[r]),
                              "loss_mean": float(np.mean([v["all"] for v in losses_r.values()])),
                              **{f"loss_{d}": v["all"] for d, v in losses_r.items()},
                              **{f"half_{h}_loss": float(np.mean([v[h] for v in losses_r.values()])) for h in HALVES}})


def _records(specs: list[RunSpec], t: TrainParams, stack: _Stack, steps: int, curves: list, alive, wall: float,
             device, domains: list[str], attn: str) -> list[dict]:
    """train_run's record for each run (the one wall time shared out), plus what stacking adds."""
    n_runs, preset = len(specs), specs[0].preset
    trained = tokens_trained(specs[0].tokens, t)
    flops = train_flops(stack.n_params, preset, t.seq_len, trained)
    achieved = flops * n_runs / wall if wall > 0 else None  # all runs' FLOPs over the one wall time
    peak = peak_flops(device)
    results = []
    for r, spec in enumerate(specs):
        curve = curves[r]
        final = curve[-1] if curve and curve[-1]["step"] == steps and bool(alive[r]) else None
        result = {**dataclasses.asdict(spec), "run_id": spec.run_id, "n_params": stack.n_params, "steps": steps,
                  "tokens_trained": trained, "wall_s": round(wall / n_runs, 3), "resumed_from_step": 0,
                  "tokens_per_s": round(trained * n_runs / wall, 1) if wall > 0 else None,
                  "device": str(device.type), "world_size": 1, "train_flops": flops,
                  "tflops_per_s": round(achieved / 1e12, 4) if achieved else None,
                  "mfu": round(achieved / peak, 4) if achieved and peak else None,
                  "diverged": final is None, "curve": curve,
                  "stacked_runs": n_runs, "stacked_wall_s": round(wall, 3), "attn": attn}
        for key in loss_keys(domains):
            result[key] = final[key] if final else float("nan")
        results.append(result)
    return results


# --------------------------------------------------------------------------- the benchmark

VOCAB = 1024


def _stream(n: int, seed: int) -> np.ndarray:
    """A learnable token stream: a noisy repeating pattern (losses move, so differences show)."""
    rng = np.random.default_rng(seed)
    base = np.tile(np.arange(VOCAB, dtype=np.uint16), n // VOCAB + 1)[:n]
    noise = rng.random(n) < 0.3
    base[noise] = rng.integers(0, VOCAB, int(noise.sum()))
    return base


def _specs(preset: str, n: int, tokens: int) -> list[RunSpec]:
    """n runs over the pipeline's LR range (1e-6 .. 3e-3), seeds alternating 0 / 1."""
    lrs = np.geomspace(3e-3, 1e-6, n)
    return [RunSpec("bench", "proxy", PRESETS[preset].family, preset, float(lr), i % 2, tokens)
            for i, lr in enumerate(lrs)]


def _max_diff(alone: list[dict], stacked: list[dict]) -> float:
    """Largest |difference| of any train or validation loss at any evaluation point."""
    diff = 0.0
    for a, b in zip(alone, stacked):
        if len(a["curve"]) != len(b["curve"]):
            return float("inf")
        for pa, pb in zip(a["curve"], b["curve"]):
            diff = max(diff, max(abs(pa[k] - pb[k]) for k in pa if k.startswith(("loss_", "train_loss"))))
    return diff


def _compare(preset: str, n: int, t: TrainParams, tokens: int, streams, valid, attn: str, repeats: int) -> dict:
    """n runs one after another with train_run, then the same n runs stacked; best of `repeats`."""
    specs = _specs(preset, n, tokens)
    best = {"alone_e2e": math.inf, "stacked_e2e": math.inf, "alone_loop": math.inf, "stacked_loop": math.inf}
    diff = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        alone = [train_run(s, t, streams[i], valid, VOCAB) for i, s in enumerate(specs)]
        best["alone_e2e"] = min(best["alone_e2e"], time.perf_counter() - t0)
        best["alone_loop"] = min(best["alone_loop"], sum(r["wall_s"] for r in alone))
        t0 = time.perf_counter()
        stacked = train_stacked(specs, t, streams[:n], valid, VOCAB, attn=attn)
        best["stacked_e2e"] = min(best["stacked_e2e"], time.perf_counter() - t0)
        best["stacked_loop"] = min(best["stacked_loop"], stacked[0]["stacked_wall_s"])
        diff = max(diff, _max_diff(alone, stacked))
    return {**best, "diff": diff}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", default="pythia,opt,gpt2")
    ap.add_argument("--size", default="tiny", help="preset size: nano, tiny, mini (the pipeline's proxies: tiny)")
    ap.add_argument("--steps", type=int, default=24, help="optimizer steps per run")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--runs", default="2,4,8")
    ap.add_argument("--big-batch", type=int, default=32, help="batch of one extra configuration (first family, N=4)")
    ap.add_argument("--nano", action="store_true", help="one extra configuration: <first family>-nano, N=8")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--attn", default="sdpa", choices=ATTN)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "stacked_training.md"))
    return ap.parse_args(argv)


def _header(a: argparse.Namespace, args: str) -> list[str]:
    """The report's title, command, setting and table head."""
    import torch

    return ["# Stacked training (vmap over functional_call) against the same runs one after another\n",
            f"Command: `{('.venv/bin/python bench/stacked_training.py ' + args).strip()}`\n",
            f"torch {torch.__version__}, {__import__('os').cpu_count()} cores, 1 thread "
            f"(`torch.set_num_threads(1)`), fp32; seq {a.seq}, vocab {VOCAB}, {a.steps} optimizer steps per run, "
            f"evaluation at 4 points on 2 x 8 windows; attention `{a.attn}` under vmap (`sdpa` alone). N runs "
            f"with LRs geometric over the pipeline's range 3e-3 .. 1e-6, seeds alternating 0/1, each run on its "
            f"own token stream. *alone*: `train_run` for each run in turn; *stacked*: `train_stacked` on all N. "
            f"*loop* ratio: alone loop seconds (records' `wall_s`: steps + evaluation) over stacked loop seconds; "
            f"*e2e* ratio: the same with model building (the process is warm: one small run of each kind first). "
            f"Ratio > 1 means stacking is faster. *max abs diff*: the largest |difference| of any train or "
            f"validation loss at any evaluation point between a stacked run and the same run trained alone. "
            f"Best of {a.repeats}; this machine was also running other work, so timings carry noise of ~10%.\n",
            "| preset | N | batch | alone tok/s (loop) | stacked tok/s (loop) | loop ratio | e2e ratio | max abs diff |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]


def _configs(a: argparse.Namespace) -> list[tuple[str, int, int]]:
    """(preset, runs, batch) of every row of the table."""
    fams = a.families.split(",")
    configs = [(f"{fam}-{a.size}", n, a.batch) for fam in fams for n in (int(x) for x in a.runs.split(","))]
    if a.big_batch:
        configs.append((f"{fams[0]}-{a.size}", 4, a.big_batch))
    if a.nano:
        configs.append((f"{fams[0]}-nano", 8, a.batch))
    return configs


def main(argv: list[str] | None = None) -> str:
    import torch

    a = _arguments(argv)
    torch.set_num_threads(1)
    lines = _header(a, " ".join(sys.argv[1:] if argv is None else argv))
    print("\n".join(lines), flush=True)
    valid = {"a": _stream(a.seq * 8 + 1, 101), "b": _stream(a.seq * 8 + 1, 102)}
    errors, warmed = [], set()
    for preset, n, batch in _configs(a):
        t = TrainParams(seq_len=a.seq, batch_size=batch, eval_points=4, warmup_frac=0.05)
        tokens = a.steps * batch * a.seq
        streams = [_stream(tokens + a.seq, i) for i in range(n)]
        try:
            if preset not in warmed:  # first calls pay one-off costs (lazy imports, allocator, kernels)
                w = _specs(preset, 2, 2 * batch * a.seq)
                train_run(w[0], t, streams[0], valid, VOCAB)
                train_stacked(w, t, streams[0], valid, VOCAB, attn=a.attn)
                warmed.add(preset)
            r = _compare(preset, n, t, tokens, streams, valid, a.attn, a.repeats)
        except StackingError as e:
            errors.append(f"{preset}: {e}")
            continue
        total = n * tokens
        row = (f"| {preset} | {n} | {batch} | {total / r['alone_loop']:,.0f} | {total / r['stacked_loop']:,.0f} | "
               f"{r['alone_loop'] / r['stacked_loop']:.2f} | {r['alone_e2e'] / r['stacked_e2e']:.2f} | "
               f"{r['diff']:.1e} |")
        lines.append(row)
        print(row, flush=True)
    if errors:
        lines += ["", "Not stackable:", *[f"- {e}" for e in errors]]
        print("\n".join(lines[-len(errors) - 2:]), flush=True)
    report = "\n".join(lines) + "\n"
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(report)
    return report


if __name__ == "__main__":
    main()
