"""Deduplication: planted near-duplicates of real English, exact copies, paragraphs, decontamination."""
from __future__ import annotations

import random

import numpy as np
import pytest

from proxyrank.dedup import (
    MinHashParams,
    candidate_probability,
    contaminated,
    detection_probability,
    drop_repeated_paragraphs,
    exact_duplicates,
    minhash_signatures,
    near_duplicates,
    near_duplicates_from_signatures,
    words,
)

P = MinHashParams()


def _windows(n_words: int) -> list[list[str]]:
    """Disjoint windows of real English (the Python docs' topic texts shipped with Python)."""
    from pydoc_data.topics import topics

    out = []
    for name in sorted(topics):
        w = topics[name].split()
        out += [w[i:i + n_words] for i in range(0, len(w) - n_words + 1, n_words)]
    return out


def _jaccard(a: str, b: str, k: int = P.shingle) -> float:
    """True Jaccard of the normalised word k-shingle sets (computed the slow, obvious way)."""
    def shingles(t):
        w = words(t)
        return {tuple(w[i:i + k]) for i in range(max(1, len(w) - k + 1))} if w else set()
    sa, sb = shingles(a), shingles(b)
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
    # flagged has an earlier text with a true Jaccard well above 0.5
    planted_copies = {i for i, _ in high + low}
    for i in np.flatnonzero(dup):
        if i not in planted_copies:
            assert max(_jaccard(texts[k], texts[i]) for k in range(i)) >= 0.7


def test_near_duplicates_from_precomputed_signatures(planted):
    texts, _, _ = planted
    sig = minhash_signatures(texts, P, seed=2)
    assert np.array_equal(near_duplicates_from_signatures(sig, P), near_duplicates(texts, P, seed=2))
    # a subset of rows dedups that subset; other bands/threshold reuse the same signatures
    rows = np.arange(0, len(texts), 3)
    sub = [texts[i] for i in rows]
    assert np.array_equal(near_duplicates_from_signatures(sig[rows], P), near_duplicates(sub, P, seed=2))
    loose = MinHashParams(bands=32, threshold=0.5)
    assert np.array_equal(near_duplicates_from_signatures(sig, loose), near_duplicates(texts, loose, seed=2))
    with pytest.raises(ValueError, match="signatures"):
        near_duplicates_from_signatures(sig[:, :64], P)


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
    assert P.rows == 8
    assert candidate_probability(0.9, P) > 0.999
    assert detection_probability(0.9, P) >= 0.995
    assert detection_probability(0.5, P) < 1e-9
    assert candidate_probability(0.5, P) < 0.1


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
    from proxyrank.dedup import _normalise

    texts = ["Hello, World!  It's 2024_05: a-b c\td\ne", "Café, NAÏVE résumé; über x_y 3.14",
             "", "!!!", "One two", "ünï", "A\u00a0non-breaking\u2009space and ﬁ ligature Straße"]
    normalised = [_normalise(t) for t in texts]
    assert [t.isascii() for t in texts[:2]] == [True, False]
    assert np.array_equal(minhash_signatures(texts, P, seed=0), minhash_signatures(normalised, P, seed=0))
    # one text at a time or all together: the same (no word runs across texts)
    alone = np.concatenate([minhash_signatures([t], P, seed=0) for t in texts])
    assert np.array_equal(alone, minhash_signatures(texts, P, seed=0))
    assert (minhash_signatures(["", "..."], P, seed=0) == np.uint32(0xFFFFFFFF)).all()


def test_same_mask_and_signatures_for_any_workers(planted, monkeypatch):
    from proxyrank import dedup

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
    with pytest.raises(ValueError, match=rf"MinHashParams\.{field}"):
        MinHashParams(**kwargs)


@pytest.mark.parametrize("kwargs, field", [({"num_perm": 128.0}, "num_perm"), ({"threshold": "0.8"}, "threshold"),
                                           ({"paragraph": 1}, "paragraph"), ({"bands": True}, "bands")])
def test_wrong_types_name_the_field(kwargs, field):
    with pytest.raises(TypeError, match=rf"MinHashParams\.{field}"):
        MinHashParams(**kwargs)
