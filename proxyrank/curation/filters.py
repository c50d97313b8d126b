"""The published web-text heuristic filters (C4, Gopher quality, Gopher repetition).

Why this module exists, and why it looks the way it does:

* Data recipes in this study differ by which of the published heuristic filters they
  apply, so each filter has to be the published rule with the published threshold,
  not an approximation of it tuned on our data.  Every rule below is one small named
  unit whose docstring cites the paper and the reference implementation it follows:
  C4 (Raffel et al. 2020, JMLR 21(140), section 2.2; tensorflow-datasets
  ``tensorflow_datasets/text/c4_utils.py``) and Gopher's MassiveWeb filters (Rae et
  al. 2021, arXiv:2112.11446, Appendix A.1.1 and Table A1; datatrove
  ``pipeline/filters/gopher_quality_filter.py`` and ``gopher_repetition_filter.py``).
* Thresholds are fields of frozen dataclasses whose defaults are the published values,
  because a params.yaml section is turned into these dataclasses by the generic typed
  builder in ``proxyrank.config``; hence only int, float, bool, str and list[str]
  fields.  A rule is switched off by listing its name in ``skip`` (datatrove uses a
  ``None`` threshold for that, which a typed params file cannot express cleanly).
* Every rule has a stable snake_case name.  The functions return the name of the
  first rule that removed a document, and ``C4_RULES``, ``GOPHER_QUALITY_RULES`` and
  ``GOPHER_REPETITION_RULES`` list every name each function can return, in checking
  order, so manifests can count removals per rule (zeros included).
* No nltk, spaCy, datatrove or tensorflow: the filters run on ~20k pages inside a DVC
  stage, must be deterministic, fast (all three families a few times faster than
  datatrove with the same tokens; bench/results/filters.md) and dependency-free.  The
  two places where the references call a tokeniser (punkt sentence counting in C4, word
  tokens in the Gopher filters) are small regexes that follow the same conventions; see
  `sentence_spans` and `word_tokens`.
* The peer checked against is datatrove 0.10.1 (``C4QualityFilter``,
  ``GopherQualityFilter``, ``GopherRepetitionFilter``).  Its rule logic is followed
  exactly; its tokens are not: datatrove used nltk (Treebank words, punkt sentences) up
  to 0.3 and a blank spaCy English pipeline since 0.4.  With `word_tokens` and
  `sentence_spans` injected as its tokenizer, datatrove reaches the same verdict as
  these functions (tests/test_filters.py checks that on crawl pages).
* Where datatrove 0.10.1 departs from the papers, the paper wins, each departure named
  where it is made: Gopher's alphabetic-words rule counts whitespace-separated words
  (`GopherQuality.alpha_words_of`), its stop-word rule counts distinct words (as
  datatrove since 0.5), and an empty or whitespace-only document is dropped by every
  family under its own ``*_empty`` rule (datatrove drops only ``""``, and only in the
  repetition filter, as ``"empty"``; a blank page has no text to judge).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

import numpy as np

__all__ = [
    "C4_LINE_RULES",
    "C4_RULES",
    "GOPHER_QUALITY_RULES",
    "GOPHER_REPETITION_RULES",
    "MAX_CLEAN_SHARE",
    "RULES_OF",
    "C4Rules",
    "GopherQuality",
    "GopherRepetition",
    "c4_clean",
    "count_sentences",
    "dup_ngram_chars",
    "gopher_quality",
    "gopher_repetition",
    "removals_by_damage",
    "sentence_spans",
    "top_ngram_chars",
    "word_tokens",
]


def _check_skip(rules: object, allowed: tuple[str, ...]) -> None:
    unknown = [name for name in rules.skip if name not in allowed]  # type: ignore[attr-defined]
    if unknown:
        raise ValueError(f"{type(rules).__name__}.skip: unknown rule(s) "
                         f"{', '.join(map(repr, unknown))}; "
                         f"allowed: {', '.join(allowed)}")


# ------------------------------------------------------------------------------------
# shared tokenisation


# Treebank conventions (nltk word_tokenize, datatrove <= 0.3): punctuation marks become
# tokens of their own ("end." -> "end", "."), "..." stays one token, hyphenated words,
# numbers like 3.14 / 3,000 and abbreviations like U.S stay whole.  Departures, each
# where Treebank's split would distort a Gopher measure: contractions stay whole
# ("don't"; Treebank: "do", "n't"; a fraction of a percent of word counts); a URL is one
# token (split at every "/" and "." it becomes a run of repeated n-grams); a run of "-"
# or "=" is one token (a separator line of 68 dashes gave a top 2-gram share of 0.548 as
# 68 tokens, 0.037 as one token, as spaCy -- datatrove >= 0.4 -- tokenises it).
_URL = r"(?:https?://|www\.)[^\s<>\"'()\[\]{}]*[^\s<>\"'()\[\]{}.,;:!?]"
_TOKEN_RE = re.compile(_URL + r"|\w+(?:[-'’.,]\w+)*|\.\.\.|[-=]{2,}|[^\w\s]")
# A word token holds a letter, digit or underscore.  datatrove 0.10.1 counts a token with
# any character outside its PUNCTUATION list, so a lone symbol such as "©" or "°" is a word
# there and not here (a footer's "Copyright ©" moved 1 of 286 crawl pages across the
# 50-word line in bench/filters_bench.py).
_IS_WORD = re.compile(r"\w").match
# a word token without a letter: digits, "_" and in-word punctuation only (3.5, 1,000)
_NO_ALPHA_WORD_RE = re.compile(r"(?<!\S)(?:[\d_]|[^\w\s])+(?!\S)")


_last_tokens: tuple[str, list[str]] = ("", [])


def _tokens_of(text: str) -> list[str]:
    """`word_tokens`, remembered for the last text object (the Gopher quality and
    repetition filters usually run on the same string one after the other).  The list
    is shared: callers must not modify it."""
    global _last_tokens
    cached = _last_tokens  # one read, so a concurrent caller cannot swap it under us
    if cached[0] is not text:
        cached = _last_tokens = (text, word_tokens(text))
    return cached[1]


def word_tokens(text: str) -> list[str]:
    """Treebank-like word tokens: words and single punctuation marks; "...", a URL and a
    run of "-" or "=" are one token each (see the departures above `_TOKEN_RE`).

    The Gopher filters use them where datatrove 0.10.1 uses its word tokenizer:
    punctuation tokens count in the symbol ratios' denominator and in the n-grams of the
    repetition filter, as there.
    """
    return _TOKEN_RE.findall(text)


# ------------------------------------------------------------------------------------
# C4: Raffel et al. 2020 (T5), section 2.2 "Colossal Clean Crawled Corpus"

C4_LINE_RULES = (
    "c4_line_too_long_word",
    "c4_line_no_terminal_punct",
    "c4_line_too_few_words",
    "c4_line_javascript",
    "c4_line_policy",
)
"""Line-level C4 rules (a line is removed, the page stays), in checking order."""

C4_RULES = (
    "c4_empty",
    "c4_max_chars",
    "c4_lorem_ipsum",
    "c4_curly_bracket",
    "c4_min_sentences",
)
"""Page-level C4 rules that `c4_clean` can return, in checking order."""

_C4_POLICY = ["terms of use", "privacy policy", "cookie policy", "uses cookies",
              "use of cookies", "use cookies"]


@dataclass(frozen=True)
class C4Rules:
    """C4 cleaning thresholds; defaults are those that built the released C4.

    Source: Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a
    Unified Text-to-Text Transformer", JMLR 21(140), section 2.2, and the code that
    produced the dataset, tensorflow-datasets ``text/c4_utils.py`` (``clean_page``,
    ``is_valid_length``; constants ``_MIN_WORDS_PER_LINE = 5``,
    ``_MIN_NUM_SENTENCES = 3``, ``_MAX_WORD_LENGTH = 1000``,
    ``_END_MARKS = (".", "?", "!", '"')``, ``_POLICY_SUBSTRINGS``).

    Copies of the paper's sentence disagree ("fewer than 3 sentences ... at least 5
    words" in most quotations; datatrove's C4QualityFilter docstring and defaults have
    5 sentences / 3 words); the tfds constants above (3 sentences, 5 words per line)
    are what built the released corpus, so they are the defaults here.

    Not implemented: the "List of Dirty, Naughty, Obscene or Otherwise Bad Words" page
    filter (a word list we do not ship), langdetect English detection (a model, not a
    heuristic) and the three-sentence-span deduplication (corpus-level, not per page).
    """

    max_page_chars: int = 190_000
    """tfds ``is_valid_length``: pages longer than 1.9e5 characters are dropped."""
    max_word_length: int = 1000
    """Lines containing a whitespace-separated word longer than this are removed."""
    remove_citations: bool = True
    """Delete Wikipedia-style markers ``[1]``, ``[edit]``, ``[citation needed]``."""
    end_marks: list[str] = field(default_factory=lambda: [".", "?", "!", '"'])
    """A line is kept only if it ends with one of these (and not with "...")."""
    min_words_per_line: int = 5
    min_sentences: int = 3
    policy_substrings: list[str] = field(default_factory=lambda: list(_C4_POLICY))
    """Lines containing any of these (lower-cased) are removed as boilerplate."""
    skip: list[str] = field(default_factory=list)
    """Names from C4_RULES / C4_LINE_RULES to switch off."""

    def __post_init__(self) -> None:
        _check_skip(self, C4_RULES + C4_LINE_RULES)


_CITATION_RE = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")

# A candidate sentence end inside a line: a run of end marks (plus closing quotes or
# brackets) followed by whitespace.  Group 1 is the token before the marks, group 2 the
# marks, group 3 the first character of the next token after any opening quote/bracket.
_SENT_END_RE = re.compile(
    r"(?<!\S)(\S*?)([.!?]+)[\"'”’)\]]*(?=\s+[\"'“‘(\[]?(\S))")
_NUMBER_RE = re.compile(r"[\d,]+")
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "no", "nos",
    "fig", "figs", "inc", "ltd", "co", "corp", "gen", "gov", "sen", "rep", "rev", "col",
    "lt", "sgt", "capt", "cpl", "maj", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec", "approx", "dept", "est", "vol", "ch", "pp",
    "ed", "eds", "al",
})


def _is_sentence_end(prev: str, marks: str, following: str) -> bool:
    """Punkt's decision for one candidate (Kiss & Strunk 2006, as nltk implements it).

    "!" or "?" ends a sentence whatever follows ("you want! so what?" is two); so does
    "." after an ordinary word ("well. because it is." is two: punkt does not need a
    capital after a period).  Not an end: "." after a known abbreviation, a single-letter
    initial or a token holding a period (U.S, e.g), and "." after a number when a
    lower-case word follows (punkt's ordinal rule).  An ellipsis ends a sentence only
    before a capital or a digit (punkt then asks whether the next word is a frequent
    sentence starter, a statistic we do not learn).
    """
    if "!" in marks or "?" in marks:
        return True
    if len(marks) > 1:
        return following.isupper() or following.isdigit()
    word = prev.lstrip("\"'“‘([").lower()
    if "." in word or word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
        return False
    if _NUMBER_RE.fullmatch(word):
        return not following.islower()
    return True


def sentence_spans(line: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of one line, in the manner of nltk's punkt.

    tfds ``clean_page`` counts ``len(punkt.tokenize(line))`` for every kept line, and
    datatrove 0.10.1's ``C4QualityFilter`` does the same through its tokenizer's
    ``span_tokenize`` (spaCy's sentencizer since datatrove 0.4).  The rules for where a
    sentence ends are in `_is_sentence_end`; punkt's learned statistics (its English
    abbreviation list, collocations, sentence starters) are not reproduced, and no data
    is downloaded.  A blank line has no sentence.
    """
    start = len(line) - len(line.lstrip())
    if start == len(line):
        return []
    spans = []
    for m in _SENT_END_RE.finditer(line):
        if _is_sentence_end(m.group(1), m.group(2), m.group(3)):
            spans.append((start, m.end()))
            start = m.end() + len(line[m.end():]) - len(line[m.end():].lstrip())
    spans.append((start, len(line.rstrip())))
    return spans


def count_sentences(line: str) -> int:
    """Number of sentences in one line: ``len(sentence_spans(line))``, without the spans."""
    if not line.strip():
        return 0
    n = 1
    for prev, marks, following in _SENT_END_RE.findall(line):
        n += _is_sentence_end(prev, marks, following)
    return n


def _has_too_long_word(line: str, max_len: int) -> bool:
    return len(line) > max_len and any(len(w) > max_len for w in line.split())


def c4_clean(
    text: str,
    rules: C4Rules,
    *,
    line_counts: MutableMapping[str, int] | None = None,
) -> tuple[str | None, str | None]:
    """Return (cleaned_text, None) when the page is kept (lines removed by the line
    rules), or (None, rule_name) naming the first page-level rule that dropped it.

    Follows tfds ``c4_utils.clean_page`` line by line (``text.splitlines()``, each
    line stripped), as datatrove 0.10.1's ``C4QualityFilter`` does:

    0. ``c4_empty``: the page is empty or whitespace only (a departure from tfds and
       datatrove, which call it ``c4_min_sentences`` / ``too_few_sentences``: a blank
       page is not a page with too few sentences);
    1. ``c4_max_chars`` (tfds ``is_valid_length``, applied before cleaning): page
       longer than ``max_page_chars`` characters.
    2. a line with a word longer than ``max_word_length`` is removed;
    3. citation markers are deleted (``remove_citations``);
    4. a line not ending in an end mark, or ending in "...", is removed; so is a line
       of fewer than ``min_words_per_line`` whitespace-separated words;
    5. ``c4_lorem_ipsum``: a surviving line contains "lorem ipsum" (any case) -> drop;
    6. "javascript" lines removed;
    7. ``c4_curly_bracket``: a surviving line contains "{" -> drop (likely code);
    8. policy/cookie boilerplate lines removed;
    9. ``c4_min_sentences``: fewer than ``min_sentences`` sentences in the kept lines
       (`count_sentences`, punkt's conventions).

    As in tfds, the lorem-ipsum and curly-bracket tests only see lines that passed the
    punctuation and word-count tests (a "{" on a line without an end mark only loses
    that line).  The kept lines are joined with "\\n".  If ``line_counts`` is given,
    each removed line increments ``line_counts[<line rule name>]``.
    """
    skip = frozenset(rules.skip)
    if "c4_empty" not in skip and not text.strip():
        return None, "c4_empty"
    if "c4_max_chars" not in skip and len(text) > rules.max_page_chars:
        return None, "c4_max_chars"
    end_marks = tuple(rules.end_marks)
    policy = rules.policy_substrings
    check_long = "c4_line_too_long_word" not in skip
    check_punct = "c4_line_no_terminal_punct" not in skip
    check_words = "c4_line_too_few_words" not in skip
    check_lorem = "c4_lorem_ipsum" not in skip
    check_js = "c4_line_javascript" not in skip
    check_curly = "c4_curly_bracket" not in skip
    check_policy = "c4_line_policy" not in skip
    kept: list[str] = []
    n_sentences = 0

    def removed(rule: str) -> None:
        if line_counts is not None:
            line_counts[rule] = line_counts.get(rule, 0) + 1

    for line in text.splitlines():
        line = line.strip()
        if not line:  # blank lines never survive; not counted as removals
            continue
        if check_long and _has_too_long_word(line, rules.max_word_length):
            removed("c4_line_too_long_word")
            continue
        if rules.remove_citations and "[" in line:
            line = _CITATION_RE.sub("", line)
        if check_punct and (not line.endswith(end_marks) or line.endswith("...")):
            removed("c4_line_no_terminal_punct")
            continue
        if check_words and len(line.split()) < rules.min_words_per_line:
            removed("c4_line_too_few_words")
            continue
        lower = line.lower()
        if check_lorem and "lorem ipsum" in lower:
            return None, "c4_lorem_ipsum"
        if check_js and "javascript" in lower:
            removed("c4_line_javascript")
            continue
        if check_curly and "{" in line:
            return None, "c4_curly_bracket"
        if check_policy and any(p in lower for p in policy):
            removed("c4_line_policy")
            continue
        n_sentences += count_sentences(line)
        kept.append(line)
    if "c4_min_sentences" not in skip and n_sentences < rules.min_sentences:
        return None, "c4_min_sentences"
    return "\n".join(kept).strip(), None


# ------------------------------------------------------------------------------------
# Gopher quality: Rae et al. 2021, Appendix A.1.1 "MassiveWeb" quality filters

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
        _check_skip(self, GOPHER_QUALITY_RULES)
        if self.alpha_words_of not in _ALPHA_WORDS_OF:
            raise ValueError(f"GopherQuality.alpha_words_of: {self.alpha_words_of!r} is not one "
                             f"of {', '.join(map(repr, _ALPHA_WORDS_OF))}; use \"words\" for "
                             f"Gopher's rule (whitespace-separated words)")


_ALPHA_WORDS_OF = ("words", "tokens")


def gopher_quality(text: str, rules: GopherQuality) -> str | None:
    """Name of the first failed rule, or None when the document passes.

    Follows datatrove 0.10.1 ``GopherQualityFilter.filter``: ``tokens`` are
    `word_tokens` (punctuation marks are tokens), ``words`` the tokens that are not pure
    punctuation.

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
    tokens = _tokens_of(text)
    n_tokens = len(tokens)
    words = [t for t in tokens if _IS_WORD(t)]
    n_words = len(words)
    if "gopher_min_words" not in skip and n_words < rules.min_words:
        return "gopher_min_words"
    if "gopher_max_words" not in skip and n_words > rules.max_words:
        return "gopher_max_words"
    if n_tokens == 0:  # every rule below is a ratio over tokens
        return None
    if n_words:
        mean_len = sum(map(len, words)) / n_words
        if ("gopher_min_mean_word_length" not in skip
                and mean_len < rules.min_mean_word_length):
            return "gopher_min_mean_word_length"
        if ("gopher_max_mean_word_length" not in skip
                and mean_len > rules.max_mean_word_length):
            return "gopher_max_mean_word_length"
    if ("gopher_hash_ratio" not in skip
            and text.count("#") / n_tokens > rules.max_symbol_word_ratio):
        return "gopher_hash_ratio"
    n_ellipses = text.count("...") + text.count("…")
    if ("gopher_ellipsis_ratio" not in skip
            and n_ellipses / n_tokens > rules.max_symbol_word_ratio):
        return "gopher_ellipsis_ratio"
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


# ------------------------------------------------------------------------------------
# Gopher repetition: Rae et al. 2021, Appendix A.1.1 and Table A1

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
        _check_skip(self, GOPHER_REPETITION_RULES)


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

    n-grams are over `word_tokens` (punctuation tokens included, as datatrove's).
    """
    skip = frozenset(rules.skip)
    if not text.strip():
        return None if "gopher_repetition_empty" in skip else "gopher_repetition_empty"
    size = len(text)

    paragraphs = _PARA_SPLIT_RE.split(text.strip())
    n_dup, dup_chars = _duplicates(paragraphs)
    if ("gopher_dup_para_frac" not in skip
            and n_dup / len(paragraphs) > rules.max_dup_para_frac):
        return "gopher_dup_para_frac"
    if ("gopher_dup_para_char_frac" not in skip
            and dup_chars / size > rules.max_dup_para_char_frac):
        return "gopher_dup_para_char_frac"

    lines = _LINE_SPLIT_RE.split(text)
    n_dup, dup_chars = _duplicates(lines)
    if ("gopher_dup_line_frac" not in skip
            and n_dup / len(lines) > rules.max_dup_line_frac):
        return "gopher_dup_line_frac"
    if ("gopher_dup_line_char_frac" not in skip
            and dup_chars / size > rules.max_dup_line_char_frac):
        return "gopher_dup_line_char_frac"

    index = _NgramIndex(_tokens_of(text))
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


# ------------------------------------------------------------------------------------
# what each rule removed, against a crawl's own record of damage

RULES_OF = {"c4": C4_RULES, "gopher_quality": GOPHER_QUALITY_RULES,
            "gopher_repetition": GOPHER_REPETITION_RULES}
"""The page-level rules of each family, in checking order."""

MAX_CLEAN_SHARE = 0.05
"""A rule that removes more than this share of the clean pages is flagged: a published
heuristic meant for junk that takes this much good text is suspect (in its definition,
or in how it reads this corpus) before any recipe built on it is trusted."""


def removals_by_damage(verdicts: Mapping[str, Sequence[str | None]],
                       damage: Mapping[str, np.ndarray]) -> dict:
    """Per rule, how many pages of each kind of damage it removed: its precision measured
    against the crawl's own truth rather than guessed from examples.

    ``verdicts`` maps a family of `RULES_OF` to the rule that removed each page (None:
    kept); ``damage`` maps a damage kind to a boolean mask over the same pages and must
    hold ``"clean"`` (pages with no recorded damage).  Kinds may overlap (a truncated
    page with boilerplate counts under both).  Returns ``pages`` (pages of each kind),
    ``rules`` (every rule, zeros included), ``families`` (pages removed by any rule of
    the family), ``max_clean_share`` and ``flagged``: the rules that removed more than
    `MAX_CLEAN_SHARE` of the clean pages, in checking order.
    """
    unknown = sorted(set(verdicts) - set(RULES_OF))
    if unknown:
        raise ValueError(f"verdicts: unknown rule families {unknown}; known: {', '.join(RULES_OF)}")
    if "clean" not in damage:
        raise ValueError(f"damage: needs a 'clean' mask (pages with no recorded damage); "
                         f"got {', '.join(damage) or 'nothing'}")
    masks = {k: np.asarray(m, dtype=bool) for k, m in damage.items()}
    sizes = {k: m.size for k, m in masks.items()} | {f: len(v) for f, v in verdicts.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"verdicts and damage masks must cover the same pages; lengths {sizes}")

    def count(hit: np.ndarray) -> dict[str, int]:
        return {k: int((hit & m).sum()) for k, m in masks.items()}

    rules, families = {}, {}
    for family, fails in verdicts.items():
        fails = np.asarray(fails, dtype=object)
        for rule in RULES_OF[family]:
            rules[rule] = count(fails == rule)
        families[family] = count(fails != None)  # noqa: E711 (elementwise)
    n_clean = int(masks["clean"].sum())
    flagged = [r for r, c in rules.items() if n_clean and c["clean"] / n_clean > MAX_CLEAN_SHARE]
    return {"pages": {k: int(m.sum()) for k, m in masks.items()}, "rules": rules,
            "families": families, "max_clean_share": MAX_CLEAN_SHARE, "flagged": flagged}
