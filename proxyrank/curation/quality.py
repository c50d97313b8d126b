"""Model-based quality scoring of documents, the two ways real pretraining pipelines do it.

Why this module exists: heuristic filters (length, symbol ratios) are not what large data
pipelines rank documents by any more; they score every document with a small model fitted on
reference-quality text and keep or partition on that score.  A data-recipe study should be able
to build recipes the same way, so this module reproduces the two standard recipes at small scale,
with numpy and scipy only (no torch, sklearn, fastText or KenLM binaries):

1. CCNet perplexity buckets (Wenzek et al. 2020, "CCNet: Extracting High Quality Monolingual
   Datasets from Web Crawl Data", LREC; code: github.com/facebookresearch/cc_net).  CCNet trains a
   KenLM 5-gram model (``lmplz -o 5``, cc_net Makefile) on Wikipedia, scores each document's
   perplexity (``perplexity.DocLM``: per line, words + 1 end-of-line token, 10 ** (-log10 p / n)),
   and splits each language into head / middle / tail at the 30th and 60th percentiles of
   perplexity (``perplexity.PerplexityBucket(percentile_head=30, percentile_tail=60)``:
   ``head`` if ppl < p30, ``middle`` if ppl < p60, else ``tail``).  RedPajama-V2 (Weber et al.
   2024) ships its web documents in exactly these CCNet head/middle/tail partitions.
   Here: :class:`NgramLM`, an interpolated Kneser-Ney word n-gram model (order 3 by default)
   fitted on whatever reference text the caller gives, and :func:`quality_buckets`.

2. DCLM model-based filtering (Li et al. 2024, "DataComp-LM"; code: github.com/mlfoundations/dclm).
   DCLM-Baseline keeps the top 10% of its RefinedWeb-style pool by the probability of a fastText
   classifier with word bigrams (positives: OpenHermes-2.5 + r/ExplainLikeImFive, negatives: the
   RefinedWeb pool; about 200k documents a class), i.e. threshold 0.018112 on
   ``fasttext_oh_eli5_vs_rw_v2_prob`` in ``baselines/baselines_configs/fasttext_filter.yaml``.
   Here: :class:`QualityClassifier`, logistic regression on hashed unigram + bigram features
   (the hashing trick fastText uses for word n-grams), fitted full-batch with L-BFGS, and
   :func:`keep_top`.

Text normalisation is shared by both scorers and deliberately simple
(:func:`proxyrank.text.model_words`): lowercase, then the maximal runs of Unicode word characters
(``\\w+``: letters, digits, underscore) are the tokens; everything else (punctuation, whitespace)
separates tokens.  The n-gram model also treats each line break as a sentence end
(:func:`proxyrank.text.model_line_tokens`), as CCNet scores a document line by line.  CCNet
additionally strips accents, maps digits to 0 and tokenises with SentencePiece; we do not.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from proxyrank.checks import check_types, fail_field
from proxyrank.data.sources import BUCKETS
from proxyrank.errors import DataError
from proxyrank.text import GOLDEN64, mix64, model_line_tokens, model_words, stable_hash32, text_batches

__all__ = [
    "ClassifierParams",
    "NgramLM",
    "PerplexityParams",
    "QualityClassifier",
    "keep_top",
    "quality_buckets",
]

# Texts are featurised / scored in chunks of about this many characters, to bound memory.
_CHUNK_CHARS = 4_000_000


# --------------------------------------------------------------------------- params


@dataclass(frozen=True)
class PerplexityParams:
    """CCNet-style perplexity bucketing.

    order            n-gram order.  CCNet uses a KenLM 5-gram on ~1M Wikipedia documents; with
                     the few MB of reference text here most 4- and 5-gram contexts are unseen
                     (held-out Python-docs prose, 0.6 MB to fit: median perplexity 193 at order
                     3, 218 at order 5).
    discount         absolute discount D of interpolated Kneser-Ney; 0.75 is the customary fixed
                     value (Chen & Goodman 1999 estimate D = n1 / (n1 + 2 n2) from count-of-
                     counts; KenLM fits three discounts per order).  0 < D <= 1.
    head_pct         percentile of the scored pool's perplexity below which a document is
                     ``head`` (CCNet ``PerplexityBucket.percentile_head = 30``).
    tail_pct         percentile at or above which a document is ``tail``; in between is
                     ``middle`` (CCNet ``percentile_tail = 60``).  So head/middle/tail = 30/30/40%.
    max_train_chars  cap on the reference characters used to fit (CCNet fits on the first 1M
                     Wikipedia documents of a language, ``NDOC_FOR_LM``); documents are taken in
                     order and the one that crosses the cap is cut at it.
    """

    order: int = 3
    discount: float = 0.75
    head_pct: float = 30.0
    tail_pct: float = 60.0
    max_train_chars: int = 20_000_000

    def __post_init__(self) -> None:
        check_types(self)
        if self.order < 1:
            fail_field("order", "must be >= 1", self.order)
        if not 0 < self.discount <= 1:
            fail_field("discount", "must be in (0, 1]", self.discount)
        for name in ("head_pct", "tail_pct"):
            value = getattr(self, name)
            if not 0 < value < 100:
                fail_field(name, "must be a percentile strictly inside (0, 100)", value)
        if self.head_pct >= self.tail_pct:
            fail_field("head_pct", f"must be < tail_pct ({self.tail_pct!r})", self.head_pct)
        if self.max_train_chars < 1:
            fail_field("max_train_chars", "must be >= 1", self.max_train_chars)


@dataclass(frozen=True)
class ClassifierParams:
    """DCLM-style quality classifier (fastText-like linear model on hashed word n-grams).

    features   hashing-trick buckets shared by all n-gram orders (fastText's ``-bucket`` is 2M by
               default; 2**18 keeps the model at 2 MB with few collisions at this data scale).
    ngram      longest word n-gram used as a feature; DCLM's classifier uses bigrams
               (fastText ``-wordNgrams 2``).
    epochs     maximum L-BFGS iterations; each is at least one full pass over the training set
               (the objective is convex, so more only moves closer to the optimum).
    l2         L2 penalty on the weights (not the bias) added to the class-balanced mean
               logistic loss.  Features are n-gram presence scaled to unit L2 norm per
               document (fastText averages occurrence counts instead).  On 900 Python-docs
               prose documents against word-shuffled copies of 600 of them plus 300 spam and
               random-character documents, presence gave 0.99 held-out accuracy where counts
               gave 0.94, and l2 = 1e-4 gave 0.99 where 1e-3 gave 0.95 (3e-5: 0.99).
    holdout    share of each class held out, by a seeded shuffle, to measure accuracy.  0 gives
               no held-out set and ``heldout_accuracy`` = nan.
    max_docs   at most this many documents per class are used (seeded sample); DCLM trained
               its fastText model on about 200k per class, the few-MB scale here needs far fewer.
    keep_frac  share of the scored pool kept by :func:`keep_top`; DCLM-Baseline keeps the top 10%.
    """

    features: int = 2**18
    ngram: int = 2
    epochs: int = 100
    l2: float = 1e-4
    holdout: float = 0.1
    max_docs: int = 10_000
    keep_frac: float = 0.1

    def __post_init__(self) -> None:
        check_types(self)
        for name in ("features", "ngram", "epochs", "max_docs"):
            if getattr(self, name) < 1:
                fail_field(name, "must be >= 1", getattr(self, name))
        if not self.l2 >= 0 or not math.isfinite(self.l2):
            fail_field("l2", "must be a finite number >= 0", self.l2)
        if not 0 <= self.holdout < 1:
            fail_field("holdout", "must be in [0, 1)", self.holdout)
        _check_keep_frac(self.keep_frac)


def _check_keep_frac(keep_frac: float) -> None:
    if isinstance(keep_frac, bool) or not isinstance(keep_frac, (int, float)) or not 0 < keep_frac <= 1:
        fail_field("keep_frac", "must be in (0, 1]", keep_frac)


def _chunks(texts: Iterable[str], budget: int = _CHUNK_CHARS) -> Iterator[list[str]]:
    return text_batches(texts, budget, what="quality documents")


# --------------------------------------------------------------------------- n-gram LM

_EOS, _BOS, _UNK = 0, 1, 2  # id 0 is both the line-break token in a stream and end-of-line


class _Stream:
    """Predicted positions of a batch of documents, with each position's history.

    Every non-empty line is a sentence: its words and then one end-of-line token are predicted,
    each from the preceding words of the same line, padded on the left with begin-of-line tokens
    (so no context crosses a line or a document).  ``hist[j - 1]`` is the j-th previous token.
    """

    def __init__(self, texts: Sequence[str], vocab: dict[str, int], grow: bool, order: int):
        ids: list[int] = []
        doc_ends = np.empty(len(texts), dtype=np.int64)
        for d, text in enumerate(texts):
            toks = model_line_tokens(text)
            if grow:
                ids.extend([vocab.setdefault(w, len(vocab)) for w in toks])
            else:
                get = vocab.get
                ids.extend([get(w, _UNK) for w in toks])
            ids.append(_EOS)  # every document ends a line
            doc_ends[d] = len(ids)
        tok = np.asarray(ids, dtype=np.int64)
        idx = np.arange(tok.size, dtype=np.int64)
        is_nl = tok == _EOS
        last_nl = np.maximum.accumulate(np.where(is_nl, idx, -1))
        prev_nl = np.concatenate(([-1], last_nl[:-1]))  # last line break strictly before i
        pos = idx - prev_nl - 1  # position within the line
        keep = ~is_nl | (pos > 0)  # words, and line ends of non-empty lines
        self.n_docs = len(texts)
        self.doc = np.searchsorted(doc_ends, idx[keep], side="right")
        self.word = tok[keep]
        where, pos = idx[keep], pos[keep]
        self.hist = [np.where(pos >= j, tok[np.maximum(where - j, 0)], _BOS) for j in range(1, order)]


def _keys(stream: _Stream, base: int, order: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Integer keys: ``ctx[j]`` encodes the j previous tokens, ``gram[k]`` the k-gram ending here.

    Keys are base-``base`` numbers in uint64 arithmetic, exact (injective) whenever
    ``base ** order <= 2 ** 64`` (e.g. order 3 with up to 2.6M word types) and a 64-bit hash with
    a negligible collision rate beyond that.  Each order has its own table, so keys of different
    lengths never meet.
    """
    b = np.uint64(base)
    ctx = [np.zeros(stream.word.size, dtype=np.uint64)]
    for j in range(1, order):
        scale = np.uint64(pow(base, j - 1, 2**64))  # arrays wrap mod 2**64; Python ints do it here
        ctx.append(ctx[-1] + stream.hist[j - 1].astype(np.uint64) * scale)
    w = stream.word.astype(np.uint64)
    gram = [None] + [ctx[k - 1] * b + w for k in range(1, order + 1)]
    return ctx, gram


def _lookup(table: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each key in sorted ``table`` and whether it is there."""
    at = np.searchsorted(table, keys)
    at_c = np.minimum(at, max(table.size - 1, 0))
    found = (at < table.size) & (table[at_c] == keys) if table.size else np.zeros(keys.size, bool)
    return at_c, found


class NgramLM:
    """Interpolated Kneser-Ney word n-gram language model (Kneser & Ney 1995; Chen & Goodman 1999).

    With one absolute discount D, for the highest order (raw counts c) and every lower order
    (continuation counts N1+(. h w), the number of distinct words seen before ``h w``, except for
    n-grams that start at a line start, which keep raw counts as in KenLM):

        p(w | h) = max(c(h w) - D, 0) / c(h .)  +  D * N1+(h .) / c(h .) * p(w | h')

    where h' drops the oldest word of h, and a context never seen in training backs off wholly
    to p(w | h').  The unigram level interpolates with the uniform distribution over the
    vocabulary, the end-of-line token and one unknown-word token, so every probability is > 0
    and out-of-vocabulary words get only the uniform share (a few per million), as with KenLM's
    <unk>.  Perplexity is per document: exp of the mean negative log-probability over its words
    plus one end-of-line token per non-empty line, as CCNet's ``DocLM`` computes it.
    """

    def __init__(self, params: PerplexityParams, vocab: dict[str, int], unigram: np.ndarray,
                 tables: list[dict[str, np.ndarray]]):
        self.params = params
        self.vocab = vocab
        self.unigram = unigram  # p(w) over ids; _BOS is never predicted and has 0
        self.tables = tables  # index k - 2 for order k >= 2

    @property
    def vocab_size(self) -> int:
        """Word types seen in training (without the three special tokens)."""
        return len(self.vocab) - 3

    @classmethod
    def fit(cls, texts: Iterable[str], p: PerplexityParams) -> NgramLM:
        """Count n-grams of the first ``p.max_train_chars`` characters of ``texts`` and estimate."""
        taken: list[str] = []
        left = p.max_train_chars
        for text in texts:
            if left <= 0:
                break
            if not isinstance(text, str):
                raise TypeError(f"expected str documents, got {type(text).__name__}")
            taken.append(text[:left])
            left -= len(taken[-1])
        vocab = {"\n": _EOS, "<s>": _BOS, "<unk>": _UNK}  # a line break is the end-of-line token
        stream = _Stream(taken, vocab, grow=True, order=p.order)
        del taken
        if not (stream.word != _EOS).any():
            raise DataError("NgramLM.fit: the reference texts contain no words")
        n, D, base = p.order, p.discount, len(vocab)
        ctx, gram = _keys(stream, base, n)
        unique, counts, rep = [None] * (n + 1), [None] * (n + 1), [None] * (n + 1)
        for k in range(1, n + 1):
            unique[k], rep[k], counts[k] = np.unique(gram[k], return_index=True, return_counts=True)
        tables: list[dict[str, np.ndarray]] = []
        unigram = None
        for k in range(n, 0, -1):
            c = counts[k].astype(np.float64)
            if k < n:
                # continuation count: distinct (k+1)-grams whose last k words are this k-gram
                suffix, n_left = np.unique(gram[k][rep[k + 1]], return_counts=True)
                at, _ = _lookup(suffix, unique[k])
                cont = n_left[at].astype(np.float64)
                at_line_start = stream.hist[k - 2][rep[k]] == _BOS if k >= 2 else np.zeros(c.size, bool)
                c = np.where(at_line_start, c, cont)
            alpha_num = np.maximum(c - D, 0.0)
            if k == 1:
                total = c.sum()
                predictable = base - 1  # every id but <s>
                unigram = np.full(base, D * c.size / total / predictable)
                unigram[stream.word[rep[1]]] += alpha_num / total
                unigram[_BOS] = 0.0
                continue
            ctx_keys, inv = np.unique(ctx[k - 1][rep[k]], return_inverse=True)
            denom = np.bincount(inv, weights=c)
            types = np.bincount(inv).astype(np.float64)
            tables.append({"gram": unique[k], "alpha": alpha_num / denom[inv],
                           "ctx": ctx_keys, "gamma": D * types / denom})
        tables.reverse()
        return cls(p, vocab, unigram, tables)

    def _token_logprob(self, stream: _Stream) -> np.ndarray:
        prob = self.unigram[stream.word]
        ctx, gram = _keys(stream, len(self.vocab), self.params.order)
        for k in range(2, self.params.order + 1):
            t = self.tables[k - 2]
            at_ctx, seen_ctx = _lookup(t["ctx"], ctx[k - 1])
            at_gram, seen_gram = _lookup(t["gram"], gram[k])
            alpha = np.where(seen_gram, t["alpha"][at_gram], 0.0)
            prob = np.where(seen_ctx, alpha + t["gamma"][at_ctx] * prob, prob)
        return np.log(prob)

    def perplexity(self, texts: Iterable[str]) -> np.ndarray:
        """Per-document perplexity, float64.  A document without a single word gets ``inf``."""
        out = []
        for chunk in _chunks(texts):
            stream = _Stream(chunk, self.vocab, grow=False, order=self.params.order)
            logp = self._token_logprob(stream)
            nll = -np.bincount(stream.doc, weights=logp, minlength=stream.n_docs)
            n_words = np.bincount(stream.doc[stream.word != _EOS], minlength=stream.n_docs)
            n_pred = np.bincount(stream.doc, minlength=stream.n_docs)
            with np.errstate(divide="ignore", invalid="ignore"):
                ppl = np.exp(nll / n_pred)
            out.append(np.where(n_words > 0, ppl, np.inf))
        return np.concatenate(out) if out else np.zeros(0)


def perplexity_cutoffs(ppl: np.ndarray, p: PerplexityParams) -> tuple[float, float]:
    """The head and tail perplexity cut points: the pool's ``head_pct`` and ``tail_pct``
    percentiles (numpy's default linear interpolation).  CCNet reads per-language cut points
    computed once on a sample; here the pool is the sample.  Non-finite perplexities (empty
    documents) count as the highest values."""
    ppl = np.asarray(ppl, dtype=np.float64)
    if ppl.ndim != 1 or ppl.size == 0:
        raise ValueError(f"ppl: need a non-empty 1-d array, got shape {ppl.shape}")
    big = np.finfo(np.float64).max
    finite = np.where(np.isfinite(ppl), ppl, big)
    head, tail = np.percentile(finite, [p.head_pct, p.tail_pct])
    return float(head), float(tail)


def quality_buckets(ppl: np.ndarray, p: PerplexityParams) -> np.ndarray:
    """CCNet's partition of a scored pool: ``head`` if ppl < the ``head_pct`` percentile,
    ``middle`` if ppl < the ``tail_pct`` percentile, else ``tail`` (so head is the lowest
    perplexity; ties fall in the higher bucket, inf and nan in ``tail``).  With n distinct values
    the head holds floor(h (n - 1) / 100) + 1 documents, or h (n - 1) / 100 when that is whole.
    Returns an array of str (``<U6``)."""
    ppl = np.asarray(ppl, dtype=np.float64)
    head, tail = perplexity_cutoffs(ppl, p)
    return np.where(ppl < head, BUCKETS[0], np.where(ppl < tail, BUCKETS[1], BUCKETS[2]))


# --------------------------------------------------------------------------- classifier

_MIX = np.uint64(GOLDEN64)  # golden-ratio multiplier (splitmix64 / Fibonacci hashing)


def _features(texts: Sequence[str], p: ClassifierParams) -> sp.csr_matrix:
    """Rows: documents; columns: hashed word 1..``p.ngram``-grams; values: presence (1 if the
    bucket occurs in the document, however often), scaled to unit L2 norm per document.

    A word's hash is zlib.crc32 of its UTF-8 bytes (stable across runs and processes, unlike
    ``hash()``); an n-gram's is a polynomial combination of its words' hashes, seeded by n, put
    through splitmix64's finaliser and taken mod ``p.features``.  N-grams never cross documents.
    """
    local: dict[str, int] = {}
    ids: list[int] = []
    bounds = np.zeros(len(texts) + 1, dtype=np.int64)
    for d, text in enumerate(texts):
        ids.extend([local.setdefault(w, len(local)) for w in model_words(text)])
        bounds[d + 1] = len(ids)
    word_hash = np.fromiter((stable_hash32(w) for w in local), dtype=np.uint64,
                            count=len(local))
    h = word_hash[np.asarray(ids, dtype=np.int64)]
    doc = np.repeat(np.arange(len(texts), dtype=np.int64), np.diff(bounds))
    rows, cols = [], []
    for n in range(1, p.ngram + 1):
        m = h.size - n + 1
        if m <= 0:
            break
        g = np.full(m, (n * int(_MIX)) % 2**64, dtype=np.uint64)
        for t in range(n):
            g = g * _MIX + h[t:t + m]
        same_doc = doc[:m] == doc[n - 1:]
        rows.append(doc[:m][same_doc])
        # mix64 works in place: g[same_doc] is a copy; splitmix64 makes hash mod features use all bits
        cols.append((mix64(g[same_doc]) % np.uint64(p.features)).astype(np.int64))
    rows_a = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols_a = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    x = sp.csr_matrix((np.ones(rows_a.size), (rows_a, cols_a)), shape=(len(texts), p.features))
    x.sum_duplicates()
    n_feats = np.diff(x.indptr)
    x.data = np.repeat(1.0 / np.sqrt(np.maximum(n_feats, 1)), n_feats)  # presence, unit L2 norm
    return x


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Inner product without BLAS: OpenBLAS threads ``a @ b`` on long vectors, and on shared,
    busy cores its spinning threads made a classifier fit 20-40x slower (0.3 s vs 5-11 s)."""
    return float(np.einsum("i,i->", a, b))


def _lbfgs(fun, x: np.ndarray, max_iter: int, memory: int = 10, gtol: float = 1e-6,
           ftol: float = 1e-10) -> tuple[np.ndarray, bool]:
    """Minimise a smooth convex ``fun(x) -> (f, grad)`` by L-BFGS (Nocedal & Wright 2006, alg. 7.4)
    with a backtracking Armijo line search.  Plain numpy, so each iteration costs one or two
    function evaluations and O(memory * len(x)) flops (scipy's L-BFGS-B spends ~0.1 s an
    iteration on bound bookkeeping at 2**18 variables).  Returns (x, converged)."""
    f, g = fun(x)
    s_hist: list[np.ndarray] = []
    y_hist: list[np.ndarray] = []
    for it in range(max_iter):
        if np.abs(g).max() <= gtol:
            return x, True
        # two-loop recursion: d = -H g
        q = g.copy()
        alphas = []
        for s_i, y_i in zip(reversed(s_hist), reversed(y_hist)):
            a = _dot(s_i, q) / _dot(y_i, s_i)
            alphas.append(a)
            q -= a * y_i
        if s_hist:
            q *= _dot(s_hist[-1], y_hist[-1]) / _dot(y_hist[-1], y_hist[-1])
        else:
            q /= max(math.sqrt(_dot(g, g)), 1.0)
        for (s_i, y_i), a in zip(zip(s_hist, y_hist), reversed(alphas)):
            q += (a - _dot(y_i, q) / _dot(y_i, s_i)) * s_i
        d = -q
        slope = _dot(g, d)
        if slope >= 0:  # not a descent direction (numerical trouble): restart from steepest descent
            s_hist.clear()
            y_hist.clear()
            d, slope = -g, -_dot(g, g)
        step = 1.0
        while True:
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            if f_new <= f + 1e-4 * step * slope:
                break
            if step < 1e-12:  # no decrease along d: as good as this precision allows
                return x, False
            step *= 0.5
        s_vec, y_vec = x_new - x, g_new - g
        if _dot(s_vec, y_vec) > 1e-12:
            s_hist.append(s_vec)
            y_hist.append(y_vec)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        done = f - f_new <= ftol * max(abs(f), abs(f_new), 1.0)
        x, f, g = x_new, f_new, g_new
        if done:
            return x, True
    return x, bool(np.abs(g).max() <= gtol)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


class QualityClassifier:
    """Logistic regression P(reference quality | document) on hashed word n-grams.

    fastText's supervised mode averages n-gram embeddings and applies a linear layer; with two
    labels that is a low-rank linear model of the same bag-of-n-grams, so a full-rank logistic
    regression is the convex version of it.  The objective is the class-balanced mean logistic
    loss plus ``l2 / 2 * ||w||^2`` and is minimised with L-BFGS from zero, so a fit is
    deterministic for its inputs and seed (the seed only draws ``max_docs`` and the held-out
    split).

    Attributes set by :meth:`fit`: ``heldout_accuracy`` (share of held-out documents of both
    classes on the right side of 0.5; nan without a held-out set), ``heldout_positives`` and
    ``heldout_negatives`` (indices into the sequences given to ``fit``), ``train_positives`` and
    ``train_negatives`` likewise, and ``converged`` (L-BFGS met its tolerance within ``epochs``).
    """

    def __init__(self, params: ClassifierParams, weights: np.ndarray, bias: float):
        self.params = params
        self.weights = weights
        self.bias = float(bias)
        self.heldout_accuracy = math.nan
        self.heldout_positives = np.zeros(0, np.int64)
        self.heldout_negatives = np.zeros(0, np.int64)
        self.train_positives = np.zeros(0, np.int64)
        self.train_negatives = np.zeros(0, np.int64)
        self.converged = False

    @staticmethod
    def _split(n: int, p: ClassifierParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        chosen = np.sort(rng.choice(n, size=p.max_docs, replace=False)) if n > p.max_docs else np.arange(n)
        order = chosen[rng.permutation(chosen.size)]
        n_hold = math.floor(p.holdout * order.size + 0.5)
        if p.holdout > 0 and order.size >= 2:
            n_hold = min(max(n_hold, 1), order.size - 1)
        else:
            n_hold = 0
        return np.sort(order[n_hold:]), np.sort(order[:n_hold])

    @classmethod
    def fit(cls, positives: Sequence[str], negatives: Sequence[str], p: ClassifierParams,
            seed: int) -> QualityClassifier:
        """Fit on reference-quality ``positives`` against pool ``negatives``; see the class doc."""
        if len(positives) == 0 or len(negatives) == 0:
            raise DataError(f"QualityClassifier.fit: need documents of both classes, got "
                            f"{len(positives)} positives and {len(negatives)} negatives")
        rng = np.random.default_rng(seed)
        pos_train, pos_hold = cls._split(len(positives), p, rng)
        neg_train, neg_hold = cls._split(len(negatives), p, rng)
        texts = [positives[i] for i in pos_train] + [negatives[i] for i in neg_train]
        y = np.concatenate([np.ones(pos_train.size), np.zeros(neg_train.size)])
        x = _features(texts, p)
        del texts
        # Only buckets seen in training can move from 0 (the rest have zero gradient throughout),
        # so optimise over those columns alone: same solution, far less work per iteration.
        active = np.unique(x.indices)
        x = sp.csr_matrix((x.data, np.searchsorted(active, x.indices), x.indptr),
                          shape=(x.shape[0], active.size))
        sample_w = np.where(y == 1, 0.5 / pos_train.size, 0.5 / neg_train.size)
        xt = sp.csr_matrix(x.T)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:-1], theta[-1]
            z = x @ w + b
            margin = np.where(y == 1, z, -z)
            loss = _dot(sample_w, np.logaddexp(0.0, -margin)) + 0.5 * p.l2 * _dot(w, w)
            r = sample_w * (_sigmoid(z) - y)
            grad = np.empty_like(theta)
            grad[:-1] = xt @ r + p.l2 * w
            grad[-1] = r.sum()
            return loss, grad

        theta, converged = _lbfgs(objective, np.zeros(active.size + 1), p.epochs)
        weights = np.zeros(p.features)
        weights[active] = theta[:-1]
        model = cls(p, weights, theta[-1])
        model.converged = converged
        model.train_positives, model.train_negatives = pos_train, neg_train
        model.heldout_positives, model.heldout_negatives = pos_hold, neg_hold
        if pos_hold.size + neg_hold.size:
            s_pos = model.score([positives[i] for i in pos_hold])
            s_neg = model.score([negatives[i] for i in neg_hold])
            correct = int((s_pos >= 0.5).sum()) + int((s_neg < 0.5).sum())
            model.heldout_accuracy = correct / (pos_hold.size + neg_hold.size)
        return model

    def score(self, texts: Iterable[str]) -> np.ndarray:
        """P(reference quality) per document, float64 (a document without words gets
        sigmoid(bias))."""
        out = [_sigmoid(_features(chunk, self.params) @ self.weights + self.bias)
               for chunk in _chunks(texts)]
        return np.concatenate(out) if out else np.zeros(0)


def keep_top(scores: np.ndarray, keep_frac: float) -> np.ndarray:
    """Boolean mask of the ``k = floor(keep_frac * n + 0.5)`` highest scores (round half up).

    Ties are broken by position: of equal scores the earlier document is kept.  nan counts as
    the lowest score.  DCLM-Baseline keeps ``keep_frac = 0.1``.
    """
    _check_keep_frac(keep_frac)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores: need a 1-d array, got shape {s.shape}")
    k = math.floor(keep_frac * s.size + 0.5)
    s = np.where(np.isnan(s), -np.inf, s)
    order = np.lexsort((np.arange(s.size), -s))
    mask = np.zeros(s.size, dtype=bool)
    mask[order[:k]] = True
    return mask
