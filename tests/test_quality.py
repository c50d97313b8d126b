"""Model-based quality scoring on real English (Python's own docs) against degraded copies of it."""
from __future__ import annotations

import ast
import random
import string
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from proxyrank.curation.quality import (
    ClassifierParams,
    NgramLM,
    PerplexityParams,
    QualityClassifier,
    _Stream,
    keep_top,
    perplexity_cutoffs,
    quality_buckets,
)
from proxyrank.errors import DataError, ParamsError
from proxyrank.text import model_words as words


def _prose() -> list[str]:
    """Documents of about 600-1200 characters of English: pydoc topics and stdlib docstrings."""
    from pydoc_data.topics import topics

    sources = [topics[k] for k in sorted(topics)]
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:150]:
        try:
            tree = ast.parse(path.read_text(errors="replace"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 300:
                    sources.append(doc)
    docs = []
    for src in sources:
        piece: list[str] = []
        for para in src.split("\n\n"):
            piece.append(para)
            if sum(map(len, piece)) >= 600:
                docs.append("\n\n".join(piece)[:1200])
                piece = []
    return [d for d in docs if len(words(d)) >= 40]


def shuffled(text: str, seed: int) -> str:
    toks = text.split()
    random.Random(seed).shuffle(toks)
    return " ".join(toks)


def spam(seed: int) -> str:
    rng = random.Random(seed)
    hook = rng.sample(["buy", "cheap", "free", "click", "now", "best", "deal", "win", "offer"], 3)
    return " ".join(rng.choice(hook) for _ in range(rng.randint(80, 200)))


def garbled(seed: int) -> str:
    rng = random.Random(seed)
    return " ".join("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9)))
                    for _ in range(rng.randint(80, 200)))


@pytest.fixture(scope="module")
def prose() -> list[str]:
    docs = _prose()
    assert len(docs) > 800
    return docs


@pytest.fixture(scope="module")
def split(prose):
    order = np.random.default_rng(0).permutation(len(prose))
    held = [prose[i] for i in order[:150]]
    train = [prose[i] for i in order[150:]]
    return train, held


@pytest.fixture(scope="module")
def lm(split) -> NgramLM:
    return NgramLM.fit(split[0], PerplexityParams())


# --------------------------------------------------------------------------- n-gram LM


def test_real_prose_has_lower_perplexity_than_its_shuffled_copy(lm, split):
    held = split[1]
    real = lm.perplexity(held)
    shuf = lm.perplexity([shuffled(t, i) for i, t in enumerate(held)])
    assert real.dtype == np.float64 and real.shape == (len(held),)
    assert np.isfinite(real).all() and (real > 1).all()
    assert (real < shuf).mean() >= 0.9
    assert np.median(shuf) > 2 * np.median(real)


def test_random_characters_score_far_worse_than_prose(lm, split):
    real = lm.perplexity(split[1][:50])
    junk = lm.perplexity([garbled(i) for i in range(50)])
    assert junk.min() > real.max()


def test_empty_documents_get_inf_and_order_is_kept(lm, split):
    doc = split[1][0]
    ppl = lm.perplexity(["", doc, "  ... \n\n !!", doc])
    assert np.isinf(ppl[0]) and np.isinf(ppl[2])
    assert ppl[1] == ppl[3] and np.isfinite(ppl[1])
    assert lm.perplexity([]).shape == (0,)


def test_every_conditional_distribution_sums_to_one(lm):
    """p(. | h) over the whole vocabulary, end-of-line and <unk>, for seen and unseen contexts."""
    predictable = [w for w in lm.vocab if w != "<s>"]
    for history in (["of", "the"], ["the"], ["return", "a"], ["zzyzx", "qqq"], []):
        stream = _Stream([" ".join(history + ["x"])], lm.vocab, grow=False, order=lm.params.order)
        at = len(history)  # the position of "x"
        n = len(predictable)
        stream.word = np.array([lm.vocab[w] for w in predictable])
        stream.doc = np.zeros(n, dtype=np.int64)
        stream.hist = [np.full(n, h[at]) for h in stream.hist]
        assert np.exp(lm._token_logprob(stream)).sum() == pytest.approx(1.0, abs=1e-9), history


def test_fit_is_deterministic_and_capped(split):
    train, held = split
    p = PerplexityParams(order=2, max_train_chars=50_000)
    a, b = NgramLM.fit(train, p), NgramLM.fit(iter(train), p)
    assert np.array_equal(a.perplexity(held), b.perplexity(held))
    text = "\n".join(train)
    cap = 0
    expected = set()
    for doc in train:  # the documents that fit under the cap, and the cut one
        expected.update(words(doc[: p.max_train_chars - cap]))
        cap += len(doc)
        if cap >= p.max_train_chars:
            break
    assert set(a.vocab) - {"<s>", "\n", "<unk>"} == expected
    assert a.vocab_size < len(set(words(text)))


def test_fit_needs_words():
    with pytest.raises(DataError, match="no words"):
        NgramLM.fit(["", " ... "], PerplexityParams())


# --------------------------------------------------------------------------- buckets


def test_buckets_follow_the_declared_percentiles(lm, split):
    held = split[1]
    pool = held + [shuffled(t, i) for i, t in enumerate(held)] + [garbled(i) for i in range(40)]
    ppl = lm.perplexity(pool)
    n = ppl.size
    for p in (PerplexityParams(), PerplexityParams(head_pct=10.0, tail_pct=75.0)):
        buckets = quality_buckets(ppl, p)
        assert buckets.shape == (n,) and set(buckets) == {"head", "middle", "tail"}
        counts = {b: int((buckets == b).sum()) for b in ("head", "middle", "tail")}
        assert abs(counts["head"] - p.head_pct / 100 * n) <= 1
        assert abs(counts["middle"] - (p.tail_pct - p.head_pct) / 100 * n) <= 1
        assert ppl[buckets == "head"].max() < ppl[buckets == "middle"].min()
        assert ppl[buckets == "middle"].max() < ppl[buckets == "tail"].min()
    # real prose lands mostly in the head, its shuffled copies mostly not
    default = quality_buckets(ppl, PerplexityParams())
    assert (default[: len(held)] == "tail").mean() < (default[len(held):] == "tail").mean()


def test_ccnet_defaults_and_inf_go_to_tail():
    p = PerplexityParams()
    assert (p.order, p.head_pct, p.tail_pct) == (3, 30.0, 60.0)
    ppl = np.array([5.0, 1.0, np.inf, 3.0, 2.0, 4.0, np.inf, 6.0, 7.0, 8.0])
    buckets = quality_buckets(ppl, p)
    assert list(buckets[[2, 6]]) == ["tail", "tail"]
    head, tail = perplexity_cutoffs(ppl, p)
    assert np.isfinite(head) and np.isfinite(tail) and head < tail
    assert set(buckets[ppl <= 2.0]) == {"head"}


# --------------------------------------------------------------------------- classifier


@pytest.fixture(scope="module")
def labelled(prose):
    """Prose against word-shuffled copies of that same prose (identical unigrams, so only the
    bigrams can tell them apart), spam and random character strings."""
    positives = prose[:900]
    negatives = ([shuffled(t, i) for i, t in enumerate(positives[:600])]
                 + [spam(i) for i in range(150)] + [garbled(i) for i in range(150)])
    return positives, negatives


@pytest.fixture(scope="module")
def clf(labelled) -> QualityClassifier:
    return QualityClassifier.fit(*labelled, ClassifierParams(), seed=0)


def test_classifier_separates_prose_from_degraded_text(clf, labelled):
    positives, negatives = labelled
    assert clf.heldout_accuracy > 0.9
    pos = clf.score([positives[i] for i in clf.heldout_positives])
    neg = clf.score([negatives[i] for i in clf.heldout_negatives])
    assert pos.dtype == np.float64 and ((pos >= 0) & (pos <= 1)).all()
    recomputed = ((pos >= 0.5).sum() + (neg < 0.5).sum()) / (pos.size + neg.size)
    assert clf.heldout_accuracy == recomputed
    # 10% of each class held out, disjoint from the training documents
    assert clf.heldout_positives.size == 90 and clf.heldout_negatives.size == 90
    assert not set(clf.heldout_positives) & set(clf.train_positives)
    assert not set(clf.heldout_negatives) & set(clf.train_negatives)
    assert clf.score([spam(999), garbled(999)]).max() < 0.5


def test_classifier_scores_do_not_depend_on_the_batch(clf, labelled):
    docs = labelled[0][:5] + labelled[1][:5]
    together = clf.score(docs)
    alone = np.array([clf.score([d])[0] for d in docs])
    assert np.allclose(together, alone, rtol=0, atol=1e-12)
    assert clf.score([]).shape == (0,)


def test_classifier_is_deterministic_for_a_seed(clf, labelled):
    again = QualityClassifier.fit(*labelled, ClassifierParams(), seed=0)
    assert np.array_equal(again.weights, clf.weights) and again.bias == clf.bias
    assert again.heldout_accuracy == clf.heldout_accuracy
    assert np.array_equal(again.heldout_positives, clf.heldout_positives)
    other = QualityClassifier.fit(*labelled, ClassifierParams(epochs=5, max_docs=400), seed=1)
    assert not np.array_equal(other.heldout_positives, clf.heldout_positives)
    assert other.train_positives.size + other.heldout_positives.size == 400


def test_classifier_needs_both_classes():
    with pytest.raises(DataError, match="both classes"):
        QualityClassifier.fit(["some text"], [], ClassifierParams(), seed=0)


# --------------------------------------------------------------------------- keep_top


@pytest.mark.parametrize(("n", "frac", "k"), [(100, 0.1, 10), (25, 0.1, 3), (15, 0.1, 2), (4, 0.1, 0),
                                             (7, 1.0, 7), (30, 0.5, 15)])
def test_keep_top_keeps_round_half_up_of_the_pool(n, frac, k):
    scores = np.random.default_rng(n).random(n)
    mask = keep_top(scores, frac)
    assert mask.dtype == bool and mask.sum() == k
    if 0 < k < n:
        assert scores[mask].min() > scores[~mask].max()


def test_keep_top_breaks_ties_by_position_and_ranks_nan_last():
    assert keep_top(np.full(10, 0.5), 0.3).nonzero()[0].tolist() == [0, 1, 2]
    scores = np.array([np.nan, 0.2, 0.9, 0.9, np.nan, 0.1])
    assert keep_top(scores, 0.5).nonzero()[0].tolist() == [1, 2, 3]
    assert keep_top(scores, 1.0).all()


# --------------------------------------------------------------------------- params


@pytest.mark.parametrize(("cls", "kwargs", "field"), [
    (PerplexityParams, {"order": 0}, "order"),
    (PerplexityParams, {"discount": 0.0}, "discount"),
    (PerplexityParams, {"discount": 1.5}, "discount"),
    (PerplexityParams, {"head_pct": 0.0}, "head_pct"),
    (PerplexityParams, {"tail_pct": 100.0}, "tail_pct"),
    (PerplexityParams, {"head_pct": -5.0}, "head_pct"),
    (PerplexityParams, {"head_pct": 60.0, "tail_pct": 60.0}, "head_pct"),
    (PerplexityParams, {"head_pct": 70.0, "tail_pct": 60.0}, "head_pct"),
    (PerplexityParams, {"max_train_chars": 0}, "max_train_chars"),
    (PerplexityParams, {"order": 2.0}, "order"),
    (ClassifierParams, {"keep_frac": 0.0}, "keep_frac"),
    (ClassifierParams, {"keep_frac": 1.5}, "keep_frac"),
    (ClassifierParams, {"features": 0}, "features"),
    (ClassifierParams, {"ngram": 0}, "ngram"),
    (ClassifierParams, {"epochs": 0}, "epochs"),
    (ClassifierParams, {"l2": -1.0}, "l2"),
    (ClassifierParams, {"holdout": 1.0}, "holdout"),
    (ClassifierParams, {"max_docs": 0}, "max_docs"),
    (ClassifierParams, {"features": True}, "features"),
])
def test_bad_params_name_the_field(cls, kwargs, field):
    with pytest.raises(ParamsError, match=f"^{field}:"):
        cls(**kwargs)


@pytest.mark.parametrize("frac", [0.0, -0.1, 1.01, float("nan")])
def test_keep_top_rejects_bad_keep_frac(frac):
    with pytest.raises(ParamsError, match="^keep_frac:"):
        keep_top(np.arange(5.0), frac)


def test_params_fields_are_plain_scalars():
    import dataclasses

    for cls in (PerplexityParams, ClassifierParams):
        for f in dataclasses.fields(cls):
            assert f.type in ("int", "float", "bool", "str"), (cls.__name__, f.name)
        cls()  # defaults are valid
