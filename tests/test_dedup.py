"""Deduplication: planted near-duplicates of real English, exact copies, paragraphs, decontamination."""
from __future__ import annotations

import random
from fractions import Fraction
from math import comb

import numpy as np
import pytest

from proxyrank.curation.dedup import (
    MinHashParams,
    candidate_probability,
    contaminated,
    detection_probability,
    drop_repeated_paragraphs,
    exact_duplicates,
    minhash_signatures,
    near_duplicate_clusters,
    near_duplicates,
    near_duplicates_from_signatures,
)
from proxyrank.errors import DataError, ParamsError
from proxyrank.text import dedup_words as words

P = MinHashParams()


def _windows(n_words: int) -> list[list[str]]:
    """Disjoint windows of real English (the Python docs' topic texts shipped with Python)."""
    from pydoc_data.topics import topics

    out = []
    for name in sorted(topics):
        w = topics[name].split()
        out += [w[i:i + n_words] for i in range(0, len(w) - n_words + 1, n_words)]
    return out


def _shingles(t: str, k: int = P.shingle) -> set[tuple[str, ...]]:
    w = words(t)
    return {tuple(w[i:i + k]) for i in range(max(1, len(w) - k + 1))} if w else set()


def _jaccard(a: str, b: str, k: int = P.shingle) -> float:
    """True Jaccard of the normalised word k-shingle sets (computed the slow, obvious way)."""
    sa, sb = _shingles(a, k), _shingles(b, k)
    return len(sa & sb) / len(sa | sb)


def _edit(doc: list[str], n_edits: int, rng: random.Random, vocab: list[str]) -> list[str]:
    """Substitute, insert or delete words at random places, and reformat some words."""
    w = list(doc)
    for _ in range(n_edits):
        i = rng.randrange(len(w))
        op = rng.random()
        if op < 0.5:
            w[i] = rng.choice(vocab)
        elif op < 0.75:
            w.insert(i, rng.choice(vocab))
        else:
            del w[i]
    for _ in range(5):  # case and punctuation changes leave the shingles as they are
        i = rng.randrange(len(w))
        w[i] = w[i].upper() + rng.choice([",", ".", "!", ""])
    return w


def _planted():
    """Base documents followed (later in the corpus) by edited copies with a known true Jaccard."""
    rng = random.Random(0)
    wins = _windows(200)
    vocab = sorted({x for w in wins for x in w})
    rng.shuffle(wins)
    texts, high, low = [], [], []
    for base in wins:
        texts.append(" ".join(base))
    for k, base in enumerate(wins):
        src = texts[k]
        if k % 2 == 0:  # light edits: true Jaccard >= 0.9
            for n in (3, 2, 1, 0, 4):
                copy = " ".join(_edit(base, n, rng, vocab))
                if _jaccard(src, copy) >= 0.9:
                    break
            target = high
        else:  # heavy edits: true Jaccard < 0.5
            copy = " ".join(_edit(base, rng.randint(12, 40), rng, vocab))
            target = low
        j = _jaccard(src, copy)
        if (target is high and j >= 0.9) or (target is low and j < 0.5):
            target.append((len(texts), j))
            texts.append(copy)
    order = list(range(len(wins), len(texts)))
    rng.shuffle(order)  # copies in random order, all after their originals
    pos = {old: len(wins) + new for new, old in enumerate(order)}
    texts = texts[:len(wins)] + [texts[i] for i in order]
    return texts, [(pos[i], j) for i, j in high], [(pos[i], j) for i, j in low]


@pytest.fixture(scope="module")
def planted():
    return _planted()


def test_planted_pairs_recall_and_nothing_below_half(planted):
    texts, high, low = planted
    assert len(high) >= 100 and len(low) >= 100
    assert min(j for _, j in low) < 0.3 and max(j for _, j in low) > 0.45  # spread up to 0.5
    dup = near_duplicates(texts, P, seed=0)
    recall = np.mean([dup[i] for i, _ in high])
    assert recall >= 0.95, recall
    assert not any(dup[i] for i, _ in low)
    # precision: the bases overlap a little (the topics quote each other); whatever else is
    # flagged was verified against some text at a true Jaccard >= the threshold
    planted_copies = {i for i, _ in high + low}
    sets = [_shingles(t) for t in texts]
    for i in np.flatnonzero(dup):
        if i not in planted_copies:
            assert max(len(sets[i] & s) / len(sets[i] | s) for k, s in enumerate(sets) if k != i) >= P.threshold


def test_near_duplicates_from_precomputed_signatures(planted):
    texts, _, _ = planted
    sig = minhash_signatures(texts, P, seed=2)
    assert np.array_equal(near_duplicates_from_signatures(sig, P, texts), near_duplicates(texts, P, seed=2))
    # a subset of rows dedups that subset; other bands/threshold reuse the same signatures
    rows = np.arange(0, len(texts), 3)
    sub = [texts[i] for i in rows]
    assert np.array_equal(near_duplicates_from_signatures(sig[rows], P, sub), near_duplicates(sub, P, seed=2))
    loose = MinHashParams(bands=16, threshold=0.5)
    assert np.array_equal(near_duplicates_from_signatures(sig, loose, texts),
                          near_duplicates(iter(texts), loose, seed=2))  # an iterator is collected
    with pytest.raises(DataError, match="signatures"):
        near_duplicates_from_signatures(sig[:, :64], P, texts)
    with pytest.raises(ValueError, match="texts: 3 texts for"):
        near_duplicates_from_signatures(sig, P, texts[:3])


def test_signature_estimate_tracks_true_jaccard(planted):
    texts, high, low = planted
    sig = minhash_signatures(texts, P, seed=1)
    n_base = len(texts) - len(high) - len(low)
    # each copy's original: find it by the best signature match among the bases
    errs = []
    for i, j in high + low:
        est = (sig[:n_base] == sig[i]).mean(axis=1).max()
        errs.append(est - j)
    errs = np.array(errs)
    assert abs(errs.mean()) < 0.02 and np.abs(errs).max() < 0.15


def test_s_curve_of_the_defaults():
    """LSH only proposes: its S-curve crosses 0.5 well below the threshold, so pairs at the
    threshold are found; exact verification makes every pair below it impossible to flag."""
    assert (P.bands, P.rows, P.threshold) == (32, 4, 0.8)
    assert (1 / P.bands) ** (1 / P.rows) <= P.threshold - 0.15
    assert candidate_probability(P.threshold, P) > 1 - 1e-7
    assert detection_probability(P.threshold, P) >= 1 - 1e-6
    assert detection_probability(0.999 * P.threshold, P) == 0.0
    assert detection_probability(0.5, P) == 0.0
    assert candidate_probability(0.5, P) > 0.8  # many false candidates: the exact check rejects them


@pytest.mark.parametrize("n, t", [(128, 0.8), (128, 0.5), (256, 0.9), (64, 0.3)])
def test_prefilter_loses_at_most_one_in_a_million_at_the_threshold(n, t):
    m = MinHashParams(num_perm=n, bands=n // 4, threshold=t).prefilter_matches
    q = Fraction(t)

    def below(m):  # P(Binomial(n, t) < m), exactly
        return sum(comb(n, k) * q ** k * (1 - q) ** (n - k) for k in range(m))
    assert below(m) <= Fraction(1, 10**6) < below(m + 1)
    assert MinHashParams(threshold=1.0).prefilter_matches == P.num_perm


def _exact_pairs(levels: list[tuple[int, int]], per_level: int, seed: int):
    """Pairs (A, B) whose word-5-gram sets have an exactly known Jaccard c / (c + x).

    Every word is used once (made-up words "q1az", "q1bz", ...), so a shingle containing one
    occurs only where it was placed: A = a1 + P + a2 and B = b1 + P + b2 share the c shingles
    inside the run P of c + 4 words, and each of the x fresh words in a1, a2, b1, b2 adds one
    shingle of its own. Returns [(A, B, Fraction J)].
    """
    rng = random.Random(seed)
    counter = iter(range(10**9))

    def fresh(n):
        return [f"q{next(counter):x}z" for _ in range(n)]
    out = []
    for c0, x0 in levels:
        for _ in range(per_level):
            scale = rng.randint(1, 3)
            c, x = c0 * scale, x0 * scale
            cut = sorted(rng.randint(0, x) for _ in range(3))
            shared = fresh(c + P.shingle - 1)
            a = fresh(cut[0]) + shared + fresh(cut[1] - cut[0])
            b = fresh(cut[2] - cut[1]) + shared + fresh(x - cut[2])
            out.append((" ".join(a), " ".join(b).upper() + ".", Fraction(c, c + x)))
    return out


ABOVE = [(80, 20), (81, 19), (85, 15)]  # J = 0.8 exactly, 0.81, 0.85: always found
BELOW = [(79, 21), (3, 1)]              # J = 0.79, 0.75: never flagged
T = Fraction(str(P.threshold))  # the decimal threshold (the float 0.8 is a little above 4/5)


def _near_threshold_corpus():
    """Real English windows, then the originals, then their copies in random order."""
    pairs = _exact_pairs(ABOVE + BELOW, per_level=40, seed=7)
    for a, b, j in pairs:  # the construction holds on the normalised text
        assert Fraction(_jaccard(a, b)).limit_denominator(10**6) == j
    rng = random.Random(8)
    background = [" ".join(w) for w in _windows(120)[:150]]
    order = list(range(len(pairs)))
    rng.shuffle(order)
    texts = background + [a for a, _, _ in pairs] + [pairs[k][1] for k in order]
    orig = {len(background) + len(pairs) + new: len(background) + k for new, k in enumerate(order)}
    return texts, pairs, orig


def test_threshold_is_a_floor_on_the_exact_jaccard():
    """Pairs at and just above the threshold are always found (with their original), pairs just
    below never: the estimate-verified LSH before flagged ~40% at J = 0.79 and missed ~40% at 0.81."""
    texts, pairs, orig = _near_threshold_corpus()
    first = near_duplicate_clusters(texts, P, seed=0)
    copy_j = {c: pairs[o - 150][2] for c, o in orig.items()}
    above = [c for c, j in copy_j.items() if j >= T]
    below = [c for c, j in copy_j.items() if j < T]
    assert (len(above), len(below)) == (120, 80)
    assert [int(first[c]) for c in above] == [orig[c] for c in above]
    assert not any(first[c] != c for c in below)
    assert not any(first[o] != o for o in orig.values())  # originals are unrelated to each other
    # the recipes' path (precomputed signatures of the surviving rows) and other LSH settings:
    # the floor does not depend on bands, only recall does (P(candidate) at J = 0.81: 16 x 8
    # rows 0.96, 8 x 16 rows 0.27)
    sig = minhash_signatures(texts, P, seed=1)
    for bands, min_recall in ((P.bands, 1.0), (16, 0.85), (8, 0.0)):
        dup = near_duplicates_from_signatures(sig, MinHashParams(bands=bands), texts)
        assert not dup[below].any()
        assert dup[above].mean() >= min_recall
    # the floor moves with the threshold: at 0.75 the J = 0.75 and 0.79 copies go too
    assert near_duplicates_from_signatures(sig, MinHashParams(threshold=0.75), texts)[below].all()


def test_decontamination_uses_the_same_floor():
    """contaminated (the split's and curate's removal of near-copies of validation text): a copy
    at J = 0.8 / 0.81 / 0.85 of a reference text is flagged, at J = 0.79 / 0.75 it is not."""
    pairs = _exact_pairs(ABOVE + BELOW, per_level=25, seed=9)
    reference = [a for a, _, _ in pairs] + [" ".join(w) for w in _windows(120)[:50]]
    texts = [b for _, b, _ in pairs]
    flag = contaminated(iter(texts), iter(reference), P, seed=0, workers=1)
    assert flag.tolist() == [j >= T for _, _, j in pairs]


def test_exact_duplicates_on_reformatted_copies():
    texts = ["The quick brown fox.", "the  QUICK brown, fox!", "A different one", "The quick brown fox",
             "a different one ...", "\tthe quick\nbrown fox"]
    assert exact_duplicates(texts).tolist() == [False, True, False, True, True, True]
    assert exact_duplicates(iter([])).tolist() == []


def test_near_duplicates_catches_reformatted_copies_and_keeps_first():
    texts = ["One two three four five six seven.", "one, two; THREE four five six seven",
             "completely unrelated words here today", "", "..."]
    assert near_duplicates(texts, P, seed=0).tolist() == [False, True, False, False, False]


def test_ascii_fast_path_and_regex_normalisation_agree():
    from proxyrank.text import normalise as _normalise

    texts = ["Hello, World!  It's 2024_05: a-b c\td\ne", "Café, NAÏVE résumé; über x_y 3.14",
             "", "!!!", "One two", "ünï", "A\u00a0non-breaking\u2009space and ﬁ ligature Straße",
             "“Quoted” — dash… it’s", "İstanbul \u212aelvin", "日本語、句読点。x_y", "emoji 😀 ok"]
    normalised = [_normalise(t) for t in texts]
    assert [t.isascii() for t in texts[:2]] == [True, False]
    assert np.array_equal(minhash_signatures(texts, P, seed=0), minhash_signatures(normalised, P, seed=0))
    # one text at a time or all together: the same (no word runs across texts)
    alone = np.concatenate([minhash_signatures([t], P, seed=0) for t in texts])
    assert np.array_equal(alone, minhash_signatures(texts, P, seed=0))
    assert (minhash_signatures(["", "..."], P, seed=0) == np.uint32(0xFFFFFFFF)).all()


def test_non_ascii_breaks_are_the_regex_breaks():
    """The hashing path replaces only non-ASCII non-word characters and leaves ASCII to the byte
    table: every non-ASCII character must be a break there iff text_key's regex breaks on it."""
    from proxyrank.text import NON_ASCII_BREAK, NON_WORD

    chars = [chr(c) for c in range(0x80, 0x30000) if not 0xD800 <= c < 0xE000]
    assert [bool(NON_WORD.match(c)) for c in chars] == [bool(NON_ASCII_BREAK.match(c)) for c in chars]


def test_same_mask_and_signatures_for_any_workers(planted, monkeypatch):
    from proxyrank.curation import dedup

    texts, _, _ = planted
    texts = texts[:400]
    one = minhash_signatures(texts, P, seed=3)
    monkeypatch.setattr(dedup, "CHUNK_DOCS", 37)  # many chunks, spread over two processes
    two = minhash_signatures(iter(texts), P, seed=3, workers=2)
    assert one.dtype == np.uint32 and one.shape == (400, P.num_perm)
    assert np.array_equal(one, two)
    assert np.array_equal(near_duplicates(texts, P, seed=3), near_duplicates(texts, P, seed=3, workers=2))
    assert np.array_equal(one, minhash_signatures(texts, P, seed=3))
    other = minhash_signatures(texts, P, seed=4)
    assert (one != other).mean() > 0.99


def test_drop_repeated_paragraphs_keeps_first_occurrences():
    a = "Alpha paragraph that is long enough to be compared across documents."
    b = "Beta paragraph, also long enough to count as a real paragraph of text."
    texts = [
        f"{a}\n\n{b}",
        f"Intro.\n\n{a.upper()}\n  \nNew paragraph that was never seen before in this corpus.",
        f"{b}\n\n\n{a}",
        f"Short.\n\nShort.\n\n{b}\n\n{b}",
    ]
    out = drop_repeated_paragraphs(texts, min_paragraph_chars=20)
    assert out[0] == texts[0]
    assert out[1] == "Intro.\n  \nNew paragraph that was never seen before in this corpus."
    assert out[2] == ""
    assert out[3] == "Short.\n\nShort."  # short paragraphs are never dropped
    # with no minimum, the repeated short paragraph goes too
    assert drop_repeated_paragraphs(texts, 0)[3] == "Short."
    # within one text, a later copy goes
    assert drop_repeated_paragraphs([f"{a}\n\nmiddle\n\n{a}"], 20) == [f"{a}\n\nmiddle"]


def test_contaminated_flags_edited_copies_of_reference_only():
    wins = _windows(150)
    rng = random.Random(5)
    reference = [" ".join(w) for w in wins[:20]]
    edited = list(wins[3])
    edited[40] = "changed"  # one word: true Jaccard ~0.94
    texts = [" ".join(w) for w in wins[20:60]] + [" ".join(edited), reference[7].upper() + "!",
                                                  " ".join(_edit(wins[9], 40, rng, ["x", "y"]))]
    flag = contaminated(texts, reference, P, seed=0)
    assert flag.tolist() == [False] * 40 + [True, True, False]
    assert _jaccard(" ".join(edited), reference[3]) >= 0.9
    assert contaminated([], reference, P, seed=0).tolist() == []


@pytest.mark.parametrize("kwargs, field", [
    ({"bands": 12}, "bands"), ({"bands": 0}, "bands"), ({"threshold": 0.0}, "threshold"),
    ({"threshold": 1.5}, "threshold"), ({"threshold": float("nan")}, "threshold"),
    ({"num_perm": 0}, "num_perm"), ({"shingle": 0}, "shingle"),
    ({"min_paragraph_chars": -1}, "min_paragraph_chars")
])
def test_bad_params_name_the_field(kwargs, field):
    with pytest.raises(ParamsError, match=rf"MinHashParams\.{field}"):
        MinHashParams(**kwargs)


@pytest.mark.parametrize("kwargs, field", [({"num_perm": 128.0}, "num_perm"), ({"threshold": "0.8"}, "threshold"),
                                           ({"paragraph": 1}, "paragraph"), ({"bands": True}, "bands")])
def test_wrong_types_name_the_field(kwargs, field):
    with pytest.raises(TypeError, match=rf"MinHashParams\.{field}"):
        MinHashParams(**kwargs)
