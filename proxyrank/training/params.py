"""What a training run is: the `train:` section, the model entries, one run, and its steps.

TrainParams is params.yaml's `train:` section and ModelSpec the shape of each entry of `proxies:`
and of `reference:`; config.py composes them into Params (this module imports nothing of config,
so the training room never depends on the whole study's parameters). A RunSpec is one run: a
recipe, a role, a model, an LR, a seed and a token budget. Defaults equal params.yaml's values
(tests/test_config.py holds them together).
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field

import numpy as np


LR_RTOL = 1e-9  # LRs read back from text differ in the last bits; the LRs of a sweep differ far more


def same_lr(a, b, rtol: float = LR_RTOL):
    """Whether a and b are the same learning rate (elementwise for arrays and Series): equal to a
    relative tolerance, with no absolute one, so a grid written as 3.0e-3 and one computed as
    0.03 / 10 name the same LR. np.isclose's default atol=1e-8 would make every LR below about
    1e-8 equal to every other; the study's tiny LRs go down to 1e-5 and lower."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b))


@dataclass(frozen=True)
class ModelSpec:
    family: str
    preset: str
    lrs: list[float]
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    # LRs trained at every seed (for seed spread where it matters); the others at seeds[0] only.
    # None: every LR at every seed.
    seed_lrs: typing.Optional[list[float]] = None

    def runs(self) -> list[tuple[float, int]]:
        """(lr, seed) of every run this spec declares."""
        every = self.lrs if self.seed_lrs is None else self.seed_lrs
        return [(lr, seed) for lr in self.lrs for i, seed in enumerate(self.seeds)
                if i == 0 or any(same_lr(lr, x) for x in every)]


@dataclass(frozen=True)
class TrainParams:
    seq_len: int = 128
    batch_size: int = 8
    proxy_tokens: int = 100_000
    reference_tokens: int = 200_000
    valid_tokens: int = 4096
    warmup_frac: float = 0.05
    min_lr_frac: float = 0.1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_points: int = 2
    workers: int = 2
    # GPU path (docs: README, "Scaling up"); the CPU default leaves them at auto / off.
    device: str = "auto"  # auto: cuda when available, else cpu
    precision: str = "auto"  # auto: bf16 autocast on cuda, fp32 on cpu
    compile: bool = False  # torch.compile the model
    grad_accum: int = 1  # micro-batches per optimizer step (batch_size is the global batch)
    activation_checkpointing: bool = False


@dataclass(frozen=True)
class ExportParams:
    """params.yaml's `export:`: the recipes whose tuned reference the `export` stage retrains and
    saves for from_pretrained (training/export.py): "all", "one-per-group" (the first declared recipe
    of each group, whatever the recipes are) or a list. Each costs one more reference run, which
    `python -m proxyrank plan` prices: 5 worker-minutes for the default's 23 on the reference CPU
    (2.4 of its 60 minutes, so the default takes one per group), about 2,250 H100-hours for the paper
    profile's, which therefore exports none."""
    recipes: typing.Union[str, list[str]] = "one-per-group"

    def names(self, declared) -> list[str]:
        """The declared recipes to export, in declaration order."""
        if self.recipes == "one-per-group":
            first: dict[str, str] = {}
            for name, recipe in declared.items():
                first.setdefault(recipe.group, name)
            return list(first.values())
        return [r for r in declared if self.recipes == "all" or r in self.recipes]


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


class Study(typing.Protocol):
    """What run_specs reads of the study's Params (config.Params has it)."""
    proxies: list[ModelSpec]
    reference: ModelSpec
    train: TrainParams


def run_specs(p: Study, recipe: str, role: str) -> list[RunSpec]:
    """Every run of `role` (proxy: each proxy family's LRs and seeds; reference) on `recipe`."""
    specs = p.proxies if role == "proxy" else [p.reference]
    tokens = p.train.proxy_tokens if role == "proxy" else p.train.reference_tokens
    return [RunSpec(recipe, role, s.family, s.preset, lr, seed, tokens)
            for s in specs for lr, seed in s.runs()]


def steps_from_tokens(tokens: int, t: TrainParams) -> int:
    """Optimizer steps of a run over `tokens` tokens: whole seq_len sequences in whole global
    batches, one epoch; the tokens of a last partial sequence or batch are never trained."""
    return tokens // t.seq_len // t.batch_size


def tokens_trained(tokens: int, t: TrainParams) -> int:
    """The tokens a run over `tokens` tokens actually trains on (steps_from_tokens batches)."""
    return steps_from_tokens(tokens, t) * t.batch_size * t.seq_len
