"""Which tokens a run sees, in which order: its training batches and its validation windows.

A run cuts its recipe's first `tokens` tokens into seq_len sequences, shuffles them once with its
seed (one epoch, nothing repeated) and takes batch_size of them per step; validation cuts each
domain into non-overlapping seq_len windows. train_run trains on exactly these, and alignment
measures the same batches and windows (so its proxy model sees what the proxy run would).

Each domain's windows are also cut into two held-out halves, the first and the second half of its
text (HALVES): every run reports its loss on each, at no extra compute, so the zero-training proxy can
take its validation gradient from half A and be scored against rankings on half B, text it never saw
(a score computed on the very text it is judged on would select on the target).
"""
from __future__ import annotations

import numpy as np


def run_sequences(tokens: np.ndarray, run_tokens: int, seq_len: int) -> np.ndarray:
    """The first run_tokens // seq_len sequences of `tokens`, as (n, seq_len) int64."""
    n_seq = run_tokens // seq_len
    return np.asarray(tokens[: n_seq * seq_len], dtype=np.int64).reshape(n_seq, seq_len)


def run_order(n_seq: int, seed: int) -> np.ndarray:
    """The order a run with this seed trains its sequences in."""
    return np.random.default_rng(seed).permutation(n_seq)


def batch_rows(data: np.ndarray, order: np.ndarray, first: int, count: int, batch_size: int) -> np.ndarray:
    """The sequences of `count` consecutive batches from step `first`: (count * batch_size, seq_len)."""
    return data[order[first * batch_size:(first + count) * batch_size]]


def windows(arr: np.ndarray, seq_len: int, cap: int = 0) -> np.ndarray:
    """A validation domain's non-overlapping seq_len windows, (n, seq_len) int64; the first `cap`
    (0: all). The last token is only ever a label, so n = (len - 1) // seq_len."""
    n = (len(arr) - 1) // seq_len
    n = min(n, cap) if cap else n
    return np.asarray(arr[: n * seq_len], dtype=np.int64).reshape(n, seq_len)


HALVES = ("a", "b")


def loss_keys(domains) -> list[str]:
    """The losses a finished run reports: the mean over domains, each domain's, each half's mean."""
    return ["loss_mean", *(f"loss_{d}" for d in domains), *(f"half_{h}_loss" for h in HALVES)]


def halves(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A domain's windows cut in two: the first len // 2 (half A) and the rest (half B). Contiguous
    halves share at most the one document that straddles the cut; alternating windows would put
    neighbouring windows of every document on both sides."""
    return x[: len(x) // 2], x[len(x) // 2:]


def valid_windows(valid: dict[str, np.ndarray], seq_len: int, cap: int, half: str = "") -> dict[str, np.ndarray]:
    """Each domain's windows (`windows`), as evaluate cuts them, the first `cap` (0: all); with
    `half` ("a" or "b"), only that held-out half of them, cut before the cap."""
    out = {}
    for d, arr in valid.items():
        x = windows(arr, seq_len)
        if half:
            x = halves(x)[HALVES.index(half)]
        out[d] = x[:cap] if cap else x
    return out
