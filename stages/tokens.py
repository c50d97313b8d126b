"""tokens: each validation domain's held-out text, tokenized (data/tokens/valid/<domain>.npy)."""
import pyarrow.parquet as pq

from proxyrank import stage
from proxyrank.data import tokens
from proxyrank.files import atomic_dir, write_json
from proxyrank.paths import REPORTS, TOKENIZER, TOKENS, VALID


def main(p):
    with atomic_dir(TOKENS) as tmp:
        (tmp / "valid").mkdir()
        sizes = tokens.encode_valid(tokens.load(TOKENIZER), pq.read_table(VALID), p.split.valid_domains,
                                    p.train.valid_tokens, tmp / "valid")
    write_json(REPORTS / "tokens.json", {"valid_tokens_available": sizes})
    print(f"tokens: validation {p.train.valid_tokens} per domain")


if __name__ == "__main__":
    stage.main("tokens", main)
