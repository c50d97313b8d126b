"""crawl: the web-like pool the corpus / quality / dedup recipes draw from (data/crawl.py says how)."""
import pyarrow.parquet as pq

from proxyrank import stage
from proxyrank.data import crawl
from proxyrank.files import atomic_path, write_json
from proxyrank.paths import CRAWL, POOL, REPORTS


def main(p):
    if not p.uses_crawl:  # the stage still runs (the graph is static); nothing to build
        table, manifest = crawl.empty(), {"pages": 0, "chars": 0, "note": "no recipe uses the crawl"}
    else:
        table, manifest = crawl.build(pq.read_table(POOL, columns=["id", "domain", "text"]), p.crawl, p.seed)
    with atomic_path(CRAWL) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    write_json(REPORTS / "crawl.json", manifest)
    print(f"crawl: {manifest['pages']} pages, {manifest['chars'] / 1e6:.1f}M characters")


if __name__ == "__main__":
    stage.main("crawl", main)
