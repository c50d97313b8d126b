"""One training loop for proxies and references, and a runner for many runs per process.

A process that imports transformers costs ~6 s here, so a stage trains all runs of one recipe
and role in one process, spread over forked 1-thread workers (two 1-thread workers beat one
2-thread process on tiny models). Finished runs are kept under data/.resume/ by a fingerprint of
everything that determines them (params, data, the code that trains and the library versions),
so a killed stage resumes where it stopped, and a record is checked before it is trusted.
Records and outputs hold what the inputs determine; wall times go to data/timings/ (timings.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proxyrank import timings
from proxyrank.config import Params, TrainParams
from proxyrank.files import kill_point, sha256, write_json
from proxyrank.data.tokens import load_array


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
        return f"{self.family}-{self.preset}-lr{lr_text(self.lr)}-s{self.seed}"


def lr_text(lr: float) -> str:
    """An LR as short as it can be written without losing a digit: 3e-03, 3.5e-03, 1.25e-03."""
    return np.format_float_scientific(lr, trim="-", exp_digits=2)


def run_specs(p: Params, recipe: str, role: str) -> list[RunSpec]:
    specs = p.proxies if role == "proxy" else [p.reference]
    tokens = p.train.proxy_tokens if role == "proxy" else p.train.reference_tokens
    return [RunSpec(recipe, role, s.family, s.preset, lr, seed, tokens)
            for s in specs for lr, seed in s.runs()]


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


def param_groups(model, weight_decay: float):
    """Decay matrices only, not biases and norms (as GPT-2 / nanoGPT do)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]


def evaluate(model, valid: dict[str, np.ndarray], seq_len: int, batch_size: int, device,
             autocast) -> dict[str, float]:
    """Mean next-token loss per validation domain over non-overlapping windows."""
    import torch

    model.eval()
    out = {}
    with torch.no_grad(), autocast():
        for d, arr in valid.items():
            n = (len(arr) - 1) // seq_len
            x = torch.from_numpy(np.asarray(arr[: n * seq_len], dtype=np.int64)).view(n, seq_len).to(device)
            losses = [model(input_ids=x[i:i + batch_size], labels=x[i:i + batch_size]).loss.float().item()
                      for i in range(0, n, batch_size)]
            sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
            out[d] = float(np.average(losses, weights=sizes))
    model.train()
    return out


# --------------------------------------------------------------------------- devices and processes

def distributed() -> tuple[int, int]:
    """(rank, world size): under torchrun (WORLD_SIZE > 1) joins the process group once."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and os.environ.get("PROXYRANK_DDP_BACKEND") != "gloo"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def pick_device(t: TrainParams):
    import torch

    if t.device == "cuda" or (t.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("train.device: 'cuda' asked for, but torch sees no CUDA device")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def autocast_for(t: TrainParams, device):
    """bf16 autocast on CUDA by default (the paper's setting); fp32 elsewhere unless asked."""
    import contextlib
    import functools

    import torch

    bf16 = t.precision == "bf16" or (t.precision == "auto" and device.type == "cuda")
    if not bf16:
        return contextlib.nullcontext
    return functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)


# Dense bf16 peak of known GPUs (vendor data sheets), for MFU; others log MFU as null.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12,
                   "L4": 121e12, "A10": 125e12}


def peak_flops(device) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


# --------------------------------------------------------------------------- checkpoints

def _save_checkpoint(folder: Path, model, opt, state: dict) -> None:
    """Weights and optimizer state as safetensors, then state.json naming them (the commit point)."""
    from safetensors.torch import save_file, save_model

    folder.mkdir(parents=True, exist_ok=True)
    step = state["step"]
    save_model(model, str(folder / f"model-{step}.safetensors"))
    flat = {f"{i}.{k}": v.detach().cpu().contiguous() if hasattr(v, "detach") else __import__("torch").tensor(v)
            for i, st in opt.state_dict()["state"].items() for k, v in st.items()}
    save_file(flat, str(folder / f"optim-{step}.safetensors"))
    write_json(folder / "state.json", state)
    for old in folder.glob("*.safetensors"):
        if not old.stem.endswith(f"-{step}"):
            old.unlink(missing_ok=True)


def _checkpoint_state(folder: Path) -> tuple[dict | None, str | None]:
    """A checkpoint's state.json and why it cannot be resumed from (None: it can)."""
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return None, f"state.json unreadable ({e})"
    if not (isinstance(state, dict) and _is(state.get("step"), int) and state["step"] > 0
            and isinstance(state.get("curve"), list) and _is(state.get("wall_s"), float)):
        return None, "state.json lacks step (int > 0), curve (list) or wall_s (number)"
    missing = [f"{kind}-{state['step']}.safetensors" for kind in ("model", "optim")
               if not (folder / f"{kind}-{state['step']}.safetensors").is_file()]
    return (None, f"{', '.join(missing)} missing") if missing else (state, None)


def _load_checkpoint(folder: Path, model, opt) -> dict | None:
    """The last committed state of a killed run, loaded into model and opt; None if there is none
    or it is damaged (then the run starts over, as if there were none)."""
    from safetensors.torch import load_file, load_model

    if folder is None or not (folder / "state.json").exists():
        return None
    state, reason = _checkpoint_state(folder)
    if reason:
        print(f"resume: {folder} ignored: {reason}; training again", flush=True)
        return None
    step = state["step"]
    load_model(model, str(folder / f"model-{step}.safetensors"), device=str(next(model.parameters()).device))
    flat = load_file(str(folder / f"optim-{step}.safetensors"))
    sd = opt.state_dict()
    sd["state"] = {}
    for key, value in flat.items():
        i, name = key.split(".", 1)
        sd["state"].setdefault(int(i), {})[name] = value
    opt.load_state_dict(sd)
    return state


# --------------------------------------------------------------------------- the loop

def train_run(spec: RunSpec, t: TrainParams, train_tokens: np.ndarray, valid: dict[str, np.ndarray],
              vocab_size: int, checkpoint: Path | None = None) -> dict:
    """Train one randomly initialised model for one epoch over exactly spec.tokens tokens.

    Under torchrun each rank takes its slice of every global batch (DDP averages the gradients,
    so the update equals one process's at the same global batch). With `checkpoint`, the state
    after each evaluation point is kept there, and a killed run continues from it.
    The result also carries how long the run took and how fast (TIMING_KEYS, for benchmarks);
    run_all takes those out before anything is written (split_timing).
    """
    import contextlib

    import torch

    from proxyrank.training.models import build_model, count_params, train_flops

    rank, world = distributed()
    device = pick_device(t)
    local, micro = t.batch_size // world, t.batch_size // (world * t.grad_accum)
    if local * world != t.batch_size or micro * t.grad_accum != local:
        raise ValueError(f"train.batch_size {t.batch_size} does not split over {world} process(es) "
                         f"x grad_accum {t.grad_accum}")
    torch.manual_seed(spec.seed)
    model = build_model(spec.preset, vocab_size, t.seq_len)
    n_params = count_params(model)
    if t.activation_checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
    model.to(device)
    n_seq = spec.tokens // t.seq_len
    steps = n_seq // t.batch_size
    data = np.asarray(train_tokens[: n_seq * t.seq_len], dtype=np.int64).reshape(n_seq, t.seq_len)
    order = np.random.default_rng(spec.seed).permutation(n_seq)
    opt = torch.optim.AdamW(param_groups(model, t.weight_decay), lr=spec.lr, betas=(t.beta1, t.beta2),
                            fused=device.type == "cuda")
    state = _load_checkpoint(checkpoint, model, opt) or {"step": 0, "curve": [], "wall_s": 0.0}
    resumed_from = state["step"]
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if t.compile:
        net = torch.compile(net)
    autocast = autocast_for(t, device)
    checkpoints = eval_points(steps, t.eval_points)
    curve, diverged = state["curve"], False
    start = time.perf_counter()
    if not curve:  # step 0: the loss at initialisation, from which every run's movement is measured
        losses = evaluate(model, valid, t.seq_len, t.batch_size * 4, device, autocast)
        curve.append({"step": 0, "tokens": 0, "train_loss": None,
                      "loss_mean": float(np.mean(list(losses.values()))), **{f"loss_{d}": v for d, v in losses.items()}})
    model.train()
    for step in range(resumed_from, steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, spec.lr, t)
        rows = data[order[step * t.batch_size:(step + 1) * t.batch_size]][rank * local:(rank + 1) * local]
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
        if not torch.isfinite(total):
            diverged = True
            break
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step + 1 in checkpoints:
            losses = evaluate(model, valid, t.seq_len, t.batch_size * 4, device, autocast)
            curve.append({"step": step + 1, "tokens": (step + 1) * t.batch_size * t.seq_len,
                          "train_loss": float(total.item()), "loss_mean": float(np.mean(list(losses.values()))),
                          **{f"loss_{d}": v for d, v in losses.items()}})
            if checkpoint is not None and step + 1 < steps:
                if rank == 0:
                    wall = state["wall_s"] + time.perf_counter() - start
                    _save_checkpoint(checkpoint, model, opt, {"step": step + 1, "curve": curve, "wall_s": wall})
                    kill_point("train.checkpoint")
                if world > 1:
                    torch.distributed.barrier()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    run_wall = time.perf_counter() - start
    wall = state["wall_s"] + run_wall
    final = curve[-1] if curve and curve[-1]["step"] == steps and not diverged else None
    tokens_trained = steps * t.batch_size * t.seq_len
    flops = train_flops(n_params, spec.preset, t.seq_len, tokens_trained)
    done = (steps - resumed_from) / max(1, steps)  # the share trained in this process
    achieved = flops * done / run_wall / world if run_wall > 0 else None
    peak = peak_flops(device)
    result = {**dataclasses.asdict(spec), "run_id": spec.run_id, "n_params": n_params, "steps": steps,
              "tokens_trained": tokens_trained, "device": str(device.type), "world_size": world,
              "train_flops": flops, "diverged": final is None, "curve": curve,
              "wall_s": round(wall, 3), "resumed_from_step": resumed_from,
              "tokens_per_s": round(tokens_trained * done / run_wall, 1) if run_wall > 0 else None,
              "tflops_per_s": round(achieved / 1e12, 4) if achieved else None,
              "mfu": round(achieved / peak, 4) if achieved and peak else None}
    for key in ["loss_mean"] + [f"loss_{d}" for d in valid]:
        result[key] = final[key] if final else float("nan")
    return result


# --------------------------------------------------------------------------- resume records

CODE_MODULES = ("proxyrank.training.models", "proxyrank.training.train", "proxyrank.data.tokens")  # build, train, batch, load
LIBRARIES = ("torch", "transformers", "numpy")  # model code, kernels and the data order


def code_stamp() -> dict[str, str]:
    """What decides a run besides its params and data: the bytes of the modules that build and
    train it and the versions of the libraries under them. It is part of every fingerprint, so an
    edited preset or an upgraded torch never brings back a result that other code made."""
    stamp = {m: sha256(importlib.import_module(m).__file__) for m in CODE_MODULES}
    return stamp | {lib: str(importlib.import_module(lib).__version__) for lib in LIBRARIES}


def run_key(spec: RunSpec, t: TrainParams, digests: dict[str, str], stamp: dict[str, str]) -> dict:
    """Everything that determines a run's result, in the form a resume record stores it (JSON)."""
    from proxyrank.training.models import PRESETS

    key = {"spec": dataclasses.asdict(spec), "train": dataclasses.asdict(t),
           "preset": dataclasses.asdict(PRESETS[spec.preset]), "data": digests, "code": stamp}
    return json.loads(json.dumps(key, sort_keys=True))


def fingerprint(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def _is(value, kind: type) -> bool:
    """JSON type check that keeps bools apart from numbers (True is an int to Python)."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if kind is float else kind)


RESULT_FIELDS = {"run_id": str, "n_params": int, "steps": int, "tokens_trained": int, "device": str,
                 "world_size": int, "train_flops": int, "diverged": bool, "curve": list}

# What train_run measures rather than computes: it differs between machines, between a run that was
# killed and resumed and one that was not, and between two tries on one machine. Kept out of run
# records and outputs, so their hashes follow from the inputs alone (timings.py says where it goes).
TIMING_KEYS = ("wall_s", "resumed_from_step", "tokens_per_s", "tflops_per_s", "mfu")


def split_timing(result: dict) -> tuple[dict, dict]:
    """(the result without its timing keys, the timing keys it had)."""
    return ({k: v for k, v in result.items() if k not in TIMING_KEYS},
            {k: result[k] for k in TIMING_KEYS if k in result})


def _non_finite(obj, where: str = "result") -> str | None:
    """Where a NaN or infinity sits in a record (Python's JSON reads them); None if nowhere."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    return next((w for k, v in items if (w := _non_finite(v, f"{where}.{k}"))), None)


def _record_problem(record, spec: RunSpec, key: dict, domains: list[str]) -> str | None:
    """Why a resume record cannot stand for the run `key` describes; None when it can."""
    if not isinstance(record, dict) or set(record) != {"fingerprint", "key", "result"}:
        return "not a resume record (a mapping of fingerprint, key and result)"
    stored = record["key"] if isinstance(record["key"], dict) else {}
    differ = [part for part in key if stored.get(part) != key[part]]
    if differ or record["fingerprint"] != fingerprint(key):
        return f"made for another run (its stored {', '.join(differ) or 'fingerprint'} do not match)"
    result = record["result"]
    if not isinstance(result, dict):
        return "its result is not a mapping"
    expected = {**dataclasses.asdict(spec), "run_id": spec.run_id}
    wrong = [f for f, kind in RESULT_FIELDS.items() if not _is(result.get(f), kind)]
    wrong += [f for f, v in expected.items() if f not in wrong and not (_is(result.get(f), type(v))
                                                                         and result[f] == v)]
    # a diverged run's losses are NaN, stored as null; any other run's are numbers
    losses = ["loss_mean"] + [f"loss_{d}" for d in domains]
    wrong += [k for k in losses if not (_is(result.get(k), float) or (k in result and result[k] is None
                                                                      and result.get("diverged") is True))]
    if wrong:
        return f"its result has a wrong or missing {', '.join(wrong)}"
    bad = _non_finite(result)
    return f"non-finite number at {bad}" if bad else None


def _resumed(path: Path, spec: RunSpec, key: dict, domains: list[str], rank: int) -> dict | None:
    """The stored result of a finished run, or None (then it is trained again, and rank 0 says why)."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        problem = f"not readable JSON ({e})"
    else:
        problem = _record_problem(record, spec, key, domains)
    if problem is None:
        return split_timing(record["result"])[0]  # a record an older version wrote may carry them
    if rank == 0:
        print(f"resume: {path} ignored: {problem}; training again", flush=True)
    return None


def _lock(fd: int, wait: bool) -> bool:
    """flock `fd`; False if another process holds it (or the file system cannot lock: then no one
    can tell a live checkpoint from a leaked one, and nothing is deleted)."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _claim(folder: Path):
    """Hold a lock on a run's checkpoint folder while it trains: stages that share data/.resume
    (the `gpus` runner trains several side by side) then never delete each other's live
    checkpoints, while a killed run's lock dies with it."""
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
        _lock(fd, wait=True)
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(folder)):
                break
        os.close(fd)  # the folder was deleted while we waited: lock the one that is there now
    try:
        yield
    finally:
        os.close(fd)


def _drop_leaked_checkpoints(resume_dir: Path, keep: set[str]) -> None:
    """Delete the checkpoint folders of runs this stage will not train: a killed run's, left for
    good when params, data, code or libraries changed since. Those of runs about to train are
    their mid-run resume; those locked by a live run (another stage) are left alone."""
    dropped = 0
    for folder in sorted(resume_dir.glob("*.ckpt")):
        if folder.stem in keep or not folder.is_dir():
            continue
        try:
            fd = os.open(folder, os.O_RDONLY)
        except FileNotFoundError:  # deleted meanwhile by another stage's clean-up
            continue
        try:
            if _lock(fd, wait=False):
                shutil.rmtree(folder, ignore_errors=True)
                dropped += 1
        finally:
            os.close(fd)
    if dropped:
        print(f"resume: deleted {dropped} checkpoint(s) of runs no longer asked for in {resume_dir}", flush=True)


def _cost(spec: RunSpec, vocab_size: int, seq_len: int) -> int:
    """Training FLOPs of a run, to schedule the longest runs first."""
    from proxyrank.training.models import param_count, train_flops

    return train_flops(param_count(spec.preset, vocab_size, seq_len), spec.preset, seq_len, spec.tokens)


def init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _work(job) -> tuple[dict, dict]:
    """Train one run; (its result, its timing). The resume record gets the result, stamped with its
    key; the timing file (if any) gets one line keyed by the run's id and fingerprint."""
    spec, t, train_path, valid_paths, vocab_size, resume_path, key, timing_path = job
    valid = {d: load_array(Path(p)) for d, p in valid_paths.items()}
    checkpoint = resume_path.with_suffix(".ckpt")
    rank = distributed()[0]
    with _claim(checkpoint) if rank == 0 else contextlib.nullcontext():
        result, timing = split_timing(train_run(spec, t, load_array(Path(train_path)), valid, vocab_size,
                                                checkpoint))
        if rank == 0:
            write_json(resume_path, {"fingerprint": fingerprint(key), "key": key, "result": result})
            if timing_path is not None:
                timings.append(timing_path, {"kind": "run", "run_id": spec.run_id, "recipe": spec.recipe,
                                             "role": spec.role, "fingerprint": fingerprint(key),
                                             "device": result["device"], "world_size": result["world_size"],
                                             "tokens_trained": result["tokens_trained"], **timing})
            shutil.rmtree(checkpoint, ignore_errors=True)
    kill_point("train.run")
    return result, timing


def run_keys(specs: list[RunSpec], t: TrainParams, train_path: Path, valid_paths: dict[str, Path]) -> list[dict]:
    """Each spec's run key (run_key) on these data files: what its resume record and timing line
    are filed under (by fingerprint)."""
    digests = {"train": sha256(train_path), **{d: sha256(p) for d, p in sorted(valid_paths.items())}}
    stamp = code_stamp()
    return [run_key(spec, t, digests, stamp) for spec in specs]


def run_all(specs: list[RunSpec], t: TrainParams, train_path: Path, valid_paths: dict[str, Path],
            vocab_size: int, resume_dir: Path, out_dir: Path, timing_path: Path | None = None) -> list[dict]:
    """Train every spec (resuming finished or checkpointed ones), write one JSON per run into out_dir.

    Forked CPU workers run jobs side by side; on CUDA or under torchrun the jobs run in turn
    (one GPU per process: spread recipes over GPUs with CUDA_VISIBLE_DEVICES, README). The results
    and the files hold no timing (TIMING_KEYS); each run trained here appends its timing to
    `timing_path` (timings.py) if given.
    """
    rank, world = distributed()
    jobs, results = [], []
    for spec, key in zip(specs, run_keys(specs, t, train_path, valid_paths)):
        resume_path = resume_dir / f"{fingerprint(key)}.json"
        result = _resumed(resume_path, spec, key, list(valid_paths), rank)
        if result is not None:
            results.append(result)
        else:
            jobs.append((spec, t, str(train_path), {d: str(p) for d, p in valid_paths.items()},
                         vocab_size, resume_path, key, timing_path))
    if rank == 0:
        _drop_leaked_checkpoints(resume_dir, {job[5].stem for job in jobs})
    jobs.sort(key=lambda job: _cost(job[0], vocab_size, t.seq_len), reverse=True)  # longest first: no idle tail
    workers = 1 if world > 1 or pick_device(t).type == "cuda" else min(t.workers, len(jobs))
    if rank == 0:
        print(f"train: {len(specs)} runs, {len(results)} resumed, {len(jobs)} to train on "
              f"{world if world > 1 else max(1, workers)} {'process' if world > 1 else 'worker'}(s)", flush=True)
    start = time.perf_counter()
    if workers > 1:
        threads = max(1, (mp.cpu_count() or 1) // workers)
        with mp.get_context("fork").Pool(workers, initializer=init_worker, initargs=(threads,)) as pool:
            for r, timing in pool.imap_unordered(_work, jobs):
                results.append(r)
                _progress(r, timing, len(results), len(specs))
    else:
        for job in jobs:
            r, timing = _work(job)
            results.append(r)
            if rank == 0:
                _progress(r, timing, len(results), len(specs))
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        for r in results:
            write_json(out_dir / f"{r['run_id']}.json", r)
        print(f"train: done {len(jobs)} runs in {time.perf_counter() - start:.0f} s", flush=True)
    return results


def _progress(r: dict, timing: dict, done: int, total: int) -> None:
    print(f"  [{done}/{total}] {r['recipe']} {r['run_id']}: loss {r['loss_mean']:.4f} "
          f"({timing['wall_s']:.0f} s)", file=sys.stderr, flush=True)
