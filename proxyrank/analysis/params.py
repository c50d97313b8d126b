"""The params sections of the analyses: `analysis.validity:` (the pass marks of validity.py),
`alignment:` (the zero-training proxy, alignment.py) and `theory:` (the random-feature theorem
simulated, theory.py).

Kept apart from the code that runs them so that proxyrank.config, which every stage loads, does
not import torch-facing or simulation code: an edit to alignment.py or theory.py reruns only the
stage that runs it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from proxyrank.checks import check_types, fail_field
from proxyrank.errors import ParamsError


@dataclass(frozen=True)
class AlignmentParams:
    """The `alignment:` section of params.yaml.

    batches                   training batches per recipe averaged into g_D: the first ones a
                              proxy with the same seed trains on (8 x 8 x 128 = 8k tokens).
    warm_steps                AdamW steps of the warm start, half of the default proxy run
                              (97 steps of 8 x 128 tokens); 0 measures at initialisation only.
    warm_lr                   constant LR of the warm start: a standard LR (the nano proxies' best
                              in a pilot), so the warm model is where a standard proxy is part-way
                              into its run (a tiny LR would leave it at its initialisation).
    valid_windows_per_domain  cap on the seq_len windows per validation domain used for g_val, of
                              held-out half A (0: all of it); the scores are judged on half B.
    Defaults are params.yaml's values.
    """

    batches: int = 8
    warm_steps: int = 48
    warm_lr: float = 1e-2
    valid_windows_per_domain: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        if self.batches < 1:
            fail_field("batches", "must be >= 1", self.batches)
        if self.warm_steps < 0:
            fail_field("warm_steps", "must be >= 0", self.warm_steps)
        if not (math.isfinite(self.warm_lr) and self.warm_lr > 0):
            fail_field("warm_lr", "must be a finite number > 0", self.warm_lr)
        if self.valid_windows_per_domain < 0:
            fail_field("valid_windows_per_domain", "must be >= 0 (0: all windows)", self.valid_windows_per_domain)


@dataclass(frozen=True)
class TheoryParams:
    """The `theory:` section of params.yaml: problem size, the grid (widths x LRs x seeds) and
    the ranges recipes are drawn from. Defaults run in about a minute and a half on one core."""
    input_dim: int = 8
    teacher_width: int = 8  # hidden units of the random ReLU teacher (with biases)
    n_recipes: int = 8
    widths: list[int] = field(default_factory=lambda: [16, 64, 256, 1024])
    # eta = lr_frac / lambda_max(E_val[phi phi^T]) at that width and seed
    lr_fracs: list[float] = field(default_factory=lambda: [0.01, 0.03, 0.1, 0.3, 1.0, 2.0])
    # the same for every LR (a fixed sample budget, as for the study's proxies); the theorem's
    # small-eta regime also needs the drift converged: lr_frac * steps >> 1 (see 'horizon')
    steps: int = 20000
    batch_size: int = 16
    seeds: list[int] = field(default_factory=lambda: [0, 1])  # first layer and SGD samples
    n_kernel: int = 2000  # recipe samples for kernel ridge regression and for the drift
    n_valid: int = 4000
    ridge: float = 1e-4  # KRR ridge, relative: (K/n + ridge I)
    # recipe i draws: ||mean shift|| ~ U[0, shift_max]; input std ~ logU[scale_min, scale_max]
    # times exp(U[0, aniso_max] * N(0,1)) per coordinate; label noise std ~ U[0, noise_max];
    # corrupted share ~ U[0, corrupt_max] (labels replaced by N(0,1), f* has unit variance).
    shift_max: float = 1.0
    scale_min: float = 0.6
    scale_max: float = 1.6
    aniso_max: float = 0.5
    noise_max: float = 1.0
    corrupt_max: float = 0.3
    drift: bool = True  # also full-batch GD on the n_kernel samples (the proof's drift term)
    # ground-truth draws (teacher, recipes, optimal losses): one world's outcome is partly chance
    worlds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])

    def __post_init__(self):
        for name in ("input_dim", "teacher_width", "steps", "batch_size", "n_kernel", "n_valid"):
            if getattr(self, name) < 1:
                raise ParamsError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.n_recipes < 3:
            raise ParamsError(f"n_recipes: need >= 3 to rank, got {self.n_recipes}")
        for name in ("widths", "lr_fracs", "seeds", "worlds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ParamsError(f"{name}: must be a non-empty list without repeats, got {values}")
        if min(self.widths) < 1:
            raise ParamsError(f"widths: must be >= 1, got {self.widths}")
        if not all(x > 0 and math.isfinite(x) for x in self.lr_fracs):
            raise ParamsError(f"lr_fracs: must be finite and > 0, got {self.lr_fracs}")
        for name in ("ridge", "scale_min"):
            if not getattr(self, name) > 0:
                raise ParamsError(f"{name}: must be > 0, got {getattr(self, name)}")
        if self.scale_max < self.scale_min:
            raise ParamsError(f"scale_max: must be >= scale_min={self.scale_min}, got {self.scale_max}")
        for name in ("shift_max", "aniso_max", "noise_max"):
            if not getattr(self, name) >= 0:
                raise ParamsError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.corrupt_max <= 1:
            raise ParamsError(f"corrupt_max: must be in [0, 1], got {self.corrupt_max}")


@dataclass(frozen=True)
class ValidityParams:
    """Thresholds of the checks that say whether a run can test the claim (validity.py); params.yaml `analysis.validity`."""
    max_grid_ratio: float = 2.0  # V1: neighbouring reference LRs at most this far apart
    min_ref_seeds: int = 2  # V1 / V3: reference seeds needed
    min_resolved_share: float = 0.8  # V1: share of recipes whose reference optimum is resolved
    min_loss_drop: float = 0.1  # V2: nats a proxy must fall from its step-0 loss
    min_reliability: float = 0.7  # V2: split-half reliability (Spearman-Brown) of a proxy LR
    z: float = 1.96  # a pair is separated when |difference| > z x its standard error
