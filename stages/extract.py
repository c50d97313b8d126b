"""extract: parse each archive in data/raw into documents, one parquet file per source (data/docs)."""
from proxyrank import stage
from proxyrank.data.corpus import extract, load_sources
from proxyrank.paths import DOCS, RAW


def main(p):
    extract(load_sources(p.corpus.manifest), p.corpus.sources, RAW, DOCS, p.corpus.allow_missing, p.train.workers)


if __name__ == "__main__":
    stage.main("extract", main)
