"""Data recipes: which pool documents, in what domain proportions, after which curation.

A recipe selects documents by exact token counts from the once-encoded pool, so every recipe
holds exactly the same token budget (one epoch, nothing repeated, as in the paper).
Documents of one domain are visited in one seeded order shared by all recipes (common random
numbers): two recipes differ only where their definitions differ, not by sampling luck.
"""
from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa

from proxyrank.config import Recipe
from proxyrank.corpus import text_key


class RecipeError(ValueError):
    """A recipe cannot be built as declared; the message names the recipe."""


def exact_duplicates(texts: list[str]) -> np.ndarray:
    """Mask of documents whose normalised text (case, punctuation, spacing) was seen before.

    Exact dedup as in C4 / RefinedWeb's exact stage, on whole documents; the first copy stays.
    """
    seen: set[bytes] = set()
    dup = np.zeros(len(texts), dtype=bool)
    for i, t in enumerate(texts):
        k = text_key(t)
        dup[i] = k in seen
        seen.add(k)
    return dup


def domain_weights(recipe: Recipe, available: dict[str, int]) -> dict[str, float]:
    """Normalised target share per domain: natural (token counts ** temperature), uniform or given."""
    if isinstance(recipe.weights, dict):
        raw = {d: w for d, w in recipe.weights.items() if w > 0}
    elif recipe.weights == "uniform":
        raw = {d: 1.0 for d, n in available.items() if n > 0}
    else:
        raw = {d: float(n) ** recipe.temperature for d, n in available.items() if n > 0}
    total = sum(raw.values())
    if not total > 0:
        raise RecipeError(f"recipe {recipe.name!r}: no domain with text and positive weight")
    return {d: w / total for d, w in sorted(raw.items())}


def _domain_order(ids: list[str], seed: int) -> np.ndarray:
    """A seeded order that depends only on the documents, not on the recipe."""
    keys = np.fromiter((zlib.crc32(f"{seed}:{i}".encode()) for i in ids), dtype=np.uint64, count=len(ids))
    return np.lexsort((np.arange(len(ids)), keys))


def build(recipe: Recipe, pool: pa.Table, index: pa.Table, tokens: np.ndarray, eos: int,
          budget: int, seed: int) -> tuple[np.ndarray, dict]:
    """Return exactly `budget` training tokens for `recipe` and its manifest."""
    if pool.column("id").to_pylist() != index.column("id").to_pylist():
        raise RecipeError("pool and token index disagree; rerun `dvc repro tokens`")
    domain = np.array(pool.column("domain").to_pylist(), dtype=object)
    ids = pool.column("id").to_pylist()
    offsets = index.column("offset").to_numpy()
    lengths = index.column("length").to_numpy() + 1  # + EOS
    allowed = recipe.domains or (list(recipe.weights) if isinstance(recipe.weights, dict) else None)
    candidate = np.isin(domain, allowed) if allowed else np.ones(len(ids), dtype=bool)
    removed = {}
    dup_rate = None
    if recipe.dedup == "exact":
        cand_idx = np.flatnonzero(candidate)
        texts = pool.column("text").take(pa.array(cand_idx)).to_pylist()
        dup = exact_duplicates(texts)
        candidate[cand_idx[dup]] = False
        removed["exact_dedup"] = {"docs": int(dup.sum()), "tokens": int(lengths[cand_idx[dup]].sum())}
        dup_rate = float(dup.mean()) if len(dup) else 0.0
    available = {str(d): int(lengths[candidate & (domain == d)].sum()) for d in np.unique(domain[candidate])}
    weights = domain_weights(recipe, available)
    docs, takes = [], []
    for d, w in weights.items():
        need = int(np.ceil(w * budget))
        d_idx = np.flatnonzero(candidate & (domain == d))
        d_idx = d_idx[_domain_order([ids[i] for i in d_idx], seed)]
        cum = np.cumsum(lengths[d_idx])
        if len(cum) == 0 or cum[-1] < need:
            have = int(cum[-1]) if len(cum) else 0
            raise RecipeError(f"recipe {recipe.name!r}: domain {d!r} has {have} tokens after curation "
                              f"but its share {w:.3f} of the {budget}-token budget needs {need}; "
                              f"lower the budget (train.proxy_tokens / reference_tokens) or its weight")
        k = int(np.searchsorted(cum, need))  # the last document is cut so the share is exact
        take = lengths[d_idx[: k + 1]].copy()
        take[-1] -= cum[k] - need
        docs.append(d_idx[: k + 1])
        takes.append(take)
    docs, takes = np.concatenate(docs), np.concatenate(takes)
    order = np.random.default_rng(seed).permutation(len(docs))
    docs, takes = docs[order], takes[order]
    eos_arr = np.array([eos], dtype=tokens.dtype)
    stream = np.concatenate([np.concatenate((tokens[offsets[i]: offsets[i] + lengths[i] - 1], eos_arr))[:n]
                             for i, n in zip(docs, takes)])[:budget]
    if len(stream) < budget:
        raise RecipeError(f"recipe {recipe.name!r}: {len(stream)} tokens, fewer than the budget {budget}")
    shares = {d: round(float(takes[domain[docs] == d].sum() / takes.sum()), 4) for d in weights}
    manifest = {
        "recipe": recipe.name, "group": recipe.group, "tokens": int(len(stream)),
        "docs": int(len(docs)),
        "target_shares": {d: round(w, 4) for d, w in weights.items()},
        "domain_shares": shares, "available_tokens": available,
        "dedup": recipe.dedup, "removed": removed, "duplicate_rate": dup_rate,
    }
    return stream, manifest
