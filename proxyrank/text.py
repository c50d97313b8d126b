"""Text normalisation, word splitting and stable hashing: written once, used by data and curation.

Three ways of splitting text into words live here, because three published procedures need three
different ones; they are kept apart on purpose (merging any two would change the study's results:
the MinHash signatures, the quality models' features, or the Gopher verdicts):

* `normalise` / `dedup_words` / `text_key`: lowercase, every run of non-word characters *and
  underscores* (``[\\W_]+``) becomes one space. Exact dedup, MinHash shingles, repeated-paragraph
  keys and the validation decontamination all compare texts this way (as C4 and RefinedWeb compare
  documents "with case, punctuation and spacing removed"), so a reformatted copy, or a
  ``snake_case`` name written as "snake case", is still the same text.
* `model_words` (and `model_line_tokens`, the same with line breaks): lowercase, the words are the
  maximal runs of ``\\w`` (letters, digits *and underscore*). The two quality models (the CCNet-style
  n-gram LM and the DCLM-style classifier, proxyrank.curation.quality) featurise these tokens, as
  fastText and KenLM see identifiers: ``snake_case`` is one word there, two words for dedup.
* `word_tokens`: Treebank-like tokens with punctuation marks as tokens of their own, what the
  Gopher quality and repetition filters count (datatrove's word tokenizer, Rae et al. 2021).

Hashing: `text_key` (a 16-byte BLAKE2b of the normalised text), `stable_hash32` (CRC-32 of a
string: seeded orders and id hashes that must not depend on Python's salted `hash()`) and
`mix64` (splitmix64's finaliser on numpy uint64 arrays, the mixing step of the MinHash shingle
hashes and of the classifier's hashed n-gram features).
"""
from __future__ import annotations

import hashlib
import re
import zlib

import numpy as np

# --------------------------------------------------------------------------------------------
# dedup normalisation: case, punctuation, underscores and spacing removed

NON_WORD = re.compile(r"[\W_]+")
"""What separates words for dedup: any run of non-word characters or underscores."""

NON_ASCII_BREAK = re.compile(r"[^\x00-\x7f\w]+")
"""The non-ASCII characters of NON_WORD (curly quotes, dashes, no-break spaces, ...).

The MinHash hashing path (proxyrank.curation.dedup) normalises ASCII with `ASCII_WORD_BYTES` and
replaces only these with spaces: the same words as `normalise`, ~2.4x faster on text with curly
quotes (the regex then matches a few characters, not every space)."""


def _ascii_word_bytes() -> np.ndarray:
    """Byte -> lowercased byte for ASCII letters and digits, 0 (a word break) for other ASCII;
    bytes >= 0x80 (inside UTF-8 word characters, once `NON_ASCII_BREAK` removed the others) are kept."""
    lut = np.arange(256, dtype=np.uint8)
    for c in range(128):
        lut[c] = ord(chr(c).lower()) if chr(c).isalnum() else 0
    return lut


ASCII_WORD_BYTES = _ascii_word_bytes()
"""`NON_WORD`'s normalisation of UTF-8 bytes as a lookup table: ASCII words are [a-z0-9] runs."""


def normalise(text: str) -> str:
    """Lowercase, punctuation, underscores and spacing collapsed to single spaces, stripped."""
    return NON_WORD.sub(" ", text.lower()).strip()


def dedup_words(text: str) -> list[str]:
    """The normalised words that dedup compares and MinHash shingles are made of:
    `normalise(text).split()` (an underscore separates words)."""
    return normalise(text).split()


def text_key(text: str) -> bytes:
    """Hash of the text with case, punctuation and spacing removed: catches reformatted copies."""
    return hashlib.blake2b(normalise(text).encode(), digest_size=16).digest()


# --------------------------------------------------------------------------------------------
# quality-model words: \w runs (underscores kept inside words)

MODEL_WORD = re.compile(r"\w+")
MODEL_WORD_OR_NEWLINE = re.compile(r"\w+|\n")


def model_words(text: str) -> list[str]:
    """The quality models' words: lowercase, tokens are the runs of ``\\w`` characters.

    CCNet additionally strips accents, maps digits to 0 and tokenises with SentencePiece; the
    models here do not. Differs from `dedup_words` only in keeping ``_`` inside a word."""
    return MODEL_WORD.findall(text.lower())


def model_line_tokens(text: str) -> list[str]:
    """`model_words` with every line break kept as a token of its own ("\\n"): the n-gram LM
    treats each line as a sentence, as CCNet scores a document line by line."""
    return MODEL_WORD_OR_NEWLINE.findall(text.lower())


# --------------------------------------------------------------------------------------------
# Gopher word tokens: Treebank-like, punctuation marks are tokens

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


def word_tokens(text: str) -> list[str]:
    """Treebank-like word tokens: words and single punctuation marks; "...", a URL and a
    run of "-" or "=" are one token each (see the departures above `_TOKEN_RE`).

    The Gopher filters use them where datatrove 0.10.1 uses its word tokenizer:
    punctuation tokens count in the symbol ratios' denominator and in the n-grams of the
    repetition filter, as there.
    """
    return _TOKEN_RE.findall(text)


_last_tokens: tuple[str, list[str]] = ("", [])


def word_tokens_cached(text: str) -> list[str]:
    """`word_tokens`, remembered for the last text object (the Gopher quality and
    repetition filters usually run on the same string one after the other).  The list
    is shared: callers must not modify it."""
    global _last_tokens
    cached = _last_tokens  # one read, so a concurrent caller cannot swap it under us
    if cached[0] is not text:
        cached = _last_tokens = (text, word_tokens(text))
    return cached[1]


# --------------------------------------------------------------------------------------------
# stable hashing

GOLDEN64 = 0x9E3779B97F4A7C15
"""2**64 / golden ratio (odd): the polynomial base of word n-gram hashes (Fibonacci hashing)."""

_SPLITMIX_M1 = np.uint64(0xBF58476D1CE4E5B9)
_SPLITMIX_M2 = np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array (and returned): every input bit moves
    every output bit, so the low bits (a bucket mod n) and the high bits (MinHash's top 32) are
    both usable. Pass a copy to keep the input."""
    x ^= x >> np.uint64(30)
    x *= _SPLITMIX_M1
    x ^= x >> np.uint64(27)
    x *= _SPLITMIX_M2
    x ^= x >> np.uint64(31)
    return x


def stable_hash32(s: str) -> int:
    """CRC-32 of the string's UTF-8 bytes: the same in every process and run, unlike `hash()`."""
    return zlib.crc32(s.encode("utf-8"))


def text_batches(texts, max_chars: int, max_docs: int | None = None, what: str = "texts"):
    """`texts` in lists of at most `max_docs` texts that stop once they reach `max_chars`
    characters: the unit of work handed to a worker (dedup, quality), bounding its memory.
    A non-str item is a TypeError naming `what` (a caller's bug, not a user's input)."""
    batch: list[str] = []
    chars = 0
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"{what}: expected str, got {type(text).__name__}")
        batch.append(text)
        chars += len(text)
        if chars >= max_chars or (max_docs is not None and len(batch) >= max_docs):
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch
