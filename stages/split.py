"""split: hold out validation text per domain, deduplicated against the rest, which becomes the pool."""
from proxyrank import stage
from proxyrank.data.corpus import read_docs, split
from proxyrank.files import write_json
from proxyrank.paths import DOCS, POOL, REPORTS, VALID


def main(p):
    stats = split(read_docs(DOCS.glob("*.parquet")), p.split.valid_domains, p.split.valid_chars, p.seed,
                  VALID, POOL, p.curation.minhash, p.train.workers)
    write_json(REPORTS / "split.json", stats)


if __name__ == "__main__":
    stage.main("split", main)
