"""Gopher's quality filters: Rae et al. 2021 (Gopher), Appendix A.1.1 "MassiveWeb" quality filters.

Source: Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training
Gopher", arXiv:2112.11446, Appendix A.1.1; reference implementation datatrove 0.10.1
``pipeline/filters/gopher_quality_filter.py`` (``GopherQualityFilter``), whose rule logic is
followed except where the paper reads otherwise (the alphabetic-words rule, the empty document).
Words are `proxyrank.text.word_tokens` (Treebank-like; punctuation marks are tokens), where
datatrove calls its word tokenizer. The conventions every family shares are in
proxyrank.curation.filters.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from proxyrank.curation.rules import check_skip
from proxyrank.errors import ParamsError
from proxyrank.text import word_tokens_cached

__all__ = ["GOPHER_QUALITY_RULES", "GopherQuality", "gopher_quality"]

# A word token holds a letter, digit or underscore.  datatrove 0.10.1 counts a token with
# any character outside its PUNCTUATION list, so a lone symbol such as "©" or "°" is a word
# there and not here (a footer's "Copyright ©" moved 1 of 286 crawl pages across the
# 50-word line in bench/filters_bench.py).
_IS_WORD = re.compile(r"\w").match
# a word token without a letter: digits, "_" and in-word punctuation only (3.5, 1,000)
_NO_ALPHA_WORD_RE = re.compile(r"(?<!\S)(?:[\d_]|[^\w\s])+(?!\S)")

GOPHER_QUALITY_RULES = (
    "gopher_quality_empty",
    "gopher_min_words",
    "gopher_max_words",
    "gopher_min_mean_word_length",
    "gopher_max_mean_word_length",
    "gopher_hash_ratio",
    "gopher_ellipsis_ratio",
    "gopher_bullet_lines",
    "gopher_ellipsis_lines",
    "gopher_alpha_words",
    "gopher_stop_words",
)
"""Rules `gopher_quality` can return, in checking order (datatrove's order)."""


@dataclass(frozen=True)
class GopherQuality:
    """Gopher quality-filter thresholds (Rae et al. 2021, Appendix A.1.1).

    "remove any document that does not contain between 50 and 100,000 words, or whose
    mean word length is outside the range of 3 to 10 characters; ... with a
    symbol-to-word ratio greater than 0.1 for either the hash symbol or the ellipsis;
    ... with more than 90% of lines starting with a bullet point, or more than 30%
    ending with an ellipsis.  We also require that 80% of words in a document contain
    at least one alphabetic character, and apply a 'stop word' filter, to remove
    documents that do not contain at least two of the following English words: the,
    be, to, of, and, that, have, with."  Semantics as datatrove 0.10.1
    ``GopherQualityFilter`` (see `gopher_quality`) except where the paper reads
    otherwise: ``alpha_words_of`` and the empty-document rule.
    """

    min_words: int = 50
    max_words: int = 100_000
    min_mean_word_length: float = 3
    max_mean_word_length: float = 10
    max_symbol_word_ratio: float = 0.1
    """Applied separately to "#" and to ellipses ("..." and "…"), per token."""
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    min_alpha_words_ratio: float = 0.8
    alpha_words_of: str = "words"
    """What "words" means in the alphabetic-words rule.  "words" (the paper's rule, the
    default): whitespace-separated words, so "end." is one word with a letter.
    "tokens": datatrove 0.10.1's reading, word tokens with punctuation marks counted as
    words without a letter.  On the study's crawl (issue 19) "tokens" dropped 13,679 of
    28,411 pages (30% of clean Shakespeare pages, 8.4% of clean wiki pages), "words"
    2.6% of pages and no clean page."""
    min_stop_words: int = 2
    """At least this many *distinct* stop words (Gopher: "at least two of the following
    English words"; datatrove counts distinct words since 0.5): "and" three times is one."""
    stop_words: list[str] = field(
        default_factory=lambda: ["the", "be", "to", "of", "and", "that", "have",
                                 "with"])
    bullet_prefixes: list[str] = field(default_factory=lambda: ["•", "-"])
    """A line (left-stripped) starting with one of these is a bullet (as datatrove)."""
    skip: list[str] = field(default_factory=list)
    """Names from GOPHER_QUALITY_RULES to switch off."""

    def __post_init__(self) -> None:
        check_skip(self, GOPHER_QUALITY_RULES)
        if self.alpha_words_of not in _ALPHA_WORDS_OF:
            raise ParamsError(f"GopherQuality.alpha_words_of: {self.alpha_words_of!r} is not one "
                              f"of {', '.join(map(repr, _ALPHA_WORDS_OF))}; use \"words\" for "
                              f"Gopher's rule (whitespace-separated words)")


_ALPHA_WORDS_OF = ("words", "tokens")


def gopher_quality(text: str, rules: GopherQuality) -> str | None:
    """Name of the first failed rule, or None when the document passes.

    Follows datatrove 0.10.1 ``GopherQualityFilter.filter``: ``tokens`` are
    `proxyrank.text.word_tokens` (punctuation marks are tokens), ``words`` the tokens
    that are not pure punctuation.

    * ``gopher_quality_empty``: empty or whitespace-only text (datatrove: too few words);
    * ``gopher_min_words`` / ``gopher_max_words``: ``len(words)`` outside
      [min_words, max_words];
    * ``gopher_min_mean_word_length`` / ``gopher_max_mean_word_length``: mean
      ``len(word)`` over ``words`` outside [3, 10];
    * ``gopher_hash_ratio``: ``text.count("#") / len(tokens) > 0.1``;
    * ``gopher_ellipsis_ratio``: ``(text.count("...") + text.count("…")) / len(tokens)
      > 0.1``;
    * ``gopher_bullet_lines``: more than 90% of ``text.splitlines()`` start (after
      left-strip) with a bullet prefix ("•" or "-");
    * ``gopher_ellipsis_lines``: more than 30% of lines end (after right-strip) with
      "..." or "…";
    * ``gopher_alpha_words``: fewer than 80% of the whitespace-separated words contain
      an alphabetic character (the paper); with ``alpha_words_of="tokens"``, of all
      ``tokens``, punctuation included (datatrove);
    * ``gopher_stop_words``: fewer than 2 distinct stop words among the tokens (exact
      case, as datatrove).
    """
    skip = frozenset(rules.skip)
    if "gopher_quality_empty" not in skip and not text.strip():
        return "gopher_quality_empty"
    tokens = word_tokens_cached(text)
    words = [t for t in tokens if _IS_WORD(t)]
    rule = _length_rule(words, rules, skip)
    if rule or not tokens:  # every rule below is a ratio over tokens
        return rule
    return (_symbol_rule(text, len(tokens), rules, skip) or _line_rule(text, rules, skip)
            or _content_rule(text, words, len(tokens), rules, skip))


def _length_rule(words: list[str], rules: GopherQuality, skip: frozenset[str]) -> str | None:
    """Word count outside [min_words, max_words], then mean word length outside
    [min_mean_word_length, max_mean_word_length] (only with at least one word)."""
    n_words = len(words)
    if "gopher_min_words" not in skip and n_words < rules.min_words:
        return "gopher_min_words"
    if "gopher_max_words" not in skip and n_words > rules.max_words:
        return "gopher_max_words"
    if n_words:
        mean_len = sum(map(len, words)) / n_words
        if ("gopher_min_mean_word_length" not in skip
                and mean_len < rules.min_mean_word_length):
            return "gopher_min_mean_word_length"
        if ("gopher_max_mean_word_length" not in skip
                and mean_len > rules.max_mean_word_length):
            return "gopher_max_mean_word_length"
    return None


def _symbol_rule(text: str, n_tokens: int, rules: GopherQuality, skip: frozenset[str]) -> str | None:
    """The "#" count per token, then the ellipsis ("..." and "…") count per token, above
    max_symbol_word_ratio."""
    if ("gopher_hash_ratio" not in skip
            and text.count("#") / n_tokens > rules.max_symbol_word_ratio):
        return "gopher_hash_ratio"
    n_ellipses = text.count("...") + text.count("…")
    if ("gopher_ellipsis_ratio" not in skip
            and n_ellipses / n_tokens > rules.max_symbol_word_ratio):
        return "gopher_ellipsis_ratio"
    return None


def _line_rule(text: str, rules: GopherQuality, skip: frozenset[str]) -> str | None:
    """Too many lines starting with a bullet, then too many ending with an ellipsis."""
    lines = text.splitlines()
    if lines:
        if "gopher_bullet_lines" not in skip:
            bullets = tuple(rules.bullet_prefixes)
            n_bullet = sum(1 for s in lines if s.lstrip().startswith(bullets))
            if n_bullet / len(lines) > rules.max_bullet_lines_ratio:
                return "gopher_bullet_lines"
        if "gopher_ellipsis_lines" not in skip:
            n_ell = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
            if n_ell / len(lines) > rules.max_ellipsis_lines_ratio:
                return "gopher_ellipsis_lines"
    return None


def _content_rule(text: str, words: list[str], n_tokens: int, rules: GopherQuality,
                  skip: frozenset[str]) -> str | None:
    """Too few words with a letter, then too few distinct stop words."""
    if ("gopher_alpha_words" not in skip
            and _alpha_share(text, words, n_tokens, rules) < rules.min_alpha_words_ratio):
        return "gopher_alpha_words"
    if ("gopher_stop_words" not in skip
            and len(frozenset(rules.stop_words).intersection(words)) < rules.min_stop_words):
        return "gopher_stop_words"
    return None


def _alpha_share(text: str, words: list[str], n_tokens: int, rules: GopherQuality) -> float:
    """Share of words with an alphabetic character, "words" as ``rules.alpha_words_of``."""
    if rules.alpha_words_of == "tokens":
        return (len(words) - len(_NO_ALPHA_WORD_RE.findall(" ".join(words)))) / n_tokens
    n_ws = len(text.split())
    return (n_ws - len(_NO_ALPHA_WORD_RE.findall(text))) / n_ws
