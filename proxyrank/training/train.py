"""Many runs per process: every run of one recipe and role, resumed where it can be, the rest trained.

A process that imports transformers costs ~6 s here, so a stage trains all runs of one recipe
and role in one process, spread over forked 1-thread workers (pool.py). Finished runs are kept
under data/.resume/ by a fingerprint of everything that determines them (params, data, the code
that trains and the library versions), so a killed stage resumes where it stopped, and a record
is checked before it is trusted (records.py); a run killed midway continues from its last
checkpoint (checkpoint.py). Records and outputs hold what the inputs determine; wall times go to
data/timings/ (timings.py).

The training room, in the order a run flows through it: params.py (what a run is) -> batches.py
(its tokens) -> models.py (its model) -> optim.py (its update) -> loop.py (train_run, the loop)
-> checkpoint.py / records.py (resume) -> this module (run_all); devices.py and pool.py say where
it computes. The names other modules import from here are re-exported below.
"""
from __future__ import annotations

import contextlib
import importlib
import shutil
import time
from pathlib import Path
from typing import NamedTuple

from proxyrank import timings
from proxyrank.data.tokens import load_array
from proxyrank.files import kill_point, sha256, write_json
from proxyrank.training import models
from proxyrank.training.checkpoint import claim, drop_leaked_checkpoints
from proxyrank.training.live import open_live
from proxyrank.training.devices import PEAK_BF16_FLOPS, autocast_for, distributed, peak_flops, pick_device
from proxyrank.training.loop import eval_points, evaluate, train_run
from proxyrank.training.optim import lr_at, param_groups
from proxyrank.training.params import RunSpec, TrainParams, lr_text, run_specs, steps_from_tokens
from proxyrank.training.pool import cpu_workers, forked, init_worker
from proxyrank.training.progress import StageProgress
from proxyrank.training.records import TIMING_KEYS, fingerprint, resumed, run_key, split_timing

# Re-exported: cli.py, stages, tools (plan, ladder, candidates), bench and tests import these from here.
__all__ = ["PEAK_BF16_FLOPS", "TIMING_KEYS", "RunSpec", "TrainParams", "autocast_for", "code_stamp", "distributed",
           "eval_points", "evaluate", "fingerprint", "init_worker", "lr_at", "lr_text", "param_groups", "peak_flops",
           "pick_device", "run_all", "run_key", "run_keys", "run_specs", "split_timing", "steps_from_tokens",
           "train_run"]

# The modules whose bytes key every resume record: all the code that builds, batches, trains and
# resumes a run (tests/test_train.py checks that every training module train.py reaches is here).
CODE_MODULES = ("proxyrank.training.params", "proxyrank.training.presets", "proxyrank.training.models", "proxyrank.training.batches",
                "proxyrank.training.optim", "proxyrank.training.devices", "proxyrank.training.loop",
                "proxyrank.training.checkpoint", "proxyrank.training.records", "proxyrank.training.pool",
                "proxyrank.training.progress", "proxyrank.training.live",
                "proxyrank.training.train", "proxyrank.data.tokens")
LIBRARIES = ("torch", "transformers", "numpy")  # model code, kernels and the data order


def code_stamp() -> dict[str, str]:
    """What decides a run besides its params and data: the bytes of the modules that build and
    train it and the versions of the libraries under them. It is part of every fingerprint, so an
    edited preset or an upgraded torch never brings back a result that other code made."""
    stamp = {m: sha256(importlib.import_module(m).__file__) for m in CODE_MODULES}
    return stamp | {lib: str(importlib.import_module(lib).__version__) for lib in LIBRARIES}


def run_keys(specs: list[RunSpec], t: TrainParams, train_path: Path, valid_paths: dict[str, Path]) -> list[dict]:
    """Each spec's run key (records.run_key) on these data files: what its resume record and timing
    line are filed under (by fingerprint)."""
    digests = {"train": sha256(train_path), **{d: sha256(p) for d, p in sorted(valid_paths.items())}}
    stamp = code_stamp()
    return [run_key(spec, t, digests, stamp) for spec in specs]


class Job(NamedTuple):
    """One run to train in a worker (paths as text: the job is pickled to a forked process)."""
    spec: RunSpec
    t: TrainParams
    train_path: str
    valid_paths: dict[str, str]
    vocab_size: int
    resume_path: Path
    key: dict
    timing_path: Path | None


def _work(spec: RunSpec, t: TrainParams, train_path: str, valid_paths: dict[str, str], vocab_size: int,
          resume_path: Path, key: dict, timing_path: Path | None) -> tuple[dict, dict]:
    """Train one run; (its result, its timing). The resume record gets the result, stamped with its
    key; the timing file (if any) gets one line keyed by the run's id and fingerprint."""
    valid = {d: load_array(Path(p)) for d, p in valid_paths.items()}
    checkpoint = resume_path.with_suffix(".ckpt")
    rank = distributed()[0]
    with claim(checkpoint) if rank == 0 else contextlib.nullcontext():
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


def _cost(spec: RunSpec, vocab_size: int, seq_len: int) -> int:
    """Training FLOPs of a run, to schedule the longest runs first."""
    return models.train_flops(models.param_count(spec.preset, vocab_size, seq_len), spec.preset, seq_len,
                              spec.tokens)


def run_all(specs: list[RunSpec], t: TrainParams, train_path: Path, valid_paths: dict[str, Path],
            vocab_size: int, resume_dir: Path, out_dir: Path, timing_path: Path | None = None,
            live_dir: Path | None = None) -> list[dict]:
    """Train every spec (resuming finished or checkpointed ones), write one JSON per run into out_dir.

    Forked CPU workers run jobs side by side; on CUDA or under torchrun the jobs run in turn
    (one GPU per process: spread recipes over GPUs with CUDA_VISIBLE_DEVICES, README). The results
    and the files hold no timing (TIMING_KEYS); each run trained here appends its timing to
    `timing_path` (timings.py) if given, and its curve to DVCLive's `live_dir` if live logging is on
    (live.py).
    """
    rank, world = distributed()
    jobs, results = [], []
    for spec, key in zip(specs, run_keys(specs, t, train_path, valid_paths)):
        resume_path = resume_dir / f"{fingerprint(key)}.json"
        result = resumed(resume_path, spec, key, list(valid_paths), rank)
        if result is not None:
            results.append(result)
        else:
            jobs.append(Job(spec, t, str(train_path), {d: str(p) for d, p in valid_paths.items()},
                            vocab_size, resume_path, key, timing_path))
    if rank == 0:
        drop_leaked_checkpoints(resume_dir, {job.resume_path.stem for job in jobs})
    jobs.sort(key=lambda job: _cost(job.spec, vocab_size, t.seq_len), reverse=True)  # longest first: no idle tail
    workers = cpu_workers(t, len(jobs), world)
    if rank == 0:
        print(f"train: {len(specs)} runs, {len(results)} resumed, {len(jobs)} to train on "
              f"{world if world > 1 else max(1, workers)} {'process' if world > 1 else 'worker'}(s)", flush=True)
    start = time.perf_counter()
    progress = StageProgress(f"{specs[0].role} {specs[0].recipe}" if specs else "train", len(specs), len(results),
                             quiet=rank != 0)
    live = open_live(live_dir) if rank == 0 else None
    for r in results if live else []:  # resumed runs first: the folder starts afresh
        live.run(r)
    for r, timing in forked(_work, jobs, workers, in_order=False):
        results.append(r)
        progress.update(f"{r['run_id']} loss {r['loss_mean']:.4f} ({timing['wall_s']:.0f} s)")
        if live:
            live.run(r)
    progress.close()
    if live:
        live.close()
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        for r in results:
            write_json(out_dir / f"{r['run_id']}.json", r)
        print(f"train: done {len(jobs)} runs in {time.perf_counter() - start:.0f} s", flush=True)
    return results
