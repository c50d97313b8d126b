"""Simulating the paper's ranking theorem in the random-feature model.

PAPER.md, "Why it works": with a fixed random first layer and a trained linear readout, if the
width is large and the LR is small (eta << 1/lambda_max of the validation Hessian), two data
recipes are ordered by the trained model's validation loss as by their infinite-width optimal
loss, w.h.p. The proof splits the loss change into a deterministic drift, which carries the true
quality gap, and an SGD variance term; width and a small eta make the drift win.

This module checks that statement numerically instead of trusting it: a random teacher, recipes
drawn at random (covariate shift, label noise, corrupted labels), the infinite-width optimum by
kernel ridge regression with the degree-1 arc-cosine kernel (Cho & Saul 2009, "Kernel Methods
for Deep Learning"), and minibatch SGD on the readout at every (width, LR, seed).

Conventions: the loss is L(a) = 1/2 E[(a . phi(x) - y)^2], so its Hessian is E[phi phi^T] and
GD on the validation loss is stable for eta < 2/lambda_max; tables report the plain MSE
E[(f(x) - f*(x))^2] against the clean teacher on the validation distribution N(0, I).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from proxyrank.analysis.params import TheoryParams
from proxyrank.training.pool import forked

if TYPE_CHECKING:  # config imports this module for its params section: heavy imports stay in the functions
    import pandas as pd
    import torch


@dataclass(frozen=True)
class Recipe:
    """A training distribution: x = mean + std * z, z ~ N(0, I); y = f*(x) + noise * e,
    except a `corrupt` share of labels drawn N(0, 1) independently of x."""
    mean: np.ndarray
    std: np.ndarray
    noise: float
    corrupt: float

    def regression(self, teacher: Teacher, x: np.ndarray) -> np.ndarray:
        """E[y | x] = (1 - corrupt) f*(x): corrupted labels have mean 0."""
        return (1 - self.corrupt) * teacher(x)

    def summary(self) -> dict:
        return {"shift": float(np.linalg.norm(self.mean)), "scale": float(np.exp(np.log(self.std).mean())),
                "noise": self.noise, "corrupt": self.corrupt}


class Teacher:
    """A random ReLU net with biases, standardised on the validation distribution: the bias-free
    features are positively homogeneous, so they cannot fit it exactly, and the best fit
    depends on where a recipe puts its inputs (covariate shift changes the optimal loss)."""

    def __init__(self, input_dim: int, width: int, rng: np.random.Generator):
        self.u = rng.standard_normal((width, input_dim)) / math.sqrt(input_dim)
        self.b = rng.standard_normal(width)
        self.v = rng.standard_normal(width)
        probe = self._raw(rng.standard_normal((100_000, input_dim)))
        self.shift, self.scale = probe.mean(), probe.std()

    def _raw(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.u.T + self.b, 0) @ self.v

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (self._raw(x) - self.shift) / self.scale


def draw_recipes(tp: TheoryParams, rng: np.random.Generator) -> list[Recipe]:
    """Recipes drawn at random from the declared ranges, never chosen by hand."""
    out = []
    for _ in range(tp.n_recipes):
        direction = rng.standard_normal(tp.input_dim)
        shift = rng.uniform(0, tp.shift_max) * direction / np.linalg.norm(direction)
        scale = math.exp(rng.uniform(math.log(tp.scale_min), math.log(tp.scale_max)))
        std = scale * np.exp(rng.uniform(0, tp.aniso_max) * rng.standard_normal(tp.input_dim))
        out.append(Recipe(shift, std, float(rng.uniform(0, tp.noise_max)), float(rng.uniform(0, tp.corrupt_max))))
    return out


def sample(recipe: Recipe, teacher: Teacher, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = recipe.mean + recipe.std * rng.standard_normal((n, len(recipe.mean)))
    y = teacher(x) + recipe.noise * rng.standard_normal(n)
    bad = rng.random(n) < recipe.corrupt
    y[bad] = rng.standard_normal(int(bad.sum()))
    return x, y


def arccos_kernel(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Closed-form limit of phi(x) . phi(z) for phi = relu(W x)/sqrt(m), W_ij ~ N(0, 1/d):
    ||x|| ||z|| (sin t + (pi - t) cos t) / (2 pi d), t the angle (Cho & Saul's k_1, halved)."""
    import torch

    x, z = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(z, dtype=torch.float64)
    norms = torch.outer(x.norm(dim=1), z.norm(dim=1)).clamp_min_(1e-300)
    cos = (x @ z.T).div_(norms).clamp_(-1.0, 1.0)
    sin = torch.sqrt(1 - cos**2)
    j = torch.acos(cos).neg_().add_(math.pi).mul_(cos).add_(sin)  # sin t + (pi - t) cos t
    return j.mul_(norms).div_(2 * math.pi * x.shape[1]).numpy()


def first_layer(input_dim: int, width: int, seed: int) -> torch.Tensor:
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(width, input_dim, generator=g) / math.sqrt(input_dim)


def features(x, w: torch.Tensor) -> torch.Tensor:
    """phi(x) = relu(W x) / sqrt(m), float32 (rows of x are inputs)."""
    import torch

    return torch.relu(torch.as_tensor(x, dtype=torch.float32) @ w.T).div_(math.sqrt(w.shape[0]))


def kernel_loss(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, f_val: np.ndarray, ridge: float) -> float:
    """Validation MSE of kernel ridge regression on (x, y): the readout's best at infinite width.

    The theorem's 'optimal loss' is the infinite-data optimum, so callers pass y = E[y | x]:
    the same population minimiser as the noisy labels, without their sampling variance (with
    noisy labels, two draws of 1000 samples disagree by 30-90% on some recipe)."""
    import scipy.linalg

    n = len(x)
    k = arccos_kernel(x, x) / n
    k[np.diag_indices(n)] += ridge
    alpha = scipy.linalg.solve(k, y / n, assume_a="pos")
    return float(np.mean((arccos_kernel(x_val, x) @ alpha - f_val) ** 2))


def _val_mse(a: torch.Tensor, phi_val: torch.Tensor, f_val: torch.Tensor) -> np.ndarray:
    """MSE of readouts a (..., m); a non-finite readout (diverged) gives inf."""
    import torch

    mse = ((a @ phi_val.T - f_val) ** 2).mean(-1).double()
    mse[~torch.isfinite(a).all(-1) | ~torch.isfinite(mse)] = math.inf
    return mse.numpy()


def _sgd(tp: TheoryParams, recipes, teacher, w, etas, phi_val, f_val, rng) -> np.ndarray:
    """Online minibatch SGD from a = 0 for every recipe (axis 0) and LR (axis 1) at once, on
    fresh samples each step; returns the validation MSE, shape (recipes, LRs)."""
    import torch

    a = torch.zeros(len(recipes), len(etas), w.shape[0])
    eta = torch.as_tensor(etas, dtype=torch.float32)[None, :, None]
    chunk = max(1, 2**22 // (len(recipes) * tp.batch_size * w.shape[0]))  # steps per 16 MiB of features
    for start in range(0, tp.steps, chunk):
        n = min(chunk, tp.steps - start) * tp.batch_size
        xs, ys = zip(*(sample(r, teacher, n, rng) for r in recipes))
        phi = features(np.concatenate(xs), w).view(len(recipes), -1, tp.batch_size, w.shape[0])
        y = torch.as_tensor(np.stack(ys), dtype=torch.float32).view(len(recipes), -1, tp.batch_size)
        for s in range(phi.shape[1]):
            p = phi[:, s]  # (R, B, m)
            resid = torch.bmm(a, p.transpose(1, 2)) - y[:, s, None, :]  # (R, L, B)
            a -= eta * torch.bmm(resid, p) / tp.batch_size
    return _val_mse(a, phi_val, f_val)


def _drift(tp: TheoryParams, kernel_data, w, etas, phi_val, f_val) -> np.ndarray:
    """The proof's deterministic drift: full-batch GD, same eta and steps, on each recipe's
    population (n_kernel inputs with labels E[y | x]), solved exactly in its Hessian's eigenbasis."""
    import torch

    out = []
    eta = torch.as_tensor(etas, dtype=torch.float64)[:, None]
    for x, y in kernel_data:
        phi = features(x, w)
        # float32 is enough: the gain below is a smooth, bounded function of each eigenvalue
        lam, vec = torch.linalg.eigh(phi.T @ phi / len(x))
        lam, vec = lam.double().clamp_min(0)[None, :], vec.double()
        b = vec.T @ (phi.double().T @ torch.as_tensor(y) / len(x))  # E[y phi] in the eigenbasis
        # a_T = sum_{k<T} (1 - eta lam)^k eta b = (1 - (1 - eta lam)^T) / lam * b, -> eta T b at lam = 0
        decay = (1 - eta * lam) ** tp.steps
        gain = torch.where(lam > 1e-12, (1 - decay) / lam.clamp_min(1e-12), eta * tp.steps)
        out.append(_val_mse((gain * b) @ vec.T, phi_val.double(), f_val.double()))
    return np.stack(out)


def _agreement(losses: np.ndarray, optimal: np.ndarray) -> tuple[float, float]:
    """Spearman and pairwise accuracy against the optimal order; diverged runs rank last (tied).
    All tied (every run diverged) orders nothing: Spearman 0, pairwise 0.5, as for a coin flip."""
    from proxyrank.analysis.metrics import pairwise_accuracy, spearman

    ranked = np.where(np.isfinite(losses), losses, np.finfo(float).max)
    rho = spearman(ranked, optimal) if np.ptp(ranked) > 0 else 0.0
    return rho, pairwise_accuracy(ranked, optimal)


def _flip(means: pd.Series, drop: float) -> float | None:
    """Smallest LR at the largest width whose mean Spearman is `drop` below the best smaller LR."""
    best = -math.inf
    for frac, rho in means.items():
        if rho < best - drop:
            return float(frac)
        best = max(best, rho)
    return None


class World(NamedTuple):
    """One ground-truth draw: the teacher, the recipes, the validation set and each recipe's
    infinite-width optimal loss (from kernel_data: n_kernel inputs with labels E[y | x])."""
    teacher: Teacher
    recipes: list[Recipe]
    x_val: np.ndarray
    f_val: np.ndarray
    kernel_data: list[tuple[np.ndarray, np.ndarray]]
    optimal: np.ndarray


def draw_world(tp: TheoryParams, seed: int) -> World:
    """The ground truth of `seed`, every draw from one generator in a fixed order."""
    rng = np.random.default_rng(seed)
    teacher = Teacher(tp.input_dim, tp.teacher_width, rng)
    recipes = draw_recipes(tp, rng)
    x_val = rng.standard_normal((tp.n_valid, tp.input_dim))
    f_val = teacher(x_val)
    xs = [sample(r, teacher, tp.n_kernel, rng)[0] for r in recipes]
    kernel_data = [(x, r.regression(teacher, x)) for r, x in zip(recipes, xs)]
    optimal = np.array([kernel_loss(x, y, x_val, f_val, tp.ridge) for x, y in kernel_data])
    return World(teacher, recipes, x_val, f_val, kernel_data, optimal)


def simulate(tp: TheoryParams, seed: int) -> tuple[pd.DataFrame, dict]:
    """Ranking agreement with the optimal order at every (width, lr_frac, seed).

    `seed` fixes the teacher, the recipes and the optimal losses (the ground truth); tp.seeds
    the first layer and the SGD samples. Returns the agreement table and a JSON-safe summary,
    whose "runs" holds every recipe's SGD (and drift) validation MSE.
    """
    import pandas as pd

    world = draw_world(tp, seed)
    rows, runs, lam_max = [], [], {}
    for width in tp.widths:
        for s in tp.seeds:
            lam, width_rows, width_runs = _at_width(tp, world, seed, width, s)
            lam_max.setdefault(width, []).append(lam)
            rows += width_rows
            runs += width_runs
    table = pd.DataFrame(rows)
    return table, _summary(tp, seed, world, table, lam_max, runs)


def _at_width(tp: TheoryParams, world: World, seed: int, width: int, s: int) -> tuple[float, list, list]:
    """SGD (and drift) at one width and first-layer seed `s`, every LR at once: (lambda_max of the
    validation Hessian, the table's rows, the summary's runs)."""
    import torch

    f_val_t = torch.as_tensor(world.f_val, dtype=torch.float32)
    zero_mse = float(np.mean(world.f_val**2))  # a run worse than the zero readout counts as diverged
    w = first_layer(tp.input_dim, width, int(np.random.SeedSequence([seed, s, width]).generate_state(1)[0]))
    phi_val = features(world.x_val, w)
    lam = float(torch.linalg.eigvalsh((phi_val.T @ phi_val).double() / tp.n_valid)[-1])
    etas = [frac / lam for frac in tp.lr_fracs]
    sgd = _sgd(tp, world.recipes, world.teacher, w, etas, phi_val, f_val_t,
               np.random.default_rng([seed, s, width, 1]))
    drift = _drift(tp, world.kernel_data, w, etas, phi_val, f_val_t) if tp.drift else None
    rows, runs = [], []
    for j, frac in enumerate(tp.lr_fracs):
        rho, acc = _agreement(sgd[:, j], world.optimal)
        row = {"width": width, "lr_frac": frac, "seed": s, "eta": etas[j],
               "horizon": frac * tp.steps, "spearman": rho,
               "pairwise": acc, "diverged": int((~(sgd[:, j] <= zero_mse)).sum())}
        if drift is not None:
            row["drift_spearman"], row["drift_pairwise"] = _agreement(drift[:, j], world.optimal)
        rows.append(row)
        for i in range(len(world.recipes)):
            runs.append({"width": width, "lr_frac": frac, "seed": s, "recipe": i,
                         "sgd_mse": _num(sgd[i, j]),
                         "drift_mse": None if drift is None else _num(drift[i, j])})
    return lam, rows, runs


def _summary(tp: TheoryParams, seed: int, world: World, table: pd.DataFrame, lam_max: dict, runs: list) -> dict:
    """The JSON-safe summary of one world: its ground truth and the agreement at the largest width."""
    top = table[table["width"] == max(tp.widths)].groupby("lr_frac").mean(numeric_only=True)
    optimal = world.optimal
    return {
        "params": asdict(tp),
        "seed": seed,
        "optimal_mse": optimal.tolist(),
        "optimal_order": np.argsort(optimal, kind="stable").tolist(),
        "recipes": [r.summary() for r in world.recipes],
        "lambda_max": {str(m): float(np.mean(v)) for m, v in lam_max.items()},
        # lambda_max(H_recipe) / lambda_max(H_val) at infinite width: > 1 destabilises first
        "curvature_ratio": [_top_eig(x) / _top_eig(world.x_val) for x, _ in world.kernel_data],
        "largest_width": max(tp.widths),
        "spearman_by_lr": {str(k): _num(v) for k, v in top["spearman"].items()},
        "spearman_smallest_lr": _num(top["spearman"].iloc[0]),
        "spearman_largest_lr": _num(top["spearman"].iloc[-1]),
        "best_lr_frac": float(top["spearman"].idxmax()),
        "flip_lr_frac": _flip(top["spearman"], 0.2),
        "drift_spearman_by_lr": ({str(k): _num(v) for k, v in top["drift_spearman"].items()}
                                 if tp.drift else None),
        "runs": runs,
    }


def study(tp: TheoryParams, workers: int = 1) -> tuple[pd.DataFrame, list[dict]]:
    """`simulate` in every world of tp.worlds, on forked 1-thread workers (two 2-thread torch
    processes on two cores slow each other down many times over); the table gains a `world` column."""
    import pandas as pd

    jobs = [(tp, w) for w in tp.worlds]
    parts = list(forked(simulate, jobs, min(workers, len(jobs)), threads=1))
    table = pd.concat([t.assign(world=w) for (t, _), w in zip(parts, tp.worlds)], ignore_index=True)
    return table, [summary for _, summary in parts]


def _top_eig(x: np.ndarray) -> float:
    """lambda_max of E[phi phi^T] at infinite width: the top eigenvalue of the Gram matrix / n.
    Started from ones (the top eigenvector of a positive matrix is positive): ARPACK's default
    start is random, which would make the summary differ in the last digits between runs."""
    import scipy.sparse.linalg

    k = arccos_kernel(x, x) / len(x)
    return float(scipy.sparse.linalg.eigsh(k, k=1, v0=np.ones(len(x)), return_eigenvectors=False)[0])


def _num(x) -> float | None:
    """JSON-safe: nan and inf become None."""
    return float(x) if math.isfinite(x) else None


