"""What the curation stages read: the reference texts the quality classifiers learn from, and the
documents (with their annotations) a recipe draws from. Kept here rather than in the stage scripts
because it is curation logic: which pool documents count as "reference" decides the classifier."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from proxyrank.data.crawl import is_reference
from proxyrank.errors import DataError

SIGNATURES = ("minhash", "aggressive")  # the MinHash signature sets the curate stage saves


def reference_texts(pool_path: Path, reference_share: float, reference_domains) -> list[str]:
    """The pool documents held out of the crawl as the high-quality reference (crawl.is_reference)
    from the domains named in `curation.reference_domains`, in pool order."""
    pool = pq.read_table(pool_path, columns=["id", "domain", "text"])
    ids, domain = pool.column("id").to_pylist(), np.array(pool.column("domain").to_pylist(), dtype=object)
    ref = is_reference(ids, reference_share) & np.isin(domain, reference_domains)
    return pool.column("text").take(np.flatnonzero(ref)).to_pylist()


def recipe_docs(source: str, pool_path: Path, crawl_path: Path, curated: Path):
    """The documents a recipe draws from: the clean pool, or the crawl joined with its annotations
    (and the MinHash signatures the dedup recipes need)."""
    if source == "pool":
        return pq.read_table(pool_path), {}
    crawl = pq.read_table(crawl_path)
    notes = pq.read_table(curated / "annotations.parquet")
    if crawl.column("id") != notes.column("id"):
        raise DataError(f"{crawl_path} and {curated / 'annotations.parquet'} list different pages; "
                        f"rerun `dvc repro curate`")
    for name in notes.column_names[1:]:
        crawl = crawl.append_column(name, notes.column(name))
    signatures = {n: np.load(curated / f"{n}.npy", allow_pickle=False) for n in SIGNATURES}
    return crawl, signatures


def save_curated(folder: Path, table, signatures: dict) -> None:
    """The curate stage's output folder: annotations.parquet and one .npy per signature set."""
    pq.write_table(table, folder / "annotations.parquet", compression="zstd")
    for name, sig in signatures.items():
        with open(folder / f"{name}.npy", "wb") as f:
            np.save(f, sig, allow_pickle=False)
