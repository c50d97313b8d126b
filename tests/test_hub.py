"""The hub path: `datasets` sources in the five corpus schemas, read from local files, offline."""
import gzip
import json
import re
import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from proxyrank.data import hub
from proxyrank.data.corpus import (
    FetchError,
    extract,
    fetch,
    load_sources,
    read_docs,
    source_domains,
)
from proxyrank.files import sha256
from proxyrank.errors import DataError

PILE_NAMES = ["Pile-CC", "Github", "ArXiv", "github"]  # "github": spelled as some Pile copies do


def _topics() -> list[tuple[str, str]]:
    from pydoc_data.topics import topics

    return sorted(topics.items())[:40]


def _jsonl(path, rows, gz=False):
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)


def write_schema_files(folder):
    """A few dozen documents of real English in each schema, named and typed as the dataset cards say."""
    docs = _topics()
    _jsonl(folder / "pile.jsonl", [{"text": t, "meta": {"pile_set_name": PILE_NAMES[i % 4]}}
                                   for i, (_, t) in enumerate(docs)])
    _jsonl(folder / "c4.jsonl", [{"text": t, "url": f"https://docs.python.org/3/{k}", "timestamp": "2019-04-25T12:57:54Z"}
                                 for k, t in docs])
    pq.write_table(pa.table({
        "bff_contained_ngram_count_before_dedupe": [0] * len(docs),
        "language_id_whole_page_fasttext": [{"en": 0.9}] * len(docs),
        "metadata": [{"WARC-Target-URI": f"https://docs.python.org/{k}"} for k, _ in docs],
        "previous_word_count": [len(t.split()) for _, t in docs],
        "text": [t for _, t in docs],
        "url": [f"https://docs.python.org/{k}" for k, _ in docs],
        "warcinfo": ["isPartOf: CC-MAIN-2023-06"] * len(docs),
        hub.DCLM_SCORE: [i / len(docs) for i in range(len(docs))],
    }), folder / "dclm.parquet")
    pq.write_table(pa.table({
        "content": [t for _, t in docs],
        "url": [f"https://docs.python.org/{k}" for k, _ in docs],
        "timestamp": pa.array([1_600_000_000] * len(docs), pa.timestamp("s")),
        "dump": ["CC-MAIN-2020-40"] * len(docs),
        "segment": ["1600400187354.1"] * len(docs),
        "image_urls": [[] for _ in docs],
    }), folder / "refinedweb.parquet")
    rpv2 = []
    for i, (k, t) in enumerate(docs):
        part = ("head", "middle", "tail")[i % 3]
        meta = {"url": f"https://docs.python.org/{k}", "partition": "tail" if part == "tail" else "head_middle",
                "language": "en", "source_domain": "docs.python.org", "date_download": "2023-02-01T00:00:00Z",
                "digest": f"sha1:{i}"}
        signals = {"is_duplicate": None} if part == "tail" else {  # tail documents carry no signals
            "ccnet_bucket": [[0, len(t), float(i % 3)]], "ccnet_perplexity": [[0, len(t), 100.0 + i]],
            "ccnet_length": [[0, len(t), float(len(t))]], "is_duplicate": False}
        rpv2.append({"raw_content": t, "doc_id": f"2023-06/0000/en_{part}.json.gz/{i}",
                     "meta": json.dumps(meta), "quality_signals": json.dumps(signals)})
    _jsonl(folder / "rpv2.jsonl", rpv2)
    (folder / "text").mkdir()
    _jsonl(folder / "text" / "part-0.jsonl.gz", [{"text": t} for _, t in docs[:20]], gz=True)
    _jsonl(folder / "text" / "part-1.jsonl.gz", [{"text": t} for _, t in docs[20:]], gz=True)


SPECS = {
    "pile": {"path": "pile.jsonl", "schema": "pile", "parsers": {"hub": "*"}, "max_docs": 30},
    "c4": {"path": "c4.jsonl", "schema": "c4", "parsers": {"hub": "c4"}, "max_docs": 12},
    "dclm": {"path": "dclm.parquet", "schema": "dclm", "parsers": {"hub": "dclm"}, "max_docs": 15},
    "refinedweb": {"path": "refinedweb.parquet", "schema": "refinedweb", "parsers": {"hub": "refinedweb"},
                   "max_docs": 15},
    "rpv2": {"path": "rpv2.jsonl", "schema": "redpajama-v2", "parsers": {"hub": "rpv2"}, "max_docs": 40},
    "text": {"path": "text", "schema": "text", "parsers": {"hub": "books"}, "max_chars": 20000},
}


def _manifest(folder, specs=None, **overrides):
    specs = specs or SPECS
    data = {name: {"registry": "hub", "licence": "PSF-2.0", **spec, **overrides} for name, spec in specs.items()}
    (folder / "sources.yaml").write_text(yaml.safe_dump(data))
    return load_sources(folder / "sources.yaml")


def _offline(mp: pytest.MonkeyPatch) -> None:
    """Nothing here may reach the network: offline flags (also where datasets and huggingface_hub
    read them at import), and a socket that refuses internet connections."""
    import datasets.config
    import huggingface_hub.constants

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        mp.setenv(var, "1")
    mp.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"test tried to reach the network: {address}")
        return real_connect(self, address)

    mp.setattr(socket.socket, "connect", connect)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    _offline(monkeypatch)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hubdata")
    write_schema_files(folder)
    return folder


@pytest.fixture(scope="module")
def fetched(data, tmp_path_factory):
    """All six sources fetched and extracted once through the real corpus functions."""
    sources = _manifest(data)
    out = tmp_path_factory.mktemp("out")
    with pytest.MonkeyPatch.context() as mp:  # module scope runs before the autouse guard: apply it here
        _offline(mp)
        assert fetch(sources, list(sources), out / "raw", allow_missing=False) == []
        extract(sources, list(sources), out / "raw", out / "docs", allow_missing=False, workers=1)
    return sources, out


def test_every_schema_lands_with_its_domains(fetched):
    sources, out = fetched
    docs = read_docs((out / "docs").glob("*.parquet"))
    by_source = {}
    for s, d in zip(docs.column("source").to_pylist(), docs.column("domain").to_pylist()):
        by_source.setdefault(s, set()).add(d)
    assert by_source["pile"] == {"Pile-CC", "Github", "ArXiv"}  # set names become domains, "github" normalised
    assert by_source["c4"] == {"c4"} and by_source["dclm"] == {"dclm"}
    assert by_source["refinedweb"] == {"refinedweb"} and by_source["rpv2"] == {"rpv2"}
    assert by_source["text"] == {"books"}
    assert "bucket" not in docs.column_names and "quality_score" not in docs.column_names  # not in every table
    assert {"Pile-CC", "Github", "ArXiv", "c4", "rpv2"} <= source_domains(sources, list(sources))
    topics = {t.strip() for _, t in _topics()}
    assert set(docs.column("text").to_pylist()) <= topics  # the real text, cleaned as the parsers clean it
    groups = [g for g, s in zip(docs.column("group").to_pylist(), docs.column("source").to_pylist()) if s == "c4"]
    assert all(g.startswith("c4:hub:https://docs.python.org/3/") for g in groups)  # web documents grouped by URL


def test_budgets_are_respected(fetched):
    _, out = fetched
    for name in ("pile", "c4", "dclm", "refinedweb", "rpv2"):
        assert pq.ParquetFile(out / "raw" / f"{name}.parquet").metadata.num_rows == SPECS[name]["max_docs"]
    lengths = [len(t) for t in pq.read_table(out / "docs" / "text.parquet").column("text").to_pylist()]
    assert sum(lengths) >= 20000 and sum(lengths[:-1]) < 20000 and len(lengths) < 40


def test_rpv2_keeps_its_bucket_and_perplexity(fetched):
    _, out = fetched
    docs = read_docs([out / "docs" / "rpv2.parquet"])
    assert docs.column_names[-2:] == ["bucket", "quality_score"]
    rows = docs.select(["bucket", "quality_score"]).to_pylist()
    assert {r["bucket"] for r in rows} == {"head", "middle", "tail"}
    assert all((r["quality_score"] is None) == (r["bucket"] == "tail") for r in rows)
    assert all(100 <= r["quality_score"] < 140 for r in rows if r["quality_score"] is not None)
    both = read_docs([out / "docs" / "rpv2.parquet", out / "docs" / "dclm.parquet"])
    assert "quality_score" in both.column_names and "bucket" not in both.column_names


def test_sidecar_records_the_table_and_extract_checks_it(fetched, tmp_path):
    sources, out = fetched
    record = json.loads((out / "raw" / "c4.parquet.json").read_text())
    assert record["sha256"] == sha256(out / "raw" / "c4.parquet")
    assert record["revision"] is None and record["files"][0]["name"] == "c4.jsonl"
    assert record["docs"] == 12 and record["spec"]["schema"] == "c4"
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "c4.parquet").write_bytes((out / "raw" / "c4.parquet").read_bytes())
    (raw / "c4.parquet.json").write_text(json.dumps({**record, "sha256": "0" * 64}))
    with pytest.raises(FetchError, match="checksum mismatch"):
        extract(sources, ["c4"], raw, tmp_path / "docs", allow_missing=False, workers=1)


def test_same_seed_same_sample_and_unchanged_tables_are_kept(data, tmp_path):
    def sample(raw, **overrides):
        sources = _manifest(data, {"c4": SPECS["c4"]}, **overrides)
        fetch(sources, ["c4"], raw, allow_missing=False)
        return pq.read_table(raw / "c4.parquet").column("text").to_pylist()

    first = sample(tmp_path / "a", seed=7)
    assert sample(tmp_path / "b", seed=7) == first
    assert sample(tmp_path / "c", seed=8) != first
    stamp = (tmp_path / "a" / "c4.parquet").stat().st_mtime_ns
    assert sample(tmp_path / "a", seed=7) == first
    assert (tmp_path / "a" / "c4.parquet").stat().st_mtime_ns == stamp  # same spec, same bytes: kept
    assert len(sample(tmp_path / "a", seed=7, max_docs=5)) == 5  # spec changed: sampled again


def test_wrong_schema_names_source_schema_and_field(data, tmp_path):
    for path, schema, field in (("refinedweb.parquet", "c4", "text"), ("c4.jsonl", "redpajama-v2", "raw_content"),
                                ("c4.jsonl", "dclm", hub.DCLM_SCORE)):
        sources = _manifest(data, {"mine": {"path": path, "schema": schema, "parsers": {"hub": "web"},
                                            "max_docs": 5}})
        with pytest.raises(hub.HubSchemaError, match=f"mine: schema '{schema}' needs field '{field}'"):
            fetch(sources, ["mine"], tmp_path, allow_missing=True)  # a manifest error, never skipped
    _jsonl(tmp_path / "notpile.jsonl", [{"text": t, "meta": {"source": "x"}} for _, t in _topics()[:5]])
    sources = _manifest(tmp_path, {"mine": {"path": "notpile.jsonl", "schema": "pile", "parsers": {"hub": "*"},
                                            "max_docs": 5}})
    with pytest.raises(hub.HubSchemaError, match="schema 'pile' needs field 'meta.pile_set_name'"):
        fetch(sources, ["mine"], tmp_path / "raw", allow_missing=False)


def test_unreachable_hub_is_a_fetch_error(tmp_path):
    sources = _manifest(tmp_path, {"c4-en": {"dataset": "allenai/c4", "config": "en", "schema": "c4",
                                             "parsers": {"hub": "c4"}, "max_docs": 10}})
    assert sources["c4-en"].file == "c4-en.parquet" and sources["c4-en"].split == "train"
    with pytest.raises(FetchError, match="c4-en: cannot resolve allenai/c4@main"):
        fetch(sources, ["c4-en"], tmp_path / "raw", allow_missing=False)
    assert fetch(sources, ["c4-en"], tmp_path / "raw", allow_missing=True) == ["c4-en"]
    assert not list((tmp_path / "raw").glob("*.parquet"))


def test_bad_hub_manifest_entries(tmp_path):
    base = {"path": "x.jsonl", "schema": "c4", "parsers": {"hub": "web"}, "max_docs": 10}
    for change, expect in (
            ({"schema": "wiki"}, "unknown schema 'wiki'; allowed: pile, c4, dclm, refinedweb, redpajama-v2, text"),
            ({"parsers": {"hub": "*"}}, "needs a schema whose rows name their domain (pile)"),
            ({"parsers": {"jsonl": "web"}}, "parsers must be {hub: DOMAIN}"),
            ({"dataset": "allenai/c4"}, "exactly one of `dataset`"),
            ({"sha256": "0" * 64}, "has no `file` or `sha256`"),
            ({"revision": "main"}, "`config` and `revision` apply to hub datasets"),
            ({"max_docs": "lots"}, "max_docs: must be a positive integer"),
            ({"max_docs": None}, "needs a budget")):
        spec = {k: v for k, v in {**base, **change}.items() if v is not None}
        with pytest.raises(DataError, match=re.escape(expect)):
            _manifest(tmp_path, {"mine": spec})
    with pytest.raises(DataError, match="missing key.*'schema'"):
        _manifest(tmp_path, {"mine": {k: v for k, v in base.items() if k != "schema"}})
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump({"mine": {
        "registry": "local", "path": "a.jsonl", "file": "a.jsonl", "sha256": "0" * 64, "licence": "CC0",
        "parsers": {"jsonl": "web"}, "max_docs": 5}}))
    with pytest.raises(DataError, match="max_docs apply only to registry hub"):
        load_sources(tmp_path / "sources.yaml")
