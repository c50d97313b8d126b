"""The one runner of forked workers: training runs, alignment models and theory worlds.

Tiny models leave a core idle inside one torch process, so jobs run side by side in forked
processes with few threads each: two 1-thread workers beat one 2-thread process on tiny models,
and on a busy 2-core machine a 1-thread process ran 6.6x faster than a 2-thread one. fork, not
spawn: a spawned worker would pay the ~6 s transformers import again. On CUDA (one GPU per
process) or under torchrun jobs run in turn in this process.
"""
from __future__ import annotations

import functools
import multiprocessing as mp
from typing import Callable, Iterator, Sequence

from proxyrank.training.devices import pick_device
from proxyrank.training.params import TrainParams


def init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def cpu_workers(t: TrainParams, jobs: int, world: int = 1) -> int:
    """Workers for `jobs` jobs: t.workers at most on CPU; 1 on CUDA or under torchrun."""
    return 1 if world > 1 or pick_device(t).type == "cuda" else min(t.workers, jobs)


def _star(fn: Callable, job: tuple):
    return fn(*job)


def forked(fn: Callable, jobs: Sequence[tuple], workers: int, threads: int | None = None,
           in_order: bool = True) -> Iterator:
    """fn(*job) for every job: on `workers` forked processes of `threads` torch threads each
    (default: the cores shared out) when workers > 1, else one after the other in this process.

    in_order: results in the order of `jobs` (all at once, as Pool.starmap gives them); else each
    as soon as it is done (Pool.imap_unordered), for progress lines while a long stage runs.
    """
    call = functools.partial(_star, fn)
    if workers <= 1:
        yield from map(call, jobs)
        return
    if threads is None:
        threads = max(1, (mp.cpu_count() or 1) // workers)
    with mp.get_context("fork").Pool(workers, initializer=init_worker, initargs=(threads,)) as pool:
        yield from (pool.map(call, jobs) if in_order else pool.imap_unordered(call, jobs))
