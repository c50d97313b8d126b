"""Data recipes: which documents, after which curation, in what proportions.

Curation that is costly or looks at the whole crawl runs once (`annotate`, the `curate` stage):
rule verdicts, CCNet-style perplexity buckets, DCLM-style classifier scores, MinHash signatures,
validation near-duplicates. A recipe (`build`, the `recipe@R` stage) only combines them, in the
order published pipelines use (RefinedWeb, DCLM): rule filters, then dedup over what survived,
then the model-based filter on what remains. It then encodes documents in one seeded order per
domain (common random numbers: two recipes differ only where their definitions differ) until
each domain's share of the budget is filled exactly, cutting the last document, so every recipe
holds exactly the same number of tokens (one epoch, nothing repeated, as in the paper).
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from proxyrank.config import CurationParams, Recipe
from proxyrank.curation import dedup, quality
from proxyrank.curation.c4 import c4_clean
from proxyrank.curation.filters import RULES_OF, removals_by_damage
from proxyrank.curation.gopher_quality import gopher_quality
from proxyrank.curation.gopher_repetition import gopher_repetition
from proxyrank.data.sources import BUCKETS
from proxyrank.data.tokens import EOS, dtype_for, encode_texts
from proxyrank.errors import DataError
from proxyrank.text import stable_hash32


class RecipeError(DataError):
    """A recipe cannot be built as declared; the message names the recipe."""


def _rules(args: tuple[list[str], CurationParams]) -> list[tuple]:
    texts, c = args
    out = []
    for t in texts:
        cleaned, c4_fail = c4_clean(t, c.c4)
        out.append((cleaned, c4_fail, gopher_quality(t, c.gopher_quality),
                    gopher_repetition(t, c.gopher_repetition)))
    return out


def annotate(crawl: pa.Table, reference: list[str], valid: list[str], c: CurationParams, seed: int,
             workers: int) -> tuple[pa.Table, dict[str, np.ndarray], dict]:
    """Per crawl page: rule verdicts (on the raw page), C4's cleaned text, perplexity and bucket,
    classifier score, validation contamination; plus MinHash signatures and a summary (with, when
    the crawl carries its damage columns, the pages each rule removed by kind of damage)."""
    texts = crawl.column("text").to_pylist()
    chunks = [texts[i:i + 500] for i in range(0, len(texts), 500)]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        verdicts = [v for part in pool.map(_rules, [(ch, c) for ch in chunks]) for v in part]
    c4_text, c4_fail, gq_fail, gr_fail = (list(x) for x in zip(*verdicts)) if verdicts else ([],) * 4
    lm = quality.NgramLM.fit(reference, c.perplexity)
    ppl = lm.perplexity(texts)
    bucket = quality.quality_buckets(ppl, c.perplexity)
    negatives = [texts[i] for i in np.random.default_rng(seed).permutation(len(texts))[: c.dclm.max_docs]]
    clf = quality.QualityClassifier.fit(reference, negatives, c.dclm, seed)
    score = clf.score(texts)
    contaminated = dedup.contaminated(texts, valid, c.minhash, seed)
    signatures = {"minhash": dedup.minhash_signatures(texts, c.minhash, seed, workers)}
    if (c.aggressive.num_perm, c.aggressive.shingle) == (c.minhash.num_perm, c.minhash.shingle):
        signatures["aggressive"] = signatures["minhash"]
    else:
        signatures["aggressive"] = dedup.minhash_signatures(texts, c.aggressive, seed, workers)
    table = pa.table({"id": crawl.column("id"), "contaminated": contaminated,
                      "c4_text": c4_text, "c4_fail": c4_fail,
                      "gopher_quality_fail": gq_fail, "gopher_repetition_fail": gr_fail,
                      "perplexity": ppl, "bucket": bucket, "dclm_score": score})
    cuts = {b: float(ppl[bucket == b].max()) for b in BUCKETS[:2] if (bucket == b).any()}  # head, middle
    summary = {
        "pages": len(texts), "contaminated": int(contaminated.sum()),
        "rule_failures": {name: {r: int(sum(f == r for f in fails)) for r in RULES_OF[name]}
                          for name, fails in (("c4", c4_fail), ("gopher_quality", gq_fail),
                                              ("gopher_repetition", gr_fail))},
        "perplexity_cuts": cuts, "classifier_heldout_accuracy": round(float(clf.heldout_accuracy), 4),
        "reference_docs": len(reference),
    }
    if set(DAMAGE_COLUMNS) <= set(crawl.column_names):
        summary["removed_by_damage"] = removals_by_damage(
            {"c4": c4_fail, "gopher_quality": gq_fail, "gopher_repetition": gr_fail}, damage_masks(crawl))
    return table, signatures, summary


DAMAGE_COLUMNS = ("kind", "boilerplate", "truncated", "shuffled", "copy")
"""The crawl's record of how each page was damaged (`proxyrank.data.crawl.COLUMNS`)."""


def damage_masks(crawl: pa.Table) -> dict[str, np.ndarray]:
    """Which pages carry each kind of damage, under the crawl manifest's names; ``clean``:
    a page of real text with none of them (not spam, templated, boilerplate, truncated,
    shuffled, nor a copy), so a rule's removals of clean pages are its false positives."""
    col = {c: crawl.column(c).to_numpy(zero_copy_only=False) for c in DAMAGE_COLUMNS}
    masks = {k: col["kind"] == k for k in ("spam", "templated")}
    masks |= {f: np.asarray(col[f], dtype=bool) for f in ("boilerplate", "truncated", "shuffled")}
    masks |= {"exact_copies": col["copy"] == "exact", "near_copies": col["copy"] == "near"}
    damaged = np.logical_or.reduce(list(masks.values())) | (col["kind"] != "page")
    return {"clean": ~damaged, **masks}


def domain_weights(recipe: Recipe, available: dict[str, int]) -> dict[str, float]:
    """Normalised target share per domain: natural (its characters ** temperature), uniform or given."""
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


def _seeded_order(ids: list[str], seed: int) -> np.ndarray:
    """A seeded order that depends only on the documents, not on the recipe."""
    keys = np.fromiter((stable_hash32(f"{seed}:{i}") for i in ids), dtype=np.uint64, count=len(ids))
    return np.lexsort((np.arange(len(ids)), keys))


def _column(recipe: Recipe, docs: pa.Table, name: str) -> np.ndarray:
    if name not in docs.column_names:
        raise RecipeError(f"recipe {recipe.name!r} needs the curation column {name!r}, which its "
                          f"source {recipe.source!r} lacks (filters, near-dedup and quality buckets "
                          f"need `source: crawl` or a hub source that provides them)")
    return docs.column(name).to_numpy(zero_copy_only=False)


class _Curation:
    """The candidate mask of one recipe and what each step removed from it."""

    def __init__(self, recipe: Recipe, docs: pa.Table):
        self.recipe, self.docs = recipe, docs
        self.texts = docs.column("text").to_pylist()
        self.alive = np.ones(len(self.texts), dtype=bool)
        self.removed: dict[str, dict[str, int]] = {}

    def column(self, name: str) -> np.ndarray:
        return _column(self.recipe, self.docs, name)

    def drop(self, mask: np.ndarray, step: str) -> None:
        """Remove the alive documents in `mask`, counted under `step`."""
        hit = self.alive & mask
        if hit.any() or step not in self.removed:
            entry = self.removed.setdefault(step, {"docs": 0, "chars": 0})
            entry["docs"] += int(hit.sum())
            entry["chars"] += int(sum(len(self.texts[i]) for i in np.flatnonzero(hit)))
        self.alive &= ~mask

    def drop_among(self, idx: np.ndarray, hit: np.ndarray, step: str) -> None:
        """Remove documents idx[hit] (a selection made among the documents idx)."""
        mask = np.zeros(len(self.texts), dtype=bool)
        mask[idx[hit]] = True
        self.drop(mask, step)


def curate(recipe: Recipe, docs: pa.Table, c: CurationParams, signatures: dict[str, np.ndarray]):
    """Apply the recipe's curation; returns (alive mask, texts, removed per step, duplicate rate)."""
    cur = _Curation(recipe, docs)
    if "contaminated" in docs.column_names:
        cur.drop(cur.column("contaminated").astype(bool), "decontamination")
    allowed = recipe.domains or (list(recipe.weights) if isinstance(recipe.weights, dict) else None)
    if allowed:
        cur.alive &= np.isin(cur.column("domain"), allowed)
    for name in (f for f in recipe.filters if f in RULES_OF):
        fails = cur.column(f"{name}_fail")
        for rule in RULES_OF[name]:
            cur.drop(fails == rule, rule)
        if name == "c4":
            cleaned = cur.column("c4_text")
            cur.texts = [cleaned[i] if cur.alive[i] else t for i, t in enumerate(cur.texts)]
    dup_rate = None
    if recipe.dedup != "none":
        idx = np.flatnonzero(cur.alive)
        if recipe.dedup == "exact":
            dup = dedup.exact_duplicates(cur.texts[i] for i in idx)
        else:
            if recipe.dedup not in signatures:
                raise RecipeError(f"recipe {recipe.name!r}: dedup {recipe.dedup!r} needs the MinHash "
                                  f"signatures of `source: crawl` (rerun `dvc repro curate`)")
            p = c.minhash if recipe.dedup == "minhash" else c.aggressive
            raw = docs.column("text").take(idx).to_pylist()  # what the signatures were made from
            dup = dedup.near_duplicates_from_signatures(signatures[recipe.dedup][idx], p, raw)
        dup_rate = round(float(dup.mean()), 4) if len(dup) else 0.0
        cur.drop_among(idx, dup, f"dedup_{recipe.dedup}")
        if recipe.dedup == "aggressive" and c.aggressive.paragraph:
            idx = np.flatnonzero(cur.alive)
            stripped = dedup.drop_repeated_paragraphs((cur.texts[i] for i in idx), c.aggressive.min_paragraph_chars)
            lost = sum(len(cur.texts[i]) - len(s) for i, s in zip(idx, stripped))
            for i, s in zip(idx, stripped):
                cur.texts[i] = s
            cur.drop_among(idx, np.array([not s.strip() for s in stripped], dtype=bool), "paragraph_dedup_docs")
            cur.removed["paragraph_dedup_chars"] = {"docs": 0, "chars": int(lost)}
    if "dclm" in recipe.filters:
        idx = np.flatnonzero(cur.alive)
        keep = quality.keep_top(cur.column("dclm_score")[idx].astype(float), c.dclm.keep_frac)
        cur.drop_among(idx, ~keep, "dclm_classifier")
    return cur.alive, cur.texts, cur.removed, dup_rate


@dataclass(frozen=True)
class _Candidates:
    """The documents a recipe draws from once curated: their (cleaned) texts and ids, which are
    alive, their lengths, and the key the mix is over (`key_name`: bucket, domain, or crawl)."""

    texts: list[str]
    ids: list[str]
    alive: np.ndarray
    chars: np.ndarray
    key_name: str
    key: np.ndarray

    def available(self) -> dict[str, int]:
        """Characters alive under each key value."""
        return {str(k): int(self.chars[self.alive & (self.key == k)].sum()) for k in np.unique(self.key[self.alive])}


def _mix_key(recipe: Recipe, docs: pa.Table, domain: np.ndarray, n: int) -> tuple[str, np.ndarray]:
    """What the recipe's shares are over: quality buckets, the crawl's pages as they come (a
    natural crawl recipe over all domains), or domains."""
    if recipe.buckets:
        return "bucket", _column(recipe, docs, "bucket")
    if recipe.source == "crawl" and recipe.weights == "natural" and not recipe.domains:
        return "crawl", np.full(n, "crawl", dtype=object)  # pages as they come
    return "domain", domain


def _target_weights(recipe: Recipe, available: dict[str, int]) -> dict[str, float]:
    """Normalised share per key: the recipe's bucket weights, else its domain weights."""
    if recipe.buckets:
        total = sum(w for w in recipe.buckets.values() if w > 0)
        return {b: w / total for b, w in sorted(recipe.buckets.items()) if w > 0}
    return domain_weights(recipe, available)


def _encode_until(tok, cand: _Candidates, order: np.ndarray, need: int, eos: int,
                  taken: list[int], pieces: list[np.ndarray]) -> int:
    """Encode documents `order` in turn, each followed by EOS, until `need` tokens (the last one
    cut); appends to `taken` / `pieces` and returns the tokens got (< need if the documents ran out)."""
    got, pos = 0, 0
    while got < need and pos < len(order):
        # encode about what is still needed (~4 characters a token), not whole long domains
        room = np.cumsum(cand.chars[order[pos: pos + 512]]) < 4 * (need - got)
        batch = order[pos: pos + 1 + int(room.sum())]
        pos += len(batch)
        for i, arr in zip(batch, encode_texts(tok, [cand.texts[i] for i in batch])):
            arr = np.append(arr, eos).astype(arr.dtype)[: need - got]
            taken.append(i), pieces.append(arr)
            got += len(arr)
            if got >= need:
                break
    return got


def _fill(recipe: Recipe, tok, cand: _Candidates, weights: dict[str, float], budget: int,
          seed: int) -> tuple[list[int], list[np.ndarray]]:
    """Each key's share of the budget, in one seeded order per key (common random numbers)."""
    eos = tok.token_to_id(EOS)
    taken: list[int] = []
    pieces: list[np.ndarray] = []
    for k, w in weights.items():
        need = int(np.ceil(w * budget))
        k_idx = np.flatnonzero(cand.alive & (cand.key == k))
        k_idx = k_idx[_seeded_order([cand.ids[i] for i in k_idx], seed)]
        got = _encode_until(tok, cand, k_idx, need, eos, taken, pieces)
        if got < need:
            raise RecipeError(f"recipe {recipe.name!r}: {cand.key_name} {k!r} has {got} tokens after curation "
                              f"but its share {w:.3f} of the {budget}-token budget needs {need}; lower "
                              f"the budget (train.proxy_tokens / reference_tokens), its weight, or "
                              f"give it more text (a bigger crawl.pages, more corpus.sources) or looser curation")
    return taken, pieces


def build(recipe: Recipe, docs: pa.Table, tok, budget: int, seed: int, c: CurationParams,
          signatures: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    """Return exactly `budget` training tokens for `recipe` and its manifest."""
    alive, texts, removed, dup_rate = curate(recipe, docs, c, signatures)
    domain = docs.column("domain").to_numpy(zero_copy_only=False)
    key_name, key = _mix_key(recipe, docs, domain, len(texts))
    chars = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    cand = _Candidates(texts, docs.column("id").to_pylist(), alive, chars, key_name, key)
    available = cand.available()
    weights = _target_weights(recipe, available)
    docs_taken, pieces = _fill(recipe, tok, cand, weights, budget, seed)
    order = np.random.default_rng(seed).permutation(len(pieces))
    stream = np.concatenate([pieces[j] for j in order])[:budget] if pieces else np.zeros(0, dtype_for(1))
    if len(stream) < budget:
        raise RecipeError(f"recipe {recipe.name!r}: {len(stream)} tokens, fewer than the budget {budget}")
    taken = np.array(docs_taken)
    lengths = np.array([len(x) for x in pieces])
    manifest = {
        "recipe": recipe.name, "group": recipe.group, "source": recipe.source,
        "tokens": int(len(stream)), "docs": int(len(taken)),
        "capacity_tokens": capacity(cand, weights, taken, lengths),
        "filters": list(recipe.filters), "dedup": recipe.dedup,
        "target_shares": {k: round(w, 4) for k, w in weights.items()},
        "shares": {str(k): round(float(lengths[key[taken] == k].sum() / lengths.sum()), 4) for k in weights},
        "domain_shares": {str(d): round(float(lengths[domain[taken] == d].sum() / lengths.sum()), 4)
                          for d in np.unique(domain[taken])},
        "available_chars": available, "removed": removed, "duplicate_rate": dup_rate,
    }
    if "kind" in docs.column_names:
        manifest["pages"] = _page_mix(docs, taken)
    return stream, manifest


def capacity(cand: _Candidates, weights: dict[str, float], taken: np.ndarray, lengths: np.ndarray) -> int:
    """About the largest budget the recipe could fill without repeating a document: per key of its
    mix, the characters alive after curation at the tokens per character of its documents already
    encoded (EOS included), over the key's share; the least over keys. An estimate within a few per
    cent (documents differ in tokens per character); `check` compares budgets with it, and `build`
    stays the exact check."""
    est = []
    for k, w in weights.items():
        mine = cand.key[taken] == k
        rate = lengths[mine].sum() / max(1, cand.chars[taken[mine]].sum())
        est.append(cand.chars[cand.alive & (cand.key == k)].sum() * rate / w)
    return int(min(est))


def _page_mix(docs: pa.Table, taken: np.ndarray) -> dict[str, int]:
    """How many of the recipe's crawl pages carry each kind of damage: what curation let through."""
    sub = docs.take(pa.array(taken))
    kind = sub.column("kind").to_numpy(zero_copy_only=False)
    copy = sub.column("copy").to_numpy(zero_copy_only=False)
    mix = {k: int((kind == k).sum()) for k in ("page", "spam", "templated")}
    for flag in ("boilerplate", "truncated", "shuffled"):
        mix[flag] = int(np.asarray(sub.column(flag).to_numpy(zero_copy_only=False), dtype=bool).sum())
    mix["exact_copies"] = int((copy == "exact").sum())
    mix["near_copies"] = int((copy == "near").sum())
    return mix
