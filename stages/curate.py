"""curate: every curation rule's verdict and score on every crawl page, and the MinHash signatures."""
import pyarrow as pa
import pyarrow.parquet as pq

from proxyrank import stage
from proxyrank.curation import recipes
from proxyrank.curation.inputs import reference_texts, save_curated
from proxyrank.files import atomic_dir, write_json
from proxyrank.paths import CRAWL, CURATED, POOL, REPORTS, VALID


def main(p):
    if not p.uses_crawl:
        with atomic_dir(CURATED) as tmp:
            pq.write_table(pa.table({"id": pa.array([], pa.string())}), tmp / "annotations.parquet")
        write_json(REPORTS / "curate.json", {"pages": 0, "note": "no recipe uses the crawl"})
        return
    reference = reference_texts(POOL, p.crawl.reference_share, p.curation.reference_domains)
    valid = pq.read_table(VALID, columns=["text"]).column("text").to_pylist()
    crawl = pq.read_table(CRAWL, columns=["id", "text", *recipes.DAMAGE_COLUMNS])
    table, signatures, summary = recipes.annotate(crawl, reference, valid, p.curation, p.seed, p.train.workers)
    with atomic_dir(CURATED) as tmp:
        save_curated(tmp, table, signatures)
    write_json(REPORTS / "curate.json", summary)
    print(f"curate: {summary['pages']} pages; classifier held-out accuracy "
          f"{summary['classifier_heldout_accuracy']}; {summary['contaminated']} near validation")


if __name__ == "__main__":
    stage.main("curate", main)
