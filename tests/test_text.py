"""proxyrank.text: the package's one place for normalisation, word splitting and stable hashing.

The three word splitters differ on purpose (dedup, the quality models and the Gopher filters follow
different published procedures); these tests pin where they differ, so a later "unification" that
would change the study's signatures, features or verdicts fails here first."""
from __future__ import annotations

import hashlib
import zlib

import numpy as np

from proxyrank.text import (
    ASCII_WORD_BYTES,
    NON_WORD,
    dedup_words,
    mix64,
    model_line_tokens,
    model_words,
    normalise,
    stable_hash32,
    text_key,
    word_tokens,
    word_tokens_cached,
)


def test_the_three_splitters_differ_where_their_rules_differ():
    text = "The snake_case name, don't stop... Café 3.14!"
    assert dedup_words(text) == ["the", "snake", "case", "name", "don", "t", "stop", "café", "3", "14"]
    assert model_words(text) == ["the", "snake_case", "name", "don", "t", "stop", "café", "3", "14"]
    assert word_tokens(text) == ["The", "snake_case", "name", ",", "don't", "stop", "...", "Café", "3.14", "!"]


def test_model_line_tokens_keep_line_breaks():
    assert model_line_tokens("One two\n\nThree_x") == ["one", "two", "\n", "\n", "three_x"]
    assert [t for t in model_line_tokens("One two\n\nThree_x") if t != "\n"] == model_words("One two\n\nThree_x")


def test_text_key_ignores_case_punctuation_and_spacing():
    assert text_key("Hello,   World!") == text_key("hello world") == text_key("  HELLO\n\tworld...")
    assert text_key("hello world") != text_key("hello worlds")
    assert text_key("a_b") == text_key("a b")  # an underscore separates words for dedup
    assert text_key("x") == hashlib.blake2b(b"x", digest_size=16).digest()
    assert normalise(" A--b__C ") == "a b c" and len(text_key("")) == 16


def test_byte_table_is_the_ascii_half_of_non_word():
    for c in range(128):
        ch = chr(c)
        assert (ASCII_WORD_BYTES[c] == 0) == bool(NON_WORD.fullmatch(ch)), repr(ch)
        if ASCII_WORD_BYTES[c]:
            assert chr(ASCII_WORD_BYTES[c]) == ch.lower()
    assert (ASCII_WORD_BYTES[128:] == np.arange(128, 256)).all()


def test_mix64_is_splitmix64_in_place():
    def reference(x: int) -> int:  # splitmix64's finaliser in Python integers
        m = (1 << 64) - 1
        x ^= x >> 30
        x = (x * 0xBF58476D1CE4E5B9) & m
        x ^= x >> 27
        x = (x * 0x94D049BB133111EB) & m
        return x ^ (x >> 31)

    values = [0, 1, 2, 0x9E3779B97F4A7C15, (1 << 64) - 1, 123456789]
    x = np.array(values, dtype=np.uint64)
    out = mix64(x)
    assert out is x
    assert [int(v) for v in out] == [reference(v) for v in values]


def test_stable_hash32_is_crc32_of_utf8():
    for s in ("", "crawl:0", "0:wiki:ä"):
        assert stable_hash32(s) == zlib.crc32(s.encode("utf-8"))


def test_word_tokens_cached_remembers_the_last_text_object():
    text = "Some words, here."
    first = word_tokens_cached(text)
    assert first == word_tokens(text) and word_tokens_cached(text) is first
    other = "Other words."
    assert word_tokens_cached(other) == ["Other", "words", "."]
