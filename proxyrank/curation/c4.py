"""C4's cleaning rules: Raffel et al. 2020 (T5), section 2.2 "Colossal Clean Crawled Corpus".

Source: Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer", JMLR 21(140), section 2.2, and the code that produced the dataset,
tensorflow-datasets ``tensorflow_datasets/text/c4_utils.py`` (``clean_page``, ``is_valid_length``).
Peer checked against: datatrove 0.10.1's ``C4QualityFilter``, whose rule logic is followed; where
the tfds code calls nltk's punkt for sentences, `sentence_spans` follows punkt's conventions with a
small regex (no model, nothing downloaded). The conventions every family shares are in
proxyrank.curation.filters.
"""
from __future__ import annotations

import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field

from proxyrank.curation.rules import check_skip

__all__ = [
    "C4_LINE_RULES",
    "C4_RULES",
    "C4Rules",
    "c4_clean",
    "count_sentences",
    "sentence_spans",
]

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
        check_skip(self, C4_RULES + C4_LINE_RULES)


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


_PAGE_DROPS_IN_LINES = ("c4_lorem_ipsum", "c4_curly_bracket")
"""Page rules that a single surviving line triggers: the line tests return them too."""


class _LineTests:
    """The line tests of one `C4Rules`, resolved once per page; `verdict` judges one line.

    tfds ``clean_page`` order: too long a word, citation markers deleted, terminal punctuation,
    too few words, lorem ipsum (drops the page), "javascript", "{" (drops the page), policy
    boilerplate.  A skipped rule's test is off.
    """

    def __init__(self, rules: C4Rules, skip: frozenset[str]) -> None:
        self.rules = rules
        self.end_marks = tuple(rules.end_marks)
        self.policy = rules.policy_substrings
        self.long = "c4_line_too_long_word" not in skip
        self.punct = "c4_line_no_terminal_punct" not in skip
        self.words = "c4_line_too_few_words" not in skip
        self.lorem = "c4_lorem_ipsum" not in skip
        self.js = "c4_line_javascript" not in skip
        self.curly = "c4_curly_bracket" not in skip
        self.policy_on = "c4_line_policy" not in skip

    def verdict(self, line: str) -> tuple[str, str | None]:
        """(the stripped, non-blank line cleaned of citation markers, None) if it is kept, else
        (line, the rule that removed it: a line rule, or a page rule of `_PAGE_DROPS_IN_LINES`)."""
        rules = self.rules
        if self.long and _has_too_long_word(line, rules.max_word_length):
            return line, "c4_line_too_long_word"
        if rules.remove_citations and "[" in line:
            line = _CITATION_RE.sub("", line)
        if self.punct and (not line.endswith(self.end_marks) or line.endswith("...")):
            return line, "c4_line_no_terminal_punct"
        if self.words and len(line.split()) < rules.min_words_per_line:
            return line, "c4_line_too_few_words"
        lower = line.lower()
        if self.lorem and "lorem ipsum" in lower:
            return line, "c4_lorem_ipsum"
        if self.js and "javascript" in lower:
            return line, "c4_line_javascript"
        if self.curly and "{" in line:
            return line, "c4_curly_bracket"
        if self.policy_on and any(p in lower for p in self.policy):
            return line, "c4_line_policy"
        return line, None


def _clean_lines(text: str, tests: _LineTests,
                 line_counts: MutableMapping[str, int] | None) -> tuple[list[str], int] | str:
    """The kept lines of the page and their sentence count, or the page rule a line triggered
    (lines removed before it are counted in ``line_counts``: the page was read up to there)."""
    kept: list[str] = []
    n_sentences = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:  # blank lines never survive; not counted as removals
            continue
        line, rule = tests.verdict(line)
        if rule in _PAGE_DROPS_IN_LINES:
            return rule
        if rule is not None:
            if line_counts is not None:
                line_counts[rule] = line_counts.get(rule, 0) + 1
            continue
        n_sentences += count_sentences(line)
        kept.append(line)
    return kept, n_sentences


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
    cleaned = _clean_lines(text, _LineTests(rules, skip), line_counts)
    if isinstance(cleaned, str):  # a line triggered a page rule
        return None, cleaned
    kept, n_sentences = cleaned
    if "c4_min_sentences" not in skip and n_sentences < rules.min_sentences:
        return None, "c4_min_sentences"
    return "\n".join(kept).strip(), None
