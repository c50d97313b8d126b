"""fetch: download every pinned source archive of the manifest into data/raw (checksums verified)."""
from proxyrank import stage
from proxyrank.data.corpus import fetch, load_sources
from proxyrank.paths import RAW


def main(p):
    fetch(load_sources(p.corpus.manifest), p.corpus.sources, RAW, p.corpus.allow_missing)


if __name__ == "__main__":
    stage.main("fetch", main)
