"""Gopher's repetition filter: Rae et al. 2021 (Gopher), Appendix A.1.1 and Table A1.

Source: Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training
Gopher", arXiv:2112.11446, Appendix A.1.1 (repetition removal) and Table A1 (thresholds);
reference implementation datatrove 0.10.1 ``pipeline/filters/gopher_repetition_filter.py``
(``GopherRepetitionFilter``), whose semantics are followed (n-grams over
`proxyrank.text.word_tokens`, punctuation tokens included, as datatrove's). The conventions every
family shares are in proxyrank.curation.filters.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import accumulate

import numpy as np

from proxyrank.curation.rules import check_skip
from proxyrank.text import word_tokens_cached

__all__ = [
    "GOPHER_REPETITION_RULES",
    "GopherRepetition",
    "dup_ngram_chars",
    "gopher_repetition",
    "top_ngram_chars",
]

_TOP_N = (2, 3, 4)
_DUP_N = (5, 6, 7, 8, 9, 10)

GOPHER_REPETITION_RULES = (
    "gopher_repetition_empty",
    "gopher_dup_para_frac",
    "gopher_dup_para_char_frac",
    "gopher_dup_line_frac",
    "gopher_dup_line_char_frac",
    *(f"gopher_top_{n}gram" for n in _TOP_N),
    *(f"gopher_dup_{n}gram" for n in _DUP_N),
)
"""Rules `gopher_repetition` can return, in checking order (datatrove's order)."""


@dataclass(frozen=True)
class GopherRepetition:
    """Gopher repetition-filter thresholds: Rae et al. 2021, Table A1.

    A document is removed when a measure is strictly greater than its threshold:
    duplicate line / paragraph fraction 0.30, duplicate line / paragraph character
    fraction 0.20, top 2/3/4-gram character fraction 0.20/0.18/0.16, duplicate
    5..10-gram character fraction 0.15, 0.14, 0.13, 0.12, 0.11, 0.10.  Semantics as
    datatrove 0.10.1 ``GopherRepetitionFilter`` (see `gopher_repetition`).
    """

    max_dup_para_frac: float = 0.30
    max_dup_para_char_frac: float = 0.20
    max_dup_line_frac: float = 0.30
    max_dup_line_char_frac: float = 0.20
    max_top_2gram_char_frac: float = 0.20
    max_top_3gram_char_frac: float = 0.18
    max_top_4gram_char_frac: float = 0.16
    max_dup_5gram_char_frac: float = 0.15
    max_dup_6gram_char_frac: float = 0.14
    max_dup_7gram_char_frac: float = 0.13
    max_dup_8gram_char_frac: float = 0.12
    max_dup_9gram_char_frac: float = 0.11
    max_dup_10gram_char_frac: float = 0.10
    skip: list[str] = field(default_factory=list)
    """Names from GOPHER_REPETITION_RULES to switch off."""

    def __post_init__(self) -> None:
        check_skip(self, GOPHER_REPETITION_RULES)


_PARA_SPLIT_RE = re.compile(r"\n{2,}")
_LINE_SPLIT_RE = re.compile(r"\n+")


def _duplicates(items: list[str]) -> tuple[int, int]:
    """datatrove ``find_duplicates``: (# repeats after the first, their characters)."""
    seen: set[str] = set()
    n = chars = 0
    for item in items:
        if item in seen:
            n += 1
            chars += len(item)
        else:
            seen.add(item)
    return n, chars


class _NgramIndex:
    """Exact integer ids for the n-grams of a token list, for n = 1, 2, 3, ...

    Token strings get dense ids; the id of the n-gram at position i is the rank of the
    pair (id of the (n-1)-gram at i, id of token i+n-1), so equal ids mean equal
    n-grams with no hashing collisions.  One ``np.unique`` per n replaces building and
    hashing hundreds of string tuples in Python, which is what makes the repetition
    filter fit the time budget.
    """

    def __init__(self, tokens: list[str]) -> None:
        vocab: dict[str, int] = {}
        self.tokens = np.array([vocab.setdefault(t, len(vocab)) for t in tokens],
                               dtype=np.int64)
        self.vocab = max(len(vocab), 1)
        self.prefix = [0, *accumulate(map(len, tokens))]  # chars of tokens[:i]
        self.n = 1
        self.ids = self.tokens
        self.first = self.counts = np.zeros(0, dtype=np.int64)

    def advance(self) -> int:
        """Move to (n+1)-grams; return the new n."""
        n = self.n = self.n + 1
        key = self.ids[:-1] * self.vocab + self.tokens[n - 1:]
        _, self.first, self.ids, self.counts = np.unique(
            key, return_index=True, return_inverse=True, return_counts=True)
        return n

    def top_chars(self) -> int:
        """`top_ngram_chars` for the current n."""
        if not self.ids.size:
            return 0
        count = self.counts.max()
        i = int(self.first[self.counts == count].min())  # first seen wins ties
        n = self.n
        return (self.prefix[i + n] - self.prefix[i] + n - 1) * int(count)

    def dup_chars(self) -> int:
        """`dup_ngram_chars` for the current n (0 exactly when no n-gram repeats)."""
        if self.counts.size == self.ids.size:
            return 0
        # Only n-grams occurring more than once can ever be hits; recording the others
        # changes nothing, so the walk visits just those positions (in order), keeping
        # datatrove's jump of n tokens after each hit.
        n, prefix, ids = self.n, self.prefix, self.ids
        positions = np.flatnonzero(self.counts[ids] > 1).tolist()
        grams = ids[positions].tolist()
        seen = set()
        chars = resume = 0
        for i, g in zip(positions, grams):
            if i < resume:
                continue
            if g in seen:
                chars += prefix[i + n] - prefix[i]
                resume = i + n
            else:
                seen.add(g)
        return chars


def _index_at(tokens: list[str], n: int) -> _NgramIndex:
    index = _NgramIndex(tokens)
    while index.n < n:
        index.advance()
    return index


def top_ngram_chars(tokens: list[str], n: int) -> int:
    """Characters covered by the most frequent n-gram: datatrove ``find_top_duplicate``.

    ``len(" ".join(top)) * count(top)``: n-grams are space-joined (so the n-1 spaces
    count), occurrences may overlap, and ties go to the n-gram seen first.  Gopher:
    "the fraction of characters contained within the most frequently-occurring
    n-gram".  0 when there are fewer than n tokens.
    """
    return _index_at(tokens, n).top_chars() if n >= 2 else 0


def dup_ngram_chars(tokens: list[str], n: int) -> int:
    """Characters in duplicated n-grams: datatrove ``find_all_duplicate``.

    Gopher: "the fraction of characters contained within all duplicate n-grams, taking
    care not to count characters that occur in overlapping n-grams more than once".
    datatrove walks the tokens left to right; an n-gram already seen adds
    ``len("".join(ngram))`` (no spaces) and the walk jumps n tokens ahead (so the
    overlapping n-grams are neither counted nor recorded), otherwise it is recorded
    and the walk moves one token.  Same walk here, on exact n-gram ids (datatrove
    compares the space-less joins, so it would also equate e.g. ("ab", "c") with
    ("a", "bc"); we do not).  Returns 0 exactly when no n-gram repeats.
    """
    return _index_at(tokens, n).dup_chars() if n >= 2 else 0


def gopher_repetition(text: str, rules: GopherRepetition) -> str | None:
    """Name of the first failed rule, or None.

    Follows datatrove 0.10.1 ``GopherRepetitionFilter.filter``; every character
    fraction is over ``len(text)``:

    * ``gopher_repetition_empty``: empty or whitespace-only text (datatrove drops ``""``
      as ``"empty"`` and keeps whitespace-only text, which has nothing to repeat but
      nothing to train on either);
    * paragraphs = ``text.strip()`` split on two or more newlines;
      ``gopher_dup_para_frac``: repeated paragraphs / paragraphs > 0.30;
      ``gopher_dup_para_char_frac``: characters in repeated paragraphs > 0.20;
    * lines = ``text`` split on runs of newlines (not stripped);
      ``gopher_dup_line_frac`` > 0.30, ``gopher_dup_line_char_frac`` > 0.20;
      a "repeat" is every occurrence after the first;
    * ``gopher_top_{2,3,4}gram``: `top_ngram_chars` / len(text) > 0.20, 0.18, 0.16;
    * ``gopher_dup_{5..10}gram``: `dup_ngram_chars` / len(text) > 0.15 .. 0.10.

    n-grams are over `proxyrank.text.word_tokens` (punctuation tokens included, as
    datatrove's).
    """
    skip = frozenset(rules.skip)
    if not text.strip():
        return None if "gopher_repetition_empty" in skip else "gopher_repetition_empty"
    return _repeated_parts_rule(text, rules, skip) or _ngram_rule(text, rules, skip)


def _repeated_parts_rule(text: str, rules: GopherRepetition, skip: frozenset[str]) -> str | None:
    """Repeated paragraphs (of ``text.strip()``, split on 2+ newlines), then repeated lines (of
    ``text`` split on runs of newlines): their share of the parts, then of the characters."""
    size = len(text)
    for kind, split in (("para", lambda: _PARA_SPLIT_RE.split(text.strip())),
                        ("line", lambda: _LINE_SPLIT_RE.split(text))):
        parts = split()
        n_dup, dup_chars = _duplicates(parts)
        name = f"gopher_dup_{kind}_frac"
        if name not in skip and n_dup / len(parts) > getattr(rules, f"max_dup_{kind}_frac"):
            return name
        name = f"gopher_dup_{kind}_char_frac"
        if name not in skip and dup_chars / size > getattr(rules, f"max_dup_{kind}_char_frac"):
            return name
    return None


def _ngram_rule(text: str, rules: GopherRepetition, skip: frozenset[str]) -> str | None:
    """The top 2/3/4-gram, then the duplicated 5..10-gram character shares, over len(text)."""
    size = len(text)
    index = _NgramIndex(word_tokens_cached(text))
    while index.n < _DUP_N[-1]:
        n = index.advance()
        if n in _TOP_N:
            name = f"gopher_top_{n}gram"
            if name not in skip:
                limit = getattr(rules, f"max_top_{n}gram_char_frac")
                if index.top_chars() / size > limit:
                    return name
            continue
        name = f"gopher_dup_{n}gram"
        if name in skip:
            continue
        chars = index.dup_chars()
        if chars == 0:  # no repeated n-gram, hence no repeated (n+1)-gram either
            break
        if chars / size > getattr(rules, f"max_dup_{n}gram_char_frac"):
            return name
    return None
