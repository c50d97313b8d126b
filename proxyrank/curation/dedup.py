"""Document deduplication as pretraining-data teams do it: exact, MinHash-LSH near-duplicate,
repeated-paragraph removal and decontamination against held-out text.

Why: web-scale corpora repeat themselves (mirrors, boilerplate, templated pages, quoted
licences), and repeated text both wastes the token budget and shifts what a model learns;
C4, Gopher, RefinedWeb, FineWeb and DCLM all deduplicate, and a data recipe that does or does
not deduplicate is one of the recipe choices this study ranks. Validation text and its
near-copies must also stay out of training (`contaminated`), or the proxies' losses measure
memorisation.

How, and why this way (the scale requirements of the issue):

- Streaming. Texts are read from any iterable in chunks of at most `CHUNK_DOCS` documents /
  `CHUNK_CHARS` characters; for the corpus only the (n, num_perm) uint32 signature matrix
  (4 * num_perm bytes a document: 512 B at num_perm=128) and the union-find parents are held,
  plus the sorted 64-bit shingle hashes of the texts in a candidate pair that passed the
  prefilter (8 bytes a distinct shingle, likely duplicates only). Exact verification reads
  those texts again, so `near_duplicates` collects an iterator that is not a sequence into a
  list; `contaminated` verifies each chunk while it is in hand and needs no second pass.
- Vectorised hashing. A chunk is normalised (lowercase, punctuation stripped: the words of
  `proxyrank.text.text_key`'s normalisation, `proxyrank.text.dedup_words`; ASCII characters by a
  numpy byte table, the rare non-ASCII punctuation of other texts by a regex that only matches
  it), encoded to UTF-8 once and hashed with numpy:
  each word by a polynomial hash over its bytes (mod 2**64), each word 5-gram by a polynomial
  over its word hashes, both finished with the splitmix64 mixer: 64 bits per shingle, of which
  signatures use the top 32. Stable across processes and runs (not Python's salted `hash()`).
- Permutations. num_perm hash functions h(x) = ((a*x + b) mod 2**64) >> 32 with a, b drawn
  from `numpy.random.default_rng(seed)`: Dietzfelbinger's multiply-add-shift scheme, strongly
  universal for 32-bit keys and exact in uint64 arithmetic (wrap-around *is* the mod), where
  the classic a*x+b mod (2**61-1) (datasketch's legacy scheme) needs 128-bit products to be
  exact; datasketch 2.0 defaults to a*x+b mod 2**32 with odd a.
  Signatures are uint32: 32-bit minima are what the estimator compares, and a spurious equal
  minimum has probability 2**-32 per position, far below the estimator's own noise (~1/num_perm).
- LSH proposes, the exact Jaccard decides. The signature is cut into `bands` bands of `rows`
  values; each band is hashed to one uint64 and grouped by sorting. Within a bucket every
  document is paired with the bucket's first document and with its predecessor (linear in the
  bucket size, as datatrove pairs each bucket member with the first one), pairs already in one
  cluster are skipped, and a pair is a duplicate iff the exact Jaccard of its two shingle sets
  (distinct 64-bit shingle hashes) is >= threshold: the threshold is a floor, not the 50% point
  of an estimate (verifying by the share of equal minima, as before, kept 21% of planted pairs
  at J in [0.80, 0.85) and removed 21% in [0.75, 0.80): bench/results/minhash.md). Before the
  exact check a cheap prefilter drops candidates with fewer than `prefilter_matches` equal
  minima, far below what a pair at the threshold shows (it loses at most 1e-6 of those).
  Verified pairs are joined by union-find; the first document of each cluster is kept.
- Both cores. `workers > 1` hashes chunks in a process pool; a document's signature depends only
  on its text and the seed, so the output is the same for any `workers` and chunking.

`from __future__ import annotations` keeps annotations such as `Iterable[str]` and
`np.ndarray` unevaluated at import time, as in the rest of the package (Python >= 3.10).
"""
from __future__ import annotations

import functools
import math
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from proxyrank.errors import DataError, ParamsError
# one normalisation (text_key's) for exact and near dedup
from proxyrank.text import ASCII_WORD_BYTES, GOLDEN64, NON_ASCII_BREAK, mix64, text_batches, text_key

CHUNK_DOCS = 2048
CHUNK_CHARS = 1 << 19  # ~0.5 MB of text per chunk: ~45 bytes of numpy arrays per character (~22 MB)
EMPTY = np.uint32(0xFFFFFFFF)  # every minimum of a text with no words (no shingles)
PREFILTER_MISS = 1e-6  # at most this share of pairs at J = threshold is lost by the signature prefilter

_U64 = np.uint64
_BYTE_PRIME = 0x100000001B3  # FNV-1a's 64-bit prime (odd): the per-byte polynomial base
_WORD_BASE = GOLDEN64  # 2**64 / golden ratio (odd): the per-word polynomial base
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class MinHashParams:
    """Near-duplicate detection settings (fields are plain int/float/bool for the YAML builder).

    Defaults: 128 permutations in 32 bands of 4 rows, word 5-grams, exact Jaccard >= 0.8.
    - num_perm=128: the cost scales with it; 128 is datasketch's default and keeps a 2-core
      laptop fast. RefinedWeb uses 9000 hashes over 5-grams for a much sharper S-curve at
      web scale; datatrove's default is 112 (14 buckets x 8 hashes).
    - bands=32 (rows=4): LSH only proposes candidates, and the exact check rejects the false
      ones, so the S-curve 1-(1-J**rows)**bands should rise well below the threshold: a pair
      at J >= threshold that never becomes a candidate is lost for good. With 32 x 4 it crosses
      0.5 at J = (1/32)**(1/4) = 0.42 and gives P(candidate) = 0.873 at J = 0.5, 0.988 at 0.6,
      0.9998 at 0.7 and 1 - 5e-8 at 0.8; with the prefilter (>= 79 of 128 equal minima at
      threshold 0.8) a pair is removed (`detection_probability`) with probability 1 - 6e-7 at
      J = 0.8, 1 - 1e-7 at 0.81, and 0 at any J < 0.8. The old 16 x 8 (datatrove's 8 hashes a
      bucket) crosses 0.5 at J = 0.71, only 0.09 below the threshold, and loses 5.3% of the
      pairs at J = 0.8 (0.6% at 0.85); 128 has no divisor between the two (a 50% point near
      threshold - 0.15 = 0.65 would need e.g. num_perm=120 in 20 bands of 6: 0.61). The extra
      candidates of 32 bands (23% of pairs at J = 0.3) mostly cost one vectorised signature
      comparison each: clustering took ~1.1x the CPU of 16 bands on the benchmark and ~2x
      (0.5 s vs 0.2 s, beside 0.9 s of signatures) on 10k pages that all share 100 words.
      `bands` sets where the S-curve rises, (1/bands)**(1/rows); `threshold` decides among
      candidates. A threshold near or below that point needs more bands (or num_perm), else
      the S-curve, not the threshold, limits recall: at threshold=0.5 with bands=32 a pair at
      J = 0.5 is found with probability 0.87, at 0.6 with 0.99.
    - shingle=5: word 5-grams of the normalised text, as Gopher/RefinedWeb/datatrove (a text
      with fewer words is one shingle of all its words).
    - threshold=0.8: the ~0.8 Jaccard that Gopher/RefinedWeb-style pipelines target (datasketch's
      MinHashLSH defaults to 0.9); below it, pairs are paraphrase-like rather than copies. It is
      a floor on the exact Jaccard of the two shingle sets (see `detection_probability`).
    - paragraph=False: paragraph dedup (DCLM's BFF in paragraph mode, CCNet's paragraph hashes)
      is opt-in; it edits documents rather than dropping them.
    - min_paragraph_chars=70: BFF as run for DCLM (--min-ngram-size 13) never removes a
      paragraph shorter than its 13-word n-gram; 13 words are ~70 normalised characters in this
      study's pool (5.35 characters a word with its space); measured on the stripped
      paragraph. Shorter paragraphs ("Example:",
      "Returns", `import os`, "Amen.") are structure that legitimately recurs.
    """

    num_perm: int = 128
    bands: int = 32
    shingle: int = 5
    threshold: float = 0.8
    paragraph: bool = False
    min_paragraph_chars: int = 70

    def __post_init__(self):
        for name in ("num_perm", "bands", "shingle", "min_paragraph_chars"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"MinHashParams.{name}: expected an integer, got {value!r}")
        if self.num_perm < 1:
            raise ParamsError(f"MinHashParams.num_perm: must be >= 1, got {self.num_perm}")
        if not 1 <= self.bands <= self.num_perm or self.num_perm % self.bands:
            raise ParamsError(f"MinHashParams.bands: {self.bands} does not divide num_perm={self.num_perm} "
                              f"(rows per band = num_perm // bands must be a whole number >= 1); "
                              f"choose a divisor such as {_divisors_hint(self.num_perm)}")
        if self.shingle < 1:
            raise ParamsError(f"MinHashParams.shingle: must be >= 1 word, got {self.shingle}")
        if self.min_paragraph_chars < 0:
            raise ParamsError(f"MinHashParams.min_paragraph_chars: must be >= 0, got {self.min_paragraph_chars}")
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float, np.floating)):
            raise TypeError(f"MinHashParams.threshold: expected a number, got {t!r}")
        if not 0 < t <= 1:
            raise ParamsError(f"MinHashParams.threshold: must be a number in (0, 1], got {t!r}")
        if not isinstance(self.paragraph, (bool, np.bool_)):
            raise TypeError(f"MinHashParams.paragraph: expected true or false, got {self.paragraph!r}")

    @property
    def rows(self) -> int:
        return self.num_perm // self.bands

    @property
    def prefilter_matches(self) -> int:
        """Equal minima (of num_perm) a candidate needs before its exact Jaccard is computed.

        The largest m such that a pair at exactly J = threshold has fewer than m equal minima
        with probability <= PREFILTER_MISS (binomial lower tail of the ideal model): it discards
        the many candidates far below the threshold for the cost of one vectorised signature
        comparison, and loses at most 1e-6 of the pairs at the threshold (fewer above it).
        """
        return _binomial_floor(self.num_perm, float(self.threshold), PREFILTER_MISS)


def _divisors_hint(n: int) -> str:
    divs = [d for d in range(1, n + 1) if n % d == 0]
    return ", ".join(map(str, divs[:12])) + (", ..." if len(divs) > 12 else "")


@functools.lru_cache(maxsize=64)
def _binomial_floor(n: int, q: float, tail: float) -> int:
    """Largest m with P(Binomial(n, q) < m) <= tail (log-space terms: n may be in the thousands)."""
    if q >= 1.0:
        return n
    log_q, log_not_q = math.log(q), math.log1p(-q)
    below = 0.0  # P(X < k)
    for k in range(n + 1):
        pmf = math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                       + k * log_q + (n - k) * log_not_q)
        if below + pmf > tail:
            return k
        below += pmf
    return n


def candidate_probability(jaccard: float, p: MinHashParams) -> float:
    """LSH S-curve 1 - (1 - J**rows)**bands: probability that a pair with this Jaccard shares at
    least one band (becomes a candidate)."""
    return 1.0 - (1.0 - jaccard ** p.rows) ** p.bands


def detection_probability(jaccard: float, p: MinHashParams) -> float:
    """Probability that a pair with this exact shingle-set Jaccard is flagged.

    0 below the threshold (exact verification is a floor). At or above it: a candidate in some
    band *and* at least `p.prefilter_matches` equal minima of num_perm, under the ideal model in
    which each minimum agrees independently with probability `jaccard` (exact, by dynamic
    programming); the exact check then always passes.
    """
    if jaccard < p.threshold:
        return 0.0
    r = p.rows
    band = np.array([math.comb(r, k) * jaccard ** k * (1 - jaccard) ** (r - k) for k in range(r + 1)])
    dist = np.zeros((2, p.num_perm + 1))  # [any full band so far?, equal minima so far]
    dist[0, 0] = 1.0
    for _ in range(p.bands):
        new = np.zeros_like(dist)
        for k in range(r + 1):
            shifted = np.roll(dist, k, axis=1) * band[k]
            if k == r:
                new[1] += shifted[0] + shifted[1]
            else:
                new += shifted
        dist = new
    return float(dist[1, p.prefilter_matches:].sum())


# ---------------------------------------------------------------------------------------------
# hashing


def _powers(base: int, n: int) -> np.ndarray:
    out = np.full(max(n, 1), base, dtype=_U64)
    out[0] = 1
    return np.multiply.accumulate(out, out=out)  # wraps mod 2**64, as intended


def _shingle_hashes(texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every word k-gram of every text, and each one's text index.

    Signatures use the top 32 bits (`>> 32`); exact verification compares the full 64 bits, so
    two different shingles of a pair collide with probability ~len(a) * len(b) / 2**64.

    A text with 1..k-1 words yields one shingle of all its words; a text with none, nothing.
    ASCII characters are normalised by a byte table in numpy (the same words as the regex gives
    for ASCII: [a-z0-9] runs); a text with others is lowercased and its non-ASCII non-word
    characters become spaces first.
    """
    enc = [(t if t.isascii() else NON_ASCII_BREAK.sub(" ", t.lower())).encode() for t in texts]
    lens = np.fromiter(map(len, enc), dtype=np.int64, count=len(enc))
    b = ASCII_WORD_BYTES[np.frombuffer(b"".join(enc), dtype=np.uint8)]
    text_start = np.cumsum(lens) - lens
    inword = b != 0
    start = inword.copy()
    start[1:] &= ~inword[:-1]
    nonempty = text_start[lens > 0]
    start[nonempty] = inword[nonempty]  # a word never runs from one text into the next
    pos = np.flatnonzero(inword)
    if len(pos) == 0:
        return np.zeros(0, _U64), np.zeros(0, np.int64)
    # word hashes: sum_j byte_j * P**j over the word's bytes, then mixed
    word_of = np.cumsum(start[pos]) - 1
    first = np.flatnonzero(start[pos])
    offset = np.arange(len(pos)) - first[word_of]
    terms = b[pos].astype(_U64) * _powers(_BYTE_PRIME, int(offset.max()) + 1)[offset]
    wh = mix64(np.add.reduceat(terms, first))
    # the text of each word (ties: empty texts sit before the text that starts there)
    doc = np.searchsorted(text_start, pos[first], side="right") - 1
    counts = np.bincount(doc, minlength=len(texts))
    ends = np.cumsum(counts)
    begins = ends - counts
    n_words = len(wh)
    i = np.arange(n_words)
    end_i = ends[doc]
    valid = (i + k <= end_i) | ((i == begins[doc]) & (counts[doc] < k))
    iv = i[valid]
    end_v = end_i[valid]
    h = np.zeros(len(iv), dtype=_U64)
    qpow = 1
    for t in range(k):
        j = iv + t
        term = wh[np.minimum(j, n_words - 1)] * _U64(qpow)
        h += np.where(j < end_v, term, _U64(0))
        qpow = (qpow * _WORD_BASE) & _MASK64
    h ^= _U64(k)
    return mix64(h), doc[valid]


def _permutations(p: MinHashParams, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 64, size=p.num_perm, dtype=_U64, endpoint=False)
    b = rng.integers(0, 1 << 64, size=p.num_perm, dtype=_U64, endpoint=False)
    return a, b


def _chunk_signatures(texts: list[str], p: MinHashParams, seed: int) -> np.ndarray:
    """(len(texts), num_perm) uint32 MinHash signatures of one chunk."""
    a, b = _permutations(p, seed)
    # (num_perm, texts) layout: the per-text minima reduce over contiguous memory (~4x faster
    # than reducing over axis 0 of a (shingles, num_perm) array)
    sig = np.full((p.num_perm, len(texts)), np.iinfo(_U64).max, dtype=_U64)
    sh, doc = _shingle_hashes(texts, p.shingle)
    sh >>= _U64(32)
    block = max(256, (1 << 20) // p.num_perm)  # ~8 MB of uint64 per block
    a, b = a[:, None], b[:, None]
    for lo in range(0, len(sh), block):
        x, d = sh[lo:lo + block], doc[lo:lo + block]
        seg = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        h = a * x[None, :]
        h += b
        # min of the full 64-bit values, then >> 32: the same as the min of the shifted values
        m = np.minimum.reduceat(h, seg, axis=1)
        cols = d[seg]  # distinct within a block: a text's shingles are contiguous
        sig[:, cols] = np.minimum(sig[:, cols], m)
    return np.ascontiguousarray((sig >> _U64(32)).astype(np.uint32).T)


def _chunks(texts: Iterable[str]) -> Iterator[list[str]]:
    return text_batches(texts, CHUNK_CHARS, CHUNK_DOCS, "dedup texts")


def _signature_chunks(texts: Iterable[str], p: MinHashParams, seed: int,
                      workers: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """(chunk, its signatures) in input order; at most 2 * workers chunks in flight."""
    if workers <= 1:
        for chunk in _chunks(texts):
            yield chunk, _chunk_signatures(chunk, p, seed)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for chunk in _chunks(texts):
            pending.append((chunk, pool.submit(_chunk_signatures, chunk, p, seed)))
            if len(pending) >= 2 * workers:
                done, fut = pending.popleft()
                yield done, fut.result()
        while pending:
            done, fut = pending.popleft()
            yield done, fut.result()


def minhash_signatures(texts: Iterable[str], p: MinHashParams, seed: int, workers: int = 1) -> np.ndarray:
    """(n, num_perm) uint32 MinHash signatures of the texts' normalised word shingles.

    Streams over texts in chunks; workers > 1 hashes chunks in a process pool with the same
    result. A text without words gets the all-`EMPTY` (0xFFFFFFFF) signature.
    """
    parts = [sig for _, sig in _signature_chunks(texts, p, seed, workers)]
    if not parts:
        return np.zeros((0, p.num_perm), dtype=np.uint32)
    return np.concatenate(parts)


# ---------------------------------------------------------------------------------------------
# deduplication


def exact_duplicates(texts: Iterable[str]) -> np.ndarray:
    """Mask of texts whose normalised form (case, punctuation, spacing) was seen earlier.

    Exact dedup as C4 / RefinedWeb's exact stage, on whole documents; the first copy stays.
    Holds one 16-byte key per distinct text.
    """
    seen: set[bytes] = set()
    out = []
    for t in texts:
        k = text_key(t)
        out.append(k in seen)
        seen.add(k)
    return np.array(out, dtype=bool)


def _band_key(cols: np.ndarray) -> np.ndarray:
    """One uint64 per row of a (n, rows) uint32 band."""
    h = np.zeros(len(cols), dtype=_U64)
    for t in range(cols.shape[1]):
        h ^= cols[:, t].astype(_U64)
        h = mix64(h)
    return h


def _estimated_match(sig_a: np.ndarray, sig_b: np.ndarray, ia: np.ndarray, ib: np.ndarray,
                     min_matches: int) -> np.ndarray:
    """For each pair (sig_a[ia[k]], sig_b[ib[k]]): at least min_matches equal minima?"""
    out = np.zeros(len(ia), dtype=bool)
    step = max(1, (1 << 22) // sig_a.shape[1])
    for lo in range(0, len(ia), step):
        eq = sig_a[ia[lo:lo + step]] == sig_b[ib[lo:lo + step]]
        out[lo:lo + step] = eq.sum(axis=1) >= min_matches
    return out


def _shingle_sets(texts: list[str], k: int) -> list[np.ndarray]:
    """Each text's distinct 64-bit shingle hashes, sorted: the sets exact Jaccard compares."""
    sh, doc = _shingle_hashes(texts, k)
    order = np.lexsort((sh, doc))
    sh, doc = sh[order], doc[order]
    new = np.r_[True, (sh[1:] != sh[:-1]) | (doc[1:] != doc[:-1])]
    sh, doc = sh[new], doc[new]
    cut = np.searchsorted(doc, np.arange(len(texts) + 1))
    return [sh[cut[i]:cut[i + 1]] for i in range(len(texts))]


class _ShingleSets:
    """Shingle sets of the texts that some candidate pair needs, computed on first need.

    Only texts in a candidate pair that passed the signature prefilter are ever hashed again
    (8 bytes a distinct shingle), so memory follows the number of likely duplicates, not the
    corpus; texts are hashed in batches bounded like `_chunks`.
    """

    def __init__(self, texts: Sequence[str], k: int):
        self.texts, self.k, self.sets = texts, k, {}

    def need(self, ids: np.ndarray) -> None:
        batch: list[int] = []
        chars = 0
        for i in np.unique(ids).tolist():
            if i in self.sets:
                continue
            t = self.texts[i]
            if not isinstance(t, str):
                raise TypeError(f"dedup: expected texts as str, got {type(t).__name__} at index {i}")
            batch.append(i)
            chars += len(t)
            if len(batch) >= CHUNK_DOCS or chars >= CHUNK_CHARS:
                self._add(batch)
                batch, chars = [], 0
        if batch:
            self._add(batch)

    def _add(self, ids: list[int]) -> None:
        self.sets.update(zip(ids, _shingle_sets([self.texts[i] for i in ids], self.k)))


def _jaccard_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard of two non-empty sorted arrays of distinct values."""
    if len(a) > len(b):
        a, b = b, a
    pos = np.minimum(np.searchsorted(b, a), len(b) - 1)
    inter = int(np.count_nonzero(b[pos] == a))
    return inter / (len(a) + len(b) - inter)


def _similar(a: np.ndarray, b: np.ndarray, threshold: float) -> bool:
    """Exact Jaccard of two shingle sets >= threshold? Sets whose sizes differ by more than the
    threshold allows (J <= small / big) are rejected without intersecting."""
    if min(len(a), len(b)) / max(len(a), len(b)) < threshold:
        return False
    return _jaccard_sorted(a, b) >= threshold


def _compress(parent: np.ndarray) -> np.ndarray:
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent[:] = grand


def _find(parent: np.ndarray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = int(parent[root])
    while x != root:
        parent[x], x = root, int(parent[x])
    return root


def near_duplicates(texts: Iterable[str], p: MinHashParams, seed: int, workers: int = 1) -> np.ndarray:
    """Mask of near-duplicates: True for every text but the first of its cluster.

    Candidate pairs share a band; a candidate counts only if the exact Jaccard of the two
    shingle sets is >= p.threshold. Counted pairs are joined by union-find (so clusters are
    transitive, as in datatrove and RefinedWeb: a chain A~B~C drops B and C even if C alone is
    below the threshold against A); the earliest text of each cluster is kept. Texts without
    words are never near-duplicates (exact_duplicates handles them).
    """
    first = near_duplicate_clusters(texts, p, seed, workers)
    return first != np.arange(len(first))


def near_duplicate_clusters(texts: Iterable[str], p: MinHashParams, seed: int, workers: int = 1) -> np.ndarray:
    """For each text, the index of the first text of its near-duplicate cluster (itself if none).

    The clustering behind `near_duplicates`; useful to inspect or report what was matched.
    Exact verification reads the candidates' texts a second time, after all signatures are
    known, so texts that are not a sequence (a generator, say) are first collected in a list.
    """
    if not isinstance(texts, Sequence):
        texts = list(texts)
    return clusters_from_signatures(minhash_signatures(texts, p, seed, workers), p, texts)


def near_duplicates_from_signatures(sig: np.ndarray, p: MinHashParams, texts: Sequence[str]) -> np.ndarray:
    """`near_duplicates` on precomputed `minhash_signatures` (rows in corpus order) and the texts
    they were computed from (same order: the candidates' texts are verified exactly).

    Signatures depend only on the texts, num_perm, shingle and seed, so one matrix serves any
    bands / threshold, and a subset of rows with its texts (e.g. the documents that survived
    filtering) deduplicates that subset.
    """
    first = clusters_from_signatures(sig, p, texts)
    return first != np.arange(len(first))


def _check_signatures(sig: np.ndarray, p: MinHashParams, texts: Sequence[str]) -> np.ndarray:
    """The signature matrix as an array; a DataError when it was made with other settings (a
    stale data/curated/*.npy), a ValueError when the caller passed texts of other rows."""
    sig = np.asarray(sig)
    if sig.ndim != 2 or sig.shape[1] != p.num_perm or sig.dtype != np.uint32:
        raise DataError(f"signatures: expected a (n, {p.num_perm}) uint32 array from minhash_signatures "
                        f"with num_perm={p.num_perm}, got {sig.dtype} {sig.shape}")
    if len(texts) != len(sig):
        raise ValueError(f"texts: {len(texts)} texts for {len(sig)} signature rows; pass the texts the "
                         "signatures were computed from, in the same order")
    return sig


def _bucket_pairs(sig: np.ndarray, idx: np.ndarray, band: int, p: MinHashParams,
                  parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (earlier, later) of one band: each bucket member with the bucket's first
    and with its predecessor, skipping pairs already in one cluster."""
    n, r = len(sig), p.rows
    key = _band_key(sig[idx, band * r:(band + 1) * r])
    order = np.argsort(key, kind="stable")  # equal keys stay in text order
    keys, docs = key[order], idx[order]
    new = np.r_[True, keys[1:] != keys[:-1]]
    if new.all():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    run_first = np.maximum.accumulate(np.where(new, np.arange(len(new)), 0))
    pos = np.flatnonzero(~new)
    left = np.concatenate([docs[run_first[pos]], docs[pos - 1]])
    right = np.concatenate([docs[pos], docs[pos]])
    roots = _compress(parent)
    fresh = roots[left] != roots[right]
    pair = np.unique(left[fresh] * n + right[fresh])  # left < right: earlier in the bucket
    return pair // n, pair % n


def clusters_from_signatures(sig: np.ndarray, p: MinHashParams, texts: Sequence[str]) -> np.ndarray:
    """`near_duplicate_clusters` on precomputed signatures and their texts: first index of each
    row's cluster.

    Per band: candidate pairs, then the signature prefilter (`p.prefilter_matches` equal
    minima), then, for pairs not yet in one cluster, the exact Jaccard of the shingle sets; a
    pair rejected exactly is remembered so that another band does not intersect it again.
    """
    sig = _check_signatures(sig, p, texts)
    n = len(sig)
    parent = np.arange(n, dtype=np.int64)
    idx = np.flatnonzero(~(sig == EMPTY).all(axis=1))
    if len(idx) < 2:
        return parent
    sets = _ShingleSets(texts, p.shingle)
    rejected: set[int] = set()
    for band in range(p.bands):
        left, right = _bucket_pairs(sig, idx, band, p, parent)
        likely = _estimated_match(sig, sig, left, right, p.prefilter_matches)
        left, right = left[likely], right[likely]
        sets.need(np.concatenate([left, right]))
        for i, j in zip(left.tolist(), right.tolist()):
            ri, rj = _find(parent, i), _find(parent, j)
            if ri == rj or i * n + j in rejected:  # joined by an earlier pair of this band
                continue
            if _similar(sets.sets[i], sets.sets[j], p.threshold):
                parent[max(ri, rj)] = min(ri, rj)  # the smaller index is the root: the cluster's first text
            else:
                rejected.add(i * n + j)
    return _compress(parent)


_PARAGRAPH_BREAK = re.compile(r"(\n[^\S\n]*\n\s*)")  # a blank (or whitespace-only) line


def drop_repeated_paragraphs(texts: Iterable[str], min_paragraph_chars: int) -> list[str]:
    """Each text with its paragraphs that were already seen earlier in the corpus removed.

    Paragraphs are split on blank lines and compared by `text_key` (case, punctuation and
    spacing ignored); "earlier" includes earlier in the same text, as BFF and CCNet do. A
    paragraph whose stripped text is shorter than min_paragraph_chars is never removed (nor
    remembered). Kept paragraphs keep their original separators; a text left without any
    non-blank paragraph becomes "".
    """
    if min_paragraph_chars < 0:
        raise ParamsError(f"min_paragraph_chars: must be >= 0, got {min_paragraph_chars}")
    seen: set[bytes] = set()
    out = []
    for t in texts:
        pieces = _PARAGRAPH_BREAK.split(t)
        kept: list[str] = []
        content = False
        dropped = False
        for i in range(0, len(pieces), 2):
            para = pieces[i]
            stripped = para.strip()
            if stripped and len(stripped) >= min_paragraph_chars:
                key = text_key(para)
                if key in seen:
                    dropped = True
                    continue
                seen.add(key)
            if kept:
                kept.append(pieces[i - 1])
            kept.append(para)
            content = content or bool(stripped)
        out.append(("".join(kept) if dropped else t) if content else "")
    return out


def contaminated(texts: Iterable[str], reference: Iterable[str], p: MinHashParams, seed: int,
                 workers: int = 1) -> np.ndarray:
    """Mask of texts that are exact (normalised) or near duplicates of any reference text.

    Near: shares an LSH band with a reference text, passes the signature prefilter and has an
    exact shingle-set Jaccard >= p.threshold with it. The reference (validation text) is held
    whole; texts are streamed in chunks and verified while their chunk is in hand.
    """
    reference = list(reference)
    ref_keys = {text_key(t) for t in reference}
    ref_sig = minhash_signatures(reference, p, seed)
    ref_idx = np.flatnonzero(~(ref_sig == EMPTY).all(axis=1))
    ref_sets = _ShingleSets(reference, p.shingle)
    r = p.rows
    tables = []
    for band in range(p.bands):
        key = _band_key(ref_sig[ref_idx, band * r:(band + 1) * r])
        order = np.argsort(key, kind="stable")
        tables.append((key[order], ref_idx[order]))
    out = []
    for chunk, sig in _signature_chunks(texts, p, seed, workers):
        flag = np.fromiter((text_key(t) in ref_keys for t in chunk), dtype=bool, count=len(chunk))
        live = np.flatnonzero(~(sig == EMPTY).all(axis=1))
        sets = _ShingleSets(chunk, p.shingle)
        rejected: set[int] = set()
        for band, (keys, refs) in enumerate(tables):
            live = live[~flag[live]]
            if len(live) == 0 or len(keys) == 0:
                break
            key = _band_key(sig[live, band * r:(band + 1) * r])
            lo = np.searchsorted(keys, key, side="left")
            hi = np.searchsorted(keys, key, side="right")
            cnt = hi - lo
            if not cnt.any():
                continue
            doc = np.repeat(live, cnt)
            within = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            ref = refs[np.repeat(lo, cnt) + within]
            likely = _estimated_match(sig, ref_sig, doc, ref, p.prefilter_matches)
            doc, ref = doc[likely], ref[likely]
            sets.need(doc)
            ref_sets.need(ref)
            for i, j in zip(doc.tolist(), ref.tolist()):
                key = i * len(reference) + j
                if flag[i] or key in rejected:
                    continue
                if _similar(sets.sets[i], ref_sets.sets[j], p.threshold):
                    flag[i] = True
                else:
                    rejected.add(key)
        out.append(flag)
    return np.concatenate(out) if out else np.zeros(0, dtype=bool)
